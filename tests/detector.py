"""A detector: a loopback server that records every connection made to it.

The attacks in the security tests try to make the gateway send a credential, a request or
a probe somewhere it must not; the detector stands there. It binds ``127.0.0.2`` by
default, a loopback address the outbound policy refuses for fetches even when a test
allows ``127.0.0.1`` (where the fake upstream stands in for a public host). It answers
every request with one configurable HTTP response and keeps what it received.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from types import TracebackType

DEFAULT_REPLY = (
    b'{"access_token": "detector-token", "expires_in": 3600, "token_type": "Bearer", '
    b'"verdict": true}'
)


class Detector:
    """Records connections and their bytes; answers ``status`` with ``body``.

    :param host: the loopback address to bind.
    :param port: the port (default: a free one).
    """

    def __init__(self, host: str = "127.0.0.2", body: bytes = DEFAULT_REPLY, port: int = 0) -> None:
        self.host = host
        self.body = body
        self._server = socket.create_server((host, port))
        self._server.settimeout(0.2)
        self.port = int(self._server.getsockname()[1])
        #: the raw bytes of every connection, in order
        self.received: list[bytes] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        """``http://<host>:<port>``."""
        return f"http://{self.host}:{self.port}"

    @property
    def hits(self) -> int:
        """How many connections were made."""
        with self._lock:
            return len(self.received)

    def seen(self, needle: bytes) -> bool:
        """Whether any connection carried ``needle``."""
        with self._lock:
            return any(needle in data for data in self.received)

    def wait_for_hits(self, count: int, deadline: float = 10.0) -> None:
        """Wait until ``count`` connections were made (poll with a deadline)."""
        end = time.monotonic() + deadline
        while self.hits < count:
            assert time.monotonic() < end, f"the detector saw {self.hits} of {count} connections"
            time.sleep(0.01)

    def __enter__(self) -> Detector:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(5)
        self._server.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(2.0)
                data = read_message(conn)
                with self._lock:
                    self.received.append(data)
                reply = (
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    b"content-length: " + str(len(self.body)).encode() + b"\r\n"
                    b"connection: close\r\n\r\n" + self.body
                )
                with contextlib.suppress(OSError):  # the client may be gone already
                    conn.sendall(reply)


def read_message(sock: socket.socket) -> bytes:
    """One HTTP message off a socket: the head, then as many body bytes as its
    Content-Length says (or whatever came before the peer stopped)."""
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return data
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip() or 0)
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        return head + b"\r\n\r\n" + body
    except (TimeoutError, OSError, ValueError):
        return data
