"""Files and batches (``/v1/files``, ``/v1/batches``) through the gateway with the official
``openai`` SDK, to openai and azure-openai fakes: paths, credentials, the file's bytes
intact both ways; and the hostile cases (uploads over the limit, ids that climb, a held
key redirected, a provider without files)."""

from __future__ import annotations

import http.client
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest

from portkey_mw import Gateway, LogEvent, LogSink, hookimpl
from portkey_mw.plugin import PluginManager
from tests import planted
from tests.conftest import RunningGateway, in_process, mounted_gateway, server_file
from tests.fake_upstream import FakeUpstream, Reply

#: server.max_upload_bytes in these tests
LIMIT = 16 * 1024
#: a batch input file: two requests, with bytes a careless multipart parser would mangle
JSONL = (
    b'{"custom_id":"a","method":"POST","url":"/v1/chat/completions",'
    b'"body":{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi \\r\\n--x"}]}}\n'
    b'{"custom_id":"b","method":"POST","url":"/v1/chat/completions",'
    b'"body":{"model":"gpt-4o-mini","messages":[{"role":"user","content":"\xc3\xa9"}]}}\n'
)
FILE_OBJECT = {
    "id": "file-abc123",
    "object": "file",
    "bytes": len(JSONL),
    "created_at": 1_700_000_000,
    "filename": "batch.jsonl",
    "purpose": "batch",
    "status": "processed",
}
BATCH = {
    "id": "batch_abc123",
    "object": "batch",
    "endpoint": "/v1/chat/completions",
    "errors": None,
    "input_file_id": "file-abc123",
    "completion_window": "24h",
    "status": "validating",
    "output_file_id": None,
    "error_file_id": None,
    "created_at": 1_700_000_000,
    "request_counts": {"total": 0, "completed": 0, "failed": 0},
    "metadata": {"team": "search"},
}


