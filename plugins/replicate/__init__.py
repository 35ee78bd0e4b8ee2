"""The ``replicate`` provider plugin: Replicate's language models behind OpenAI's chat
format, and pass-through to the rest of its API.

Portkey's gateway serves Replicate as pass-through only (``https://api.replicate.com/v1``,
``Authorization: Bearer <token>``): every model has its own inputs. This plugin does that
(``/v1/proxy/…``) and also answers chat completions for the official language models,
which share a shape: ``POST /v1/models/{owner}/{name}/predictions`` with
``{"input": {"prompt", "system_prompt", "max_tokens", ...}}`` and ``Prefer: wait`` (the
prediction is answered in the same request, for up to a minute), whose ``output`` is the
completion as a list of text pieces. The conversation becomes one prompt (earlier turns
labelled by role); system messages become ``system_prompt``. Streaming, tools and images
are not translated: a stream is refused, other unsupported parameters are dropped and
reported.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from portkey_mw import hookimpl
from portkey_mw.context import Endpoint, GatewayResponse
from portkey_mw.errors import InvalidRequest, UpstreamBadResponse, UpstreamTimeout
from portkey_mw.interfaces import Provider, ProviderCall
from portkey_mw.provider_http import HTTPProvider, json_post, report_dropped
from portkey_mw.translation import dropped_params, json_object, reads_answer, stop_list
from portkey_mw.transport import UpstreamRequest

BASE_URL = "https://api.replicate.com/v1"
#: one segment of ``owner/name``: what Replicate allows, and nothing that climbs a path
_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
#: OpenAI fields that are Replicate inputs under the same name
_SAME = ("temperature", "top_p", "seed", "presence_penalty", "frequency_penalty")
_PASSED = frozenset(
    {*_SAME, "model", "messages", "max_tokens", "max_completion_tokens", "stop", "stream"}
)
#: a prediction's final states besides success
_FAILED = frozenset({"failed", "canceled", "aborted"})


def model_path(model: Any) -> str:
    """``/models/{owner}/{name}`` for an official model named ``owner/name``.

    :raises InvalidRequest: no model, a version (``owner/name:version``) or anything that
        is not two plain segments.
    """
    if not isinstance(model, str) or not model:
        raise InvalidRequest(
            "provider 'replicate' needs the model as 'owner/name' (e.g. "
            "meta/meta-llama-3-8b-instruct)",
            param="model",
            code="missing_model",
        )
    segments = model.split("/")
    if len(segments) != 2 or not all(_SEGMENT.fullmatch(s) for s in segments):
        raise InvalidRequest(
            f"replicate model {model[:120]!r} is not 'owner/name' (a version, 'owner/name:id', "
            "goes through /v1/proxy/predictions)",
            param="model",
            code="invalid_model",
        )
    return f"/models/{segments[0]}/{segments[1]}"


def to_replicate(body: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The prediction input for an OpenAI chat request, and the parameters dropped.

    :raises InvalidRequest: a message that is not text (images, audio), or a role
        Replicate's prompt cannot hold.
    """
    system: list[str] = []
    turns: list[tuple[str, str]] = []
    for index, message in enumerate(body.get("messages") or []):
        if not isinstance(message, dict):
            raise InvalidRequest(f"messages[{index}] must be an object", param=f"messages.{index}")
        role = message.get("role")
        text = _text(message.get("content"), index)
        if role in ("system", "developer"):
            system.append(text)
        elif role in ("user", "assistant"):
            turns.append((role, text))
        else:
            raise InvalidRequest(
                f"messages[{index}]: replicate takes user, assistant and system turns, not "
                f"{role!r}",
                param=f"messages.{index}.role",
            )
    if len(turns) == 1 and turns[0][0] == "user":
        prompt = turns[0][1]
    else:
        # Several turns in one prompt: each labelled, the answer's turn left open.
        prompt = "\n\n".join(f"{role}: {text}" for role, text in turns) + "\n\nassistant:"
    payload: dict[str, Any] = {"prompt": prompt}
    if system:
        payload["system_prompt"] = "\n\n".join(system)
    payload.update({k: body[k] for k in _SAME if body.get(k) is not None})
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if limit:
        payload["max_tokens"] = limit
    stop = body.get("stop")
    if stop:
        payload["stop_sequences"] = ",".join(stop_list(stop))
    return payload, dropped_params(body, _PASSED)


def _text(content: Any, index: int) -> str:
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    parts = content if isinstance(content, list) else [content]
    texts = []
    for part in parts:
        if not (isinstance(part, dict) and part.get("type") == "text"):
            raise InvalidRequest(
                f"messages[{index}]: replicate takes text content only",
                param=f"messages.{index}.content",
            )
        texts.append(str(part.get("text") or ""))
    return "".join(texts)


@reads_answer("replicate")
def to_openai(prediction: dict[str, Any], model: str | None) -> dict[str, Any]:
    """The OpenAI chat completion for a finished prediction.

    :raises UpstreamBadResponse: the prediction failed, or its output is not text.
    :raises UpstreamTimeout: it was still running when ``Prefer: wait`` gave up.
    """
    status = prediction.get("status")
    if status in _FAILED:
        reason = str(prediction.get("error") or "no reason given")[:300]
        raise UpstreamBadResponse(
            f"replicate prediction {status}: {reason}",
            provider="replicate",
        )
    if status != "succeeded":
        raise UpstreamTimeout(
            f"replicate prediction {prediction.get('id')!s} was still {status!s} when the "
            "synchronous wait ended: poll it at /v1/proxy/predictions/<id>",
            provider="replicate",
        )
    output = prediction.get("output")
    if isinstance(output, list) and all(isinstance(piece, str) for piece in output):
        text = "".join(output)
    elif isinstance(output, str):
        text = output
    else:
        raise UpstreamBadResponse(
            "replicate answered a prediction whose output is not text (not a language model?)",
            provider="replicate",
        )
    metrics = prediction.get("metrics") or {}
    prompt = int(metrics.get("input_token_count") or 0)
    completion = int(metrics.get("output_token_count") or 0)
    return {
        "id": str(prediction.get("id") or "chatcmpl-replicate"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }


class ReplicateProvider(HTTPProvider):
    """Chat with Replicate's official language models; pass-through to its whole API."""

    id = "replicate"
    endpoints = frozenset({Endpoint.CHAT_COMPLETIONS, Endpoint.PROXY})

    proxy_base_url = BASE_URL

    def build_request(self, call: ProviderCall) -> UpstreamRequest:
        body = call.body or {}
        if call.stream:
            raise InvalidRequest(
                "provider 'replicate' does not stream through this gateway: send stream=false",
                param="stream",
                code="unsupported_parameter",
            )
        path = model_path(body.get("model")) + "/predictions"
        payload, dropped = to_replicate(body)
        report_dropped(call, self.id, dropped)
        # Prefer: wait -- the prediction is answered in this request, not polled for.
        auth = {**self.proxy_auth(call), "prefer": "wait"}
        return json_post(call, BASE_URL, path, {"input": payload}, auth)

    def map_body(
        self,
        call: ProviderCall,
        status: int,
        headers: dict[str, str],
        body: bytes,
        content_type: str,
    ) -> GatewayResponse:
        prediction = json_object(self.id, status, body)
        answer = to_openai(prediction, (call.body or {}).get("model"))
        return GatewayResponse.from_json(answer, 200, headers)


@hookimpl
def register_providers(register: Callable[[Provider], None]) -> None:
    """Register the replicate provider."""
    register(ReplicateProvider())
