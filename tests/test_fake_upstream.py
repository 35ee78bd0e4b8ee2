"""Self-tests for the fake OpenAI upstream used by the gateway tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import openai
import pytest

try:
    from tests.fake_upstream import FakeUpstream, Reply, embedding_for
except ImportError:  # tests/ not importable as a package (rootdir not on sys.path)
    from fake_upstream import FakeUpstream, Reply, embedding_for  # type: ignore[no-redef,import-not-found,unused-ignore]

CHAT = "/v1/chat/completions"


@pytest.fixture(scope="module")
def server() -> Iterator[FakeUpstream]:
    with FakeUpstream() as fake:
        yield fake


@pytest.fixture
def fake(server: FakeUpstream) -> FakeUpstream:
    server.reset()
    return server


@pytest.fixture
def client(fake: FakeUpstream) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=fake.base_url, api_key="x", max_retries=0) as c:
        yield c


@pytest.fixture
def http(fake: FakeUpstream) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake.host_url, timeout=5.0) as c:
        yield c


def test_chat_plain(fake: FakeUpstream, client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(
        model="fake-gpt",
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hello there world"},
        ],
    )
    assert resp.object == "chat.completion"
    assert resp.model == "fake-gpt"
    assert resp.choices[0].message.role == "assistant"
    assert resp.choices[0].message.content == "echo: hello there world"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage is not None
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens) == (5, 4)
    assert resp.usage.total_tokens == 9

    (rec,) = fake.requests
    assert (rec.method, rec.path) == ("POST", CHAT)
    assert rec.headers["authorization"] == "Bearer x"
    assert rec.json()["messages"][-1]["content"] == "hello there world"


def test_chat_content_parts(client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(
        model="fake-gpt",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "a b"},
                    {"type": "image_url", "image_url": {"url": "data:,"}},
                    {"type": "text", "text": "c"},
                ],
            }
        ],
    )
    assert resp.choices[0].message.content == "echo: a b c"


def test_chat_stream_with_usage(fake: FakeUpstream, client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="fake-gpt",
        messages=[{"role": "user", "content": "one two three"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content == ""
    words = [c.choices[0].delta.content for c in chunks[1:-2]]
    assert words == ["echo: ", "one ", "two ", "three"]
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 4
    assert chunks[-1].usage.prompt_tokens == 3
    fake.wait_for(lambda: fake.completed_streams == 1)
    assert fake.disconnects == 0


def test_raw_stream_wire_format(http: httpx.Client) -> None:
    resp = http.post(
        "/v1/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True},
    )
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    events = resp.text.split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    assert all(e.startswith("data: {") for e in events[:-2])


def test_completions(client: openai.OpenAI) -> None:
    resp = client.completions.create(model="fake-gpt", prompt="say this")
    assert resp.object == "text_completion"
    assert resp.choices[0].text == "echo: say this"
    stream = client.completions.create(model="fake-gpt", prompt="say this", stream=True)
    assert "".join(c.choices[0].text for c in stream if c.choices) == "echo: say this"


def test_embeddings_base64_default(fake: FakeUpstream, client: openai.OpenAI) -> None:
    resp = client.embeddings.create(model="fake-embed", input=["alpha", "beta"])
    assert fake.requests[-1].json()["encoding_format"] == "base64"
    assert resp.object == "list"
    assert [d.index for d in resp.data] == [0, 1]
    assert resp.data[0].embedding == embedding_for("alpha")
    assert resp.data[1].embedding == embedding_for("beta")
    assert len(resp.data[0].embedding) == 8
    assert resp.usage.prompt_tokens == 2


def test_embeddings_float(http: httpx.Client) -> None:
    resp = http.post("/v1/embeddings", json={"model": "e", "input": "alpha"})
    body = resp.json()
    assert body["data"][0]["embedding"] == embedding_for("alpha")
    assert body["model"] == "e"


def test_models(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert ids == ["fake-gpt", "fake-embed"]


def test_errors(http: httpx.Client) -> None:
    resp = http.get("/v1/nope")
    assert resp.status_code == 404
    err = resp.json()["error"]
    assert (err["type"], err["code"]) == ("invalid_request_error", "not_found")
    assert "message" in err

    resp = http.post(
        "/v1/chat/completions",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert resp.status_code == 400
    assert resp.json()["error"]["type"] == "invalid_request_error"


def test_scripted_500_then_default(fake: FakeUpstream, client: openai.OpenAI) -> None:
    fake.script(CHAT, Reply(status=500, json={"error": {"message": "boom"}}))
    msgs: list[openai.types.chat.ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="fake-gpt", messages=msgs)
    resp = client.chat.completions.create(model="fake-gpt", messages=msgs)
    assert resp.choices[0].message.content == "echo: hi"
    assert len(fake.requests) == 2


def test_scripted_raw_body_and_unknown_path(fake: FakeUpstream, http: httpx.Client) -> None:
    fake.script("/anything", Reply(status=502, body=b"<html>oops</html>", content_type="text/html"))
    resp = http.get("/anything?x=1")
    assert resp.status_code == 502
    assert resp.text == "<html>oops</html>"
    assert resp.headers["content-type"] == "text/html"
    assert fake.requests[-1].query == "x=1"
    assert http.get("/anything").status_code == 404


def test_scripted_stream(fake: FakeUpstream, http: httpx.Client) -> None:
    fake.script(CHAT, Reply(stream=[{"a": 1}, b": comment\n\n"], done=False))
    resp = http.post(CHAT, json={"model": "m", "messages": []})
    assert resp.text == 'data: {"a":1}\n\n: comment\n\n'
    fake.wait_for(lambda: fake.completed_streams == 1)


def test_drop_before_headers(fake: FakeUpstream, client: openai.OpenAI) -> None:
    fake.script(CHAT, Reply(drop="before_headers"))
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(
            model="fake-gpt", messages=[{"role": "user", "content": "hi"}]
        )
    assert len(fake.requests) == 1


def test_drop_mid_stream(fake: FakeUpstream, http: httpx.Client) -> None:
    fake.script(CHAT, Reply(drop="mid_stream"))
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "a b c"}],
        "stream": True,
    }
    with http.stream("POST", CHAT, json=body) as resp:
        assert resp.status_code == 200
        lines = resp.iter_lines()
        assert next(lines).startswith("data: {")
        with pytest.raises(httpx.RemoteProtocolError):
            list(lines)
    assert fake.completed_streams == 0
    assert fake.disconnects == 0


def test_gate_first_chunk_visible_before_release(fake: FakeUpstream, http: httpx.Client) -> None:
    gate = threading.Event()
    fake.script(CHAT, Reply(stream=[{"n": 1}, {"n": 2}, {"n": 3}], gate=gate))
    with http.stream("POST", CHAT, json={}) as resp:
        lines = resp.iter_lines()
        assert next(lines) == 'data: {"n":1}'  # arrives while the gate is closed
        assert not gate.is_set()
        assert fake.completed_streams == 0
        gate.set()
        rest = [line for line in lines if line]
    assert rest == ['data: {"n":2}', 'data: {"n":3}', "data: [DONE]"]
    fake.wait_for(lambda: fake.completed_streams == 1)


def test_disconnect_counted_when_client_closes(fake: FakeUpstream, http: httpx.Client) -> None:
    gate = threading.Event()  # never set: the server parks after the first event
    fake.script(CHAT, Reply(stream=[{"n": 1}, {"n": 2}], gate=gate))
    with http.stream("POST", CHAT, json={}) as resp:
        assert next(resp.iter_lines()) == 'data: {"n":1}'
    # leaving the block closes the unfinished response (and its connection)
    fake.wait_for(lambda: fake.disconnects == 1)
    assert fake.completed_streams == 0


def test_disconnect_default_slow_stream(fake: FakeUpstream, client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="slow-stream",
        messages=[{"role": "user", "content": " ".join(["w"] * 50)}],
        stream=True,
    )
    first = next(iter(stream))
    assert first.choices[0].delta.role == "assistant"
    stream.close()
    fake.wait_for(lambda: fake.disconnects == 1)
    assert fake.completed_streams == 0
