"""``portkey-mw virtual-keys|keys|configs``: the control-plane commands, against the real
admin router (:func:`portkey_mw.admin.control_plane_routes`) served by uvicorn on
loopback, and in-process through the ``local_admin_app`` seam.

``Authorize`` here takes the planted admin key only; the store is the
SQL store (SQLite) with a planted master key.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import secrets
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from click.testing import CliRunner, Result

from portkey_mw.admin import ADMIN_PRINCIPAL, Principal, Services, control_plane_routes
from portkey_mw.auth.admin import AdminKey
from portkey_mw.auth.vault import encode_key, generate_key, parse_key
from portkey_mw.cli import main
from portkey_mw.store.protocols import ControlStore
from portkey_mw.store.sql import SQLStore
from tests import planted
from tests.conftest import DEADLINE, ThreadedServer, free_port
from tests.fake_upstream import FakeUpstream
from tests.test_usage_admin import (
    MONTHLY_TOKENS,
    RATE_LIMITS,
    api_key,
    charge,
    run_gateway,
    virtual_key,
)

KEY_PREFIX = "pkmw-"


def new_api_key() -> tuple[str, str, str]:
    key = KEY_PREFIX + secrets.token_urlsafe(24)
    return key, hashlib.sha256(key.encode()).hexdigest(), f"{KEY_PREFIX}…{key[-4:]}"


def check_config(config: Mapping[str, Any]) -> None:
    """The gateway's own check of a config (schema, providers, guardrails): as a named
    config of a server file, which a gateway checks when it is built."""
    from portkey_mw.app import Gateway
    from portkey_mw.config.server import ServerSettings

    Gateway(ServerSettings.from_mapping({"mock": True, "configs": {"candidate": dict(config)}}))


SERVICES = Services(
    validate=check_config,
    generate_key=new_api_key,
    providers=("openai", "anthropic", "bedrock", "mock"),
)


#: The vault's master key: planted, so the scan fails a test that lets it out.
MASTER = parse_key(planted.plant(encode_key(generate_key())), "test key")


def make_store(directory: Path) -> ControlStore:
    """The SQL store over a SQLite file of the test's directory."""
    return SQLStore(
        f"sqlite:///{directory / 'store.db'}", master_key=MASTER, data_dir=directory, environ={}
    )


class ControlPlaneApp:
    """The admin router over a store, as an ASGI app whose lifespan opens the store."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.admin = AdminKey.from_settings(None)  # the planted key, from the environment
        self.store: ControlStore | None = None
        self.router: Any = None
        self.loop: asyncio.AbstractEventLoop | None = None

    async def authorize(self, headers: Mapping[str, str], scope: str) -> Principal:
        self.admin.check(headers)
        return ADMIN_PRINCIPAL

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self.router(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.loop = asyncio.get_running_loop()
                self.store = make_store(self.directory)
                await self.store.open()
                self.router = control_plane_routes(self.store, self.authorize, SERVICES)
                await send({"type": "lifespan.startup.complete"})
            else:
                assert self.store is not None
                await self.store.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def run(self, coro: Any) -> Any:
        """Run a store call in the server's loop, from the test."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(DEADLINE)


class Server:
    """A running control plane: its URL, its app (for the store), the CLI pointed at it."""

    def __init__(self, app: ControlPlaneApp, url: str) -> None:
        self.app = app
        self.url = url

    def cli(self, *args: str, input: str | None = None) -> Result:
        """``portkey-mw ARGS --url URL`` (admin key from the environment), 80 columns."""
        result = CliRunner().invoke(
            main, [*args, "--url", self.url], input=input, env={"COLUMNS": "80"}
        )
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            result.exception
        )
        assert planted.ADMIN_KEY not in result.output
        assert planted.OPENAI_KEY not in result.output
        if "--json" not in args:
            assert all(len(line) <= 80 for line in result.stdout.splitlines()), result.stdout
        return result

    def ok(self, *args: str, input: str | None = None) -> Result:
        result = self.cli(*args, input=input)
        assert result.exit_code == 0, result.output
        return result

    def json(self, *args: str, input: str | None = None) -> Any:
        return orjson.loads(self.ok(*args, "--json", input=input).stdout)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    app = ControlPlaneApp(tmp_path)
    with ThreadedServer(app) as running:
        yield Server(app, running.url)


