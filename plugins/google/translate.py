"""OpenAI chat completions <-> Google Gemini ``generateContent``.

Request: system and developer messages become ``systemInstruction``; the assistant is the
``model`` role; tool calls and results become ``functionCall`` / ``functionResponse`` parts
(a result is matched to its call's function name through the call id); images become
``inlineData`` (data URLs; http(s) URLs are fetched by the provider first); sampling,
stop sequences and JSON output go in ``generationConfig``. Response: text and function
calls become content and ``tool_calls`` (with generated ids where Gemini gives none),
finish reasons and usage are mapped.
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
    embedding_texts,
    reads_answer,
    stop_list,
    text_and_images,
    tool_arguments,
)

FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
}
#: OpenAI parameters Gemini has no place for (dropped, and reported).
UNSUPPORTED = (
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "service_tier",
    "prediction",
    "audio",
    "modalities",
    "user",
    "parallel_tool_calls",
)
_GENERATION = {
    "temperature": "temperature",
    "top_p": "topP",
    "n": "candidateCount",
    "seed": "seed",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
}
_PASSED = {
    "model",
    "messages",
    "stream",
    "stream_options",
    "tools",
    "tool_choice",
    "response_format",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    *_GENERATION,
}


def to_gemini(body: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The ``generateContent`` request for an OpenAI chat request, and the parameters dropped.

    Image parts must already be data URLs (the provider fetches http(s) images first).
    """
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool call id -> function name, for functionResponse
    for index, message in enumerate(body.get("messages") or []):
        if not isinstance(message, dict):
            raise InvalidRequest(f"messages[{index}] must be an object", param=f"messages.{index}")
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(_parts(message.get("content"), index))
        elif role == "user":
            append_turn(contents, "user", _parts(message.get("content"), index), "parts")
        elif role == "assistant":
            parts = _parts(message.get("content"), index)
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                names[str(call.get("id"))] = str(function.get("name"))
                parts.append(
                    {
                        "functionCall": {
                            "name": function.get("name"),
                            "args": tool_arguments(function, index),
                        }
                    }
                )
            append_turn(contents, "model", parts, "parts")
        elif role == "tool":
            name = names.get(str(message.get("tool_call_id")))
            if name is None:
                raise InvalidRequest(
                    f"messages[{index}]: tool_call_id {message.get('tool_call_id')!r} matches no "
                    "earlier tool call",
                    param=f"messages.{index}.tool_call_id",
                )
            response = _result(content_text(message.get("content")))
            append_turn(
                contents,
                "user",
                [{"functionResponse": {"name": name, "response": response}}],
                "parts",
            )
        else:
            raise InvalidRequest(
                f"messages[{index}].role {role!r} is not supported", param=f"messages.{index}.role"
            )
    payload: dict[str, Any] = {"contents": contents}
    if system:
        payload["systemInstruction"] = {"parts": system}
    config: dict[str, Any] = {
        target: body[name] for name, target in _GENERATION.items() if body.get(name) is not None
    }
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if limit:
        config["maxOutputTokens"] = limit
    stop = body.get("stop")
    if stop:
        config["stopSequences"] = stop_list(stop)
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") in (
        "json_object",
        "json_schema",
    ):
        config["responseMimeType"] = "application/json"
        schema = (response_format.get("json_schema") or {}).get("schema")
        if schema:
            config["responseJsonSchema"] = schema
    if config:
        payload["generationConfig"] = config
    _tools(body, payload)
    dropped = dropped_params(body, _PASSED, UNSUPPORTED)
    return payload, dropped


def _parts(content: Any, index: int) -> list[dict[str, Any]]:
    return text_and_images(
        content,
        index,
        "google",
        lambda media, data: {"inlineData": {"mimeType": media, "data": data}},
    )


def _result(text: str) -> dict[str, Any]:
    """Gemini wants an object: a JSON object result is kept, anything else is wrapped."""
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {"content": text}
    return parsed if isinstance(parsed, dict) else {"content": parsed}


