"""The API surface of issue 16 end to end: one real ``portkey-mw serve`` process, fake
upstreams on 127.0.0.1 speaking each provider's own format, and the clients users run --
the official ``openai`` SDK, the ``portkey-ai`` SDK and the ``anthropic`` SDK.

``/v1/responses`` (plain, streamed, a function tool round trip, a ``previous_response_id``
turn) through openai (native: the upstream gets ``/v1/responses``), anthropic, google and
bedrock (translated: the upstream gets the earlier turns in its own format); audio, files
and batches, image edits; Anthropic's message batches (through the pass-through) and
files (`/v1/files`, which has the same paths as OpenAI's).
Every server-held key is the operator's; each test checks what the upstream received and
what the SDK parsed. (Realtime runs against ``portkey-mw serve`` in tests/test_realtime.py.)
"""

from __future__ import annotations

import base64
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import openai
import orjson
import pytest
from portkey_ai import Portkey

from tests.conftest import RunningGateway, server_file, standalone_gateway
from tests.fake_upstream import FakeUpstream, Recorded, Reply
from tests.multipart_forms import parse_form, text_fields
from tests.native_upstream import event_frame

#: the operator's keys, held in the server file (clients send a throwaway key)
OPENAI_KEY = "sk-e2e-openai-held"
ANTHROPIC_KEY = "sk-ant-e2e-held"
GOOGLE_KEY = "g-e2e-held"
CLIENT_KEY = "sk-client-throwaway"

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
AUDIO = bytes(range(256)) * 8 + b"\r\n--not-a-boundary\r\n"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
JSONL = b'{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{}}\n'
FILE_OBJECT = {
    "id": "file-e2e1",
    "object": "file",
    "bytes": len(JSONL),
    "created_at": 1_700_000_000,
    "filename": "in.jsonl",
    "purpose": "batch",
    "status": "processed",
}
BATCH = {
    "id": "batch_e2e1",
    "object": "batch",
    "endpoint": "/v1/chat/completions",
    "input_file_id": "file-e2e1",
    "completion_window": "24h",
    "status": "validating",
    "created_at": 1_700_000_000,
}
EDITED_B64 = base64.b64encode(b"edited").decode()
EDITED = {"created": 1, "data": [{"b64_json": EDITED_B64}]}


@pytest.fixture(scope="module")
def gateway(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    """One ``portkey-mw serve`` for the module, a config per provider, keys held by it."""
    host = upstream_server.host_url
    configs = {
        "openai": {"provider": "openai", "api_key": OPENAI_KEY, "custom_host": f"{host}/v1"},
        "anthropic": {
            "provider": "anthropic",
            "api_key": ANTHROPIC_KEY,
            "custom_host": f"{host}/v1",
        },
        "google": {"provider": "google", "api_key": GOOGLE_KEY, "custom_host": f"{host}/v1beta"},
        # bound to Anthropic's own host: no client header may move it
        "anthropic-held": {"provider": "anthropic", "api_key": ANTHROPIC_KEY},
        "bedrock": {
            "provider": "bedrock",
            "custom_host": host,
            "aws_access_key_id": "AKIDEXAMPLE",
            "aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "aws_region": "us-east-1",
        },
    }
    path = server_file(tmp_path_factory.mktemp("surface"), upstream_server, configs=configs)
    with standalone_gateway(path) as running:
        yield running


def oai(gateway: RunningGateway, config: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=gateway.base_url,
        api_key=CLIENT_KEY,
        max_retries=0,
        timeout=10,
        default_headers={"x-portkey-config": config},
    )


def portkey(gateway: RunningGateway, config: str) -> Portkey:
    return Portkey(api_key="x", base_url=gateway.base_url, config=config, max_retries=0)


def only(fake: FakeUpstream, path: str) -> Recorded:
    """The one request that reached ``path``."""
    found = [r for r in fake.requests if r.path == path]
    assert len(found) == 1, f"{path}: {[(r.method, r.path) for r in fake.requests]}"
    return found[0]


# -- each provider's native format -----------------------------------------------------------


def _native(text: str, call: bool = False) -> dict[str, Any]:
    message = {
        "type": "message",
        "id": "msg_u1",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }
    output: list[dict[str, Any]] = [message]
    if call:
        output = [
            {
                "type": "function_call",
                "id": "fc_1",
                "call_id": "call_1",
                "name": "get_weather",
                "arguments": '{"city":"Paris"}',
                "status": "completed",
            }
        ]
    return {
        "id": f"resp_up_{len(text)}_{int(call)}",
        "object": "response",
        "created_at": 1,
        "status": "completed",
        "model": "gpt-4.1",
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": {
            "input_tokens": 3,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 2,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 5,
        },
    }