# -- virtual keys --------------------------------------------------------------------------


def test_virtual_key_lifecycle(server: Server) -> None:
    created = server.ok(
        "virtual-keys",
        "create",
        "--name",
        "Team OpenAI",
        "--provider",
        "openai",
        "--slug",
        "team-openai",
        "--note",
        "for the support bot",
        "--key-file",
        "-",
        input=planted.OPENAI_KEY + "\n",
    )
    assert "created virtual key team-openai (openai)" in created.stdout
    assert '"@team-openai/<model>"' in created.stdout
    record = server.app.run(server.app.store.get_virtual_key("team-openai"))  # type: ignore[union-attr]
    assert record.secrets == {"api_key": planted.OPENAI_KEY}  # stripped of the newline

    server.ok("virtual-keys", "create", "--name", "Local", "--provider", "mock", "--no-key")
    listed = server.ok("virtual-keys", "list").stdout
    rows = {line.split()[0]: line for line in listed.splitlines()[2:] if line.strip()}
    assert "team-openai" in rows and "api_key" in rows["team-openai"]
    assert any(slug.startswith("local-") for slug in rows)

    shown = server.ok("virtual-keys", "show", "team-openai").stdout
    assert "for the support bot" in shown and "api_key" in shown
    detail = server.json("virtual-keys", "show", "team-openai")
    assert detail["slug"] == "team-openai" and detail["credentials"] == ["api_key"]

    server.ok(
        "virtual-keys",
        "update",
        "team-openai",
        "--note",
        "now for everyone",
        "--model",
        "gpt-4o-mini",
        "--status",
        "disabled",
    )
    detail = server.json("virtual-keys", "show", "team-openai")
    assert detail["note"] == "now for everyone" and detail["status"] == "disabled"
    assert detail["defaults"] == {"model": "gpt-4o-mini"}

    key_file = server.app.directory / "new-key"
    key_file.write_text(planted.ANTHROPIC_KEY)
    rotated = server.ok("virtual-keys", "rotate", "team-openai", "--key-file", str(key_file))
    assert "rotated the credentials of virtual key team-openai" in rotated.stdout
    record = server.app.run(server.app.store.get_virtual_key("team-openai"))  # type: ignore[union-attr]
    assert record.secrets == {"api_key": planted.ANTHROPIC_KEY}
    assert planted.ANTHROPIC_KEY not in rotated.output

    assert server.cli("virtual-keys", "delete", "team-openai", input="n\n").exit_code == 1
    server.ok("virtual-keys", "delete", "team-openai", "--yes")
    gone = server.cli("virtual-keys", "show", "team-openai")
    assert gone.exit_code == 1
    assert "no virtual key 'team-openai' (HTTP 404)" in gone.stderr
    assert "Traceback" not in gone.output


def test_virtual_key_create_needs_a_credential_or_no_key(server: Server) -> None:
    result = server.cli("virtual-keys", "create", "--name", "x", "--provider", "openai")
    assert result.exit_code == 2 and "--no-key" in result.output
    empty = server.cli(
        "virtual-keys",
        "create",
        "--name",
        "x",
        "--provider",
        "openai",
        "--key-file",
        "-",
        input="\n",
    )
    assert empty.exit_code == 2 and "from stdin is empty" in empty.output


def test_bedrock_credentials_come_from_files(server: Server, tmp_path: Path) -> None:
    secret = tmp_path / "aws-secret"
    secret.write_text(planted.AWS_SECRET_ACCESS_KEY + "\n")
    answer = server.json(
        "virtual-keys",
        "create",
        "--name",
        "Bedrock",
        "--provider",
        "bedrock",
        "--aws-access-key-id",
        planted.AWS_ACCESS_KEY_ID,
        "--aws-secret-access-key-file",
        str(secret),
        "--aws-region",
        "eu-west-1",
    )
    record = server.app.run(server.app.store.get_virtual_key(answer["slug"]))  # type: ignore[union-attr]
    assert record.secrets["aws_secret_access_key"] == planted.AWS_SECRET_ACCESS_KEY
    assert record.options == {"aws_region": "eu-west-1"}


