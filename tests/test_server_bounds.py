"""``portkey-mw serve`` bounds request heads: a header timeout, and caps on header sizes.

Every test talks to a real ``portkey-mw serve`` over raw sockets, since the bounds live in
the HTTP protocol, below the ASGI app.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import orjson
import pytest

from tests.conftest import (
    DEADLINE,
    MAX_BODY_BYTES,
    RunningGateway,
    server_file,
    standalone_gateway,
)
from tests.fake_upstream import FakeUpstream, Reply

HEADER_TIMEOUT = 0.5
MAX_HEADER_BYTES = 8192
MAX_HEADER_VALUE_BYTES = 2048
BOUNDS = {
    "max_body_bytes": MAX_BODY_BYTES,
    "header_timeout": HEADER_TIMEOUT,
    "max_header_bytes": MAX_HEADER_BYTES,
    "max_header_value_bytes": MAX_HEADER_VALUE_BYTES,
}
HEALTH = b"GET /health HTTP/1.1\r\nhost: gw\r\n\r\n"
MESSAGES = [{"role": "user", "content": "hello gateway"}]


@contextlib.contextmanager
def bounded_gateway(
    directory: Path, fake: FakeUpstream, **server: object
) -> Iterator[RunningGateway]:
    """``portkey-mw serve`` with small limits in its server file."""
    path = server_file(directory, fake, server={**BOUNDS, **server})
    with standalone_gateway(path) as running:
        yield running


@pytest.fixture(scope="module")
def gateway(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    with bounded_gateway(tmp_path_factory.mktemp("bounds"), upstream_server) as running:
        yield running


@contextlib.contextmanager
def connection(gateway: RunningGateway) -> Iterator[socket.socket]:
    host, port = gateway.host_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=DEADLINE) as sock:
        yield sock


def read_until_closed(sock: socket.socket, end: float) -> bytes:
    """Everything the server sends until it closes the connection, by ``end`` (monotonic)."""
    received = b""
    while True:
        remaining = end - time.monotonic()
        assert remaining > 0, f"the server kept the connection open; it sent {received!r}"
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:  # closed with our unread bytes in its buffer
            return received
        if not chunk:
            return received
        received += chunk


def closing_error(received: bytes) -> tuple[int, dict[str, object]]:
    """Status and ``error`` object of a response that ends the connection."""
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert "connection: close" in lines[1:], head
    assert "content-type: application/json" in lines[1:], head
    error = orjson.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["param"] is None
    return int(lines[0].split()[1]), error


def assert_answered(received: bytes, status: int, code: str) -> None:
    answered, error = closing_error(received)
    assert (answered, error["code"]) == (status, code)


def read_response(sock: socket.socket, buffer: bytearray) -> tuple[int, bytes]:
    """Status and body of one response with a ``content-length``; the rest stays in ``buffer``."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection before answering"
        buffer += chunk
    head, _, _ = bytes(buffer).partition(b"\r\n\r\n")
    del buffer[: len(head) + 4]
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    length = int(headers["content-length"])
    while len(buffer) < length:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection in the middle of a body"
        buffer += chunk
    body = bytes(buffer[:length])
    del buffer[:length]
    return int(lines[0].split()[1]), body


def chat_request(content: str) -> bytes:
    """A complete chat completion request through the named config ``openai-fake``."""
    body = orjson.dumps(
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}]}
    )
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer sk-client-key\r\n"
        b"x-portkey-config: openai-fake\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n\r\n" % len(body)
    )
    return head + body


def answer_text(body: bytes) -> str:
    return str(orjson.loads(body)["choices"][0]["message"]["content"])


def chat(gateway: RunningGateway) -> str | None:
    client = openai.OpenAI(
        base_url=gateway.base_url,
        api_key="sk-client-key",
        max_retries=0,
        default_headers={"x-portkey-config": "openai-fake"},
    )
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    return completion.choices[0].message.content