def _native_stream(text: str) -> Reply:
    done = _native(text)
    events: list[tuple[str, dict[str, Any]]] = [
        ("response.created", {"response": {**done, "status": "in_progress", "output": []}}),
        (
            "response.output_text.delta",
            {"item_id": "msg_u1", "output_index": 0, "content_index": 0, "delta": text},
        ),
        ("response.completed", {"response": done}),
    ]
    frames: list[bytes | dict[str, Any]] = []
    for number, (kind, data) in enumerate(events):
        payload = orjson.dumps({"type": kind, "sequence_number": number, **data})
        frames.append(b"event: " + kind.encode() + b"\ndata: " + payload + b"\n\n")
    return Reply(stream=frames, done=False)


def _claude(text: str, call: bool = False) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "text", "text": text}]
    if call:
        use = {"type": "tool_use", "id": "toolu_1", "name": "get_weather"}
        content = [{**use, "input": {"city": "Paris"}}]
    return {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-e2e",
        "content": content,
        "stop_reason": "tool_use" if call else "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 3, "output_tokens": 2},
    }


def _claude_stream(text: str) -> Reply:
    start = {**_claude(""), "content": [], "stop_reason": None}
    events: list[bytes | dict[str, Any]] = [
        {"type": "message_start", "message": start},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}},
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": 2},
        },
        {"type": "message_stop"},
    ]
    return Reply(stream=events, done=False)