def test_the_server_names_an_unknown_provider(server: Server) -> None:
    result = server.cli(
        "virtual-keys",
        "create",
        "--name",
        "x",
        "--provider",
        "nope-ai",
        "--key-file",
        "-",
        input=planted.OPENAI_KEY,
    )
    assert result.exit_code == 1
    assert "unknown provider 'nope-ai'" in result.stderr and "(HTTP 400)" in result.stderr


# -- API keys ------------------------------------------------------------------------------


def test_api_key_lifecycle(server: Server, tmp_path: Path) -> None:
    config = tmp_path / "routing.json"
    config.write_text('{"provider": "mock"}')
    slug = server.json("configs", "create", "--name", "Mandatory", "--config", str(config))["slug"]

    created = server.ok(
        "keys",
        "create",
        "--name",
        "support bot",
        "--scope",
        "completions.write",
        "--config-id",
        slug,
        "--no-config-override",
        "--metadata",
        "team=support",
        "--metadata",
        "tier=1",
    )
    key = created.stdout.split("key: ", 1)[1].split()[0]
    assert key.startswith(KEY_PREFIX)
    assert "only time this key is shown" in created.stderr
    key_id = created.stdout.split("created API key ", 1)[1].split()[0]

    listed = server.ok("keys", "list").stdout
    assert key_id in listed and key not in listed and "pkmw-…" in listed
    detail = server.json("keys", "show", key_id)
    assert detail["scopes"] == ["completions.write"] and key not in str(detail)
    assert detail["defaults"] == {
        "config_id": slug,
        "allow_config_override": False,
        "metadata": {"team": "support", "tier": "1"},
    }

    # defaults not mentioned are kept
    server.ok("keys", "update", key_id, "--config-override", "--name", "bot")
    detail = server.json("keys", "show", key_id)
    assert detail["name"] == "bot" and detail["defaults"]["allow_config_override"] is True
    assert detail["defaults"]["metadata"] == {"team": "support", "tier": "1"}

    rotated = server.ok("keys", "rotate", key_id)
    new_key = rotated.stdout.split("key: ", 1)[1].split()[0]
    assert new_key != key and "only time this key is shown" in rotated.stderr
    as_json = server.cli("keys", "rotate", key_id, "--json")
    assert orjson.loads(as_json.stdout)["key"].startswith(KEY_PREFIX)

    server.ok("keys", "revoke", key_id, "--yes")
    assert server.json("keys", "show", key_id)["status"] == "revoked"
    again = server.cli("keys", "rotate", key_id)
    assert again.exit_code == 1 and "revoked" in again.stderr and "(HTTP 409)" in again.stderr
    server.ok("keys", "delete", key_id, "--yes")
    assert server.cli("keys", "show", key_id).exit_code == 1


def test_metadata_must_be_key_value(server: Server) -> None:
    result = server.cli("keys", "create", "--name", "x", "--metadata", "novalue")
    assert result.exit_code == 2 and "expected KEY=VALUE" in result.output


# -- saved configs -------------------------------------------------------------------------


def test_config_lifecycle(server: Server, tmp_path: Path) -> None:
    first = tmp_path / "fallback.yaml"
    first.write_text(
        "strategy:\n  mode: fallback\ntargets:\n  - provider: mock\n  - provider: openai\n"
    )
    created = server.ok("configs", "create", "--name", "Fallback", "--config", str(first))
    slug = created.stdout.split("saved config ", 1)[1].split(",")[0]
    assert slug.startswith("pc-") and f"x-portkey-config: {slug}" in created.stdout

    listed = server.ok("configs", "list").stdout
    assert slug in listed and "Fallback" in listed
    shown = server.ok("configs", "show", slug).stdout
    assert '"mode": "fallback"' in shown

    second = tmp_path / "single.json"
    second.write_text('{"provider": "mock"}')
    updated = server.ok("configs", "update", slug, "--config", str(second))
    assert "now at version" in updated.stdout
    assert server.json("configs", "show", slug)["config"] == {"provider": "mock"}
    versions = server.json("configs", "versions", slug)
    assert versions["total"] == 2 and versions["data"][0]["config"] == {"provider": "mock"}
    table = server.ok("configs", "versions", slug).stdout
    assert versions["data"][1]["version_id"] in table

    server.ok("configs", "delete", slug, "--yes")
    assert server.cli("configs", "show", slug).exit_code == 1


