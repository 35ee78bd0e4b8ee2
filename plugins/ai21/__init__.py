"""The ``ai21`` provider plugin: AI21's Jamba chat API behind OpenAI's format.

Jamba answers ``POST /studio/v1/chat/completions`` in a shape close to OpenAI's (choices,
tool calls, usage, and an SSE stream of ``chat.completion.chunk`` events ending in
``[DONE]``), but it takes a narrower request: text-only message content, no ``developer``
role, ``max_tokens`` only, and none of OpenAI's penalties, log-probabilities or
``stream_options``. The adapter rewrites the request and relays the answer; the older
Jurassic-2 ``/{model}/chat`` API was retired with its models and is not served.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from portkey_mw import hookimpl
from portkey_mw.context import Endpoint
from portkey_mw.errors import InvalidRequest
from portkey_mw.interfaces import Provider, ProviderCall
from portkey_mw.provider_http import (
    HTTPProvider,
    json_post,
    report_dropped,
)
from portkey_mw.translation import content_text, dropped_params
from portkey_mw.transport import UpstreamRequest

BASE_URL = "https://api.ai21.com/studio/v1"
#: request fields Jamba takes as OpenAI spells them
KEPT = ("model", "n", "temperature", "top_p", "stop", "stream", "tools", "documents")
#: OpenAI fields Jamba has no equivalent for (dropped and reported)
UNSUPPORTED = (
    "frequency_penalty",
    "presence_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "seed",
    "user",
    "service_tier",
    "parallel_tool_calls",
    "tool_choice",
)
_MESSAGE_FIELDS = ("content", "tool_calls", "tool_call_id", "name")


def to_jamba(body: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The Jamba chat request for an OpenAI chat request, and the parameters dropped."""
    messages = []
    for index, message in enumerate(body.get("messages") or []):
        if not isinstance(message, dict):
            raise InvalidRequest(f"messages[{index}] must be an object", param=f"messages.{index}")
        role = "system" if message.get("role") == "developer" else message.get("role")
        kept = {k: message[k] for k in _MESSAGE_FIELDS if k in message}
        content = kept.get("content")
        if isinstance(content, list):
            if any(isinstance(p, dict) and p.get("type") != "text" for p in content):
                raise InvalidRequest(
                    f"messages[{index}]: ai21 (Jamba) takes text content only",
                    param=f"messages.{index}.content",
                )
            kept["content"] = content_text(content)
        elif content is None:
            kept["content"] = ""  # an assistant turn that only called tools
        messages.append({"role": role, **kept})
    payload: dict[str, Any] = {k: body[k] for k in KEPT if body.get(k) is not None}
    payload["messages"] = messages
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if limit:
        payload["max_tokens"] = limit
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") in (
        "json_object",
        "json_schema",
    ):
        payload["response_format"] = {"type": "json_object"}
    passed = {
        *KEPT,
        "messages",
        "max_tokens",
        "max_completion_tokens",
        "response_format",
        "stream_options",
    }
    return payload, dropped_params(body, passed, UNSUPPORTED)


class AI21Provider(HTTPProvider):
    """Chat (plain and streamed, tools, JSON mode) with AI21's Jamba models."""

    id = "ai21"
    endpoints = frozenset({Endpoint.CHAT_COMPLETIONS, Endpoint.PROXY})
    features = frozenset({"stream", "tools", "json"})

    proxy_base_url = BASE_URL

    def build_request(self, call: ProviderCall) -> UpstreamRequest:
        key = call.require_key(self.id)
        payload, dropped = to_jamba(call.body or {})
        report_dropped(call, self.id, dropped)
        auth = {"authorization": f"Bearer {key}"}
        return json_post(call, BASE_URL, "/chat/completions", payload, auth, stream=call.stream)


@hookimpl
def register_providers(register: Callable[[Provider], None]) -> None:
    """Register the ai21 provider."""
    register(AI21Provider())
