"""Pass-through (``/v1/proxy/…`` and any ``/v1/…`` path no route matches): the client's
request forwarded, untranslated, to the resolved provider's base URL plus the rest of the
path and the query string, with the provider's credentials.

Three rules keep it from becoming an open proxy for the server's keys:

* the suffix appended to the base URL cannot climb out of it (:func:`checked_suffix`
  refuses ``..``, encoded dots, slashes and backslashes, ``//``, ``@`` and a scheme), and
  the URL built is checked to be below the base once more;
* of the client's headers only an allow-list (:data:`CLIENT_HEADERS`) and the
  ``forward_headers`` lists go upstream: never its ``Authorization`` (the provider adapter
  sets the credentials), never a hop-by-hop or ``x-portkey-*`` header;
* the body streams to the upstream as it arrives, refused with 413 past
  ``server.max_body_bytes`` (:class:`~portkey_mw.client_body.ClientBody`).

The answer streams back as it arrives, SSE or not; an error answer is read (bounded by
the transport) so that a credential the upstream echoes is masked.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

from portkey_mw import _http
from portkey_mw.client_body import ClientBody, declared_length
from portkey_mw.context import GatewayResponse, RequestContext
from portkey_mw.errors import InvalidRequest
from portkey_mw.redact import mask_text
from portkey_mw.transport import Transport, UpstreamRequest
from portkey_mw.types import Receive, Scope

#: the route whose rest is forwarded (``/v1/proxy/files`` → ``{base}/files``)
PROXY_PREFIX = "/v1/proxy"
#: ``ctx.state`` key of the request's :class:`ProxyRequest`
STATE_KEY = "portkey_mw.proxy"

#: client headers forwarded as they are: what the body is, what answer is wanted, and the
#: API-version and beta flags of the providers whose APIs are most often passed through
CLIENT_HEADERS = frozenset(
    {
        "content-type",
        "content-length",
        "accept",
        "accept-language",
        "idempotency-key",
        "openai-beta",
        "openai-organization",
        "openai-project",
        "anthropic-version",
        "anthropic-beta",
        "x-goog-api-client",
        "cohere-version",
    }
)
#: upstream headers a client sees beside :func:`provider_http.passthrough_headers`'s: what
#: the body is, and the providers' request ids and rate-limit headers
RESPONSE_HEADERS = frozenset({"content-type", "content-disposition", "request-id"})
RESPONSE_PREFIXES = ("anthropic-ratelimit-",)

# What a suffix may never contain (lower-cased, still percent-encoded): a way up (``..``,
# encoded dots or slashes), another authority (``//``, ``@``, a backslash some parsers read
# as a slash), a NUL or a double encoding.
_FORBIDDEN = ("..", "%2e", "%2f", "%5c", "%00", "%25", "\\", "//", "@")
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)
_PRINTABLE = re.compile(r"[\x21-\x7e]*")


def proxy_suffix(raw_path: str) -> str:
    """The part of a pass-through path below the provider's base URL: the rest after
    ``/v1/proxy``, or after ``/v1`` for any other path (Portkey's gateway does the same)."""
    prefix = (
        PROXY_PREFIX
        if raw_path == PROXY_PREFIX or raw_path.startswith(PROXY_PREFIX + "/")
        else "/v1"
    )
    return raw_path[len(prefix) :]


def checked_suffix(suffix: str) -> str:
    """``suffix`` (percent-encoded, as the client sent it), when it stays below a base URL.

    :raises InvalidRequest: 400 ``invalid_proxy_path`` for anything that could climb out of
        the base URL or name another host.
    """
    lowered = suffix.lower()
    bad = next((s for s in _FORBIDDEN if s in lowered), None)
    if bad is None and _SCHEME.match(suffix.lstrip("/")):
        bad = "a scheme"
    if bad is None and not _PRINTABLE.fullmatch(suffix):
        bad = "a space or control character"
    if bad is not None:
        raise InvalidRequest(
            f"the pass-through path {suffix[:120]!r} cannot contain {bad}: it must stay below "
            "the provider's base URL",
            code="invalid_proxy_path",
        )
    if suffix and not suffix.startswith("/"):
        suffix = "/" + suffix
    return suffix


def upstream_url(base_url: str, suffix: str, query: str) -> str:
    """The URL a pass-through request goes to: ``base_url`` + ``suffix`` + ``?query``,
    checked to be on the base's origin and below its path."""
    base = base_url.rstrip("/")
    url = base + checked_suffix(suffix)
    at, under = urlsplit(url), urlsplit(base)
    if (at.scheme, at.netloc) != (under.scheme, under.netloc) or not at.path.startswith(under.path):
        raise InvalidRequest(
            "the pass-through path leaves the provider's base URL", code="invalid_proxy_path"
        )
    return url + ("?" + query if query else "")


@dataclass(slots=True)
class ProxyRequest:
    """What a pass-through request forwards, kept in ``ctx.state[STATE_KEY]``."""

    #: the percent-encoded path: the route's as received, then (checked by
    #: :func:`open_body`) the part below the provider's base URL
    suffix: str
    #: the raw query string
    query: str
    #: the body to stream, or ``None`` when the request declares none
    body: ClientBody | None = None
    headers: dict[str, str] = field(default_factory=dict)


def prepare(ctx: RequestContext, scope: Scope) -> None:
    """Note a pass-through request's raw path and query for :func:`open_body` (the
    application calls it; nothing is checked yet, so that a refusal is logged)."""
    query = scope.get("query_string", b"")
    ctx.state[STATE_KEY] = ProxyRequest(
        raw_route_path(scope), query.decode("latin-1") if isinstance(query, bytes) else ""
    )


def open_body(
    ctx: RequestContext, receive: Receive, limit: int, time_limit: float | None
) -> ClientBody | None:
    """Check a pass-through request's path and declared size, before anything else runs,
    and give it the body to stream (``None``: it declares none).

    :raises InvalidRequest: a path that would leave the base URL (400).
    :raises PayloadTooLarge: a declared ``content-length`` over ``limit`` (413).
    """
    request = proxy_request(ctx)
    request.suffix = checked_suffix(proxy_suffix(request.suffix))
    declared = declared_length(ctx.headers, limit)
    if has_body(ctx.headers):
        request.body = ClientBody(receive, limit, time_limit, declared=declared)
    return request.body


def raw_route_path(scope: Scope) -> str:
    """The request's path below the mount point as the client sent it, percent-encoding
    kept (the decoded ``path`` cannot tell ``%2F`` from ``/``)."""
    raw = scope.get("raw_path")
    if not isinstance(raw, bytes):
        return quote(_http.route_path(scope), safe="/:@!$&'()*+,;=-._~")
    text = raw.decode("latin-1").split("?", 1)[0]
    root: str = scope.get("root_path", "")
    if root:
        # the mount's own segments (the operator's, never encoded slashes)
        depth = root.rstrip("/").count("/")
        text = "/" + "/".join(text.split("/")[depth + 1 :])
    return text


def has_body(headers: Mapping[str, str]) -> bool:
    """Whether the request declares a body (a length above 0, or chunked framing)."""
    length = headers.get("content-length")
    if length is not None:
        return length.strip() not in ("", "0")
    return "chunked" in headers.get("transfer-encoding", "").lower()


def proxy_request(ctx: RequestContext) -> ProxyRequest:
    """The pass-through request ``ctx`` carries.

    :raises InvalidRequest: ``ctx`` is not a pass-through request.
    """
    request = ctx.state.get(STATE_KEY)
    if not isinstance(request, ProxyRequest):
        raise InvalidRequest("not a pass-through request", code="unsupported_endpoint")
    return request


def client_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The client's headers a pass-through forwards (:data:`CLIENT_HEADERS`), minus any a
    ``Connection`` header names as hop-by-hop."""
    hop = {n.strip().lower() for n in headers.get("connection", "").split(",")}
    return {n: v for n, v in headers.items() if n in CLIENT_HEADERS and n not in hop}


async def forward(
    ctx: RequestContext,
    transport: Transport,
    *,
    base_url: str,
    headers: Mapping[str, str],
    upstream_timeout: float | None,
    keep_headers: Callable[[Mapping[str, str], Sequence[str]], dict[str, str]],
    secrets: tuple[str, ...] = (),
) -> GatewayResponse:
    """Send the pass-through request below ``base_url`` with ``headers`` (the client's
    allowed ones, then the provider's credentials) and stream the answer back.

    :param keep_headers: the upstream headers every provider answer shows a client
        (:func:`portkey_mw.provider_http.passthrough_headers`); a pass-through adds
        :data:`RESPONSE_HEADERS`.
    """
    request = proxy_request(ctx)
    upstream = UpstreamRequest(
        ctx.method,
        upstream_url(base_url, request.suffix, request.query),
        headers=dict(headers),
        body=request.body,
        timeout=upstream_timeout,
        stream=True,
        secrets=secrets,
    )
    # (a body that stops the request is reported as the client's error: the transport)
    answer = await transport.send(upstream)
    credentials = tuple(upstream.credentials())
    kept = keep_headers(answer.headers, credentials)
    kept.update(response_headers(answer.headers, credentials))
    if answer.status >= 400:
        # Read (bounded, credentials masked by the transport) so that an error body never
        # repeats the key; the status and the provider's words are kept.
        try:
            body = await answer.read()
        finally:
            await answer.aclose()
        return GatewayResponse(answer.status, body, headers=kept)
    response = GatewayResponse(
        answer.status, headers=kept, stream=answer.iter_chunks(), close=answer.aclose
    )
    response.secrets = credentials
    return response


def response_headers(headers: Mapping[str, str], secrets: tuple[str, ...]) -> dict[str, str]:
    """The upstream headers only a pass-through client sees (lower-cased, credentials
    masked)."""
    kept = {}
    for name, value in headers.items():
        lower = name.lower()
        if lower in RESPONSE_HEADERS or lower.startswith(RESPONSE_PREFIXES):
            kept[lower] = mask_text(value, secrets) if secrets else value
    return kept
