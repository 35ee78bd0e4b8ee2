"""``/v1/audio/speech``, ``/v1/audio/transcriptions`` and ``/v1/audio/translations``
through openai, groq and azure-openai (fake upstreams), with the official SDK; the upload
limit, malformed forms and steering headers; one log record per request without audio."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest

from portkey_mw import Gateway, LogSink, ServerSettings, hookimpl
from portkey_mw.plugin import PluginManager
from tests import planted
from tests.conftest import (
    DEADLINE,
    RunningGateway,
    in_process,
    mounted_gateway,
    server_file,
    standalone_gateway,
)
from tests.fake_upstream import FakeUpstream, Reply
from tests.multipart_forms import parse_form, text_fields
from tests.test_logging import ListSink
from tests.test_spend_e2e import Clock, api_key, run_gateway, virtual_key

#: every byte value, CRLFs and something that looks like a boundary: it must arrive intact
AUDIO = bytes(range(256)) * 64 + b"\r\n--portkey-mw-0\r\n\r\n" + b"RIFF\x00\x00WAVE" * 50
#: the limits' clock in the budget tests
NOW = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)
#: the gateway's upload limit in these tests
LIMIT = 1_000_000
TRANSCRIPT = {
    "text": "hello there",
    "usage": {
        "type": "tokens",
        "input_tokens": 14,
        "output_tokens": 3,
        "total_tokens": 17,
        "input_token_details": {"text_tokens": 0, "audio_tokens": 14},
    },
}


@pytest.fixture(scope="module")
def gateway(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    host = upstream_server.host_url
    configs = {
        "groq": {"provider": "groq", "custom_host": f"{host}/openai/v1"},
        "azure": {
            "provider": "azure-openai",
            "custom_host": f"{host}/openai",
            "deployment_id": "whisper",
            "api_version": "2024-06-01",
        },
        "anthropic": {"provider": "anthropic", "custom_host": host},
        "override": {
            "provider": "openai",
            "custom_host": upstream_server.base_url,
            "override_params": {"model": "whisper-1", "language": "fr", "temperature": 0.5},
        },
        # the operator's key for OpenAI's own host: no client header may move it
        "held": {"provider": "openai", "api_key": planted.OPENAI_KEY},
    }
    path = server_file(
        tmp_path_factory.mktemp("audio"),
        upstream_server,
        configs=configs,
        server={"max_upload_bytes": LIMIT},
    )
    with mounted_gateway(path) as running:
        yield running


def sdk(gateway: RunningGateway, config: str, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=gateway.base_url,
        api_key="sk-audio",
        max_retries=0,
        default_headers={"x-portkey-config": config, **headers},
    )


def test_transcription_through_openai(gateway: RunningGateway, fake: FakeUpstream) -> None:
    fake.script("/v1/audio/transcriptions", Reply(json=TRANSCRIPT))
    result = sdk(gateway, "openai-fake").audio.transcriptions.create(
        file=("speech.wav", AUDIO, "audio/wav"),
        model="gpt-4o-transcribe",
        language="en",
        prompt="Names: Ada, Grace",
        temperature=0.2,
        response_format="json",
    )
    assert result.text == "hello there"
    sent = fake.requests[-1]
    assert sent.path == "/v1/audio/transcriptions"
    assert sent.headers["authorization"] == "Bearer sk-audio"
    parts = parse_form(sent)
    [file] = [p for p in parts if p.filename is not None]
    assert (file.name, file.filename, file.content_type) == ("file", "speech.wav", "audio/wav")
    assert file.data == AUDIO
    assert text_fields(parts) == {
        "model": ["gpt-4o-transcribe"],
        "language": ["en"],
        "prompt": ["Names: Ada, Grace"],
        "temperature": ["0.2"],
        "response_format": ["json"],
    }


def test_repeated_fields_and_text_answers(gateway: RunningGateway, fake: FakeUpstream) -> None:
    fake.script(
        "/v1/audio/transcriptions",
        Reply(body=b"1\n00:00:00,000 --> 00:00:01,000\nhello\n", content_type="text/srt"),
    )
    result = sdk(gateway, "openai-fake").audio.transcriptions.create(
        file=("speech.mp3", AUDIO, "audio/mpeg"),
        model="whisper-1",
        response_format="srt",
        timestamp_granularities=["word", "segment"],
    )
    assert "00:00:01,000" in str(result)
    fields = text_fields(parse_form(fake.requests[-1]))
    assert fields["timestamp_granularities[]"] == ["word", "segment"]


def test_translation_through_groq(gateway: RunningGateway, fake: FakeUpstream) -> None:
    fake.script("/openai/v1/audio/translations", Reply(json={"text": "good morning"}))
    # (the SDK marks translations deprecated; the route is still OpenAI's and Groq's)
    with pytest.warns(DeprecationWarning):
        result = sdk(gateway, "groq").audio.translations.create(
            file=("bonjour.m4a", AUDIO, "audio/mp4"), model="whisper-large-v3"
        )
    assert result.text == "good morning"
    sent = fake.requests[-1]
    assert sent.path == "/openai/v1/audio/translations"
    assert sent.headers["authorization"] == "Bearer sk-audio"
    [file] = [p for p in parse_form(sent) if p.filename is not None]
    assert file.data == AUDIO


def test_transcription_through_azure(gateway: RunningGateway, fake: FakeUpstream) -> None:
    path = "/openai/deployments/whisper/audio/transcriptions"
    fake.script(path, Reply(json={"text": "azure heard it"}))
    result = sdk(gateway, "azure").audio.transcriptions.create(
        file=("a.wav", AUDIO, "audio/wav"), model="whisper"
    )
    assert result.text == "azure heard it"
    sent = fake.requests[-1]
    assert sent.path == path and sent.query == "api-version=2024-06-01"
    assert sent.headers["api-key"] == "sk-audio"
    assert [p.data for p in parse_form(sent) if p.filename] == [AUDIO]


def test_override_params_reach_the_form(gateway: RunningGateway, fake: FakeUpstream) -> None:
    fake.script("/v1/audio/transcriptions", Reply(json={"text": "ok"}))
    sdk(gateway, "override").audio.transcriptions.create(
        file=("a.wav", AUDIO, "audio/wav"), model="gpt-4o-transcribe", language="en"
    )
    fields = text_fields(parse_form(fake.requests[-1]))
    assert fields["model"] == ["whisper-1"]
    assert fields["language"] == ["fr"]
    assert fields["temperature"] == ["0.5"]


def test_speech_returns_the_upstreams_audio(gateway: RunningGateway, fake: FakeUpstream) -> None:
    fake.script("/v1/audio/speech", Reply(body=AUDIO, content_type="audio/mpeg"))
    response = sdk(gateway, "openai-fake").audio.speech.create(
        model="gpt-4o-mini-tts", voice="alloy", input="Hello!", response_format="mp3"
    )
    assert response.content == AUDIO
    assert response.response.headers["content-type"] == "audio/mpeg"
    sent = fake.requests[-1]
    assert sent.path == "/v1/audio/speech"
    assert sent.json() == {
        "model": "gpt-4o-mini-tts",
        "voice": "alloy",
        "input": "Hello!",
        "response_format": "mp3",
    }


def test_speech_streams_as_it_arrives(gateway: RunningGateway, fake: FakeUpstream) -> None:
    gate = threading.Event()
    fake.script(
        "/openai/v1/audio/speech",
        Reply(
            stream=[b"ID3-first-frame", b"-second-frame"],
            done=False,
            gate=gate,
            headers={"Content-Type": "audio/wav"},
        ),
    )
    client = sdk(gateway, "groq")
    try:
        with client.audio.speech.with_streaming_response.create(
            model="playai-tts", voice="Fritz-PlayAI", input="Hi", response_format="wav"
        ) as response:
            assert response.headers["content-type"] == "audio/wav"
            chunks = response.iter_bytes()
            # The upstream holds the rest back until the gate opens: the first frame can only
            # be here if the gateway relays bytes as they come.
            assert next(chunks) == b"ID3-first-frame"
            gate.set()
            assert b"".join(chunks) == b"-second-frame"
    finally:
        gate.set()
    assert fake.requests[-1].path == "/openai/v1/audio/speech"


def test_speech_through_azure(gateway: RunningGateway, fake: FakeUpstream) -> None:
    path = "/openai/deployments/whisper/audio/speech"
    fake.script(path, Reply(body=b"OggS-audio", content_type="audio/ogg"))
    response = sdk(gateway, "azure").audio.speech.create(
        model="tts-1", voice="nova", input="Hi", response_format="opus"
    )
    assert response.content == b"OggS-audio"
    assert fake.requests[-1].path == path and fake.requests[-1].headers["api-key"] == "sk-audio"


def test_an_upstream_error_is_relayed(gateway: RunningGateway, fake: FakeUpstream) -> None:
    fake.script("/v1/audio/speech", Reply(status=400, json={"error": {"message": "bad voice"}}))
    with pytest.raises(openai.BadRequestError, match="bad voice"):
        sdk(gateway, "openai-fake").audio.speech.create(model="tts-1", voice="x", input="Hi")


# -- hostile input -------------------------------------------------------------------------


def raw_request(gateway: RunningGateway, head: str, body_parts: Iterator[bytes]) -> bytes:
    """Send a request by hand (head, then body pieces until the server answers or the
    pieces run out) and return the start of the answer: the gateway must answer before it
    has the whole body."""
    host, port = gateway.host_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=DEADLINE) as sock:
        sock.sendall(head.encode("latin-1"))
        sock.setblocking(False)
        answer = b""
        for piece in body_parts:
            with contextlib.suppress(BlockingIOError):  # nothing to read yet
                answer += sock.recv(65536)
            if answer:
                break
            try:
                sock.sendall(piece)
            except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                break
        sock.settimeout(DEADLINE)
        end = time.monotonic() + DEADLINE
        while b"\r\n\r\n" not in answer and time.monotonic() < end:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
        return answer


def _head(gateway: RunningGateway, length_header: str) -> str:
    path = gateway.root.removeprefix(gateway.host_url) + "/v1/audio/transcriptions"
    return (
        f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        "content-type: multipart/form-data; boundary=b0undary\r\n"
        "x-portkey-config: openai-fake\r\nauthorization: Bearer sk-audio\r\n"
        f"{length_header}\r\n\r\n"
    )


def test_a_declared_length_over_the_limit_is_refused_unread(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    # 100 MB announced, nothing sent: the answer comes from the header alone.
    answer = raw_request(gateway, _head(gateway, "content-length: 100000000"), iter([]))
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert fake.requests == []


def test_a_chunked_body_over_the_limit_is_refused_as_it_arrives(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    sent = 0

    def chunks() -> Iterator[bytes]:
        nonlocal sent
        first = b"--b0undary\r\ncontent-disposition: form-data; name=file; filename=a.wav\r\n\r\n"
        yield b"%x\r\n%s\r\n" % (len(first), first)
        piece = b"\0" * 65536
        while sent < 20 * LIMIT:  # far more than the limit, never the end of the body
            sent += len(piece)
            yield b"%x\r\n%s\r\n" % (len(piece), piece)

    answer = raw_request(gateway, _head(gateway, "transfer-encoding: chunked"), chunks())
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"max_upload_bytes" in answer
    # The body never ends (no last chunk is ever sent): a gateway that read it whole before
    # answering would never answer. It answered while the body was still coming.
    assert sent < 20 * LIMIT
    assert fake.requests == []


def post_form(gateway: RunningGateway, body: bytes, content_type: str) -> httpx.Response:
    return httpx.post(
        gateway.base_url + "/audio/transcriptions",
        content=body,
        headers={
            "content-type": content_type,
            "x-portkey-config": "openai-fake",
            "authorization": "Bearer sk-audio",
        },
        timeout=DEADLINE,
    )


@pytest.mark.parametrize(
    "body",
    [
        b"--xyz\r\ncontent-disposition: form-data; name=model\r\n\r\nwhisper-1\r\n",  # no end
        b"not a form at all",
        b"--xyz\r\nno colon here\r\n\r\nx\r\n--xyz--\r\n",
        b"--xyz\r\ncontent-type: text/plain\r\n\r\nnameless\r\n--xyz--\r\n",
    ],
)
def test_a_malformed_form_is_a_400(
    gateway: RunningGateway, fake: FakeUpstream, body: bytes
) -> None:
    reply = post_form(gateway, body, "multipart/form-data; boundary=xyz")
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["code"] == "invalid_multipart"
    assert fake.requests == []


def test_missing_file_model_boundary_and_wrong_type(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    only_model = (
        b"--xyz\r\ncontent-disposition: form-data; name=model\r\n\r\nwhisper-1\r\n--xyz--\r\n"
    )
    reply = post_form(gateway, only_model, "multipart/form-data; boundary=xyz")
    assert reply.status_code == 400 and reply.json()["error"]["param"] == "file", reply.text
    only_file = (
        b"--xyz\r\ncontent-disposition: form-data; name=file; filename=a.wav\r\n\r\n"
        b"RIFF\r\n--xyz--\r\n"
    )
    reply = post_form(gateway, only_file, "multipart/form-data; boundary=xyz")
    assert reply.status_code == 400 and reply.json()["error"]["param"] == "model", reply.text
    reply = post_form(gateway, only_file, "multipart/form-data")
    assert reply.status_code == 400 and "boundary" in reply.json()["error"]["message"]
    reply = post_form(gateway, b'{"model": "whisper-1"}', "application/json")
    assert reply.status_code == 415, reply.text
    assert fake.requests == []


def test_a_provider_without_audio_is_named(gateway: RunningGateway, fake: FakeUpstream) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        sdk(gateway, "anthropic").audio.transcriptions.create(
            file=("a.wav", AUDIO, "audio/wav"), model="whisper-1"
        )
    message = raised.value.response.json()["error"]["message"]
    assert "anthropic" in message and "audio_transcriptions" in message
    with pytest.raises(openai.BadRequestError, match="audio_speech"):
        sdk(gateway, "anthropic").audio.speech.create(model="tts-1", voice="alloy", input="Hi")
    assert fake.requests == []


def test_no_header_moves_a_server_held_key(gateway: RunningGateway, fake: FakeUpstream) -> None:
    client = sdk(gateway, "held", **{"x-portkey-custom-host": fake.base_url})
    with pytest.raises(openai.BadRequestError) as raised:
        client.audio.transcriptions.create(file=("a.wav", AUDIO, "audio/wav"), model="whisper-1")
    error = raised.value.response.json()["error"]
    assert error["param"] == "x-portkey-custom-host"
    assert "held by the server" in error["message"]
    with pytest.raises(openai.BadRequestError, match="held by the server"):
        client.audio.speech.create(model="tts-1", voice="alloy", input="Hi")
    assert fake.requests == []


# -- the log -------------------------------------------------------------------------------


def logged(settings: dict[str, Any], calls: Callable[[httpx.AsyncClient], Any]) -> ListSink:
    sink = ListSink()

    class SinkPlugin:
        @hookimpl
        def register_log_sinks(self, register: Callable[[LogSink], None]) -> None:
            register(sink)

    async def scenario() -> None:
        manager = PluginManager()
        manager.load_entry_points()
        manager.register(SinkPlugin(), "list-sink")
        gateway = Gateway(ServerSettings.from_mapping(settings), plugins=manager)
        async with in_process(gateway) as client:
            await calls(client)

    asyncio.run(scenario())
    return sink


def test_one_log_record_per_request_without_the_audio(fake: FakeUpstream) -> None:
    fake.script("/v1/audio/transcriptions", Reply(json=TRANSCRIPT))
    fake.script("/v1/audio/speech", Reply(body=AUDIO, content_type="audio/mpeg"))
    route = {"x-portkey-provider": "openai", "x-portkey-custom-host": fake.base_url}
    auth = {"authorization": "Bearer sk-audio", **route}

    async def calls(client: httpx.AsyncClient) -> None:
        reply = await client.post(
            "/v1/audio/transcriptions",
            files={"file": ("speech.wav", AUDIO, "audio/wav")},
            data={"model": "gpt-4o-transcribe", "language": "en"},
            headers=auth,
        )
        assert reply.status_code == 200, reply.text
        reply = await client.post(
            "/v1/audio/speech",
            json={"model": "tts-1", "voice": "alloy", "input": "Hello"},
            headers=auth,
        )
        assert reply.status_code == 200 and reply.content == AUDIO

    sink = logged({"logging": {"bodies": True}}, calls)
    transcription, speech = (event.to_dict() for event in sink.events)
    assert transcription["endpoint"] == "audio_transcriptions"
    assert transcription["model"] == "gpt-4o-transcribe"
    assert transcription["provider"] == "openai" and transcription["status"] == 200
    assert transcription["latency_ms"] > 0
    assert transcription["usage"]["input_tokens"] == 14
    assert transcription["tokens"]["input"] == 14 and transcription["tokens"]["output"] == 3
    request = transcription["request_body"]
    assert "speech.wav" in str(request) and str(len(AUDIO)) in str(request)
    assert speech["endpoint"] == "audio_speech" and speech["status"] == 200
    assert str(len(AUDIO)) in str(speech["response_body"])
    for record in (transcription, speech):
        text = orjson.dumps(record, default=str)
        assert b"WAVE" not in text and b"RIFF" not in text
    assert len(sink.events) == 2


# -- budgets and rate limits ---------------------------------------------------------------


def test_a_transcriptions_usage_is_charged_to_the_budget(
    tmp_path: Path, fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    with run_gateway(tmp_path, fake, Clock(NOW), monkeypatch) as gw:
        slug = virtual_key(gw, fake)
        _, key = api_key(gw, usage_limits={"type": "tokens", "credit_limit": 30})
        client = openai.OpenAI(
            api_key=key,
            base_url=gw.base_url,
            max_retries=0,
            default_headers={"x-portkey-virtual-key": slug},
        )
        for _ in range(2):  # 17 tokens each: the second starts under the budget
            fake.script("/v1/audio/transcriptions", Reply(json=TRANSCRIPT))
            client.audio.transcriptions.create(
                file=("a.wav", AUDIO, "audio/wav"), model="gpt-4o-transcribe"
            )
            gw.settle()
        calls = len(fake.requests)
        with pytest.raises(openai.APIStatusError) as caught:
            client.audio.transcriptions.create(
                file=("a.wav", AUDIO, "audio/wav"), model="gpt-4o-transcribe"
            )
        assert caught.value.status_code == 412
        assert "34 of 30 tokens" in str(caught.value)
        assert len(fake.requests) == calls  # refused before the provider was called


def test_an_rpm_limit_holds_speech_back(
    tmp_path: Path, fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    with run_gateway(tmp_path, fake, Clock(NOW), monkeypatch) as gw:
        slug = virtual_key(gw, fake)
        _, key = api_key(gw, rate_limits=[{"type": "requests", "unit": "rpm", "value": 1}])
        client = openai.OpenAI(
            api_key=key,
            base_url=gw.base_url,
            max_retries=0,
            default_headers={"x-portkey-virtual-key": slug},
        )
        fake.script("/v1/audio/speech", Reply(body=AUDIO, content_type="audio/mpeg"))
        assert client.audio.speech.create(model="tts-1", voice="alloy", input="a").content == AUDIO
        with pytest.raises(openai.RateLimitError):
            client.audio.speech.create(model="tts-1", voice="alloy", input="b")
        assert len(fake.requests) == 1


def test_a_streamed_transcription_ends_with_its_done_event(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    events: list[bytes | dict[str, Any]] = [
        {"type": "transcript.text.delta", "delta": "hello"},
        {"type": "transcript.text.delta", "delta": " there"},
        {"type": "transcript.text.done", "text": "hello there", "usage": TRANSCRIPT["usage"]},
    ]
    fake.script("/v1/audio/transcriptions", Reply(stream=events, done=False))
    stream = sdk(gateway, "openai-fake").audio.transcriptions.create(
        file=("a.wav", AUDIO, "audio/wav"), model="gpt-4o-transcribe", stream=True
    )
    received = [event.type for event in stream]
    assert received == ["transcript.text.delta", "transcript.text.delta", "transcript.text.done"]
    fields = text_fields(parse_form(fake.requests[-1]))
    assert fields["stream"] == ["true"] and "stream_options" not in fields
    assert fake.requests[-1].headers["accept"] == "text/event-stream"


def test_a_truncated_transcription_stream_is_an_error(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    events: list[bytes | dict[str, Any]] = [{"type": "transcript.text.delta", "delta": "hel"}]
    fake.script("/v1/audio/transcriptions", Reply(stream=events, done=False))
    stream = sdk(gateway, "openai-fake").audio.transcriptions.create(
        file=("a.wav", AUDIO, "audio/wav"), model="gpt-4o-transcribe", stream=True
    )
    with pytest.raises(openai.APIError, match="ended without"):
        list(stream)


def test_speech_as_server_sent_events(gateway: RunningGateway, fake: FakeUpstream) -> None:
    events: list[bytes | dict[str, Any]] = [
        {"type": "speech.audio.delta", "audio": "AAAA"},
        {"type": "speech.audio.done", "usage": {"input_tokens": 3, "output_tokens": 9}},
    ]
    fake.script("/v1/audio/speech", Reply(stream=events, done=False))
    with sdk(gateway, "openai-fake").audio.speech.with_streaming_response.create(
        model="gpt-4o-mini-tts", voice="alloy", input="Hi", stream_format="sse"
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        text = response.read().decode()
    assert '"speech.audio.delta"' in text and '"speech.audio.done"' in text
    assert fake.requests[-1].json()["stream_format"] == "sse"


def test_a_text_field_over_its_limit_is_refused(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    body = (
        b"--xyz\r\ncontent-disposition: form-data; name=prompt\r\n\r\n"
        + b"a" * (300 * 1024)
        + b"\r\n--xyz--\r\n"
    )
    reply = post_form(gateway, body, "multipart/form-data; boundary=xyz")
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["param"] == "prompt"
    assert fake.requests == []


def test_served_by_portkey_mw_serve(tmp_path: Path, fake: FakeUpstream) -> None:
    fake.script("/v1/audio/transcriptions", Reply(json={"text": "served"}))
    fake.script("/v1/audio/speech", Reply(body=AUDIO, content_type="audio/mpeg"))
    with standalone_gateway(server_file(tmp_path, fake)) as running:
        client = sdk(running, "openai-fake")
        result = client.audio.transcriptions.create(
            file=("a.wav", AUDIO, "audio/wav"), model="whisper-1"
        )
        assert result.text == "served"
        assert client.audio.speech.create(model="tts-1", voice="alloy", input="x").content == AUDIO
    assert [p.data for p in parse_form(fake.requests[0]) if p.filename] == [AUDIO]


def test_speech_cut_by_the_upstream_is_never_complete(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    fake.script("/v1/audio/speech", Reply(body=AUDIO, content_type="audio/mpeg", drop="mid_stream"))
    with (
        httpx.stream(
            "POST",
            gateway.base_url + "/audio/speech",
            json={"model": "tts-1", "voice": "alloy", "input": "Hi"},
            headers={"x-portkey-config": "openai-fake", "authorization": "Bearer sk-audio"},
            timeout=DEADLINE,
        ) as response,
        pytest.raises(httpx.RemoteProtocolError),
    ):
        assert response.status_code == 200
        response.read()
