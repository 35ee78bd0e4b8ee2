"""Fetching images for providers that need the bytes, never from private addresses.

Some providers (Gemini, Bedrock) cannot take an image by URL; the gateway then fetches it
for them. A gateway that fetches whatever URL a client names is a server-side request
forgery tool, so only hosts that resolve exclusively to public addresses are fetched.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import re
import socket
from urllib.parse import urlsplit

from portkey_mw.errors import InvalidRequest
from portkey_mw.transport import Transport, UpstreamRequest

#: A base64 ``data:`` URL, as OpenAI image parts carry inline images.
DATA_URL = re.compile(r"^data:(?P<media>[\w.+-]+/[\w.+-]+);base64,(?P<data>.*)$", re.DOTALL)
MAX_IMAGE_BYTES = 20 * 1024 * 1024
FETCH_TIMEOUT = 10.0


async def image_data_url(url: str, transport: Transport, *, allow_private: bool = False) -> str:
    """The image at ``url`` as a ``data:`` URL.

    :raises InvalidRequest: the URL is not http(s), resolves to a private address (unless
        ``allow_private``), or does not answer with an image of at most 20 MiB.
    """
    try:
        parts = urlsplit(url)
        scheme, host, port = parts.scheme, parts.hostname, parts.port
    except ValueError:  # a port that is not a number, a broken IPv6 literal
        scheme, host, port = "", None, None
    if scheme not in ("http", "https") or not host:
        raise InvalidRequest(
            f"image URL {url[:100]!r} is not an http(s) URL", code="invalid_image_url"
        )
    if not allow_private:
        await _check_public(host, port or (443 if scheme == "https" else 80))
    response = await transport.send(UpstreamRequest("GET", url, timeout=FETCH_TIMEOUT))
    try:
        media = response.headers.get("content-type", "").split(";", 1)[0].strip()
        if response.status != 200 or not media.startswith("image/"):
            raise InvalidRequest(
                f"image URL {url[:100]!r} answered {response.status} {media or 'without a type'}, "
                "not an image",
                code="invalid_image_url",
            )
        data = await response.read()
    finally:
        await response.aclose()
    if len(data) > MAX_IMAGE_BYTES:
        raise InvalidRequest(
            f"image at {url[:100]!r} is larger than 20 MiB", code="image_too_large"
        )
    return f"data:{media};base64,{base64.b64encode(data).decode()}"


async def _check_public(host: str, port: int) -> None:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):  # UnicodeError: a name IDNA cannot encode
        raise InvalidRequest(
            f"image host {host!r} does not resolve", code="invalid_image_url"
        ) from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise InvalidRequest(
                f"image URL host {host!r} resolves to a private address ({address}); the gateway "
                "only fetches images from public addresses",
                code="private_image_url",
            )