def assert_serving(gateway: RunningGateway) -> None:
    with connection(gateway) as sock:
        sock.sendall(HEALTH)
        assert read_response(sock, bytearray()) == (200, b'{"status":"ok"}')
    assert chat(gateway) == "echo: hello gateway"


def assert_silent_connection_closed(gateway: RunningGateway) -> None:
    with connection(gateway) as sock:
        assert read_until_closed(sock, time.monotonic() + DEADLINE) == b""


def assert_header_value_over_cap_refused(gateway: RunningGateway) -> None:
    value = b"a" * (MAX_HEADER_VALUE_BYTES + 1)
    with connection(gateway) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nhost: gw\r\nx-big: " + value + b"\r\n\r\n")
        received = read_until_closed(sock, time.monotonic() + DEADLINE)
    status, error = closing_error(received)
    assert (status, error["code"]) == (431, "request_header_fields_too_large")
    assert str(MAX_HEADER_VALUE_BYTES) in str(error["message"])


# the header timeout


def test_a_connection_that_sends_nothing_is_closed(gateway: RunningGateway) -> None:
    assert_silent_connection_closed(gateway)


def test_a_trickled_header_gets_408(gateway: RunningGateway) -> None:
    """The deadline covers the whole head: bytes that keep coming do not extend it."""
    end = time.monotonic() + DEADLINE
    with connection(gateway) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nhost: gw\r\nx-slow: ")
        while not select.select([sock], [], [], 0.05)[0]:
            assert time.monotonic() < end, "the server never gave up on the trickled header"
            sock.sendall(b"a")
        assert_answered(read_until_closed(sock, end), 408, "header_timeout")


def test_a_kept_alive_connection_stalling_in_its_second_head_gets_408(
    gateway: RunningGateway,
) -> None:
    with connection(gateway) as sock:
        buffer = bytearray()
        for _ in range(2):
            sock.sendall(HEALTH)
            assert read_response(sock, buffer) == (200, b'{"status":"ok"}')
        sock.sendall(b"GET /health HTTP/1.1\r\nho")
        assert_answered(read_until_closed(sock, time.monotonic() + DEADLINE), 408, "header_timeout")


