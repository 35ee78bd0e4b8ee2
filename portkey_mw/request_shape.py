"""The shape of a request body: the fields the gateway and its providers read, by type.

A body is checked once, right after it is parsed, so that no translation further down has
to guess: a field of the wrong type is a 400 naming the field, never a 500 from deep inside
a provider adapter.
"""

from __future__ import annotations

from typing import Any

from portkey_mw.context import Endpoint
from portkey_mw.errors import InvalidRequest

#: body parameter each endpoint cannot do without
REQUIRED_PARAM = {
    Endpoint.CHAT_COMPLETIONS: "messages",
    Endpoint.COMPLETIONS: "prompt",
    Endpoint.EMBEDDINGS: "input",
    Endpoint.IMAGES: "prompt",
    Endpoint.MODERATIONS: "input",
    Endpoint.COUNT_TOKENS: "messages",
}


def require_param(endpoint: Endpoint, body: dict[str, Any]) -> None:
    """Raise a 400 when ``body`` lacks the one parameter ``endpoint`` cannot do without
    (checked on the client's body in any inbound format: the names are the same)."""
    required = REQUIRED_PARAM.get(endpoint)
    if required and required not in body:
        raise InvalidRequest(
            f"'{required}' is a required property", param=required, code="missing_param"
        )


def check_body(endpoint: Endpoint, body: dict[str, Any]) -> None:
    """Raise :class:`InvalidRequest` (400, ``param`` naming the field) when an OpenAI-format
    ``body`` lacks what ``endpoint`` needs or a field it reads has the wrong type."""
    require_param(endpoint, body)
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise InvalidRequest("'stream' must be a boolean", param="stream")
