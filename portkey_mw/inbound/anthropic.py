"""Inbound Anthropic Messages format: ``POST /v1/messages`` served by any provider.

The official ``anthropic`` SDK's requests become OpenAI chat completions requests (system,
text, images, tools, tool results, stop sequences, sampling), routed like any other; the
OpenAI response, stream and errors are turned back into Anthropic's message, event stream
and error shapes.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import TYPE_CHECKING, Any

import orjson

from portkey_mw.errors import GatewayError, InvalidRequest
from portkey_mw.inbound.chunks import ChunkTranslator
from portkey_mw.request_shape import (
    Shape,
    array_of,
    boolean,
    by_type,
    check_fields,
    fields,
    integer,
    json_object,
    number,
    string,
    tagged,
)
from portkey_mw.streaming import event_data

if TYPE_CHECKING:
    from portkey_mw.context import RequestContext

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
#: Anthropic's error type for each status (its SDK raises the matching exception class).
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def _error_type(status: int) -> str:
    return ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


def _error_body(status: int, message: str, extra: dict[str, Any] | None = None) -> bytes:
    return orjson.dumps(
        {
            "type": "error",
            "error": {"type": _error_type(status), "message": message},
            **(extra or {}),
        }
    )


# -- the request's shape -------------------------------------------------------------------------
# Checked before translating, so that a misfit is named as the client wrote it
# (``messages.0.content.1.source``), not as the OpenAI request it would have become.

_TEXT_BLOCK = fields(required={"text": string})
_IMAGE_BLOCK = fields(
    required={
        "source": tagged(
            {
                "base64": fields(required={"media_type": string, "data": string}),
                "url": fields(required={"url": string}),
            },
            "an image source object",
        )
    }
)
_TOOL_RESULT_CONTENT = by_type(
    {
        str: None,
        list: array_of(tagged({"text": _TEXT_BLOCK, "image": _IMAGE_BLOCK}, "a content block")),
    },
    "a string or an array of content blocks",
)
_CONTENT_BLOCK = tagged(
    {
        "text": _TEXT_BLOCK,
        "image": _IMAGE_BLOCK,
        "tool_use": fields(
            required={"id": string, "name": string}, optional={"input": json_object}
        ),
        "tool_result": fields(
            required={"tool_use_id": string},
            optional={"content": _TOOL_RESULT_CONTENT, "is_error": boolean},
        ),
    },
    "a content block object",
)
_MESSAGE = fields(
    required={
        "role": string,
        "content": by_type(
            {str: None, list: array_of(_CONTENT_BLOCK)},
            "a string or an array of content blocks",
        ),
    },
    expected="a message object",
)
_TOOL_CHOICE_KIND = tagged({"tool": fields(required={"name": string})}, "a tool choice object")
_TOOL_CHOICE_OPTIONS = fields(optional={"disable_parallel_tool_use": boolean})


def _tool_choice(value: Any) -> None:
    """A tool choice: its kind (``tool`` names one), and options any kind may have."""
    _TOOL_CHOICE_KIND(value)
    _TOOL_CHOICE_OPTIONS(value)


#: the fields of a Messages request the translation reads
REQUEST_SHAPES: dict[str, Shape] = {
    "model": string,
    "messages": array_of(_MESSAGE, "an array of messages", non_empty=True),
    "system": by_type(
        {str: None, list: array_of(tagged({"text": _TEXT_BLOCK}, "a text block object"))},
        "a string or an array of text blocks",
    ),
    "max_tokens": integer(),
    "temperature": number,
    "top_p": number,
    "stop_sequences": array_of(string),
    "metadata": fields(optional={"user_id": string}),
    "stream": boolean,
    "tools": array_of(
        fields(
            required={"name": string},
            optional={"type": string, "description": string, "input_schema": json_object},
            expected="a tool object",
        )
    ),
    "tool_choice": _tool_choice,
}


def _event(kind: str, data: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **data}) + b"\n\n"


class AnthropicMessages:
    """The Anthropic Messages API as an inbound format."""

    name = "anthropic"

    # -- requests ---------------------------------------------------------------------------------

    def request(self, body: dict[str, Any]) -> dict[str, Any]:
        check_fields(REQUEST_SHAPES, body, "messages")
        messages: list[dict[str, Any]] = []
        system = body.get("system")
        if system:
            messages.append({"role": "system", "content": _text(system, "system")})
        for index, message in enumerate(body.get("messages") or []):
            if message.get("role") == "assistant":
                messages.append(_assistant(message.get("content"), index))
            elif message.get("role") == "user":
                messages.extend(_user(message.get("content"), index))
            else:
                raise InvalidRequest(
                    f"messages.{index}.role: must be 'user' or 'assistant'",
                    param=f"messages.{index}.role",
                )
        chat: dict[str, Any] = {"model": body.get("model"), "messages": messages}
        if body.get("max_tokens") is not None:
            chat["max_tokens"] = body["max_tokens"]
        for name in ("temperature", "top_p"):
            if body.get(name) is not None:
                chat[name] = body[name]
        if body.get("stop_sequences"):
            chat["stop"] = list(body["stop_sequences"])
        user = (body.get("metadata") or {}).get("user_id")
        if user:
            chat["user"] = str(user)
        if body.get("stream"):
            chat["stream"] = True
            chat["stream_options"] = {"include_usage": True}  # Anthropic always reports usage
        _tools(body, chat)
        return chat

    async def routed(self, ctx: RequestContext, native: bool) -> AnthropicMessages:
        return self  # translated on arrival, whichever provider answers

    # -- responses --------------------------------------------------------------------------------

    def response(self, completion: dict[str, Any]) -> dict[str, Any]:
        # The gateway has already started answering when this runs, so it cannot fail:
        # parts of an answer that are not what OpenAI's format promises are left out.
        choices = _array(completion.get("choices"))
        choice = _object(choices[0]) if choices else {}
        message = _object(choice.get("message"))
        content: list[dict[str, Any]] = []
        text = message.get("content")
        if isinstance(text, str) and text:
            content.append({"type": "text", "text": text})
        for call in map(_object, _array(message.get("tool_calls"))):
            function = _object(call.get("function"))
            content.append(
                {
                    "type": "tool_use",
                    "id": call.get("id"),
                    "name": function.get("name"),
                    "input": _arguments(function.get("arguments")),
                }
            )
        return {
            "id": completion.get("id"),
            "type": "message",
            "role": "assistant",
            "model": completion.get("model"),
            "content": content,
            "stop_reason": _stop_reason(choice.get("finish_reason")),
            "stop_sequence": None,
            "usage": _usage(completion.get("usage")),
        }

    def error(self, error: GatewayError) -> bytes:
        return _error_body(error.status, error.message, error.body_extra)

    def provider_error(self, status: int, body: Any) -> bytes:
        error = body.get("error") if isinstance(body, dict) else None
        message = error.get("message") if isinstance(error, dict) else None
        return _error_body(status, str(message or f"provider error {status}"))

    def stream(self, chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
        return _StreamTranslator().translate(chunks)

    def stream_error(self, error: GatewayError) -> bytes:
        return _event(
            "error",
            {
                "error": {"type": _error_type(error.status), "message": error.message},
                **error.body_extra,
            },
        )


def _text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            block.get("text", "")
            for block in content
            if isinstance(block, dict) and block.get("type") == "text"
        )
    raise InvalidRequest(f"{where}: must be a string or a list of text blocks", param=where)


def _user(content: Any, index: int) -> list[dict[str, Any]]:
    """One user turn: tool results first (OpenAI wants them right after the tool calls)."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    if not isinstance(content, list):
        raise InvalidRequest(
            f"messages.{index}.content: must be a string or a list of blocks",
            param=f"messages.{index}.content",
        )
    tools: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            parts.append({"type": "text", "text": block.get("text", "")})
        elif kind == "image":
            parts.append({"type": "image_url", "image_url": {"url": _image_url(block, index)}})
        elif kind == "tool_result":
            result = block.get("content")
            text = result if isinstance(result, str) else _text(result or [], f"messages.{index}")
            if block.get("is_error"):
                text = f"Error: {text}"
            tools.append(
                {"role": "tool", "tool_call_id": block.get("tool_use_id"), "content": text}
            )
        else:
            raise InvalidRequest(
                f"messages.{index}.content: block type {kind!r} is not supported here",
                param=f"messages.{index}.content",
            )
    turn = [{"role": "user", "content": parts}] if parts else []
    return tools + turn


