"""OpenAI chat completions <-> Anthropic Messages, for complete (non-streamed) exchanges.

Request: system and developer messages become ``system``; tool calls and tool results
become ``tool_use`` / ``tool_result`` blocks; consecutive turns of one role are merged (the
Messages API alternates roles); images become ``image`` blocks (data URLs as base64, http(s)
URLs as URL sources, which Anthropic fetches itself); ``response_format`` becomes a forced
tool whose input is the JSON answer. Response: text and ``tool_use`` blocks become content
and ``tool_calls``; stop reasons and usage (cache reads and writes included) are mapped.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from portkey_mw.errors import InvalidRequest
from portkey_mw.media import DATA_URL, image_url_of
from portkey_mw.translation import (
    append_turn,
    dropped_params,
    openai_usage,
    reads_answer,
    stop_list,
    tool_arguments,
)

ANTHROPIC_VERSION = "2023-06-01"
#: Anthropic requires max_tokens; OpenAI does not. Used when the client gives none.
DEFAULT_MAX_TOKENS = 4096
#: The forced tool that carries a response_format answer.
JSON_TOOL = "json_response"

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

#: OpenAI parameters the Messages API has no equivalent for (dropped, and reported).
UNSUPPORTED = (
    "frequency_penalty",
    "presence_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "seed",
    "n",
    "service_tier",
    "prediction",
    "audio",
    "modalities",
)
_PASSED = {
    "model",
    "messages",
    "stream",
    "stream_options",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "stop",
    "user",
    "metadata",
    "reasoning_effort",
}


def to_anthropic(body: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The Messages API request for an OpenAI chat request, and the parameters dropped."""
    system: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    for index, message in enumerate(body.get("messages") or []):
        if not isinstance(message, dict):
            raise InvalidRequest(f"messages[{index}] must be an object", param=f"messages.{index}")
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(_text_blocks(message.get("content"), index))
        elif role == "user":
            append_turn(messages, "user", _user_blocks(message.get("content"), index))
        elif role == "assistant":
            append_turn(messages, "assistant", _assistant_blocks(message, index))
        elif role == "tool":
            append_turn(messages, "user", [_tool_result(message, index)])
        else:
            raise InvalidRequest(
                f"messages[{index}].role {role!r} is not supported", param=f"messages.{index}.role"
            )
    payload: dict[str, Any] = {
        "model": body.get("model"),
        "messages": messages,
        "max_tokens": body.get("max_completion_tokens")
        or body.get("max_tokens")
        or DEFAULT_MAX_TOKENS,
    }
    if system:
        payload["system"] = system
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            payload[name] = body[name]
    stop = body.get("stop")
    if stop:
        payload["stop_sequences"] = stop_list(stop)
    if body.get("user"):
        payload["metadata"] = {"user_id": str(body["user"])}
    if body.get("stream"):
        payload["stream"] = True
    _tools(body, payload)
    dropped = dropped_params(body, _PASSED, UNSUPPORTED)
    return payload, dropped


def _text_blocks(content: Any, index: int) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if isinstance(content, list):
        return [
            {"type": "text", "text": part.get("text", "")}
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        ]
    if content is None:
        return []
    raise InvalidRequest(
        f"messages[{index}].content must be a string or a list of parts",
        param=f"messages.{index}.content",
    )


def _user_blocks(content: Any, index: int) -> list[dict[str, Any]]:
    if not isinstance(content, list):
        return _text_blocks(content, index)
    blocks: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            blocks.append({"type": "text", "text": part.get("text", "")})
        elif kind == "image_url":
            blocks.append(_image(image_url_of(part) or "", index))
        else:
            raise InvalidRequest(
                f"messages[{index}]: content part type {kind!r} is not supported by anthropic",
                param=f"messages.{index}.content",
            )
    return blocks