def test_a_head_begun_during_a_response_gets_its_time_after_it(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    """A deadline passing while an earlier response is pending waits for that response.

    A 408 then would land inside the response; reading may be paused until it is sent.
    """
    upstream_answers = threading.Event()
    fake.script("/v1/chat/completions", Reply(gate=upstream_answers))
    with connection(gateway) as sock:
        try:
            sock.sendall(chat_request("slow") + b"GET /health HTTP/1.1\r\nho")
            end = time.monotonic() + DEADLINE
            while not fake.requests:
                assert time.monotonic() < end, "the request never reached the upstream"
                time.sleep(0.01)
            # Long enough for the second head's deadline to pass while the first response
            # is pending; were it shorter the test would still pass, only prove less.
            time.sleep(2 * HEADER_TIMEOUT)
        finally:
            upstream_answers.set()
        buffer = bytearray()
        status, answer = read_response(sock, buffer)
        assert (status, answer_text(answer)) == (200, "echo: slow")
        rest = bytes(buffer) + read_until_closed(sock, time.monotonic() + DEADLINE)
        assert_answered(rest, 408, "header_timeout")


def test_pipelined_requests_are_all_answered(gateway: RunningGateway) -> None:
    with connection(gateway) as sock:
        sock.sendall(HEALTH * 3)
        buffer = bytearray()
        for _ in range(3):
            assert read_response(sock, buffer) == (200, b'{"status":"ok"}')


def test_many_slow_connections_are_closed_and_requests_go_on(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    end = time.monotonic() + DEADLINE
    with contextlib.ExitStack() as stack:
        silent = [stack.enter_context(connection(gateway)) for _ in range(100)]
        trickling = [stack.enter_context(connection(gateway)) for _ in range(100)]
        for sock in trickling:
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\nx-portkey-config: ")
        assert_serving(gateway)
        for sock in silent:
            assert read_until_closed(sock, end) == b""
        for sock in trickling:
            assert_answered(read_until_closed(sock, end), 408, "header_timeout")
    assert_serving(gateway)


# the header size caps


def test_a_header_value_over_its_cap_gets_431(gateway: RunningGateway) -> None:
    assert_header_value_over_cap_refused(gateway)


def test_a_header_value_at_its_cap_is_accepted(gateway: RunningGateway) -> None:
    value = b"a" * MAX_HEADER_VALUE_BYTES
    with connection(gateway) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nhost: gw\r\nx-big: " + value + b"\r\n\r\n")
        assert read_response(sock, bytearray())[0] == 200


def test_headers_over_the_total_cap_get_431(gateway: RunningGateway) -> None:
    count = MAX_HEADER_BYTES // 1000 + 1
    headers = b"".join(b"x-pad-%d: %s\r\n" % (i, b"a" * 1000) for i in range(count))
    with connection(gateway) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nhost: gw\r\n" + headers + b"\r\n")
        received = read_until_closed(sock, time.monotonic() + DEADLINE)
    status, error = closing_error(received)
    assert (status, error["code"]) == (431, "request_header_fields_too_large")
    assert str(MAX_HEADER_BYTES) in str(error["message"])


def test_an_endless_header_is_refused_without_reading_it_all(gateway: RunningGateway) -> None:
    """httptools holds a header until the next one begins; the cap must not wait for that.

    A server that kept reading would answer 408 once the header timeout passed.
    """
    end = time.monotonic() + DEADLINE
    with connection(gateway) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nhost: gw\r\nx-endless: ")
        with contextlib.suppress(OSError):  # the server may close while we still send
            while not select.select([sock], [], [], 0.01)[0]:
                assert time.monotonic() < end, "the server never answered the endless header"
                sock.sendall(b"a" * 4096)
        received = read_until_closed(sock, end)
    status, error = closing_error(received)
    assert (status, error["code"]) == (431, "request_header_fields_too_large")
    assert str(MAX_HEADER_BYTES) in str(error["message"])


def test_a_body_arriving_with_its_headers_is_not_counted_as_headers(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    content = "x" * (4 * MAX_HEADER_BYTES)
    with connection(gateway) as sock:
        sock.sendall(chat_request(content) + HEALTH)  # one write: a request, body, another
        buffer = bytearray()
        status, answer = read_response(sock, buffer)
        assert (status, answer_text(answer)) == (200, f"echo: {content}")
        assert read_response(sock, buffer) == (200, b'{"status":"ok"}')


# how serve applies them


def test_worker_processes_apply_the_server_file_limits(
    upstream_server: FakeUpstream, tmp_path: Path
) -> None:
    """``--workers`` processes rebuild everything; they must find the same limits."""
    with bounded_gateway(tmp_path, upstream_server, workers=2) as gateway:
        for _ in range(2):  # each connection reaches a worker, never the parent process
            assert_header_value_over_cap_refused(gateway)
        with contextlib.ExitStack() as stack:
            silent = [stack.enter_context(connection(gateway)) for _ in range(2)]
            end = time.monotonic() + DEADLINE
            assert [read_until_closed(sock, end) for sock in silent] == [b""] * 2


def test_without_httptools_serve_falls_back_to_h11_with_a_size_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.util

    from structlog.testing import capture_logs

    from portkey_mw.config.server import ServerOptions
    from portkey_mw.server import uvicorn_http_options

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "httptools" else real_find_spec(name, *args),
    )
    with capture_logs() as logs:
        options = uvicorn_http_options(ServerOptions(max_header_bytes=MAX_HEADER_BYTES))
    assert options == {"http": "h11", "h11_max_incomplete_event_size": MAX_HEADER_BYTES}
    assert [entry["event"] for entry in logs] == ["header_timeout_unavailable"]
    assert logs[0]["log_level"] == "warning"