def _gemini(text: str, call: bool = False) -> dict[str, Any]:
    part: dict[str, Any] = {"text": text}
    if call:
        part = {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}
    return {
        "candidates": [{"content": {"role": "model", "parts": [part]}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2, "totalTokenCount": 5},
    }


def _converse(text: str, call: bool = False) -> dict[str, Any]:
    block: dict[str, Any] = {"text": text}
    if call:
        use = {"toolUseId": "tooluse_1", "name": "get_weather", "input": {"city": "Paris"}}
        block = {"toolUse": use}
    return {
        "output": {"message": {"role": "assistant", "content": [block]}},
        "stopReason": "tool_use" if call else "end_turn",
        "usage": {"inputTokens": 3, "outputTokens": 2, "totalTokens": 5},
    }


def _converse_stream(text: str) -> Reply:
    body = b"".join(
        [
            event_frame("messageStart", {"role": "assistant"}),
            event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": text}}),
            event_frame("contentBlockStop", {"contentBlockIndex": 0}),
            event_frame("messageStop", {"stopReason": "end_turn"}),
            event_frame("metadata", {"usage": {"inputTokens": 3, "outputTokens": 2}}),
        ]
    )
    return Reply(body=body, content_type="application/vnd.amazon.eventstream")


def _claude_turns(body: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(m["role"], m["content"]) for m in body["messages"]]


def _gemini_turns(body: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(c["role"], c["parts"]) for c in body["contents"]]


def _converse_turns(body: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(m["role"], m["content"]) for m in body["messages"]]


@dataclass(frozen=True)
class Provider:
    """How one provider is reached, answers, and records a conversation."""

    config: str
    model: str
    path: str  # where a generation goes upstream
    stream_path: str
    answer: Callable[..., dict[str, Any]]  # (text, call=False) -> the upstream's JSON
    stream: Callable[[str], Reply]
    #: the conversation the upstream received, (role, content) per turn; None: native
    turns: Callable[[dict[str, Any]], list[tuple[str, Any]]] | None
    credential: tuple[str, str]  # the header carrying the operator's key, and its value


BEDROCK_MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
PROVIDERS = {
    "openai": Provider(
        "openai",
        "gpt-4.1",
        "/v1/responses",
        "/v1/responses",
        _native,
        _native_stream,
        None,
        ("authorization", f"Bearer {OPENAI_KEY}"),
    ),
    "anthropic": Provider(
        "anthropic",
        "claude-e2e",
        "/v1/messages",
        "/v1/messages",
        _claude,
        _claude_stream,
        _claude_turns,
        ("x-api-key", ANTHROPIC_KEY),
    ),
    "google": Provider(
        "google",
        "gemini-2.5-flash",
        "/v1beta/models/gemini-2.5-flash:generateContent",
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
        _gemini,
        lambda text: Reply(stream=[_gemini(text)], done=False),
        _gemini_turns,
        ("x-goog-api-key", GOOGLE_KEY),
    ),
    "bedrock": Provider(
        "bedrock",
        BEDROCK_MODEL,
        f"/model/{BEDROCK_MODEL}/converse",
        f"/model/{BEDROCK_MODEL}/converse-stream",
        _converse,
        _converse_stream,
        _converse_turns,
        ("authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"),
    ),
}


@pytest.fixture(params=list(PROVIDERS))
def provider(request: pytest.FixtureRequest) -> Provider:
    return PROVIDERS[request.param]


def assert_credential(provider: Provider, sent: Recorded) -> None:
    name, value = provider.credential
    assert sent.headers[name].startswith(value), sent.headers
    assert CLIENT_KEY not in str(sent.headers)


def text_of(content: Any) -> str:
    """The text of one turn's content (its first block or part, in each format)."""
    return str(content[0]["text"])


# -- /v1/responses through the openai SDK, per provider --------------------------------------


def test_responses_plain(gateway: RunningGateway, fake: FakeUpstream, provider: Provider) -> None:
    fake.script(provider.path, Reply(json=provider.answer("Bonjour!")))
    response = oai(gateway, provider.config).responses.create(
        model=provider.model, input="Say hello in French", instructions="Be terse."
    )
    assert response.object == "response" and response.status == "completed"
    assert response.output_text == "Bonjour!"
    assert response.usage is not None and response.usage.total_tokens == 5
    sent = only(fake, provider.path)
    assert_credential(provider, sent)
    body = sent.json()
    if provider.turns is None:
        assert body == {
            "model": provider.model,
            "input": "Say hello in French",
            "instructions": "Be terse.",
        }
        return
    assert response.id.startswith("resp_")
    ((role, content),) = provider.turns(body)
    assert role == "user" and text_of(content) == "Say hello in French"
    assert "Be terse." in orjson.dumps(body).decode()  # as the provider's system prompt


def test_responses_stream(gateway: RunningGateway, fake: FakeUpstream, provider: Provider) -> None:
    fake.script(provider.stream_path, provider.stream("Streamed hello"))
    client = oai(gateway, provider.config)
    events = list(client.responses.create(model=provider.model, input="Hi", stream=True))
    kinds = [event.type for event in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed", kinds
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert "".join(deltas) == "Streamed hello"
    final = events[-1].response  # type: ignore[union-attr]
    assert final.output_text == "Streamed hello"
    sent = only(fake, provider.stream_path)
    assert_credential(provider, sent)
    if provider.turns is None:
        assert sent.json() == {"model": provider.model, "input": "Hi", "stream": True}
    else:
        # translated and stored by the gateway: retrievable like any response
        assert client.responses.retrieve(final.id).output_text == "Streamed hello"
    if provider.config == "google":
        assert sent.query == "alt=sse"


def test_responses_function_tool_round_trip(
    gateway: RunningGateway, fake: FakeUpstream, provider: Provider
) -> None:
    client = oai(gateway, provider.config)
    fake.script(provider.path, Reply(json=provider.answer("", call=True)))
    asked = client.responses.create(
        model=provider.model,
        input="Weather in Paris?",
        tools=[WEATHER],  # type: ignore[list-item]
    )
    (call,) = asked.output
    assert call.type == "function_call" and call.name == "get_weather"
    assert orjson.loads(call.arguments) == {"city": "Paris"}
    first = fake.requests[-1].json()
    assert "get_weather" in orjson.dumps(first.get("tools") or first.get("toolConfig")).decode()

    fake.script(provider.path, Reply(json=provider.answer("18C in Paris.")))
    answered = client.responses.create(
        model=provider.model,
        previous_response_id=asked.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "18C"}],
        tools=[WEATHER],  # type: ignore[list-item]
    )
    assert answered.output_text == "18C in Paris."
    sent = fake.requests[-1]
    assert sent.path == provider.path
    assert_credential(provider, sent)
    body = sent.json()
    if provider.turns is None:  # OpenAI holds the conversation: the id and output go on
        assert body["previous_response_id"] == asked.id
        assert body["input"] == [
            {"type": "function_call_output", "call_id": "call_1", "output": "18C"}
        ]
        return
    assert answered.previous_response_id == asked.id  # the gateway's own stored turn
    turns = provider.turns(body)
    assert [role for role, _ in turns] == ["user", turns[1][0], "user"]
    dumped = [orjson.loads(orjson.dumps(content)) for _, content in turns]
    if provider.config == "anthropic":
        assert turns[1][0] == "assistant"
        assert dumped[1] == [
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}
        ]
        assert dumped[2][0]["type"] == "tool_result"
        assert dumped[2][0]["tool_use_id"] == "toolu_1"
        assert "18C" in orjson.dumps(dumped[2][0]["content"]).decode()
    elif provider.config == "google":
        assert turns[1][0] == "model"
        assert dumped[1][0]["functionCall"] == {"name": "get_weather", "args": {"city": "Paris"}}
        assert dumped[2][0]["functionResponse"]["name"] == "get_weather"
        assert "18C" in orjson.dumps(dumped[2][0]["functionResponse"]).decode()
    else:
        assert turns[1][0] == "assistant"
        assert dumped[1] == [
            {
                "toolUse": {
                    "toolUseId": "tooluse_1",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                }
            }
        ]
        result = dumped[2][0]["toolResult"]
        assert result["toolUseId"] == "tooluse_1"
        assert "18C" in orjson.dumps(result["content"]).decode()


