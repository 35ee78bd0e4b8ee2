"""Fetching images for providers that need the bytes, through the outbound policy.

Some providers (Gemini, Bedrock) cannot take an image by URL; the gateway then fetches it
for them. A gateway that fetches whatever URL a client names is a server-side request
forgery tool, so images come through :class:`~portkey_mw.fetch.Fetcher`: public addresses
only (unless the operator allows more in ``outbound.allow``), each redirect checked again,
and never more than 20 MiB read.
"""

from __future__ import annotations

import base64
import re

from portkey_mw.errors import DestinationNotAllowed, GatewayError, InvalidRequest
from portkey_mw.fetch import Fetcher
from portkey_mw.redact import redact_url
from portkey_mw.transport import Transport

#: A base64 ``data:`` URL, as OpenAI image parts carry inline images.
DATA_URL = re.compile(r"^data:(?P<media>[\w.+-]+/[\w.+-]+);base64,(?P<data>.*)$", re.DOTALL)
MAX_IMAGE_BYTES = 20 * 1024 * 1024
FETCH_TIMEOUT = 10.0
#: Redirects an image URL may take (each hop passes the outbound policy again).
MAX_IMAGE_REDIRECTS = 3


async def image_data_url(url: str, transport: Transport) -> str:
    """The image at ``url`` as a ``data:`` URL.

    :raises DestinationNotAllowed: the outbound policy refuses the URL or an address on
        the way (a redirect included).
    :raises InvalidRequest: the URL does not answer with an image of at most 20 MiB.
    """
    shown = redact_url(url)
    try:
        fetched = await Fetcher(transport).request(
            "GET",
            url,
            time_limit=FETCH_TIMEOUT,
            max_bytes=MAX_IMAGE_BYTES,
            redirects=MAX_IMAGE_REDIRECTS,
        )
    except DestinationNotAllowed as exc:
        raise DestinationNotAllowed(f"image URL refused: {exc.message}", param="messages") from None
    except GatewayError as exc:
        code = "image_too_large" if exc.code == "upstream_body_too_large" else "invalid_image_url"
        raise InvalidRequest(f"image URL {shown!r} failed: {exc.message}", code=code) from None
    if fetched.status != 200 or not fetched.media_type.startswith("image/"):
        raise InvalidRequest(
            f"image URL {shown!r} answered {fetched.status} "
            f"{fetched.media_type or 'without a type'}, not an image",
            code="invalid_image_url",
        )
    return f"data:{fetched.media_type};base64,{base64.b64encode(fetched.body).decode()}"
