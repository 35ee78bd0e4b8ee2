"""Which client headers may be forwarded upstream (``forward_headers``).

Forwarding is for headers the upstream reads as data (a tenant id, a feature flag, the
client's own ``Authorization`` for a provider the gateway holds no key for). Headers that
frame or route the HTTP exchange are never forwarded: a client-chosen ``Host`` or
``Content-Length`` changes where and what the upstream receives. Nor are ``x-portkey-*``
headers, which are the gateway's own. A forwarded header never replaces one the provider
adapter sets (its credentials among them): those are set after.
"""

from __future__ import annotations

from collections.abc import Iterable

from portkey_mw.errors import InvalidRequest

#: RFC 9110 hop-by-hop headers, and those that frame or address the message.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
FRAMING = frozenset({"host", "content-length", "content-encoding", "content-type", "expect"})
NEVER_FORWARDED = HOP_BY_HOP | FRAMING


def unforwardable(names: Iterable[str]) -> list[str]:
    """The names in ``names`` that are never forwarded, lower-cased and sorted."""
    lowered = {name.strip().lower() for name in names}
    return sorted(n for n in lowered if n in NEVER_FORWARDED or n.startswith("x-portkey-"))


def refusal(source: str, refused: Iterable[str]) -> str:
    """The message for a list that names headers that are never forwarded."""
    return (
        f"{source} lists {', '.join(refused)}, which the gateway never forwards "
        "(hop-by-hop, framing and x-portkey-* headers)"
    )


def check_forwardable(names: Iterable[str], source: str) -> None:
    """Raise a 400 naming ``source`` when it lists a header that is never forwarded."""
    refused = unforwardable(names)
    if refused:
        raise InvalidRequest(refusal(source, refused), param=source, code="invalid_forward_headers")