def test_responses_previous_response_id(
    gateway: RunningGateway, fake: FakeUpstream, provider: Provider
) -> None:
    client = oai(gateway, provider.config)
    fake.script(provider.path, Reply(json=provider.answer("Paris.")))
    first = client.responses.create(model=provider.model, input="Capital of France?")
    fake.script(provider.path, Reply(json=provider.answer("About 2 million.")))
    second = client.responses.create(
        model=provider.model, input="Its population?", previous_response_id=first.id
    )
    assert second.output_text == "About 2 million."
    sent = fake.requests[-1]
    assert len(fake.requests) == 2 and sent.path == provider.path
    body = sent.json()
    if provider.turns is None:
        assert body == {
            "model": provider.model,
            "input": "Its population?",
            "previous_response_id": first.id,
        }
        return
    assert second.previous_response_id == first.id
    turns = [(role, text_of(content)) for role, content in provider.turns(body)]
    assistant = "model" if provider.config == "google" else "assistant"
    assert turns == [
        ("user", "Capital of France?"),
        (assistant, "Paris."),
        ("user", "Its population?"),
    ]


# -- audio, files and batches, image edits through the openai SDK ----------------------------


def test_audio_transcription_and_speech(gateway: RunningGateway, fake: FakeUpstream) -> None:
    client = oai(gateway, "openai")
    fake.script("/v1/audio/transcriptions", Reply(json={"text": "hello there"}))
    result = client.audio.transcriptions.create(
        file=("a.wav", AUDIO, "audio/wav"), model="whisper-1", language="en"
    )
    assert result.text == "hello there"
    sent = only(fake, "/v1/audio/transcriptions")
    assert sent.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    parts = parse_form(sent)
    assert [(p.name, p.filename, p.data) for p in parts if p.filename] == [("file", "a.wav", AUDIO)]
    assert text_fields(parts) == {"model": ["whisper-1"], "language": ["en"]}

    fake.script("/v1/audio/speech", Reply(body=AUDIO, content_type="audio/mpeg"))
    speech = client.audio.speech.create(model="tts-1", voice="alloy", input="Hello!")
    assert speech.content == AUDIO
    assert speech.response.headers["content-type"] == "audio/mpeg"
    spoken = only(fake, "/v1/audio/speech")
    assert spoken.json() == {"model": "tts-1", "voice": "alloy", "input": "Hello!"}
    assert spoken.headers["authorization"] == f"Bearer {OPENAI_KEY}"