def _tools(body: dict[str, Any], payload: dict[str, Any]) -> None:
    declarations = [
        {
            "name": tool["function"]["name"],
            "description": tool["function"].get("description", ""),
            **(
                {"parameters": tool["function"]["parameters"]}
                if tool["function"].get("parameters")
                else {}
            ),
        }
        for tool in body.get("tools") or []
        if isinstance(tool, dict) and isinstance(tool.get("function"), dict)
    ]
    if declarations:
        payload["tools"] = [{"functionDeclarations": declarations}]
    choice = body.get("tool_choice")
    config: dict[str, Any] | None = None
    if choice == "auto":
        config = {"mode": "AUTO"}
    elif choice == "required":
        config = {"mode": "ANY"}
    elif choice == "none":
        config = {"mode": "NONE"}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        config = {"mode": "ANY", "allowedFunctionNames": [choice["function"].get("name")]}
    if config:
        payload["toolConfig"] = {"functionCallingConfig": config}


def embed_request(body: dict[str, Any], model: str) -> dict[str, Any]:
    """The ``batchEmbedContents`` request for an OpenAI embeddings request."""
    extra = {"outputDimensionality": body["dimensions"]} if body.get("dimensions") else {}
    return {
        "requests": [
            {"model": f"models/{model}", "content": {"parts": [{"text": text}]}, **extra}
            for text in embedding_texts(body, "google")
        ]
    }


# -- responses --------------------------------------------------------------------------------


def usage(raw: dict[str, Any]) -> dict[str, Any]:
    """OpenAI usage from Gemini's ``usageMetadata`` (thinking tokens count as completion)."""
    prompt = int(raw.get("promptTokenCount") or 0)
    completion = int(raw.get("candidatesTokenCount") or 0) + int(raw.get("thoughtsTokenCount") or 0)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": int(raw.get("totalTokenCount") or prompt + completion),
        "prompt_tokens_details": {"cached_tokens": int(raw.get("cachedContentTokenCount") or 0)},
    }


def candidate_delta(candidate: dict[str, Any], first_call: int) -> tuple[str, list[dict[str, Any]]]:
    """The text and tool calls in one candidate; tool call indexes start at ``first_call``."""
    text: list[str] = []
    calls: list[dict[str, Any]] = []
    for part in (candidate.get("content") or {}).get("parts") or []:
        if part.get("thought"):
            continue  # thought summaries are not part of the answer
        if "text" in part:
            text.append(part["text"])
        elif "functionCall" in part:
            call = part["functionCall"]
            index = first_call + len(calls)
            calls.append(
                {
                    "index": index,
                    "id": call.get("id") or f"call_{index}",
                    "type": "function",
                    "function": {
                        "name": call.get("name"),
                        "arguments": orjson.dumps(call.get("args") or {}).decode(),
                    },
                }
            )
    return "".join(text), calls


def finish_reason(candidate: dict[str, Any], has_calls: bool) -> str | None:
    reason = candidate.get("finishReason")
    if not reason:
        return None
    if has_calls and reason == "STOP":
        return "tool_calls"
    return FINISH_REASONS.get(reason, "stop")


@reads_answer("google")
def to_openai(response: dict[str, Any], model: str | None) -> dict[str, Any]:
    """The OpenAI chat completion for a Gemini ``generateContent`` response."""
    choices = []
    for position, candidate in enumerate(response.get("candidates") or []):
        text, calls = candidate_delta(candidate, 0)
        message: dict[str, Any] = {"role": "assistant", "content": text or None}
        if calls:
            message["tool_calls"] = [{k: v for k, v in c.items() if k != "index"} for c in calls]
        choices.append(
            {
                "index": candidate.get("index", position),
                "message": message,
                "finish_reason": finish_reason(candidate, bool(calls)) or "stop",
                "logprobs": None,
            }
        )
    return {
        "id": response.get("responseId") or "chatcmpl-google",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": response.get("modelVersion") or model,
        "choices": choices,
        "usage": usage(response.get("usageMetadata") or {}),
    }
