"""The ``reka-ai`` provider plugin: Reka's native chat API (``POST /v1/chat``) behind
OpenAI's chat completions.

Reka's turns are ``user`` and ``assistant`` only, with content a string or a list of
``{"type": "text"}`` and ``{"type": "image_url", "image_url": "<url>"}`` parts (the URL a
plain string, not OpenAI's object). System and developer messages become a preamble of
the first user turn. The answer is ``{"responses": [{"message", "finish_reason"}], "usage":
{"input_tokens", "output_tokens"}}``. Streaming is not translated: a streamed request is
refused with a 400 rather than answered in a shape the client did not ask for.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from portkey_mw import hookimpl
from portkey_mw.context import Endpoint, GatewayResponse
from portkey_mw.errors import InvalidRequest
from portkey_mw.interfaces import Provider, ProviderCall
from portkey_mw.media import image_url_of
from portkey_mw.provider_http import (
    HTTPProvider,
    json_post,
    report_dropped,
)
from portkey_mw.translation import content_text, dropped_params, json_object, reads_answer
from portkey_mw.transport import UpstreamRequest

BASE_URL = "https://api.reka.ai/v1"
DEFAULT_MODEL = "reka-flash"
_KEPT = (
    "model",
    "temperature",
    "top_p",
    "top_k",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "use_search_engine",
)
_PASSED = {*_KEPT, "messages", "max_tokens", "max_completion_tokens", "stop", "stream"}
FINISH_REASONS = {"stop": "stop", "length": "length", "context": "length"}


def _content(content: Any, index: int) -> Any:
    if content is None or isinstance(content, str):
        return content or ""
    if not isinstance(content, list):
        raise InvalidRequest(
            f"messages[{index}].content must be a string or a list of parts",
            param=f"messages.{index}.content",
        )
    parts: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            parts.append({"type": "text", "text": str(part.get("text", ""))})
        elif kind == "image_url" and image_url_of(part):
            parts.append({"type": "image_url", "image_url": image_url_of(part)})
        else:
            raise InvalidRequest(
                f"messages[{index}]: content part type {kind!r} is not supported by reka-ai",
                param=f"messages.{index}.content",
            )
    return parts


def to_reka(body: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The Reka chat request for an OpenAI chat request, and the parameters dropped."""
    preamble: list[str] = []
    messages: list[dict[str, Any]] = []
    for index, message in enumerate(body.get("messages") or []):
        if not isinstance(message, dict):
            raise InvalidRequest(f"messages[{index}] must be an object", param=f"messages.{index}")
        role = message.get("role")
        if role in ("system", "developer"):
            preamble.append(content_text(message.get("content")))
        elif role in ("user", "assistant"):
            messages.append({"role": role, "content": _content(message.get("content"), index)})
        else:
            raise InvalidRequest(
                f"messages[{index}]: reka-ai takes user and assistant turns, not {role!r}",
                param=f"messages.{index}.role",
            )
    if preamble:
        first_user = next((m for m in messages if m["role"] == "user"), None)
        text = "\n\n".join(p for p in preamble if p)
        if first_user is None:
            messages.insert(0, {"role": "user", "content": text})
        elif isinstance(first_user["content"], str):
            first_user["content"] = f"{text}\n\n{first_user['content']}"
        else:
            first_user["content"].insert(0, {"type": "text", "text": text})
    payload: dict[str, Any] = {k: body[k] for k in _KEPT if body.get(k) is not None}
    payload.setdefault("model", DEFAULT_MODEL)
    payload["messages"] = messages
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if limit:
        payload["max_tokens"] = limit
    stop = body.get("stop")
    if stop:
        payload["stop"] = [stop] if isinstance(stop, str) else stop
    return payload, dropped_params(body, _PASSED)


@reads_answer("reka-ai")
def to_openai(response: dict[str, Any], model: str | None) -> dict[str, Any]:
    """The OpenAI chat completion for a Reka chat answer."""
    choices = []
    for index, item in enumerate(response["responses"]):
        content = (item.get("message") or {}).get("content")
        if isinstance(content, list):
            content = content_text(content)
        choices.append(
            {
                "index": index,
                "message": {"role": "assistant", "content": content},
                "finish_reason": FINISH_REASONS.get(item.get("finish_reason") or "", "stop"),
                "logprobs": None,
            }
        )
    usage = response.get("usage") or {}
    prompt = int(usage.get("input_tokens") or 0)
    completion = int(usage.get("output_tokens") or 0)
    return {
        "id": response.get("id") or "chatcmpl-reka",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": response.get("model") or model,
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }


class RekaProvider(HTTPProvider):
    """Chat (text and images) with Reka's models."""

    id = "reka-ai"
    endpoints = frozenset({Endpoint.CHAT_COMPLETIONS, Endpoint.PROXY})
    features = frozenset({"vision"})

    proxy_base_url = BASE_URL
    key_header = ("x-api-key", "")

    def build_request(self, call: ProviderCall) -> UpstreamRequest:
        key = call.require_key(self.id)
        if call.stream:
            raise InvalidRequest(
                "provider 'reka-ai' does not stream through this gateway: send stream=false",
                param="stream",
                code="unsupported_parameter",
            )
        payload, dropped = to_reka(call.body or {})
        report_dropped(call, self.id, dropped)
        return json_post(call, BASE_URL, "/chat", payload, {"x-api-key": key})

    def map_body(
        self,
        call: ProviderCall,
        status: int,
        headers: dict[str, str],
        body: bytes,
        content_type: str,
    ) -> GatewayResponse:
        answer = to_openai(json_object(self.id, status, body), (call.body or {}).get("model"))
        return GatewayResponse.from_json(answer, status, headers)


@hookimpl
def register_providers(register: Callable[[Provider], None]) -> None:
    """Register the reka-ai provider."""
    register(RekaProvider())