def test_files_and_batches(gateway: RunningGateway, fake: FakeUpstream) -> None:
    client = oai(gateway, "openai")
    fake.script("/v1/files", Reply(json=FILE_OBJECT))
    made = client.files.create(file=("in.jsonl", JSONL, "application/jsonl"), purpose="batch")
    assert made.id == "file-e2e1" and made.bytes == len(JSONL)
    uploaded = only(fake, "/v1/files")
    assert uploaded.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert JSONL in uploaded.body and b'name="purpose"\r\n\r\nbatch\r\n' in uploaded.body

    fake.script("/v1/batches", Reply(json=BATCH))
    batch = client.batches.create(
        input_file_id=made.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert batch.id == "batch_e2e1" and batch.status == "validating"
    assert only(fake, "/v1/batches").json() == {
        "input_file_id": "file-e2e1",
        "endpoint": "/v1/chat/completions",
        "completion_window": "24h",
    }
    fake.script("/v1/batches/batch_e2e1", Reply(json={**BATCH, "status": "completed"}))
    assert client.batches.retrieve("batch_e2e1").status == "completed"
    retrieved = only(fake, "/v1/batches/batch_e2e1")
    assert retrieved.method == "GET"
    assert retrieved.headers["authorization"] == f"Bearer {OPENAI_KEY}"


def test_image_edit(gateway: RunningGateway, fake: FakeUpstream) -> None:
    fake.script("/v1/images/edits", Reply(json=EDITED))
    result = oai(gateway, "openai").images.edit(
        image=("photo.png", PNG, "image/png"), prompt="add a hat", model="gpt-image-1"
    )
    assert result.data is not None and result.data[0].b64_json == EDITED_B64
    sent = only(fake, "/v1/images/edits")
    assert sent.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    parts = parse_form(sent)
    assert [(p.name, p.data) for p in parts if p.filename] == [("image", PNG)]
    assert text_fields(parts) == {"prompt": ["add a hat"], "model": ["gpt-image-1"]}


# -- the portkey-ai SDK ----------------------------------------------------------------------


def test_portkey_sdk_responses(gateway: RunningGateway, fake: FakeUpstream) -> None:
    fake.script("/v1/messages", Reply(json=_claude("Hi from Claude.")))
    response = portkey(gateway, "anthropic").responses.create(
        model="claude-e2e", input="Hello?", max_output_tokens=30
    )
    assert response.output_text == "Hi from Claude."
    sent = only(fake, "/v1/messages")
    assert sent.headers["x-api-key"] == ANTHROPIC_KEY
    body = sent.json()
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Hello?"}]}]
    assert body["max_tokens"] == 30


def test_portkey_sdk_audio_files_batches_edits(
    gateway: RunningGateway, fake: FakeUpstream, tmp_path: Path
) -> None:
    client = portkey(gateway, "openai")
    # the SDK reads a real file's duration (a header for the gateway, never the upstream)
    wav = tmp_path / "a.wav"
    with wave.open(str(wav), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(AUDIO)
    fake.script("/v1/audio/transcriptions", Reply(json={"text": "via portkey"}))
    with wav.open("rb") as audio:
        result = client.audio.transcriptions.create(file=audio, model="whisper-1")
    assert result.text == "via portkey"
    heard = only(fake, "/v1/audio/transcriptions")
    assert [p.data for p in parse_form(heard) if p.filename] == [wav.read_bytes()]
    assert not any(name.startswith("x-portkey-") for name in heard.headers)

    fake.script("/v1/files", Reply(json=FILE_OBJECT))
    made = client.files.create(file=("in.jsonl", JSONL, "application/jsonl"), purpose="batch")
    assert made.id == "file-e2e1"
    assert JSONL in only(fake, "/v1/files").body
    fake.script("/v1/batches", Reply(json=BATCH))
    batch = client.batches.create(
        input_file_id=made.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert batch.id == "batch_e2e1"
    assert only(fake, "/v1/batches").json()["input_file_id"] == "file-e2e1"

    fake.script("/v1/images/edits", Reply(json=EDITED))
    edited = client.images.edit(image=("p.png", PNG, "image/png"), prompt="add a hat")
    assert edited.data is not None and edited.data[0].b64_json == EDITED_B64
    assert [p.data for p in parse_form(only(fake, "/v1/images/edits")) if p.filename] == [PNG]
    # every call carried the operator's key, never the SDK's placeholder
    assert {r.headers["authorization"] for r in fake.requests} == {f"Bearer {OPENAI_KEY}"}


# -- the anthropic SDK through the pass-through ----------------------------------------------

MESSAGE_BATCH = {
    "id": "msgbatch_e2e1",
    "type": "message_batch",
    "processing_status": "in_progress",
    "request_counts": {"processing": 1, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0},
    "ended_at": None,
    "created_at": "2026-01-01T00:00:00Z",
    "expires_at": "2026-01-02T00:00:00Z",
    "archived_at": None,
    "cancel_initiated_at": None,
    "results_url": None,
}


def claude_sdk(gateway: RunningGateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=gateway.root,
        api_key=CLIENT_KEY,
        max_retries=0,
        timeout=10,
        default_headers={"x-portkey-config": "anthropic"},
    )


def test_anthropic_message_batches(gateway: RunningGateway, fake: FakeUpstream) -> None:
    client = claude_sdk(gateway)
    fake.script("/v1/messages/batches", Reply(json=MESSAGE_BATCH))
    request = {
        "custom_id": "a",
        "params": {
            "model": "claude-e2e",
            "max_tokens": 16,
            "messages": [{"role": "user", "content": "hi"}],
        },
    }
    made = client.messages.batches.create(requests=[request])  # type: ignore[list-item]
    assert made.id == "msgbatch_e2e1" and made.processing_status == "in_progress"
    sent = only(fake, "/v1/messages/batches")
    assert sent.method == "POST"
    assert sent.json() == {"requests": [request]}  # untranslated
    assert sent.headers["x-api-key"] == ANTHROPIC_KEY  # the operator's, not the client's
    # the SDK's own API version wins over the provider's default (docs/http.md)
    assert (
        sent.headers["anthropic-version"]
        == anthropic.Anthropic(api_key="x").default_headers["anthropic-version"]
    )
    assert CLIENT_KEY not in str(sent.headers)

    ended = {**MESSAGE_BATCH, "processing_status": "ended", "ended_at": "2026-01-01T01:00:00Z"}
    fake.script("/v1/messages/batches/msgbatch_e2e1", Reply(json=ended))
    assert client.messages.batches.retrieve("msgbatch_e2e1").processing_status == "ended"
    got = only(fake, "/v1/messages/batches/msgbatch_e2e1")
    assert got.method == "GET" and got.headers["x-api-key"] == ANTHROPIC_KEY
    assert got.headers["anthropic-version"] == sent.headers["anthropic-version"]


def test_anthropic_files(gateway: RunningGateway, fake: FakeUpstream) -> None:
    """Anthropic's Files API has OpenAI's paths, so /v1/files with the anthropic provider
    is its files endpoint (not the pass-through): the upload streams through unchanged."""
    uploaded = {
        "id": "file_e2e1",
        "type": "file",
        "filename": "notes.txt",
        "mime_type": "text/plain",
        "size_bytes": 11,
        "created_at": "2026-01-01T00:00:00Z",
        "downloadable": True,
    }
    client = claude_sdk(gateway)
    fake.script("/v1/files", Reply(json=uploaded))
    made = client.beta.files.upload(
        file=("notes.txt", b"hello notes", "text/plain"), betas=["files-api-2025-04-14"]
    )
    assert made.id == "file_e2e1" and made.size_bytes == 11
    sent = only(fake, "/v1/files")
    assert sent.method == "POST"
    assert sent.headers["x-api-key"] == ANTHROPIC_KEY  # the operator's, not the client's
    assert CLIENT_KEY not in str(sent.headers)
    assert sent.headers["anthropic-beta"] == "files-api-2025-04-14"  # the client's, kept
    assert (
        sent.headers["anthropic-version"]
        == anthropic.Anthropic(api_key="x").default_headers["anthropic-version"]
    )
    assert sent.headers["content-type"].startswith("multipart/form-data; boundary=")
    (part,) = parse_form(sent)
    assert (part.name, part.filename, part.data) == ("file", "notes.txt", b"hello notes")

    fake.script("/v1/files/file_e2e1", Reply(json=uploaded))
    assert client.beta.files.retrieve_metadata("file_e2e1").filename == "notes.txt"
    fake.script(
        "/v1/files/file_e2e1/content", Reply(body=b"hello notes", content_type="text/plain")
    )
    assert client.beta.files.download("file_e2e1").read() == b"hello notes"
    fake.script("/v1/files/file_e2e1", Reply(json={"id": "file_e2e1", "type": "file_deleted"}))
    assert client.beta.files.delete("file_e2e1").id == "file_e2e1"
    calls = [(r.method, r.path, r.headers["x-api-key"]) for r in fake.requests]
    assert calls == [
        ("POST", "/v1/files", ANTHROPIC_KEY),
        ("GET", "/v1/files/file_e2e1", ANTHROPIC_KEY),
        ("GET", "/v1/files/file_e2e1/content", ANTHROPIC_KEY),
        ("DELETE", "/v1/files/file_e2e1", ANTHROPIC_KEY),
    ]


def test_anthropic_files_keep_the_held_key_bound(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    """A client header cannot send the operator's Anthropic key elsewhere, and Anthropic's
    batches are not OpenAI's /v1/batches (they are /v1/messages/batches, above)."""
    steered = anthropic.Anthropic(
        base_url=gateway.root,
        api_key=CLIENT_KEY,
        max_retries=0,
        timeout=10,
        default_headers={
            "x-portkey-config": "anthropic-held",
            "x-portkey-custom-host": fake.base_url,  # standing for an attacker's host
        },
    )
    with pytest.raises(anthropic.BadRequestError) as refused:
        steered.beta.files.upload(file=("a.txt", b"secret", "text/plain"))
    assert refused.value.body["error"]["code"] == "custom_host_not_allowed"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as unsupported:
        oai(gateway, "anthropic").batches.create(
            input_file_id="file_1", endpoint="/v1/chat/completions", completion_window="24h"
        )
    assert unsupported.value.code == "unsupported_endpoint"
    assert "anthropic" in unsupported.value.message and "batches" in unsupported.value.message
    assert fake.requests == []
