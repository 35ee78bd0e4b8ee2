"""Keeping credentials out of what the gateway shows: URLs in output, echoed error bodies.

One place decides what counts as a credential in an outbound request (the headers and
query parameters that carry one) and how it is masked, so that every module that shows a
URL or relays an upstream's words applies the same rule.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import orjson

#: What replaces a credential in text the gateway relays.
MASK = "[redacted]"
#: Request headers whose value is a credential (lower-case).
CREDENTIAL_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "api-key",
        "x-api-key",
        "x-goog-api-key",
        "x-amz-security-token",
        "ocp-apim-subscription-key",
        "cookie",
    }
)
#: Query parameters whose value is a credential (lower-case), as some APIs take keys.
CREDENTIAL_PARAMS = frozenset(
    {"key", "api_key", "api-key", "apikey", "access_token", "token", "sig", "signature"}
)
#: Shorter values are not masked: they would garble ordinary words, and no real key is
#: that short.
MIN_SECRET_LENGTH = 6
# The parts of an AWS SigV4 Authorization header worth masking on their own.
_SIGV4_PARTS = re.compile(r"(?:Credential=([^/,\s]+)|Signature=([0-9a-fA-F]+))")


def redact_url(url: str | None) -> str | None:
    """``url`` without userinfo, query string or fragment: safe to show in output."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return url.split("?", 1)[0].split("#", 1)[0].rpartition("@")[2]
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def credential_values(
    headers: Mapping[str, str], url: str = "", extra: Iterable[str] = ()
) -> list[str]:
    """Every credential an outbound request carries: credential headers (and the token
    inside an ``Authorization`` value), credential query parameters, and ``extra``."""
    found: list[str] = list(extra)
    for name, value in headers.items():
        if name.lower() not in CREDENTIAL_HEADERS:
            continue
        found.append(value)
        scheme, _, token = value.partition(" ")
        if token:
            found.append(token.strip())
        if scheme.startswith("AWS4-"):
            found.extend(part for match in _SIGV4_PARTS.findall(value) for part in match if part)
    if "?" in url:
        query = url.split("?", 1)[1].split("#", 1)[0]
        found.extend(v for k, v in parse_qsl(query) if k.lower() in CREDENTIAL_PARAMS)
    return sorted({v for v in found if len(v) >= MIN_SECRET_LENGTH}, key=len, reverse=True)


def mask(data: bytes, secrets: Iterable[str]) -> bytes:
    """``data`` with every secret replaced by :data:`MASK`, raw and as JSON escapes it."""
    for secret in secrets:
        raw = secret.encode()
        if raw in data:
            data = data.replace(raw, MASK.encode())
        escaped = orjson.dumps(secret)[1:-1]
        if escaped != raw and escaped in data:
            data = data.replace(escaped, MASK.encode())
    return data


def mask_text(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret replaced by :data:`MASK` (for messages built from an
    upstream's words)."""
    for secret in secrets:
        if len(secret) >= MIN_SECRET_LENGTH and secret in text:
            text = text.replace(secret, MASK)
    return text