def test_the_server_refuses_a_config_naming_an_unknown_provider(
    server: Server, tmp_path: Path
) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"provider": "nope-ai"}')
    result = server.cli("configs", "create", "--name", "Bad", "--config", str(path))
    assert result.exit_code == 1 and "nope-ai" in result.stderr


def test_a_config_file_that_is_not_a_config(server: Server, tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- [2\n")
    result = server.cli("configs", "create", "--name", "Bad", "--config", str(path))
    assert result.exit_code == 2 and str(path) in result.output


# -- errors --------------------------------------------------------------------------------


def test_an_unreachable_server_is_named() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(main, ["virtual-keys", "list", "--url", url])
    assert result.exit_code == 1
    assert f"cannot reach portkey-mw at {url}:" in result.stderr
    assert "Traceback" not in result.output


def test_a_wrong_admin_key_is_the_servers_message(server: Server) -> None:
    wrong = "wrong-admin-key-" + "x" * 20
    for args in (["keys", "list"], ["configs", "list"], ["virtual-keys", "list"]):
        result = CliRunner().invoke(main, [*args, "--url", server.url, "--admin-key", wrong])
        assert result.exit_code == 1
        assert "the admin key is not valid (HTTP 401)" in result.stderr
        assert wrong not in result.output and "Traceback" not in result.output


def test_no_admin_key_says_how_to_give_one(server: Server) -> None:
    result = CliRunner().invoke(
        main, ["keys", "list", "--url", server.url], env={"PORTKEY_MW_ADMIN_KEY": None}
    )
    assert result.exit_code == 1 and "$PORTKEY_MW_ADMIN_KEY or --admin-key" in result.stderr


async def _plain_404(scope: Any, receive: Any, send: Any) -> None:
    """Another web server: plain-text answers."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send({"type": "http.response.start", "status": 404, "headers": []})
    await send({"type": "http.response.body", "body": b"Not Found"})


def test_a_url_that_is_not_portkey_mw() -> None:
    with ThreadedServer(_plain_404) as other:
        result = CliRunner().invoke(main, ["keys", "list", "--url", other.url])
    assert result.exit_code == 1
    assert f"{other.url} answered 404 without an admin API error" in result.stderr
    assert "is it portkey-mw's root URL" in result.stderr


def test_a_path_below_the_root_is_the_routers_404(server: Server) -> None:
    result = CliRunner().invoke(main, ["keys", "list", "--url", server.url + "/elsewhere"])
    assert result.exit_code == 1 and "no control-plane route" in result.stderr


def test_userinfo_in_the_url_is_never_printed() -> None:
    url = f"http://admin:{planted.USERINFO_PASSWORD}@127.0.0.1:{free_port()}"
    result = CliRunner().invoke(main, ["configs", "list", "--url", url])
    assert result.exit_code == 1 and planted.USERINFO_PASSWORD not in result.output


# -- the local store -----------------------------------------------------------------------


def test_local_store_mode_runs_the_admin_api_in_process(tmp_path: Path) -> None:
    """Without --url, the commands run the gateway's admin API in this process over the
    local store: whoever holds the data directory is the operator (no admin key needed)."""
    runner = CliRunner(
        env={
            "PORTKEY_MW_URL": None,
            "PORTKEY_MW_ADMIN_KEY": None,
            "PORTKEY_MW_DATABASE_URL": None,
            "PORTKEY_MW_DATA_DIR": str(tmp_path),
            "COLUMNS": "80",
        }
    )
    created = runner.invoke(
        main,
        ["virtual-keys", "create", "--name", "Local", "--provider", "openai", "--key-file", "-"],
        input=planted.OPENAI_KEY,
    )
    assert created.exit_code == 0, created.output
    assert "created virtual key local-" in created.stdout
    listed = runner.invoke(main, ["virtual-keys", "list"])
    assert listed.exit_code == 0, listed.output
    assert "local-" in listed.stdout and planted.OPENAI_KEY not in listed.output
    assert (tmp_path / "control.db").exists()


def test_the_lifespan_runner_reports_a_failed_start_without_a_traceback() -> None:
    import click
    from starlette.applications import Starlette

    from portkey_mw.cli._client import lifespan
    from portkey_mw.errors import InvalidConfig

    @contextlib.asynccontextmanager
    async def failing(app: Any) -> AsyncIterator[None]:
        raise InvalidConfig("the master key does not decrypt this store's vault")
        yield

    async def start() -> None:
        async with lifespan(Starlette(lifespan=failing)):
            raise AssertionError("the block must not run")

    with pytest.raises(click.ClickException) as caught:
        asyncio.run(start())
    assert caught.value.message == (
        "the local admin API did not start: the master key does not decrypt this store's vault"
    )


def test_the_lifespan_runner_hands_requests_the_lifespan_state() -> None:
    import httpx
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from portkey_mw.cli._client import lifespan

    events: list[str] = []

    @contextlib.asynccontextmanager
    async def state(app: Any) -> AsyncIterator[dict[str, str]]:
        events.append("started")
        yield {"store": "open"}
        events.append("stopped")

    async def show(request: Request) -> JSONResponse:
        return JSONResponse({"store": request.state.store})

    app = Starlette(routes=[Route("/", show)], lifespan=state)

    async def scenario() -> Any:
        async with lifespan(app) as served:
            transport = httpx.ASGITransport(app=served)
            async with httpx.AsyncClient(transport=transport, base_url="http://x") as client:
                return (await client.get("/")).json()

    assert asyncio.run(scenario()) == {"store": "open"}
    assert events == ["started", "stopped"]


async def _no_lifespan(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        raise RuntimeError("no lifespan here")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def test_the_lifespan_runner_serves_an_app_without_lifespan() -> None:
    import httpx

    from portkey_mw.cli._client import lifespan

    async def scenario() -> int:
        async with lifespan(_no_lifespan) as served:
            transport = httpx.ASGITransport(app=served)
            async with httpx.AsyncClient(transport=transport, base_url="http://x") as client:
                return (await client.get("/")).status_code

    assert asyncio.run(scenario()) == 200


# -- the store's own commands --------------------------------------------------------------


def test_db_upgrade_migrates_the_store_and_says_where(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    first = CliRunner().invoke(main, ["db", "upgrade", "--database-url", url])
    assert first.exit_code == 0, first.output
    assert "is at schema revision" in first.stdout and str(tmp_path) in first.stdout
    again = CliRunner().invoke(main, ["db", "upgrade", "--database-url", url])
    assert again.exit_code == 0 and again.stdout == first.stdout
    server_file = tmp_path / "portkey-mw.yaml"
    server_file.write_text(f"store:\n  url: {url}\n")
    from_file = CliRunner().invoke(
        main,
        ["db", "upgrade", "--server-file", str(server_file)],
        env={"PORTKEY_MW_DATABASE_URL": None},
    )
    assert from_file.exit_code == 0 and from_file.stdout == first.stdout


def test_vault_rotation_writes_the_new_key_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    env = {"PORTKEY_MW_DATA_DIR": str(tmp_path), "PORTKEY_MW_MASTER_KEY": None}
    assert (
        CliRunner().invoke(main, ["db", "upgrade", "--database-url", url], env=env).exit_code == 0
    )
    key_file = tmp_path / "master.key"
    before = key_file.read_text() if key_file.exists() else None
    result = CliRunner().invoke(
        main, ["vault", "rotate-master-key", "--database-url", url, "--yes"], env=env
    )
    assert result.exit_code == 0, result.output
    assert f"the new master key is in {key_file}" in result.stdout
    assert key_file.read_text() != before and key_file.read_text().strip() not in result.output


def test_vault_rotation_refuses_a_malformed_new_key(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["vault", "rotate-master-key", "--new-key-file", "-", "--yes"],
        input="not-a-key\n",
        env={"PORTKEY_MW_DATA_DIR": str(tmp_path)},
    )
    assert result.exit_code == 1 and "is not a master key" in result.stderr


# -- budget usage ----------------------------------------------------------------------------


def _usage_cli(*args: str, columns: int = 80) -> Result:
    """``portkey-mw ARGS`` (admin key from the environment), ``columns`` wide."""
    result = CliRunner().invoke(main, list(args), env={"COLUMNS": str(columns)})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert planted.ADMIN_KEY not in result.output and "Traceback" not in result.output
    if "--json" not in args:
        assert all(len(line) <= columns for line in result.stdout.splitlines()), result.stdout
    return result


def _ok(*args: str, columns: int = 80) -> Result:
    result = _usage_cli(*args, columns=columns)
    assert result.exit_code == 0, result.output
    return result


def _rows(text: str) -> list[list[str]]:
    """A wide table's data rows, cut at runs of two or more spaces."""
    lines = [line for line in text.splitlines()[2:] if line.strip()]
    return [re.split(r"\s{2,}", line.strip()) for line in lines]


def _sections(text: str) -> dict[str, list[list[str]]]:
    """``budgets list``: each titled table's rows."""
    return {
        part.splitlines()[0]: _rows("\n".join(part.splitlines()[1:]))
        for part in text.strip("\n").split("\n\n")
    }


def test_usage_commands_against_a_running_gateway(
    tmp_path: Path, fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    with run_gateway(tmp_path, fake, monkeypatch) as gw:
        url = gw.root
        key_id = api_key(gw, name="ci", usage_limits=MONTHLY_TOKENS, rate_limits=RATE_LIMITS)
        api_key(gw, name="no-limits")
        slug = virtual_key(gw, fake, "team-openai", usage_limits={"credit_limit": 50})
        charge(gw, f"api_key:{key_id}", MONTHLY_TOKENS, 40)

        def used(ref: str) -> float:
            answer = _ok("keys", "usage", ref, "--url", url, "--json").stdout
            return float(orjson.loads(answer)["budget"]["used"])

        wide = _ok("keys", "usage", "--url", url, columns=200)
        assert wide.stdout.split("\n")[0].split() == [
            "name", "budget", "used", "next", "reset", "rate", "limits"
        ]  # fmt: skip
        assert _rows(wide.stdout) == [
            ["ci", "40 / 100 tokens monthly", "40%", "2030-02-01 00:00",
             "60 rpm, 100000 tokens/min"]
        ]  # fmt: skip
        assert "note:" not in wide.stderr  # --url: the live counters
        narrow = _ok("keys", "usage", "--url", url)  # 80 columns, checked by _usage_cli
        assert "40%" in narrow.stdout and "2030-02-01 00:00" in narrow.stdout
        listed = orjson.loads(_ok("keys", "usage", "--url", url, "--json").stdout)
        assert [item["ref"] for item in listed["data"]] == [key_id] and listed["total"] == 1

        one = _ok("keys", "usage", key_id, "--url", url).stdout
        lines = {line.split("  ")[0]: line for line in one.splitlines()}
        assert "40 / 100 tokens monthly" in lines["budget"]
        assert "40%" in lines["used"] and "60 tokens" in lines["remaining"]
        assert "2030-01-01 00:00 to 2030-02-01 00:00" in lines["period"]
        assert "60 rpm, 100000 tokens/min" in lines["rate limits"]
        assert "memory" in lines["backend"]
        assert used(key_id) == 40

        vks = _ok("virtual-keys", "usage", "--url", url, columns=200).stdout
        vk_rows = _rows(vks)
        assert vk_rows == [["team-openai", "0.00 / 50 USD", "0%", "never", "-"]]
        shown = _ok("virtual-keys", "usage", slug, "--url", url).stdout
        assert "all time (no periodic reset)" in shown and "0.00 / 50 USD" in shown

        everything = _sections(_ok("budgets", "list", "--url", url, columns=200).stdout)
        assert list(everything) == ["API keys", "Virtual keys", "Metadata budgets"]
        assert [row[0] for row in everything["API keys"]] == ["ci"]
        assert everything["Virtual keys"] == vk_rows
        assert everything["Metadata budgets"] == [
            ["search", "0.00 / 200 USD weekly", "0%", "2030-01-21 00:00", "-"],
            ["team=ads", "-", "-", "-", "10 rph"],
        ]
        _ok("budgets", "list", "--url", url)  # fits 80 columns
        data = orjson.loads(_ok("budgets", "list", "--url", url, "--json").stdout)["data"]
        assert [item["kind"] for item in data] == [
            "api_key", "virtual_key", "metadata", "metadata"
        ]  # fmt: skip

        done = _ok("budgets", "reset", "--api-key", key_id, "--url", url).stdout
        assert "reset the budget of API key 'ci': 0 / 100 tokens monthly" in done
        assert "next reset: 2030-02-01 00:00" in done
        assert used(key_id) == 0
        answer = orjson.loads(
            _ok("budgets", "reset", "--metadata", "search", "--url", url, "--json").stdout
        )
        assert answer["subject"] == "metadata:team=search"

        for args, status, said in (
            (("budgets", "reset"), 2, "give one of --api-key ID"),
            (("budgets", "reset", "--api-key", "a", "--metadata", "b"), 2, "give one of"),
            (("budgets", "reset", "--metadata", "nope"), 1, "no metadata budget 'nope'"),
            (("budgets", "reset", "--virtual-key", slug[:-1]), 1, "(HTTP 404)"),
            (("budgets", "reset", "--metadata", "team=ads"), 1, "has no budget"),
            (("keys", "usage", "nope-id"), 1, "no API key 'nope-id' (HTTP 404)"),
            (("virtual-keys", "usage", "nope"), 1, "no virtual key 'nope' (HTTP 404)"),
        ):
            result = _usage_cli(*args, "--url", url)
            assert result.exit_code == status, result.output
            assert said in result.output, result.output


def test_usage_commands_on_the_local_store(
    tmp_path: Path, fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --url the commands run a gateway in process over the store: with the
    in-process backend it shows the usage the serving gateway last wrote there, and says
    so; a reset is written to the store."""
    budget = {"type": "tokens", "credit_limit": 100}  # no periods: any clock agrees
    with run_gateway(tmp_path, fake, monkeypatch, start=None) as gw:
        key_id = api_key(gw, name="local", usage_limits=budget)
        charge(gw, f"api_key:{key_id}", budget, 40)
    # the serving gateway has stopped, writing its usage to the store
    monkeypatch.delenv("PORTKEY_MW_URL", raising=False)
    server = str(tmp_path / "portkey-mw.yaml")
    listed = _ok("budgets", "list", "--server-file", server, columns=200)
    sections = _sections(listed.stdout)
    assert list(sections) == ["API keys", "Metadata budgets"]
    rows = sections["API keys"]
    assert [row[0] for row in rows] == ["local"]
    assert "note: without --url this is the usage a running gateway last wrote" in (
        " ".join(listed.stderr.split())
    )
    one = orjson.loads(_ok("keys", "usage", key_id, "--server-file", server, "--json").stdout)
    assert one["budget"]["used"] == 40
    assert rows[0][1:3] == ["40 / 100 tokens", "40%"]
    reset = _ok("budgets", "reset", "--api-key", key_id, "--server-file", server)
    assert "reset the budget of API key 'local': 0 / 100 tokens" in reset.stdout
    assert "the reset went to the local store" in " ".join(reset.stderr.split())
    with run_gateway(tmp_path, fake, monkeypatch, start=None) as gw:
        charge(gw, f"api_key:{key_id}", budget, 5)
        answer = httpx.get(
            f"{gw.base_url}/api-keys/{key_id}/usage",
            headers={"x-portkey-api-key": planted.ADMIN_KEY},
            timeout=10,
        )
        assert answer.json()["budget"]["used"] == 5  # the reset survived the restart
