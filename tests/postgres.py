"""A real PostgreSQL server for the tests: Debian's ``postgresql`` package, run from a
temporary directory on 127.0.0.1 at a free port, one per test session.

``initdb`` refuses to run as root, so under uid 0 the server's files belong to the
``postgres`` system user and ``initdb``/``pg_ctl`` run as that user (``runuser``). The
superuser has a password (a planted secret: the suite scans for it), asked for over TCP;
the unix socket in the temporary directory trusts local connections, which is how
databases are created.

Fixtures (imported by ``conftest.py``):

* ``postgres_server`` (session) -- the running server; skipped when PostgreSQL is not
  installed, except under ``CI=true``, where that is a failure;
* ``store_url`` -- parametrized ``sqlite`` / ``postgresql``: the URL of an empty store, a
  fresh database per test on PostgreSQL.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.planted import plant

SERVER_USER = "postgres"
START_TIMEOUT = 30


def find_bindir() -> Path | None:
    """The directory of ``initdb``/``pg_ctl``/``psql`` (newest Debian version first)."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name)
    )
    for directory in reversed(candidates):
        if (Path(directory) / "initdb").exists():
            return Path(directory)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """One PostgreSQL cluster in a temporary directory.

    :param bindir: where its binaries are.
    """

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.port = _free_port()
        self.user = "postgres"
        self.password = plant(f"planted-pg-{secrets.token_hex(8)}")
        self.root = Path(tempfile.mkdtemp(prefix="pkmw-pg-"))
        self.data = self.root / "data"
        self.sockets = self.root / "run"
        self.log = self.root / "server.log"
        self._as_root = os.geteuid() == 0

    @staticmethod
    def closed_port() -> int:
        """A loopback port nothing listens on (a database that is down)."""
        return _free_port()

    # -- running the binaries ---------------------------------------------------------------
    def _run(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / tool), *args]
        if self._as_root:
            command = ["runuser", "-u", SERVER_USER, "--", *command]
        return subprocess.run(
            command, capture_output=True, text=True, timeout=START_TIMEOUT, check=False
        )

    def _checked(self, tool: str, *args: str) -> None:
        done = self._run(tool, *args)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stderr}\n{log}")

    def start(self) -> None:
        """initdb, then start the server and wait until it accepts connections."""
        self.sockets.mkdir()
        password_file = self.root / "pwfile"
        password_file.write_text(self.password + "\n")
        if self._as_root:
            owner = pwd.getpwnam(SERVER_USER)
            for path in (self.root, self.sockets, password_file):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        self._checked(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            self.user,
            f"--pwfile={password_file}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--no-sync",
        )
        password_file.unlink()
        options = " ".join(
            [
                f"-p {self.port}",
                "-c listen_addresses=127.0.0.1",
                f"-c unix_socket_directories={self.sockets}",
                # A throwaway cluster: durability costs time and buys nothing here.
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
                "-c max_connections=200",
            ]
        )
        self._checked(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options,
            "-w", "-t", str(START_TIMEOUT), "start",
        )  # fmt: skip

    def stop(self) -> None:
        """Stop the server (immediately: nothing in it is kept) and remove its files."""
        with contextlib.suppress(Exception):
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    # -- databases ----------------------------------------------------------------------------
    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run ``sql`` as the superuser over the unix socket; its output."""
        done = subprocess.run(
            [
                str(self.bindir / "psql"),
                "-h", str(self.sockets), "-p", str(self.port), "-U", self.user,
                "-d", database, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql,
            ],
            capture_output=True, text=True, timeout=START_TIMEOUT, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"psql failed: {done.stderr.strip()}")
        return done.stdout

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; its name."""
        name = name or f"t_{uuid.uuid4().hex[:16]}"
        self.psql(f'CREATE DATABASE "{name}"')
        return name

    def url(self, database: str) -> str:
        """The ``postgresql://`` URL (with the password) of ``database``."""
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the whole session (a failure under CI when missing)."""
    bindir = find_bindir()
    if bindir is None:
        message = "PostgreSQL is not installed (apt-get install postgresql)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    server = PostgresServer(bindir)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty store: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'control.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.url(server.create_database())