@pytest.fixture(scope="module")
def gateway(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    tmp = tmp_path_factory.mktemp("files")
    path = server_file(
        tmp,
        upstream_server,
        server={"max_upload_bytes": LIMIT},
        store={"url": f"sqlite+aiosqlite:///{tmp / 'control.db'}"},
        configs={
            "azure-fake": {
                "provider": "azure-openai",
                "custom_host": upstream_server.host_url + "/openai",
            },
            "two-targets": {
                "strategy": {"mode": "loadbalance"},
                "targets": [
                    {"provider": "openai", "custom_host": upstream_server.base_url},
                    {"provider": "openai", "custom_host": "http://127.0.0.1:9/v1"},
                ],
            },
            "held": {"provider": "openai", "api_key": planted.plant("sk-held-files-key")},
        },
    )
    with mounted_gateway(path) as running:
        yield running


def sdk(gateway: RunningGateway, config: str, key: str = "up-key") -> openai.OpenAI:
    return openai.OpenAI(
        base_url=gateway.base_url,
        api_key=key,
        default_headers={"x-portkey-config": config},
        max_retries=0,
        timeout=10,
    )


def last(fake: FakeUpstream, path: str) -> Any:
    found = [r for r in fake.requests if r.path == path]
    assert found, f"nothing reached {path}: {[r.path for r in fake.requests]}"
    return found[-1]


# -- openai ------------------------------------------------------------------------------


def test_upload_reaches_openai_with_the_bytes_intact(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    fake.script("/v1/files", Reply(json=FILE_OBJECT))
    made = sdk(gateway, "openai-fake").files.create(
        file=("batch.jsonl", JSONL, "application/jsonl"), purpose="batch"
    )
    assert made.id == "file-abc123" and made.purpose == "batch"
    sent = last(fake, "/v1/files")
    assert sent.method == "POST"
    assert sent.headers["authorization"] == "Bearer up-key"
    # the client's multipart body and boundary, unchanged
    content_type = sent.headers["content-type"]
    assert content_type.startswith("multipart/form-data; boundary=")
    boundary = content_type.split("boundary=", 1)[1].encode()
    assert sent.body.count(b"--" + boundary) == 3  # two parts and the closing line
    assert JSONL in sent.body
    assert b'name="purpose"\r\n\r\nbatch\r\n' in sent.body


def test_list_retrieve_content_delete(gateway: RunningGateway, fake: FakeUpstream) -> None:
    client = sdk(gateway, "openai-fake")
    fake.script("/v1/files", Reply(json={"object": "list", "data": [FILE_OBJECT]}))
    listed = client.files.list(purpose="batch", limit=5, order="desc", after="file-0")
    assert [f.id for f in listed.data] == ["file-abc123"]
    sent = last(fake, "/v1/files")
    assert sent.method == "GET"
    assert dict(httpx.QueryParams(sent.query)) == {
        "purpose": "batch",
        "limit": "5",
        "order": "desc",
        "after": "file-0",
    }

    fake.script("/v1/files/file-abc123", Reply(json=FILE_OBJECT))
    assert client.files.retrieve("file-abc123").bytes == len(JSONL)
    assert last(fake, "/v1/files/file-abc123").method == "GET"

    fake.script(
        "/v1/files/file-abc123/content",
        Reply(body=JSONL, content_type="application/octet-stream"),
    )
    content = client.files.content("file-abc123")
    assert content.content == JSONL  # byte for byte, not JSON-checked
    assert content.response.headers["content-type"] == "application/octet-stream"

    fake.script(
        "/v1/files/file-abc123",
        Reply(json={"id": "file-abc123", "object": "file", "deleted": True}),
    )
    assert client.files.delete("file-abc123").deleted is True
    assert last(fake, "/v1/files/file-abc123").method == "DELETE"


def test_batches(gateway: RunningGateway, fake: FakeUpstream) -> None:
    client = sdk(gateway, "openai-fake")
    fake.script("/v1/batches", Reply(json=BATCH))
    batch = client.batches.create(
        input_file_id="file-abc123",
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"team": "search"},
    )
    assert batch.id == "batch_abc123"
    sent = last(fake, "/v1/batches")
    assert sent.method == "POST" and sent.headers["authorization"] == "Bearer up-key"
    assert sent.json() == {
        "input_file_id": "file-abc123",
        "endpoint": "/v1/chat/completions",
        "completion_window": "24h",
        "metadata": {"team": "search"},
    }

    fake.script("/v1/batches/batch_abc123", Reply(json={**BATCH, "status": "in_progress"}))
    assert client.batches.retrieve("batch_abc123").status == "in_progress"

    fake.script("/v1/batches", Reply(json={"object": "list", "data": [BATCH], "has_more": False}))
    assert [b.id for b in client.batches.list(limit=2, after="batch_0")] == ["batch_abc123"]
    assert dict(httpx.QueryParams(last(fake, "/v1/batches").query)) == {
        "limit": "2",
        "after": "batch_0",
    }

    fake.script("/v1/batches/batch_abc123/cancel", Reply(json={**BATCH, "status": "cancelling"}))
    assert client.batches.cancel("batch_abc123").status == "cancelling"
    assert last(fake, "/v1/batches/batch_abc123/cancel").method == "POST"


def test_batch_output_in_one_call(gateway: RunningGateway, fake: FakeUpstream) -> None:
    """Portkey's ``GET /v1/batches/{id}/output``: the batch, then its output file."""
    headers = {"authorization": "Bearer up-key", "x-portkey-config": "openai-fake"}
    done = {**BATCH, "status": "completed", "output_file_id": "file-out1"}
    fake.script("/v1/batches/batch_abc123", Reply(json=done))
    fake.script("/v1/files/file-out1/content", Reply(body=JSONL, content_type="text/plain"))
    reply = httpx.get(gateway.base_url + "/batches/batch_abc123/output", headers=headers)
    assert reply.status_code == 200, reply.text
    assert reply.content == JSONL
    assert [(r.method, r.path) for r in fake.requests] == [
        ("GET", "/v1/batches/batch_abc123"),
        ("GET", "/v1/files/file-out1/content"),
    ]
    assert all(r.headers["authorization"] == "Bearer up-key" for r in fake.requests)

    fake.reset()
    fake.script("/v1/batches/batch_abc123", Reply(json=BATCH))  # still validating
    reply = httpx.get(gateway.base_url + "/batches/batch_abc123/output", headers=headers)
    assert reply.status_code == 404
    assert reply.json()["error"]["code"] == "batch_output_not_found"
    assert "validating" in reply.json()["error"]["message"]
    # an output id that would climb is never followed
    fake.script("/v1/batches/batch_abc123", Reply(json={**done, "output_file_id": "../models"}))
    reply = httpx.get(gateway.base_url + "/batches/batch_abc123/output", headers=headers)
    assert reply.status_code == 404
    assert [r.path for r in fake.requests] == ["/v1/batches/batch_abc123"] * 2


def test_a_batch_without_its_input_file_is_a_400(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    reply = httpx.post(
        gateway.base_url + "/batches",
        json={"endpoint": "/v1/chat/completions", "completion_window": "24h"},
        headers={"authorization": "Bearer up-key", "x-portkey-config": "openai-fake"},
    )
    assert reply.status_code == 400
    assert reply.json()["error"]["param"] == "input_file_id"
    assert not fake.requests


def test_a_config_with_several_targets_uses_its_first(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    client = sdk(gateway, "two-targets")
    for _ in range(8):  # a load balancer would pick the dead second target about half the time
        fake.script("/v1/files/file-abc123", Reply(json=FILE_OBJECT))
        assert client.files.retrieve("file-abc123").id == "file-abc123"
    assert len([r for r in fake.requests if r.path == "/v1/files/file-abc123"]) == 8


def test_provider_header_routing(gateway: RunningGateway, fake: FakeUpstream) -> None:
    """x-portkey-provider plus Authorization, as for chat."""
    fake.script("/v1/files", Reply(json={"object": "list", "data": []}))
    reply = httpx.get(
        gateway.base_url + "/files",
        headers={
            "authorization": "Bearer own-key",
            "x-portkey-provider": "openai",
            "x-portkey-custom-host": fake.base_url,
        },
    )
    assert reply.status_code == 200, reply.text
    assert last(fake, "/v1/files").headers["authorization"] == "Bearer own-key"


def test_a_batch_is_created_with_the_virtual_keys_credentials(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    """The batch's requests run at the provider the route names, under its credentials:
    the virtual key's key goes to the virtual key's host, whatever the client holds."""
    secret = planted.plant("sk-vk-batch-owner-key")
    vk = httpx.post(
        gateway.base_url + "/virtual-keys",
        json={"name": "batches", "provider": "openai", "key": secret, "custom_host": fake.base_url},
        headers={"x-portkey-api-key": planted.ADMIN_KEY},
    )
    assert vk.status_code == 200, vk.text
    client = openai.OpenAI(
        base_url=gateway.base_url,
        api_key="client-own-key",
        default_headers={"x-portkey-virtual-key": vk.json()["slug"]},
        max_retries=0,
    )
    fake.script("/v1/files", Reply(json=FILE_OBJECT))
    client.files.create(file=("batch.jsonl", JSONL), purpose="batch")
    fake.script("/v1/batches", Reply(json=BATCH))
    client.batches.create(
        input_file_id="file-abc123", endpoint="/v1/chat/completions", completion_window="24h"
    )
    for path in ("/v1/files", "/v1/batches"):
        assert last(fake, path).headers["authorization"] == f"Bearer {secret}"


def test_files_and_batches_are_admitted_like_any_request(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    """A virtual key's rate limit counts files and batches calls (one request each); its
    budget is not charged tokens a batch only uses later at the provider."""
    vk = httpx.post(
        gateway.base_url + "/virtual-keys",
        json={
            "name": "limited",
            "provider": "openai",
            "key": planted.plant("sk-vk-limited-files-key"),
            "custom_host": fake.base_url,
            "rate_limits": [{"type": "requests", "unit": "rph", "value": 2}],
        },
        headers={"x-portkey-api-key": planted.ADMIN_KEY},
    )
    assert vk.status_code == 200, vk.text
    headers = {"x-portkey-virtual-key": vk.json()["slug"]}
    fake.script("/v1/files", Reply(json={"object": "list", "data": []}))
    fake.script("/v1/batches", Reply(json=BATCH))
    assert httpx.get(gateway.base_url + "/files", headers=headers).status_code == 200
    made = httpx.post(
        gateway.base_url + "/batches",
        json={"input_file_id": "file-abc123", "endpoint": "/v1/chat/completions"},
        headers=headers,
    )
    assert made.status_code == 200, made.text
    third = httpx.get(gateway.base_url + "/batches/batch_abc123", headers=headers)
    assert third.status_code == 429
    assert third.json()["error"]["code"] == "rate_limit_exceeded"
    assert len(fake.requests) == 2


# -- azure-openai ----------------------------------------------------------------------------


def test_azure_files_and_batches(gateway: RunningGateway, fake: FakeUpstream) -> None:
    client = sdk(gateway, "azure-fake", key="azure-key")
    fake.script("/openai/files", Reply(json=FILE_OBJECT))
    client.files.create(file=("batch.jsonl", JSONL), purpose="batch")
    sent = last(fake, "/openai/files")
    assert sent.query == "api-version=2024-10-21"
    assert sent.headers["api-key"] == "azure-key" and "authorization" not in sent.headers
    assert JSONL in sent.body

    fake.script("/openai/files", Reply(json={"object": "list", "data": [FILE_OBJECT]}))
    client.files.list(purpose="batch")
    assert dict(httpx.QueryParams(last(fake, "/openai/files").query)) == {
        "purpose": "batch",
        "api-version": "2024-10-21",
    }

    fake.script("/openai/files/file-abc123/content", Reply(body=JSONL, content_type="text/plain"))
    assert client.files.content("file-abc123").content == JSONL

    fake.script("/openai/batches", Reply(json=BATCH))
    client.batches.create(
        input_file_id="file-abc123", endpoint="/v1/chat/completions", completion_window="24h"
    )
    sent = last(fake, "/openai/batches")
    assert sent.query == "api-version=2024-10-21" and sent.headers["api-key"] == "azure-key"
    assert sent.json()["input_file_id"] == "file-abc123"

    fake.script(
        "/openai/batches/batch_abc123/cancel", Reply(json={**BATCH, "status": "cancelling"})
    )
    assert client.batches.cancel("batch_abc123").status == "cancelling"
    assert last(fake, "/openai/batches/batch_abc123/cancel").query == "api-version=2024-10-21"


# -- hostile -------------------------------------------------------------------------------


def test_an_upload_declared_over_the_limit_is_a_413(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    with pytest.raises(openai.APIStatusError) as raised:
        sdk(gateway, "openai-fake").files.create(
            file=("big.jsonl", b"x" * (LIMIT + 1)), purpose="batch"
        )
    assert raised.value.status_code == 413
    assert not [r for r in fake.requests if r.path == "/v1/files"]


async def test_a_chunked_upload_over_the_limit_is_cut_off(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    boundary = "xyzzy"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="b.jsonl"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()

    async def body() -> AsyncIterator[bytes]:
        yield head
        for _ in range(4):  # 4 * LIMIT / 2 bytes: twice the limit, no Content-Length
            yield b"y" * (LIMIT // 2)
        yield f"\r\n--{boundary}--\r\n".encode()

    async with httpx.AsyncClient(timeout=10) as client:
        reply = await client.post(
            gateway.base_url + "/files",
            content=body(),
            headers={
                "authorization": "Bearer up-key",
                "x-portkey-config": "openai-fake",
                "content-type": f"multipart/form-data; boundary={boundary}",
            },
        )
    assert reply.status_code == 413, reply.text
    assert reply.json()["error"]["code"] == "request_too_large"
    # the upstream request was aborted: the fake never got a whole request
    assert not [r for r in fake.requests if r.path == "/v1/files"]


def test_an_upload_that_is_not_multipart_is_a_415(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    reply = httpx.post(
        gateway.base_url + "/files",
        json={"purpose": "batch"},
        headers={"authorization": "Bearer up-key", "x-portkey-config": "openai-fake"},
    )
    assert reply.status_code == 415
    assert not fake.requests


@pytest.mark.parametrize(
    "path",
    [
        "/files/..%2f..%2fchat%2fcompletions",
        "/files/%2e%2e/content",
        "/files/..",
        "/files/file-abc/../../models",
        "/files/file-abc/other",
        "/files/a%2Fb/content",
        "/batches/batch_1/cancel/x",
        "/batches/b%00c",
        "/files/",
    ],
)
def test_ids_that_climb_are_refused(gateway: RunningGateway, fake: FakeUpstream, path: str) -> None:
    prefix = gateway.root[len(gateway.host_url) :]  # the mount point
    # http.client sends the path as written: no normalisation of dots or escapes
    connection = http.client.HTTPConnection(
        httpx.URL(gateway.host_url).host, httpx.URL(gateway.host_url).port, timeout=10
    )
    try:
        connection.request(
            "GET",
            prefix + "/v1" + path,
            headers={"authorization": "Bearer up-key", "x-portkey-config": "openai-fake"},
        )
        reply = connection.getresponse()
        status, body = reply.status, orjson.loads(reply.read())
    finally:
        connection.close()
    assert status == 400, (path, status, body)
    assert body["error"]["code"] in {"invalid_id", "invalid_path"}
    assert not fake.requests


def test_sdk_ids_with_slashes_are_refused(gateway: RunningGateway, fake: FakeUpstream) -> None:
    client = sdk(gateway, "openai-fake")
    # (the SDK escapes a "/" in an id as %2F, which arrives decoded; it refuses a bare "..")
    for bad in ("../models", "a/b", "file abc", "%2e%2e"):
        with pytest.raises(openai.BadRequestError):
            client.files.retrieve(bad)
    assert not fake.requests


def test_a_held_key_cannot_be_redirected(gateway: RunningGateway, fake: FakeUpstream) -> None:
    """The server file's key (and a virtual key's) goes only where the operator bound it:
    a custom host header is refused as for chat, before anything is sent."""
    vk = httpx.post(
        gateway.base_url + "/virtual-keys",
        json={"name": "files", "provider": "openai", "key": planted.plant("sk-vk-files-key")},
        headers={"x-portkey-api-key": planted.ADMIN_KEY},
    )
    assert vk.status_code == 200, vk.text
    slug = vk.json()["slug"]
    for headers in (
        {"x-portkey-config": "held"},
        {"x-portkey-virtual-key": slug},
        {"x-portkey-config": orjson.dumps({"virtual_key": slug}).decode()},
    ):
        sent = {**headers, "x-portkey-custom-host": fake.base_url}
        listed = httpx.get(gateway.base_url + "/files", headers=sent)
        assert listed.status_code == 400, listed.text
        assert listed.json()["error"]["code"] == "custom_host_not_allowed"
        upload = httpx.post(
            gateway.base_url + "/files",
            files={"file": ("b.jsonl", JSONL)},
            data={"purpose": "batch"},
            headers=sent,
        )
        assert upload.status_code == 400, upload.text
        assert upload.json()["error"]["code"] == "custom_host_not_allowed"
    assert not fake.requests


def test_a_provider_without_files_is_a_400(gateway: RunningGateway, fake: FakeUpstream) -> None:
    headers = {"authorization": "Bearer co-key", "x-portkey-provider": "cohere"}
    for reply in (
        httpx.get(gateway.base_url + "/files", headers=headers),
        httpx.post(
            gateway.base_url + "/batches",
            json={"input_file_id": "file-1", "endpoint": "/v1/chat/completions"},
            headers=headers,
        ),
    ):
        assert reply.status_code == 400, reply.text
        error = reply.json()["error"]
        assert error["code"] == "unsupported_endpoint"
        assert "cohere" in error["message"]
        assert "files" in error["message"] or "batches" in error["message"]
    assert not fake.requests


def test_guardrails_cannot_be_skipped_by_a_batch(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    """A route with guardrails cannot check the prompts in a file: an upload or a batch's
    creation on it is refused (reading and listing carry no prompt and pass)."""
    config = {
        "provider": "openai",
        "custom_host": fake.base_url,
        "input_guardrails": [
            {"default.contains": {"operator": "none", "words": ["secret"]}, "deny": True}
        ],
    }
    headers = {"authorization": "Bearer up-key", "x-portkey-config": orjson.dumps(config).decode()}
    upload = httpx.post(
        gateway.base_url + "/files",
        files={"file": ("b.jsonl", b'{"body": "the secret"}')},
        data={"purpose": "batch"},
        headers=headers,
    )
    create = httpx.post(
        gateway.base_url + "/batches",
        json={"input_file_id": "file-abc123", "endpoint": "/v1/chat/completions"},
        headers=headers,
    )
    for refused in (upload, create):
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["code"] == "guardrails_unsupported"
    assert not fake.requests
    fake.script("/v1/files/file-abc123", Reply(json=FILE_OBJECT))
    assert httpx.get(gateway.base_url + "/files/file-abc123", headers=headers).status_code == 200


def test_methods(gateway: RunningGateway, fake: FakeUpstream) -> None:
    reply = httpx.put(gateway.base_url + "/files/file-abc123", headers={"x-portkey-config": "x"})
    assert reply.status_code == 405
    assert "accepts DELETE, GET, not PUT" in reply.json()["error"]["message"]
    assert not fake.requests


async def chunked(data: bytes) -> AsyncIterator[bytes]:
    """``data`` as a body without a Content-Length."""
    for start in range(0, len(data), 4096):
        yield data[start : start + 4096]


class ListSink(LogSink):
    """Keeps every log event."""

    name = "files-list"

    def __init__(self) -> None:
        self.events: list[LogEvent] = []

    async def write(self, events: Sequence[LogEvent]) -> None:
        self.events.extend(events)


class SinkPlugin:
    def __init__(self, sink: ListSink) -> None:
        self.sink = sink

    @hookimpl
    def register_log_sinks(self, register: Callable[[LogSink], None]) -> None:
        register(self.sink)


async def test_one_log_record_per_call_never_the_file(tmp_path: Path, fake: FakeUpstream) -> None:
    """Bodies are kept in the log here, and still the file's bytes are in no record."""
    sink = ListSink()
    manager = PluginManager()
    manager.load_entry_points()
    manager.register(SinkPlugin(sink), "files-sink")
    path = server_file(
        tmp_path,
        fake,
        logging={"bodies": True},
        store={"enabled": False},
        server={"max_upload_bytes": LIMIT},
    )
    gw = Gateway(config_file=path, plugins=manager)
    fake.script("/v1/files", Reply(json=FILE_OBJECT))
    fake.script("/v1/files/file-abc123/content", Reply(body=JSONL, content_type="text/plain"))
    headers = {"authorization": "Bearer up-key", "x-portkey-config": "openai-fake"}
    async with in_process(gw) as client:
        made = await client.post(
            "/v1/files",
            files={"file": ("batch.jsonl", JSONL)},
            data={"purpose": "batch"},
            headers=headers,
        )
        assert made.status_code == 200, made.text
        content = await client.get("/v1/files/file-abc123/content", headers=headers)
        assert content.content == JSONL
        fake.script("/v1/batches", Reply(json=BATCH))
        batch = await client.post(
            "/v1/batches",
            json={"input_file_id": "file-abc123", "endpoint": "/v1/chat/completions"},
            headers=headers,
        )
        assert batch.status_code == 200, batch.text
        too_big = await client.post(
            "/v1/files",
            content=chunked(b"z" * (2 * LIMIT)),
            headers={**headers, "content-type": "multipart/form-data; boundary=b"},
        )
        assert too_big.status_code == 413, too_big.text
        await gw.settled()
        await gw.logs.flush()
    records = [event.to_dict() for event in sink.events]
    assert [(r["endpoint"], r["method"], r["status"]) for r in records] == [
        ("files", "POST", 200),
        ("files", "GET", 200),
        ("batches", "POST", 200),
        ("files", "POST", 413),
    ]
    # the upload cut off is the client's fault, not a broken upstream (its circuit, retries)
    assert [a["status"] for a in records[-1]["attempts"]] == [413]
    for record in records[:3]:
        assert record["provider"] == "openai"
        assert record["latency_ms"] > 0
        assert b"custom_id" not in orjson.dumps(record, default=str)