def _image(url: str, index: int) -> dict[str, Any]:
    match = DATA_URL.match(url)
    if match:
        source = {"type": "base64", "media_type": match["media"], "data": match["data"]}
        return {"type": "image", "source": source}
    if url.startswith(("https://", "http://")):
        # Anthropic fetches URL sources itself: the gateway never fetches on its behalf.
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise InvalidRequest(
        f"messages[{index}]: an image must be a data: URL or an http(s) URL",
        param=f"messages.{index}.content",
    )


def _assistant_blocks(message: dict[str, Any], index: int) -> list[dict[str, Any]]:
    blocks = _text_blocks(message.get("content"), index)
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        blocks.append(
            {
                "type": "tool_use",
                "id": call.get("id"),
                "name": function.get("name"),
                "input": tool_arguments(function, index),
            }
        )
    return blocks


def _tool_result(message: dict[str, Any], index: int) -> dict[str, Any]:
    content = message.get("content")
    result: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.get("tool_call_id")}
    if isinstance(content, str):
        result["content"] = content
    else:
        result["content"] = _text_blocks(content, index)
    return result


def _tools(body: dict[str, Any], payload: dict[str, Any]) -> None:
    tools = [
        {
            "name": tool["function"]["name"],
            "description": tool["function"].get("description", ""),
            "input_schema": tool["function"].get("parameters") or {"type": "object"},
        }
        for tool in body.get("tools") or []
        if isinstance(tool, dict) and isinstance(tool.get("function"), dict)
    ]
    choice: dict[str, Any] | None = None
    wanted = body.get("tool_choice")
    if wanted == "auto":
        choice = {"type": "auto"}
    elif wanted == "required":
        choice = {"type": "any"}
    elif wanted == "none":
        choice = {"type": "none"}
    elif isinstance(wanted, dict) and isinstance(wanted.get("function"), dict):
        choice = {"type": "tool", "name": wanted["function"].get("name")}
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") in (
        "json_object",
        "json_schema",
    ):
        schema = (response_format.get("json_schema") or {}).get("schema") or {"type": "object"}
        tools.append(
            {
                "name": JSON_TOOL,
                "description": "Respond with the answer as JSON.",
                "input_schema": schema,
            }
        )
        choice = {"type": "tool", "name": JSON_TOOL}
    if body.get("parallel_tool_calls") is False and tools:
        choice = {**(choice or {"type": "auto"}), "disable_parallel_tool_use": True}
    if tools:
        payload["tools"] = tools
    if choice:
        payload["tool_choice"] = choice


# -- responses --------------------------------------------------------------------------------


def usage(raw: dict[str, Any]) -> dict[str, Any]:
    """OpenAI usage from Anthropic's."""
    return openai_usage(
        raw.get("input_tokens"),
        raw.get("output_tokens"),
        raw.get("cache_read_input_tokens"),
        raw.get("cache_creation_input_tokens"),
    )


@reads_answer("anthropic")
def to_openai(message: dict[str, Any], *, json_mode: bool) -> dict[str, Any]:
    """The OpenAI chat completion for an Anthropic Messages response."""
    text: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for block in message.get("content") or []:
        kind = block.get("type")
        if kind == "text":
            text.append(block.get("text", ""))
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            if json_mode and block.get("name") == JSON_TOOL:
                text.append(arguments)
                continue
            tool_calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {"name": block.get("name"), "arguments": arguments},
                }
            )
    finish = FINISH_REASONS.get(message.get("stop_reason") or "", "stop")
    if json_mode and not tool_calls and finish == "tool_calls":
        finish = "stop"
    reply: dict[str, Any] = {"role": "assistant", "content": "".join(text) or None}
    if tool_calls:
        reply["tool_calls"] = tool_calls
    return {
        "id": message.get("id"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": message.get("model"),
        "choices": [{"index": 0, "message": reply, "finish_reason": finish, "logprobs": None}],
        "usage": usage(message.get("usage") or {}),
    }
