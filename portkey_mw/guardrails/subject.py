"""Where the text under check lives in a request or response, and how rewritten text goes
back there.

Requests: a chat's last message (each text part; a token count's too, since its text goes
to the provider), a completion's ``prompt``, an embedding's ``input``, a native Responses
request's ``input`` (a string, or its last item), the text a speech request speaks. Responses: every
choice's message content (chat) or text (completion). As in Portkey, the system prompt and
earlier turns of a chat are not checked.
"""

from __future__ import annotations

import copy
from typing import Any

from portkey_mw.context import Endpoint

#: Portkey's request types, which some checks (allowedRequestTypes) compare against
REQUEST_TYPES = {
    Endpoint.CHAT_COMPLETIONS: "chatComplete",
    Endpoint.COMPLETIONS: "complete",
    Endpoint.EMBEDDINGS: "embed",
    Endpoint.IMAGES: "imageGenerate",
    Endpoint.MODELS: "listModels",
    Endpoint.MODERATIONS: "moderate",
}

#: requests whose body is a chat (a token count sends the chat's text to the provider)
CHAT_SHAPED = frozenset({Endpoint.CHAT_COMPLETIONS, Endpoint.COUNT_TOKENS})

#: where the checked text of a non-chat request is
INPUT_KEYS = {
    Endpoint.COMPLETIONS: "prompt",
    Endpoint.EMBEDDINGS: "input",
    Endpoint.MODERATIONS: "input",
    #: a native /v1/responses request: a string input, or its last item (see _last_item)
    Endpoint.RESPONSES: "input",
    #: text to speech: the text spoken goes to the provider like a prompt
    Endpoint.AUDIO_SPEECH: "input",
}
#: content part types that carry text: chat's, and the Responses API's input parts
_TEXT_PARTS = frozenset({"text", "input_text"})


def request_type(endpoint: Endpoint, inbound: str | None = None) -> str:
    """Portkey's request type of ``endpoint`` (``messages`` for Anthropic's API)."""
    if inbound == "anthropic":
        return "messages"
    return REQUEST_TYPES.get(endpoint, endpoint.value)


def request_texts(endpoint: Endpoint, body: dict[str, Any]) -> list[str]:
    """The text parts a request guardrail checks."""
    if endpoint in CHAT_SHAPED:
        messages = body.get("messages")
        if isinstance(messages, list) and messages and isinstance(messages[-1], dict):
            return _content_texts(messages[-1].get("content"))
        return []
    key = INPUT_KEYS.get(endpoint)
    if key is None:
        prompt = body.get("prompt")
        return [prompt] if isinstance(prompt, str) else []
    value = body.get(key)
    if isinstance(value, str):
        return [value]
    if endpoint is Endpoint.RESPONSES:
        last = _last_item(value)
        return [] if last is None else _content_texts(last[1])
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []


def _last_item(value: Any) -> tuple[str, Any] | None:
    """A Responses ``input`` list's last item, as chat's last message is checked: the field
    holding its text (a message's ``content``, a tool result's ``output``) and its value.
    (Without it, items -- the SDK's usual form -- would pass every input guardrail.)"""
    if not isinstance(value, list) or not value or not isinstance(value[-1], dict):
        return None
    field = "output" if value[-1].get("type") == "function_call_output" else "content"
    return field, value[-1].get(field)


def with_request_texts(
    endpoint: Endpoint, body: dict[str, Any], texts: list[str]
) -> dict[str, Any]:
    """A copy of ``body`` with its checked text parts replaced by ``texts``."""
    body = copy.deepcopy(body)
    if endpoint in CHAT_SHAPED:
        last = body["messages"][-1]
        last["content"] = _replace_content(last.get("content"), texts)
        return body
    key = INPUT_KEYS.get(endpoint, "prompt")
    value = body.get(key)
    last = _last_item(value) if endpoint is Endpoint.RESPONSES else None
    if last is not None and isinstance(value, list):
        value[-1][last[0]] = _replace_content(last[1], texts)
    elif isinstance(value, list):
        replaced = iter(texts)
        body[key] = [next(replaced, item) if isinstance(item, str) else item for item in value]
    else:
        body[key] = "\n".join(texts)
    return body


def response_texts(body: dict[str, Any]) -> list[str]:
    """The text parts a response guardrail checks: each choice's content."""
    texts = []
    for choice in body.get("choices") or []:
        if not isinstance(choice, dict):
            continue
        if isinstance(choice.get("message"), dict):
            texts.extend(_content_texts(choice["message"].get("content")))
        elif isinstance(choice.get("text"), str):
            texts.append(choice["text"])
    return texts


def with_response_texts(body: dict[str, Any], texts: list[str]) -> dict[str, Any]:
    """A copy of ``body`` with each choice's content replaced, in order, by ``texts``."""
    body = copy.deepcopy(body)
    replaced = iter(texts)
    for choice in body.get("choices") or []:
        if not isinstance(choice, dict):
            continue
        message = choice.get("message")
        if isinstance(message, dict) and message.get("content") is not None:
            parts = len(_content_texts(message["content"]))
            mine = [next(replaced, "") for _ in range(parts)]
            message["content"] = _replace_content(message["content"], mine)
        elif isinstance(choice.get("text"), str):
            choice["text"] = next(replaced, choice["text"])
    return body


def _content_texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") in _TEXT_PARTS
        ]
    return []


def _replace_content(content: Any, texts: list[str]) -> Any:
    if isinstance(content, list):
        replaced = iter(texts)
        return [
            {**part, "text": next(replaced, part.get("text", ""))}
            if isinstance(part, dict) and part.get("type") in _TEXT_PARTS
            else part
            for part in content
        ]
    return "\n".join(texts)
