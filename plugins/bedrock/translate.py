"""OpenAI chat completions <-> Amazon Bedrock Converse.

Request: system and developer messages become ``system`` blocks; tool calls and results
become ``toolUse`` / ``toolResult`` blocks (results join the next user turn, as Converse
alternates roles); images become ``image`` blocks with their bytes (http(s) URLs are
fetched by the provider first); sampling and stop sequences go in ``inferenceConfig``;
tools in ``toolConfig``. Response: text and ``toolUse`` blocks become content and
``tool_calls``; stop reasons and usage (cache reads and writes included) are mapped.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from portkey_mw.errors import InvalidRequest
from portkey_mw.translation import (
    append_turn,
    content_text,
    dropped_params,
    openai_usage,
    reads_answer,
    stop_list,
    text_and_images,
    tool_arguments,
)

#: The forced tool that carries a response_format answer.
JSON_TOOL = "json_response"

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}
UNSUPPORTED = (
    "frequency_penalty",
    "presence_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "seed",
    "n",
    "user",
    "service_tier",
    "parallel_tool_calls",
)
_PASSED = {
    "model",
    "messages",
    "stream",
    "stream_options",
    "tools",
    "tool_choice",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "stop",
}
IMAGE_FORMATS = frozenset({"png", "jpeg", "gif", "webp"})


def to_converse(body: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The Converse request for an OpenAI chat request, and the parameters dropped."""
    system: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    for index, message in enumerate(body.get("messages") or []):
        if not isinstance(message, dict):
            raise InvalidRequest(f"messages[{index}] must be an object", param=f"messages.{index}")
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(b for b in _blocks(message.get("content"), index) if "text" in b)
        elif role == "user":
            append_turn(messages, "user", _blocks(message.get("content"), index))
        elif role == "assistant":
            blocks = _blocks(message.get("content"), index)
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                blocks.append(
                    {
                        "toolUse": {
                            "toolUseId": call.get("id"),
                            "name": function.get("name"),
                            "input": tool_arguments(function, index),
                        }
                    }
                )
            append_turn(messages, "assistant", blocks)
        elif role == "tool":
            text = content_text(message.get("content"))
            result = {"toolUseId": message.get("tool_call_id"), "content": [{"text": text}]}
            append_turn(messages, "user", [{"toolResult": result}])
        else:
            raise InvalidRequest(
                f"messages[{index}].role {role!r} is not supported", param=f"messages.{index}.role"
            )
    payload: dict[str, Any] = {"messages": messages}
    if system:
        payload["system"] = system
    config: dict[str, Any] = {}
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if limit:
        config["maxTokens"] = limit
    if body.get("temperature") is not None:
        config["temperature"] = body["temperature"]
    if body.get("top_p") is not None:
        config["topP"] = body["top_p"]
    stop = body.get("stop")
    if stop:
        config["stopSequences"] = stop_list(stop)
    if config:
        payload["inferenceConfig"] = config
    _tools(body, payload)
    dropped = dropped_params(body, _PASSED, UNSUPPORTED)
    return payload, dropped


def _blocks(content: Any, index: int) -> list[dict[str, Any]]:
    def image(media: str, data: str) -> dict[str, Any]:
        kind = media.removeprefix("image/").replace("jpg", "jpeg")
        if kind not in IMAGE_FORMATS:
            raise InvalidRequest(
                f"messages[{index}]: bedrock takes png, jpeg, gif or webp images, not {media}",
                param=f"messages.{index}.content",
            )
        return {"image": {"format": kind, "source": {"bytes": data}}}

    return text_and_images(content, index, "bedrock", image)


def _tools(body: dict[str, Any], payload: dict[str, Any]) -> None:
    tools = [
        {
            "toolSpec": {
                "name": tool["function"]["name"],
                "description": tool["function"].get("description") or tool["function"]["name"],
                "inputSchema": {"json": tool["function"].get("parameters") or {"type": "object"}},
            }
        }
        for tool in body.get("tools") or []
        if isinstance(tool, dict) and isinstance(tool.get("function"), dict)
    ]
    choice = body.get("tool_choice")
    tool_choice: dict[str, Any] | None = None
    if choice == "auto":
        tool_choice = {"auto": {}}
    elif choice == "required":
        tool_choice = {"any": {}}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        tool_choice = {"tool": {"name": choice["function"].get("name")}}
    if json_mode(body):
        # Converse has no JSON mode: a forced tool whose input is the answer stands in.
        schema = (body["response_format"].get("json_schema") or {}).get("schema")
        spec = {
            "name": JSON_TOOL,
            "description": "Respond with the answer as JSON.",
            "inputSchema": {"json": schema or {"type": "object"}},
        }
        tools.append({"toolSpec": spec})
        tool_choice = {"tool": {"name": JSON_TOOL}}
    if not tools:
        return
    config: dict[str, Any] = {"tools": tools}
    if tool_choice:
        config["toolChoice"] = tool_choice
    payload["toolConfig"] = config


def json_mode(body: dict[str, Any]) -> bool:
    """Whether the request asks for JSON output (``response_format``)."""
    response_format = body.get("response_format")
    return isinstance(response_format, dict) and response_format.get("type") in (
        "json_object",
        "json_schema",
    )


def usage(raw: dict[str, Any]) -> dict[str, Any]:
    """OpenAI usage from Converse's."""
    return openai_usage(
        raw.get("inputTokens"),
        raw.get("outputTokens"),
        raw.get("cacheReadInputTokens"),
        raw.get("cacheWriteInputTokens"),
    )


@reads_answer("bedrock")
def to_openai(response: dict[str, Any], model: str | None, *, json: bool = False) -> dict[str, Any]:
    """The OpenAI chat completion for a Converse response (``json``: the JSON tool's input
    is the content)."""
    message = ((response.get("output") or {}).get("message")) or {}
    text: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in message.get("content") or []:
        if "text" in block:
            text.append(block["text"])
        elif "toolUse" in block:
            use = block["toolUse"]
            if json and use.get("name") == JSON_TOOL:
                text.append(orjson.dumps(use.get("input") or {}).decode())
                continue
            calls.append(
                {
                    "id": use.get("toolUseId"),
                    "type": "function",
                    "function": {
                        "name": use.get("name"),
                        "arguments": orjson.dumps(use.get("input") or {}).decode(),
                    },
                }
            )
    reply: dict[str, Any] = {"role": "assistant", "content": "".join(text) or None}
    if calls:
        reply["tool_calls"] = calls
    return {
        "id": "chatcmpl-bedrock",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": reply,
                "finish_reason": "stop"
                if json and not calls
                else FINISH_REASONS.get(response.get("stopReason") or "", "stop"),
                "logprobs": None,
            }
        ],
        "usage": usage(response.get("usage") or {}),
    }


@reads_answer("bedrock")
def embedding_answer(answer: dict[str, Any]) -> tuple[list[Any], int]:
    """The vectors and input tokens of one InvokeModel embeddings answer: Titan's one
    ``embedding`` (with its token count), or Cohere's batch of ``embeddings``."""
    if "embedding" in answer:
        return [answer["embedding"]], int(answer.get("inputTextTokenCount") or 0)
    return list(answer.get("embeddings") or []), 0
