"""Fetching images for providers that need the bytes, through the outbound policy.

Some providers (Gemini, Bedrock) cannot take an image by URL; the gateway then fetches it
for them. A gateway that fetches whatever URL a client names is a server-side request
forgery tool, so images come through :class:`~portkey_mw.fetch.Fetcher`: public addresses
only (unless the operator allows more in ``outbound.allow``), each redirect checked again,
and never more than 20 MiB read. One request may have at most 20 images fetched, 32 MiB in
all: a request is small, what it makes the gateway hold must stay small too.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from portkey_mw.errors import DestinationNotAllowed, GatewayError, InvalidRequest
from portkey_mw.fetch import Fetcher
from portkey_mw.redact import redact_url
from portkey_mw.transport import Transport

#: A base64 ``data:`` URL, as OpenAI image parts carry inline images.
DATA_URL = re.compile(r"^data:(?P<media>[\w.+-]+/[\w.+-]+);base64,(?P<data>.*)$", re.DOTALL)
MAX_IMAGE_BYTES = 20 * 1024 * 1024
#: What one request may have fetched in all (Bedrock takes 20 images, Gemini 20 MB inline).
MAX_IMAGES_PER_REQUEST = 20
MAX_IMAGE_BYTES_PER_REQUEST = 32 * 1024 * 1024
FETCH_TIMEOUT = 10.0
#: Redirects an image URL may take (each hop passes the outbound policy again).
MAX_IMAGE_REDIRECTS = 3


def image_url_of(part: Any) -> str | None:
    """The URL of an OpenAI ``image_url`` content part, given as ``{"url": ...}`` or as the
    URL itself; ``None`` for any other part."""
    if not isinstance(part, dict) or part.get("type") != "image_url":
        return None
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    return url if isinstance(url, str) else None


async def with_fetched_images(body: dict[str, Any], transport: Transport) -> dict[str, Any]:
    """``body`` with every image URL of its messages replaced by the image as a ``data:``
    URL, for providers that take image bytes only. ``body`` itself is left as it is.

    :raises InvalidRequest: more than :data:`MAX_IMAGES_PER_REQUEST` images, or more than
        :data:`MAX_IMAGE_BYTES_PER_REQUEST` bytes of them (``too_many_images``).
    """
    messages = body.get("messages")
    if not isinstance(messages, list):
        return body
    count = sum(_remote_images(message) for message in messages)
    if not count:
        return body
    if count > MAX_IMAGES_PER_REQUEST:  # refused before anything is fetched
        raise _too_many(f"{count} image URLs")
    fetched: list[Any] = []
    size = 0
    for message in messages:
        if not _remote_images(message):
            fetched.append(message)
            continue
        parts = []
        for part in message["content"]:
            url = image_url_of(part)
            if url is not None and not DATA_URL.match(url):
                data = await image_data_url(url, transport, MAX_IMAGE_BYTES_PER_REQUEST - size)
                size += len(data) * 3 // 4
                part = {"type": "image_url", "image_url": {"url": data}}
            parts.append(part)
        fetched.append({**message, "content": parts})
    return {**body, "messages": fetched}


def _remote_images(message: Any) -> int:
    """How many image parts of ``message`` name a URL to fetch (not a ``data:`` URL)."""
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, list):
        return 0
    return sum(
        (url := image_url_of(part)) is not None and not DATA_URL.match(url) for part in content
    )


def _too_many(what: str) -> InvalidRequest:
    return InvalidRequest(
        f"a request may not have the gateway fetch {what}: at most "
        f"{MAX_IMAGES_PER_REQUEST} images, {MAX_IMAGE_BYTES_PER_REQUEST} bytes in all; send "
        "the rest inline (data: URLs)",
        param="messages",
        code="too_many_images",
    )


async def image_data_url(url: str, transport: Transport, room: int = MAX_IMAGE_BYTES) -> str:
    """The image at ``url`` as a ``data:`` URL.

    :param room: bytes the request's images may still take (the per-request budget).

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
            max_bytes=min(MAX_IMAGE_BYTES, room),
            redirects=MAX_IMAGE_REDIRECTS,
        )
    except DestinationNotAllowed as exc:
        raise DestinationNotAllowed(f"image URL refused: {exc.message}", param="messages") from None
    except GatewayError as exc:
        if exc.code == "upstream_body_too_large" and room < MAX_IMAGE_BYTES:
            raise _too_many(f"more than {MAX_IMAGE_BYTES_PER_REQUEST} bytes of images") from None
        code = "image_too_large" if exc.code == "upstream_body_too_large" else "invalid_image_url"
        raise InvalidRequest(f"image URL {shown!r} failed: {exc.message}", code=code) from None
    if fetched.status != 200 or not fetched.media_type.startswith("image/"):
        raise InvalidRequest(
            f"image URL {shown!r} answered {fetched.status} "
            f"{fetched.media_type or 'without a type'}, not an image",
            code="invalid_image_url",
        )
    return f"data:{fetched.media_type};base64,{base64.b64encode(fetched.body).decode()}"