def _image_url(block: dict[str, Any], index: int) -> str:
    source = block.get("source") or {}
    if source.get("type") == "base64":
        return f"data:{source.get('media_type')};base64,{source.get('data')}"
    if source.get("type") == "url":
        return str(source.get("url"))
    raise InvalidRequest(
        f"messages.{index}: image source type {source.get('type')!r} is not supported",
        param=f"messages.{index}.content",
    )


def _assistant(content: Any, index: int) -> dict[str, Any]:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    text: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in content or []:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            text.append(block.get("text", ""))
        elif kind == "tool_use":
            calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {
                        "name": block.get("name"),
                        "arguments": orjson.dumps(block.get("input") or {}).decode(),
                    },
                }
            )
        # thinking and redacted_thinking blocks have no OpenAI counterpart: left out
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text) or None}
    if calls:
        message["tool_calls"] = calls
    return message


def _tools(body: dict[str, Any], chat: dict[str, Any]) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": tool.get("name"),
                "description": tool.get("description", ""),
                "parameters": tool.get("input_schema") or {"type": "object"},
            },
        }
        for tool in body.get("tools") or []
        if isinstance(tool, dict) and "input_schema" in tool
    ]
    if tools:
        chat["tools"] = tools
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        kind = choice.get("type")
        if kind == "auto":
            chat["tool_choice"] = "auto"
        elif kind == "any":
            chat["tool_choice"] = "required"
        elif kind == "none":
            chat["tool_choice"] = "none"
        elif kind == "tool":
            chat["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
        if choice.get("disable_parallel_tool_use") and tools:
            chat["parallel_tool_calls"] = False


def _arguments(arguments: Any) -> Any:
    if not isinstance(arguments, str):
        return arguments or {}
    try:
        return orjson.loads(arguments) if arguments else {}
    except orjson.JSONDecodeError:
        return {"_raw": arguments}  # the provider sent arguments that are not JSON


def _usage(raw: Any) -> dict[str, int]:
    usage = _object(raw)
    details = _object(usage.get("prompt_tokens_details"))
    cached = _count(details.get("cached_tokens"))
    written = _count(details.get("cache_creation_tokens"))
    return {
        "input_tokens": max(0, _count(usage.get("prompt_tokens")) - cached - written),
        "output_tokens": _count(usage.get("completion_tokens")),
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": written,
    }


def _stop_reason(finish_reason: Any) -> str:
    if not isinstance(finish_reason, str):
        return "end_turn"
    return STOP_REASONS.get(finish_reason, "end_turn")


# A provider's answer has been through the router, which checks that it is JSON but not its
# shape: these read what is there and take anything else as absent.


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _array(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _count(value: Any) -> int:
    """A token count, or 0 when the provider's is not a number."""
    return int(value) if isinstance(value, int | float) else 0


class _StreamTranslator(ChunkTranslator):
    """OpenAI chunks -> Anthropic's ``message_start`` ... ``message_stop`` event sequence."""

    def __init__(self) -> None:
        self.started = False
        self.block = -1  # index of the open content block, -1 when none is open
        self.block_kind: str | None = None
        self.tool_blocks: dict[int, int] = {}  # OpenAI tool-call index -> block index
        self.stop_reason: str | None = None
        self.usage: dict[str, Any] = {}
        self.finished = False

    def _chunk(self, raw: bytes) -> bytes:
        data = event_data(raw)
        if not data:
            return b""
        if data == b"[DONE]":
            return self.finish()
        chunk = orjson.loads(data)
        out = b""
        if not self.started:
            self.started = True
            out += _event(
                "message_start",
                {
                    "message": {
                        "id": chunk.get("id"),
                        "type": "message",
                        "role": "assistant",
                        "model": chunk.get("model"),
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": {"input_tokens": 0, "output_tokens": 0},
                    }
                },
            )
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            if isinstance(delta.get("content"), str) and delta["content"]:
                out += self._open("text", {"type": "text", "text": ""})
                out += _event(
                    "content_block_delta",
                    {
                        "index": self.block,
                        "delta": {"type": "text_delta", "text": delta["content"]},
                    },
                )
            for call in delta.get("tool_calls") or []:
                out += self._tool_delta(call)
            if choice.get("finish_reason"):
                self.stop_reason = _stop_reason(choice["finish_reason"])
        return out

    def _open(self, kind: str, block: dict[str, Any]) -> bytes:
        if self.block_kind == kind and kind == "text":
            return b""
        out = self._close()
        self.block += 1
        self.block_kind = kind
        return out + _event("content_block_start", {"index": self.block, "content_block": block})

    def _close(self) -> bytes:
        if self.block_kind is None:
            return b""
        self.block_kind = None
        return _event("content_block_stop", {"index": self.block})

    def _tool_delta(self, call: dict[str, Any]) -> bytes:
        out = b""
        index = int(call.get("index", 0))
        function = call.get("function") or {}
        if index not in self.tool_blocks:
            block: dict[str, Any] = {
                "type": "tool_use",
                "id": call.get("id"),
                "name": function.get("name"),
                "input": {},
            }
            out += self._open("tool_use", block)
            self.tool_blocks[index] = self.block
        if function.get("arguments"):
            out += _event(
                "content_block_delta",
                {
                    "index": self.tool_blocks[index],
                    "delta": {"type": "input_json_delta", "partial_json": function["arguments"]},
                },
            )
        return out

    def finish(self) -> bytes:
        if self.finished or not self.started:
            return b""
        self.finished = True
        usage = _usage(self.usage)
        return (
            self._close()
            + _event(
                "message_delta",
                {
                    "delta": {"stop_reason": self.stop_reason or "end_turn", "stop_sequence": None},
                    "usage": usage,
                },
            )
            + _event("message_stop", {})
        )
