"""A scriptable fake OpenAI-compatible upstream for tests.

``FakeUpstream`` is a real HTTP server bound to ``127.0.0.1`` on a random free
port. It runs its own asyncio event loop (aiohttp low-level server) in a
background daemon thread, so synchronous tests can talk to it with any HTTP
client while the test thread stays free.

Without scripting it answers deterministically in OpenAI's wire format:

* ``POST /v1/chat/completions`` -- echoes the last message (``"echo: ..."``),
  streaming as SSE when the request has ``"stream": true``;
* ``POST /v1/completions`` -- echoes the prompt (legacy text completions);
* ``POST /v1/embeddings`` -- 8 deterministic floats per input (``float`` or
  ``base64`` encoding);
* ``GET /v1/models`` (and ``GET /v1/models/{id}``) -- two fake models;
* anything else -- 404 with an OpenAI-style error body; a body that is not
  valid JSON -- 400.

Tests can queue :class:`Reply` objects per path with :meth:`FakeUpstream.script`
to return arbitrary statuses/bodies/streams, add latency, hold a stream open
behind a :class:`threading.Event` gate, or drop the TCP connection.

Example::

    with FakeUpstream() as fake:
        fake.script("/v1/chat/completions", Reply(status=500))
        ...
        fake.wait_for(lambda: len(fake.requests) == 2)
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import re
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

try:
    import orjson

    def _dumps(obj: Any) -> bytes:
        return orjson.dumps(obj)

    def _loads(data: bytes | str) -> Any:
        return orjson.loads(data)

except ImportError:  # pragma: no cover - orjson is a dev dependency
    import json

    def _dumps(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":")).encode()

    def _loads(data: bytes | str) -> Any:
        return json.loads(data)


__all__ = ["FakeUpstream", "Recorded", "Reply"]

DropMode = Literal["none", "before_headers", "after_headers", "mid_stream"]
_DROP_MODES: frozenset[str] = frozenset({"none", "before_headers", "after_headers", "mid_stream"})

JSON_CONTENT_TYPE = "application/json"
SSE_CONTENT_TYPE = "text/event-stream"
CREATED = 1_700_000_000
"""Fixed ``created`` timestamp used in every default response."""
SYSTEM_FINGERPRINT = "fp_fake"
SLOW_STREAM_MODEL = "slow-stream"
SLOW_STREAM_DELAY = 0.05
EMBEDDING_DIM = 8
MODELS: tuple[str, ...] = ("fake-gpt", "fake-embed")

_DONE_EVENT = b"data: [DONE]\n\n"
_POLL_INTERVAL = 0.005
_WORD_RE = re.compile(r"\S+\s*")


@dataclass
class Reply:
    """One scripted response, consumed FIFO per path by :meth:`FakeUpstream.script`.

    Payload selection (at most one of ``json`` / ``body`` / ``stream``):

    * ``stream`` set: an SSE response is sent whatever the request asked for.
      ``dict`` items become ``data: <json>\\n\\n``; ``bytes`` items are sent
      verbatim. ``data: [DONE]\\n\\n`` is appended when ``done`` is true.
    * ``json`` set: that value is serialised and sent with ``status``.
    * ``body`` set: the raw bytes are sent as-is with ``status``.
    * none set and ``status >= 400``: an OpenAI-style error body is sent.
    * none set otherwise: the default behaviour for the path runs, modified by
      this reply's ``status`` (when the default would be 200), ``headers``,
      ``content_type``, ``delay``, ``chunk_delay``, ``gate``, ``done`` and
      ``drop``. E.g. ``Reply(drop="mid_stream")`` cuts a default chat stream
      after its first chunk, ``Reply(delay=2)`` delays a default reply.

    Timing / failure knobs:

    * ``delay``: seconds to wait before sending the status line and headers.
    * ``chunk_delay``: seconds between stream events (for a default stream it
      overrides the ``slow-stream`` model delay when non-zero).
    * ``gate``: for streams, after the first event has been written and flushed
      the server waits (without blocking its loop) until the event is set.
      For non-stream replies the whole response waits for the gate after
      ``delay`` (extension).
    * ``drop``: close the TCP connection abruptly ``before_headers``,
      ``after_headers``, or ``mid_stream`` (after the first stream event; for a
      non-stream reply, after the first half of the body).

    ``headers`` are added to the response; a ``Content-Type`` given there wins
    over ``content_type`` (default ``application/json``, or
    ``text/event-stream`` for streams).
    """

    status: int = 200
    json: Any | None = None
    body: bytes | None = None
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    stream: list[bytes | dict[str, Any]] | None = None
    chunk_delay: float = 0.0
    gate: threading.Event | None = None
    done: bool = True
    drop: DropMode = "none"

    def __post_init__(self) -> None:
        payloads = sum(x is not None for x in (self.json, self.body, self.stream))
        if payloads > 1:
            raise ValueError("Reply: set at most one of json, body and stream")
        if self.drop not in _DROP_MODES:
            raise ValueError(f"Reply: invalid drop mode {self.drop!r}")
        if self.delay < 0 or self.chunk_delay < 0:
            raise ValueError("Reply: delays must be >= 0")


@dataclass
class Recorded:
    """A request received by the fake upstream.

    ``headers`` keys are lower-cased (repeated headers are joined with
    ``", "``); ``query`` is the raw query string without ``?``; ``body`` is
    the raw request body.
    """

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """Parse the body as JSON (raises on invalid JSON)."""
        return _loads(self.body)


@dataclass
class _Plan:
    """Fully resolved response to send (internal)."""

    status: int
    headers: dict[str, str]
    body: bytes = b""
    events: list[bytes] | None = None  # encoded SSE events -> streaming response
    delay: float = 0.0
    chunk_delay: float = 0.0
    gate: threading.Event | None = None
    drop: DropMode = "none"


@dataclass
class _Default:
    """Outcome of the default behaviour for a request (internal)."""

    status: int
    json: Any = None
    stream: list[dict[str, Any]] | None = None
    chunk_delay: float = 0.0


class FakeUpstream:
    """Scriptable fake OpenAI upstream running in a background thread.

    Use as a context manager or call :meth:`start` / :meth:`stop`. After
    start, ``port``, ``base_url`` (``http://127.0.0.1:<port>/v1``) and
    ``host_url`` (``http://127.0.0.1:<port>``) are available.

    Observations (updated from the server thread):

    * ``requests``: every request received, in arrival order.
    * ``disconnects``: streams whose client went away before the last event
      was written (write failure, connection lost, or handler cancelled).
    * ``completed_streams``: streams whose every event was written.
    * ``aborted``: any request (stream or not) whose client went away before
      the response was completely written (extension; superset of
      ``disconnects``).

    Connections dropped on purpose via ``Reply.drop`` are not counted in
    any of the counters.
    """

    def __init__(self) -> None:
        self.port: int = 0
        self.requests: list[Recorded] = []
        self.disconnects: int = 0
        self.completed_streams: int = 0
        self.aborted: int = 0
        self._lock = threading.Lock()
        self._scripts: dict[str, deque[Reply]] = {}
        self._seq = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.ServerRunner | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False

    # ------------------------------------------------------------------ API

    @property
    def host_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1`` (what OpenAI clients take as base URL)."""
        return f"{self.host_url}/v1"

    def start(self) -> FakeUpstream:
        """Start the server thread; returns once the server is listening."""
        if self._thread is not None:
            raise RuntimeError("FakeUpstream already started")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind(("127.0.0.1", 0))
        except BaseException:
            sock.close()
            raise
        self.port = int(sock.getsockname()[1])
        self._stopping = False
        ready = threading.Event()
        errors: list[BaseException] = []
        thread = threading.Thread(
            target=self._run,
            args=(sock, ready, errors),
            name=f"fake-upstream-{self.port}",
            daemon=True,
        )
        self._thread = thread
        thread.start()
        if not ready.wait(10.0):
            raise RuntimeError("FakeUpstream did not start within 10s")
        if errors:
            thread.join(5.0)
            self._thread = None
            self._loop = None
            raise RuntimeError("FakeUpstream failed to start") from errors[0]
        return self

    def stop(self) -> None:
        """Stop the server and its thread (idempotent)."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        try:
            if not loop.is_closed():
                fut = asyncio.run_coroutine_threadsafe(self._teardown(), loop)
                fut.result(10.0)
                loop.call_soon_threadsafe(loop.stop)
        finally:
            thread.join(10.0)
            self._thread = None
            self._loop = None
            self._runner = None

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def script(self, path: str, *replies: Reply) -> None:
        """Queue ``replies`` for requests to ``path`` (exact match, no query),
        consumed first-in first-out; once the queue is empty the default
        behaviour applies again. Works for any path, including unknown ones.
        """
        for reply in replies:
            if not isinstance(reply, Reply):
                raise TypeError(f"expected Reply, got {type(reply).__name__}")
        with self._lock:
            self._scripts.setdefault(path, deque()).extend(replies)

    def reset(self) -> None:
        """Clear queued scripts, recorded requests and counters."""
        with self._lock:
            self._scripts.clear()
            self.requests.clear()
            self.disconnects = 0
            self.completed_streams = 0
            self.aborted = 0
            self._seq = 0

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Poll ``predicate`` until true; raise AssertionError after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            if predicate():
                return
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"condition not met within {timeout}s "
                    f"(requests={len(self.requests)}, disconnects={self.disconnects}, "
                    f"completed_streams={self.completed_streams})"
                )
            time.sleep(_POLL_INTERVAL)

    # ------------------------------------------------------- server thread

    def _run(
        self, sock: socket.socket, ready: threading.Event, errors: list[BaseException]
    ) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            try:
                loop.run_until_complete(self._setup(sock))
            except BaseException as exc:
                errors.append(exc)
                sock.close()
                return
            finally:
                ready.set()
            loop.run_forever()
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                asyncio.set_event_loop(None)
                loop.close()

    async def _setup(self, sock: socket.socket) -> None:
        server = web.Server(self._handle, handler_cancellation=True, access_log=None)
        runner = web.ServerRunner(server, shutdown_timeout=1.0)
        await runner.setup()
        self._runner = runner
        await web.SockSite(runner, sock).start()

    async def _teardown(self) -> None:
        self._stopping = True
        for task in list(self._tasks):
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()

    def _next_reply(self, rec: Recorded) -> tuple[int, Reply | None]:
        with self._lock:
            self.requests.append(rec)
            self._seq += 1
            queue = self._scripts.get(rec.path)
            reply = queue.popleft() if queue else None
            return self._seq, reply

    def _count(self, *, stream: bool) -> None:
        if self._stopping:
            return
        with self._lock:
            self.aborted += 1
            if stream:
                self.disconnects += 1

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            body = await request.read()
            headers: dict[str, str] = {}
            for key, value in request.headers.items():
                k = key.lower()
                headers[k] = f"{headers[k]}, {value}" if k in headers else value
            rec = Recorded(
                method=request.method,
                path=request.path,
                query=request.query_string,
                headers=headers,
                body=body,
            )
            seq, reply = self._next_reply(rec)
            plan = self._plan(rec, reply, seq)
            return await self._send(request, plan)
        finally:
            if task is not None:
                self._tasks.discard(task)

    # ------------------------------------------------------------ planning

    def _plan(self, rec: Recorded, reply: Reply | None, seq: int) -> _Plan:
        if reply is None:
            return self._plan_default(_default(rec, seq), None)
        if reply.stream is not None:
            events = [_encode_event(ev) for ev in reply.stream]
            if reply.done:
                events.append(_DONE_EVENT)
            return _Plan(
                status=reply.status,
                headers=_merge_headers(reply, SSE_CONTENT_TYPE, stream=True),
                events=events,
                delay=reply.delay,
                chunk_delay=reply.chunk_delay,
                gate=reply.gate,
                drop=reply.drop,
            )
        if reply.json is not None or reply.body is not None or reply.status >= 400:
            if reply.body is not None:
                body = reply.body
            elif reply.json is not None:
                body = _dumps(reply.json)
            else:
                body = _dumps(_scripted_error(reply.status))
            return _Plan(
                status=reply.status,
                headers=_merge_headers(reply, JSON_CONTENT_TYPE, stream=False),
                body=body,
                delay=reply.delay,
                gate=reply.gate,
                drop=reply.drop,
            )
        return self._plan_default(_default(rec, seq), reply)

    def _plan_default(self, default: _Default, reply: Reply | None) -> _Plan:
        status = default.status
        if reply is not None and status == 200:
            status = reply.status
        stream = default.stream is not None
        content_type = SSE_CONTENT_TYPE if stream else JSON_CONTENT_TYPE
        if reply is None:
            headers = {"Content-Type": content_type}
            if stream:
                headers["Cache-Control"] = "no-cache"
            return _Plan(
                status=status,
                headers=headers,
                body=b"" if stream else _dumps(default.json),
                events=_encode_default_stream(default.stream, done=True),
                chunk_delay=default.chunk_delay,
            )
        return _Plan(
            status=status,
            headers=_merge_headers(reply, content_type, stream=stream),
            body=b"" if stream else _dumps(default.json),
            events=_encode_default_stream(default.stream, done=reply.done),
            delay=reply.delay,
            chunk_delay=reply.chunk_delay or default.chunk_delay,
            gate=reply.gate,
            drop=reply.drop,
        )

    # ------------------------------------------------------------- sending

    async def _send(self, request: web.BaseRequest, plan: _Plan) -> web.StreamResponse:
        is_stream = plan.events is not None
        resp = web.StreamResponse(status=plan.status, headers=plan.headers)
        finished = False
        try:
            if plan.delay > 0:
                await asyncio.sleep(plan.delay)
            if not is_stream and plan.gate is not None and not await self._wait_gate(plan.gate):
                return _abort(request, resp)
            if plan.drop == "before_headers":
                return _abort(request, resp)

            if plan.events is None:
                body = plan.body
                if plan.status in (204, 304) or plan.status < 200:
                    body = b""
                resp.content_length = len(body)
                await resp.prepare(request)
                await _flush(request)
                if plan.drop == "after_headers":
                    return _abort(request, resp)
                if plan.drop == "mid_stream":
                    await resp.write(body[: len(body) // 2])
                    await _flush(request)
                    return _abort(request, resp)
                if body and request.method != "HEAD":  # HEAD: the length, not the body
                    await resp.write(body)
                await resp.write_eof()
                finished = True
                return resp

            await resp.prepare(request)
            await _flush(request)
            if plan.drop == "after_headers":
                return _abort(request, resp)
            for index, event in enumerate(plan.events):
                if index > 0 and plan.chunk_delay > 0:
                    await asyncio.sleep(plan.chunk_delay)
                await resp.write(event)
                await _flush(request)
                if index == 0:
                    if plan.drop == "mid_stream":
                        return _abort(request, resp)
                    if plan.gate is not None and not await self._wait_gate(plan.gate):
                        return _abort(request, resp)
            finished = True
            with self._lock:
                self.completed_streams += 1
            # Every event was delivered; losing only the chunked terminator is fine.
            with contextlib.suppress(ConnectionError):
                await resp.write_eof()
            return resp
        except ConnectionError:
            if not finished:
                self._count(stream=is_stream)
            return resp  # aiohttp finishes it quietly (ConnectionError again)
        except asyncio.CancelledError:
            if not finished:
                self._count(stream=is_stream)
            raise

    async def _wait_gate(self, gate: threading.Event) -> bool:
        """Wait for ``gate`` without blocking the loop; False if stopping."""
        while not gate.is_set():
            if self._stopping:
                return False
            await asyncio.sleep(_POLL_INTERVAL)
        return True


# -------------------------------------------------------------- send helpers


def _abort(request: web.BaseRequest, resp: web.StreamResponse) -> web.StreamResponse:
    """Close the connection abruptly; returns ``resp`` for aiohttp to discard."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    return resp


async def _flush(request: web.BaseRequest) -> None:
    """Wait until the transport has handed everything written to the kernel."""
    while True:
        transport = request.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("client connection closed")
        if transport.get_write_buffer_size() == 0:
            return
        await asyncio.sleep(0.001)


def _merge_headers(reply: Reply, default_type: str, *, stream: bool) -> dict[str, str]:
    headers: dict[str, str] = {}
    if not any(k.lower() == "content-type" for k in reply.headers):
        headers["Content-Type"] = reply.content_type or default_type
    if stream and not any(k.lower() == "cache-control" for k in reply.headers):
        headers["Cache-Control"] = "no-cache"
    headers.update(reply.headers)
    return headers


def _encode_event(event: bytes | dict[str, Any]) -> bytes:
    if isinstance(event, bytes):
        return event
    return b"data: " + _dumps(event) + b"\n\n"


def _encode_default_stream(
    chunks: list[dict[str, Any]] | None, *, done: bool
) -> list[bytes] | None:
    if chunks is None:
        return None
    events = [_encode_event(chunk) for chunk in chunks]
    if done:
        events.append(_DONE_EVENT)
    return events


# --------------------------------------------------------- default behaviour


def _error_body(
    message: str,
    *,
    type_: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _scripted_error(status: int) -> dict[str, Any]:
    message = f"Fake upstream scripted error (HTTP {status})"
    if status == 429:
        return _error_body(message, type_="requests", code="rate_limit_exceeded")
    if status >= 500:
        return _error_body(message, type_="server_error")
    return _error_body(message)


def _not_found(rec: Recorded) -> _Default:
    return _Default(
        404,
        _error_body(
            f"Unknown request URL: {rec.method} {rec.path}. Please check the URL "
            "for typos, or see the docs at https://platform.openai.com/docs/api-reference/.",
            code="not_found",
        ),
    )


def _missing(param: str) -> _Default:
    return _Default(
        400,
        _error_body(
            f"Missing required parameter: '{param}'.",
            param=param,
            code="missing_required_parameter",
        ),
    )


_VIRTUAL_UPSTREAM = re.compile(r"^/[^/]+(?=/v1/)")


def _default(rec: Recorded, seq: int) -> _Default:
    """Deterministic OpenAI-shaped response for ``rec`` (seq numbers the ids).

    A first path segment before ``/v1/`` names a virtual upstream (``/a/v1/chat/completions``
    answers like ``/v1/chat/completions``), so one server can play several providers.
    """
    method, path = rec.method, _VIRTUAL_UPSTREAM.sub("", rec.path)
    if method == "GET" and path == "/v1/models":
        return _Default(200, {"object": "list", "data": [_model(m) for m in MODELS]})
    if method == "GET" and path.startswith("/v1/models/"):
        model_id = path[len("/v1/models/") :]
        if model_id in MODELS:
            return _Default(200, _model(model_id))
        return _Default(
            404,
            _error_body(
                f"The model '{model_id}' does not exist",
                param="model",
                code="model_not_found",
            ),
        )
    handlers: dict[str, Callable[[dict[str, Any], int], _Default]] = {
        "/v1/chat/completions": _chat,
        "/v1/completions": _completions,
        "/v1/embeddings": _embeddings,
    }
    handler = handlers.get(path)
    if method != "POST" or handler is None:
        return _not_found(rec)
    try:
        payload = _loads(rec.body)
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        return _Default(
            400,
            _error_body(
                "We could not parse the JSON body of your request. (HINT: This "
                "likely means you aren't using your HTTP library correctly. The "
                "OpenAI API expects a JSON payload, but what was sent was not "
                "valid JSON.)"
            ),
        )
    if not isinstance(payload.get("model"), str):
        return _missing("model")
    return handler(payload, seq)


def _model(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": 0, "owned_by": "fake"}


def _words(text: str) -> int:
    return len(text.split())


def _pieces(text: str) -> list[str]:
    """Split into word pieces, each keeping its trailing whitespace, so that
    ``"".join(_pieces(t)) == t`` for text without leading whitespace."""
    return _WORD_RE.findall(text) or [text]


def _message_text(message: Any) -> str:
    if not isinstance(message, dict):
        return ""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts: list[str] = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif (
                isinstance(part, dict)
                and part.get("type", "text") == "text"
                and isinstance(part.get("text"), str)
            ):
                texts.append(part["text"])
        return " ".join(texts)
    return ""


def _include_usage(payload: dict[str, Any]) -> bool:
    opts = payload.get("stream_options")
    return isinstance(opts, dict) and bool(opts.get("include_usage"))


def _chunk_delay(model: str) -> float:
    return SLOW_STREAM_DELAY if model == SLOW_STREAM_MODEL else 0.0


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _chat(payload: dict[str, Any], seq: int) -> _Default:
    messages = payload.get("messages")
    if not isinstance(messages, list) or not messages:
        return _missing("messages")
    model: str = payload["model"]
    content = "echo: " + _message_text(messages[-1])
    pieces = _pieces(content)
    usage = _usage(sum(_words(_message_text(m)) for m in messages), len(pieces))
    base = {
        "id": f"chatcmpl-fake{seq}",
        "created": CREATED,
        "model": model,
        "service_tier": "default",
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }
    if payload.get("stream") is not True:
        return _Default(
            200,
            {
                **base,
                "object": "chat.completion",
                "choices": [
                    {
                        "index": 0,
                        "message": {
                            "role": "assistant",
                            "content": content,
                            "refusal": None,
                            "annotations": [],
                        },
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": usage,
            },
        )
    include_usage = _include_usage(payload)

    def chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        out: dict[str, Any] = {
            **base,
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if include_usage:
            out["usage"] = None
        return out

    chunks = [chunk({"role": "assistant", "content": ""}, None)]
    chunks += [chunk({"content": piece}, None) for piece in pieces]
    chunks.append(chunk({}, "stop"))
    if include_usage:
        chunks.append({**base, "object": "chat.completion.chunk", "choices": [], "usage": usage})
    return _Default(200, stream=chunks, chunk_delay=_chunk_delay(model))


def _prompt_texts(prompt: Any) -> list[str] | None:
    if isinstance(prompt, str):
        return [prompt]
    if isinstance(prompt, list) and prompt:
        if all(isinstance(p, str) for p in prompt):
            return list(prompt)
        if all(isinstance(p, int) for p in prompt):
            return [" ".join(str(t) for t in prompt)]
        if all(isinstance(p, list) for p in prompt):
            return [" ".join(str(t) for t in p) for p in prompt]
    return None


def _completions(payload: dict[str, Any], seq: int) -> _Default:
    prompts = _prompt_texts(payload.get("prompt"))
    if prompts is None:
        return _missing("prompt")
    model: str = payload["model"]
    texts = ["echo: " + p for p in prompts]
    pieces = [_pieces(t) for t in texts]
    usage = _usage(sum(_words(p) for p in prompts), sum(len(p) for p in pieces))
    base = {
        "id": f"cmpl-fake{seq}",
        "object": "text_completion",
        "created": CREATED,
        "model": model,
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }
    if payload.get("stream") is not True:
        choices = [
            {"text": text, "index": i, "logprobs": None, "finish_reason": "stop"}
            for i, text in enumerate(texts)
        ]
        return _Default(200, {**base, "choices": choices, "usage": usage})
    include_usage = _include_usage(payload)

    def chunk(index: int, text: str, finish: str | None) -> dict[str, Any]:
        out: dict[str, Any] = {
            **base,
            "choices": [{"text": text, "index": index, "logprobs": None, "finish_reason": finish}],
        }
        if include_usage:
            out["usage"] = None
        return out

    chunks: list[dict[str, Any]] = []
    for index, choice_pieces in enumerate(pieces):
        chunks += [chunk(index, piece, None) for piece in choice_pieces]
        chunks.append(chunk(index, "", "stop"))
    if include_usage:
        chunks.append({**base, "choices": [], "usage": usage})
    return _Default(200, stream=chunks, chunk_delay=_chunk_delay(model))


def embedding_for(text: str) -> list[float]:
    """The deterministic 8-float embedding the fake returns for ``text``.

    Values are multiples of 1/128 in [-1, 1), exactly representable as
    float32, so the ``base64`` and ``float`` encodings decode identically.
    """
    digest = hashlib.sha256(text.encode()).digest()
    return [b / 128.0 - 1.0 for b in digest[:EMBEDDING_DIM]]


def _embeddings(payload: dict[str, Any], seq: int) -> _Default:
    raw = payload.get("input")
    inputs: list[str]
    if isinstance(raw, str):
        inputs = [raw]
    elif isinstance(raw, list) and raw and all(isinstance(x, str) for x in raw):
        inputs = list(raw)
    elif isinstance(raw, list) and raw and all(isinstance(x, int) for x in raw):
        inputs = [" ".join(str(t) for t in raw)]
    elif isinstance(raw, list) and raw and all(isinstance(x, list) for x in raw):
        inputs = [" ".join(str(t) for t in x) for x in raw]
    else:
        return _missing("input")
    encoding = payload.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        return _Default(
            400,
            _error_body(
                f"Invalid value for 'encoding_format': {encoding!r}. "
                "Supported values are: 'float' and 'base64'.",
                param="encoding_format",
                code="invalid_value",
            ),
        )
    data: list[dict[str, Any]] = []
    for index, text in enumerate(inputs):
        vector = embedding_for(text)
        embedding: list[float] | str = vector
        if encoding == "base64":
            packed = struct.pack(f"<{len(vector)}f", *vector)
            embedding = base64.b64encode(packed).decode("ascii")
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    tokens = sum(_words(text) for text in inputs)
    return _Default(
        200,
        {
            "object": "list",
            "data": data,
            "model": payload["model"],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        },
    )
