"""OpenAI's Responses API translated to and from chat completions, callable in isolation.

:func:`chat_request` turns a (shape-checked) Responses request plus the earlier turns'
items into a chat completions request; :func:`response_object` turns a chat completion into
a Responses object; :class:`ResponseStreamTranslator` turns a chat completion stream (SSE
bytes) into the Responses semantic events. None of them touches the network or the store.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import orjson

from portkey_mw.errors import GatewayError, InvalidRequest
from portkey_mw.inbound.chunks import ChunkTranslator
from portkey_mw.streaming import event_data

#: the request fields echoed in the Responses object
ECHOED = (
    "instructions",
    "max_output_tokens",
    "metadata",
    "parallel_tool_calls",
    "previous_response_id",
    "temperature",
    "tool_choice",
    "tools",
    "top_p",
    "user",
)


def new_id(prefix: str) -> str:
    """A fresh item or response id (``resp_…``, ``msg_…``, ``fc_…``): 128 random bits, as
    a uuid4's, without building the UUID (a quarter of the time; a few per response)."""
    return f"{prefix}_{os.urandom(16).hex()}"


# -- request --------------------------------------------------------------------------------------


def input_items(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The request's ``input`` as a list of items (a string is one user message), each with
    an ``id`` (kept so that ``input_items`` can list them)."""
    raw = body.get("input")
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = [{"type": "message", "role": "user", "content": raw}]
    items = []
    for item in raw:
        kind = item.get("type") or "message"
        prefix = {"message": "msg", "function_call": "fc", "function_call_output": "fco"}
        items.append({"id": new_id(prefix.get(kind, "item")), **item, "type": kind})
    return items


def chat_request(body: dict[str, Any], items: list[dict[str, Any]]) -> dict[str, Any]:
    """The chat completions request for a Responses request whose conversation (earlier
    turns and this input) is ``items``.

    :raises InvalidRequest: an item, tool or format chat completions cannot express.
    """
    messages: list[dict[str, Any]] = []
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        messages.append({"role": "system", "content": instructions})
    for index, item in enumerate(items):
        _add_item(messages, item, index)
    if not messages:
        raise InvalidRequest("'input' is a required property", param="input", code="missing_param")
    chat: dict[str, Any] = {"model": body.get("model"), "messages": messages}
    if body.get("max_output_tokens") is not None:
        chat["max_completion_tokens"] = body["max_output_tokens"]
    for name in ("temperature", "top_p", "user", "parallel_tool_calls"):
        if body.get(name) is not None:
            chat[name] = body[name]
    effort = (body.get("reasoning") or {}).get("effort")
    if effort is not None:
        chat["reasoning_effort"] = effort
    text_format = (body.get("text") or {}).get("format")
    if isinstance(text_format, dict):
        _response_format(text_format, chat)
    given = body.get("tools") or []
    built_in = sorted({str(t.get("type")) for t in given if t.get("type") != "function"})
    if built_in:
        raise InvalidRequest(
            f"built-in tools are not supported for this provider (only function tools are "
            f"translated to chat completions): {', '.join(built_in)}",
            param="tools",
            code="unsupported_tool",
        )
    tools = [_tool(tool) for tool in given]
    if tools:
        chat["tools"] = tools
    choice = body.get("tool_choice")
    if choice is not None:
        chat["tool_choice"] = _tool_choice(choice)
    if body.get("stream"):
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}  # the final event carries usage
    return chat


def _add_item(messages: list[dict[str, Any]], item: dict[str, Any], index: int) -> None:
    kind = item.get("type")
    where = f"input.{index}"
    if kind == "message":
        role = item.get("role")
        content = item.get("content")
        if role == "assistant":
            text = content if isinstance(content, str) else _output_text(content)
            messages.append({"role": "assistant", "content": text})
        elif role in ("user", "system", "developer"):
            parts = content if isinstance(content, str) else _input_parts(content, where)
            messages.append({"role": role, "content": parts})
        else:
            raise InvalidRequest(
                f"{where}.role: must be 'user', 'assistant', 'system' or 'developer'",
                param=f"{where}.role",
                code="invalid_value",
            )
    elif kind == "function_call":
        call = {
            "id": item.get("call_id"),
            "type": "function",
            "function": {"name": item.get("name"), "arguments": item.get("arguments") or "{}"},
        }
        last = messages[-1] if messages else None
        # A turn's calls are one assistant message, after the text it said, if any.
        if last is not None and last["role"] == "assistant":
            last.setdefault("tool_calls", []).append(call)
        else:
            messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
    elif kind == "function_call_output":
        output = item.get("output")
        text = output if isinstance(output, str) else _output_text(output)
        messages.append({"role": "tool", "tool_call_id": item.get("call_id"), "content": text})
    elif kind == "reasoning":
        pass  # a model's reasoning summary: chat completions has no place for it
    else:
        raise InvalidRequest(
            f"{where}: items of type {kind!r} are not supported for this provider (it is "
            "served through chat completions)",
            param=where,
            code="unsupported_item",
        )


def _input_parts(content: Any, where: str) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for index, part in enumerate(content or []):
        kind = part.get("type")
        if kind in ("input_text", "output_text"):
            parts.append({"type": "text", "text": part.get("text", "")})
        elif kind == "input_image":
            url = part.get("image_url")
            if not isinstance(url, str):
                raise InvalidRequest(
                    f"{where}.content.{index}: an input_image needs image_url (file_id is "
                    "not supported for this provider)",
                    param=f"{where}.content.{index}",
                    code="unsupported_content",
                )
            image: dict[str, Any] = {"url": url}
            if part.get("detail") in ("low", "high"):
                image["detail"] = part["detail"]
            parts.append({"type": "image_url", "image_url": image})
        else:
            raise InvalidRequest(
                f"{where}.content.{index}: content of type {kind!r} is not supported for this "
                "provider",
                param=f"{where}.content.{index}",
                code="unsupported_content",
            )
    return parts


def _output_text(content: Any) -> str:
    """The text of an assistant message's (or a tool output's) content parts."""
    if isinstance(content, str):
        return content
    return "".join(
        str(part.get("text") or part.get("refusal") or "")
        for part in content or []
        if isinstance(part, dict)
    )


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.get("name")}
    for name in ("description", "parameters", "strict"):
        if tool.get(name) is not None:
            function[name] = tool[name]
    function.setdefault("parameters", {"type": "object", "properties": {}})
    return {"type": "function", "function": function}


def _tool_choice(choice: Any) -> Any:
    if isinstance(choice, str):
        return choice  # auto, none, required: the same words in chat
    if choice.get("type") == "function":
        return {"type": "function", "function": {"name": choice.get("name")}}
    raise InvalidRequest(
        f"tool_choice of type {choice.get('type')!r} is not supported for this provider",
        param="tool_choice",
        code="unsupported_tool",
    )


def _response_format(text_format: dict[str, Any], chat: dict[str, Any]) -> None:
    kind = text_format.get("type")
    if kind == "json_object":
        chat["response_format"] = {"type": "json_object"}
    elif kind == "json_schema":
        schema = {
            k: text_format[k]
            for k in ("name", "schema", "strict", "description")
            if text_format.get(k) is not None
        }
        chat["response_format"] = {"type": "json_schema", "json_schema": schema}


# -- response -------------------------------------------------------------------------------------


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _count(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def usage(raw: Any) -> dict[str, Any]:
    """A chat completion's usage in the Responses API's terms."""
    chat = _object(raw)
    prompt, completion = _count(chat.get("prompt_tokens")), _count(chat.get("completion_tokens"))
    cached = _count(_object(chat.get("prompt_tokens_details")).get("cached_tokens"))
    reasoning = _count(_object(chat.get("completion_tokens_details")).get("reasoning_tokens"))
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": _count(chat.get("total_tokens")) or prompt + completion,
    }


def skeleton(body: dict[str, Any], response_id: str, store: bool) -> dict[str, Any]:
    """A Responses object for ``body`` with no output yet (``in_progress``)."""
    response: dict[str, Any] = {
        "id": response_id,
        "object": "response",
        "created_at": int(time.time()),
        "status": "in_progress",
        "error": None,
        "incomplete_details": None,
        "model": body.get("model"),
        "output": [],
        "store": store,
        "text": body.get("text") or {"format": {"type": "text"}},
        "reasoning": body.get("reasoning") or {"effort": None, "summary": None},
        "truncation": "disabled",
        "usage": None,
    }
    for name in ECHOED:
        response[name] = body.get(name)
    response["metadata"] = body.get("metadata") or {}
    response["tools"] = body.get("tools") or []
    response["tool_choice"] = body.get("tool_choice") or "auto"
    if response["parallel_tool_calls"] is None:
        response["parallel_tool_calls"] = True
    return response


def _message_item(
    text: str, refusal: str | None = None, item_id: str | None = None
) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if text:
        content.append({"type": "output_text", "text": text, "annotations": []})
    if refusal:
        content.append({"type": "refusal", "refusal": refusal})
    return {
        "type": "message",
        "id": item_id or new_id("msg"),
        "status": "completed",
        "role": "assistant",
        "content": content,
    }


def _finish(response: dict[str, Any], finish_reason: Any, raw_usage: Any) -> None:
    if finish_reason == "length":
        response["status"] = "incomplete"
        response["incomplete_details"] = {"reason": "max_output_tokens"}
    elif finish_reason == "content_filter":
        response["status"] = "incomplete"
        response["incomplete_details"] = {"reason": "content_filter"}
    else:
        response["status"] = "completed"
    response["usage"] = usage(raw_usage)


def response_object(
    completion: dict[str, Any], body: dict[str, Any], response_id: str, store: bool = True
) -> dict[str, Any]:
    """The Responses object for a chat completion answering ``body``.

    It cannot fail (the answer is on its way): parts of the completion that are not what
    OpenAI's format promises are left out.
    """
    response = skeleton(body, response_id, store)
    if isinstance(completion.get("model"), str):
        response["model"] = completion["model"]
    choices = completion.get("choices")
    choice = _object(choices[0]) if isinstance(choices, list) and choices else {}
    message = _object(choice.get("message"))
    content = message.get("content")
    text = content if isinstance(content, str) else ""
    refusal = message.get("refusal") if isinstance(message.get("refusal"), str) else None
    if text or refusal:
        response["output"].append(_message_item(text, refusal))
    calls = message.get("tool_calls")
    for call in calls if isinstance(calls, list) else []:
        function = _object(_object(call).get("function"))
        arguments = function.get("arguments")
        response["output"].append(
            {
                "type": "function_call",
                "id": new_id("fc"),
                "call_id": _object(call).get("id") or new_id("call"),
                "name": function.get("name"),
                "arguments": arguments
                if isinstance(arguments, str)
                else orjson.dumps(arguments or {}).decode(),
                "status": "completed",
            }
        )
    _finish(response, choice.get("finish_reason"), completion.get("usage"))
    return response


def error_object(error: GatewayError) -> dict[str, Any]:
    """A failed response's ``error`` field."""
    return {"code": error.code or "server_error", "message": error.message}


