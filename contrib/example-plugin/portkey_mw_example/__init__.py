"""An example portkey-mw plugin, shipped as its own distribution.

It shows the two things most plugins do on the request path:

* **deny**: a request whose messages contain a blocked word is refused with status 446
  (Portkey's "hooks failed" status) before any provider is called;
* **tag**: every request it lets through gets an ``x-example-plugin`` response header.

The blocked words come from the server file::

    plugins:
      settings:
        portkey-mw-example-plugin:
          blocked_words: ["forbidden-word"]
"""

from __future__ import annotations

from typing import Any

from portkey_mw import GatewayServices, RequestContext, hookimpl
from portkey_mw.errors import RequestDenied

PLUGIN_NAME = "portkey-mw-example-plugin"
DEFAULT_BLOCKED_WORDS = ("forbidden-word",)
STATE_KEY = f"{PLUGIN_NAME}.blocked_words"


@hookimpl
def gateway_startup(gateway: GatewayServices) -> None:
    """Read this plugin's settings once, not on every request."""
    settings = gateway.settings.plugins.settings.get(PLUGIN_NAME, {})
    words = settings.get("blocked_words", DEFAULT_BLOCKED_WORDS)
    gateway.state[STATE_KEY] = tuple(str(word).lower() for word in words)


@hookimpl
def on_request(ctx: RequestContext) -> None:
    """Deny requests that mention a blocked word; tag the rest."""
    words: tuple[str, ...] = ctx.gateway_state.get(STATE_KEY, DEFAULT_BLOCKED_WORDS)
    text = _request_text(ctx.body or {}).lower()
    for word in words:
        if word in text:
            raise RequestDenied(f"the request mentions {word!r}, which this gateway blocks")
    ctx.response_headers["x-example-plugin"] = "seen"


def _request_text(body: dict[str, Any]) -> str:
    """The text a user sent: chat message contents, a completion prompt or embedding input."""
    parts: list[str] = []
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            # Text parts only: other kinds of part may carry a "text" that is not a string.
            parts.extend(p["text"] for p in content if _is_text_part(p))
    for key in ("prompt", "input"):
        value = body.get(key)
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, list):
            parts.extend(v for v in value if isinstance(v, str))
    return "\n".join(parts)


def _is_text_part(part: Any) -> bool:
    return (
        isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
    )