# -- stream ---------------------------------------------------------------------------------------


class ResponseStreamTranslator(ChunkTranslator):
    """Chat completion chunks (SSE bytes) -> the Responses API's semantic events.

    :param body: the client's Responses request (echoed in the response object).
    :param response_id: the response's id.
    :param store: whether the response is stored (echoed).
    :param on_complete: called with the final response object before ``response.completed``
        is sent (to store it).
    """

    def __init__(
        self,
        body: dict[str, Any],
        response_id: str,
        store: bool = True,
        on_complete: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        self.response = skeleton(body, response_id, store)
        self.on_complete = on_complete
        self.sequence = 0
        self.started = False
        self.finished = False
        self.finish_reason: Any = None
        self.raw_usage: Any = None
        self.text_item: dict[str, Any] | None = None  # the message being streamed
        self.text_index = -1
        self.text = ""  # its text so far, as one string at its end
        self.pieces: list[str] = []
        self.calls: dict[int, tuple[int, dict[str, Any], list[str]]] = {}

    def event(self, kind: str, data: dict[str, Any]) -> bytes:
        """One SSE event, numbered."""
        payload = orjson.dumps({"type": kind, "sequence_number": self.sequence, **data})
        self.sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + payload + b"\n\n"

    def start(self) -> bytes:
        """``response.created`` and ``response.in_progress`` (once)."""
        if self.started:
            return b""
        self.started = True
        return self.event("response.created", {"response": self.response}) + self.event(
            "response.in_progress", {"response": self.response}
        )

    def _chunk(self, raw: bytes) -> bytes:
        data = event_data(raw)
        if not data:
            return b""
        if data == b"[DONE]":
            return self.finish()
        chunk = orjson.loads(data)
        out = self.start()
        if isinstance(chunk.get("model"), str):
            self.response["model"] = chunk["model"]
        if chunk.get("usage"):
            self.raw_usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            content = delta.get("content")
            if isinstance(content, str) and content:
                out += self._text_delta(content)
            for call in delta.get("tool_calls") or ():
                out += self._call_delta(call)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return out

    def _text_delta(self, delta: str) -> bytes:
        out = b""
        if self.text_item is None:
            self.text_index = len(self.response["output"])
            item = {
                "type": "message",
                "id": new_id("msg"),
                "status": "in_progress",
                "role": "assistant",
                "content": [],
            }
            self.text_item = item
            self.response["output"].append(item)
            out += self.event(
                "response.output_item.added", {"output_index": self.text_index, "item": item}
            )
            out += self.event(
                "response.content_part.added",
                {
                    "item_id": item["id"],
                    "output_index": self.text_index,
                    "content_index": 0,
                    "part": {"type": "output_text", "text": "", "annotations": []},
                },
            )
        self.pieces.append(delta)
        return out + self.event(
            "response.output_text.delta",
            {
                "item_id": self.text_item["id"],
                "output_index": self.text_index,
                "content_index": 0,
                "delta": delta,
                "logprobs": [],
            },
        )

    def _close_text(self) -> bytes:
        item = self.text_item
        if item is None:
            return b""
        self.text_item = None
        text = "".join(self.pieces)
        self.pieces = []
        part = {"type": "output_text", "text": text, "annotations": []}
        item["content"] = [part]
        item["status"] = "completed"
        where = {"item_id": item["id"], "output_index": self.text_index, "content_index": 0}
        return (
            self.event("response.output_text.done", {**where, "text": text, "logprobs": []})
            + self.event("response.content_part.done", {**where, "part": part})
            + self.event(
                "response.output_item.done", {"output_index": self.text_index, "item": item}
            )
        )

    def _call_delta(self, call: dict[str, Any]) -> bytes:
        out = b""
        index = int(call.get("index", 0))
        function = call.get("function") or {}
        if index not in self.calls:
            out += self._close_text()  # text said before the call ends where the call starts
            item = {
                "type": "function_call",
                "id": new_id("fc"),
                "call_id": call.get("id") or new_id("call"),
                "name": function.get("name") or "",
                "arguments": "",
                "status": "in_progress",
            }
            output_index = len(self.response["output"])
            self.response["output"].append(item)
            self.calls[index] = (output_index, item, [])
            out += self.event(
                "response.output_item.added", {"output_index": output_index, "item": item}
            )
        output_index, item, pieces = self.calls[index]
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            pieces.append(arguments)
            out += self.event(
                "response.function_call_arguments.delta",
                {"item_id": item["id"], "output_index": output_index, "delta": arguments},
            )
        return out

    def finish(self) -> bytes:
        """Close what is open and send ``response.completed`` (once)."""
        if self.finished:
            return b""
        out = self.start()
        self.finished = True
        out += self._close_text()
        for output_index, item, pieces in self.calls.values():
            item["arguments"] = "".join(pieces)
            item["status"] = "completed"
            out += self.event(
                "response.function_call_arguments.done",
                {
                    "item_id": item["id"],
                    "output_index": output_index,
                    "name": item["name"],
                    "arguments": item["arguments"],
                },
            )
            out += self.event(
                "response.output_item.done", {"output_index": output_index, "item": item}
            )
        self.calls = {}
        _finish(self.response, self.finish_reason, self.raw_usage)
        if self.on_complete is not None and not self.on_complete(self.response):
            self.response["store"] = False
        kind = (
            "response.completed"
            if self.response["status"] == "completed"
            else ("response.incomplete")
        )
        return out + self.event(kind, {"response": self.response})

    def failed(self, error: GatewayError) -> bytes:
        """The events that end a stream that failed after its start."""
        self.finished = True
        self.response["status"] = "failed"
        self.response["error"] = error_object(error)
        return self.event(
            "error", {"code": error.code, "message": error.message, "param": None}
        ) + self.event("response.failed", {"response": self.response})
