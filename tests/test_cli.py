"""The ``portkey-mw`` command: demo, serve options."""

from __future__ import annotations

import os
import subprocess
import sys

from click.testing import CliRunner

from portkey_mw.cli import main
from tests.conftest import free_port


def test_demo_runs_and_exits_by_itself() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "portkey_mw", "demo", "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},  # one line per request, unwrapped
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "every request behaved as expected" in out
    # The control plane: a virtual key and an API key made with the portkey-ai SDK, in use.
    assert "virtual key mock-prod-" in out and "API key pk-mw-" in out
    assert "client got: 'Mock reply to: Which key did you use?'" in out
    assert "client got 401" in out
    assert "gateway log 200 POST /v1/chat/completions mock config " in out
    assert "client got 503" in out and "client got 400" in out
    assert "'answered by the backup' (x-portkey-last-used-option-index:" in out
    assert "config.targets[1] (after 503)" in out
    assert "20 requests over weights 70/30: A " in out
    assert "x-portkey-cache-status: MISS" in out and "x-portkey-cache-status: HIT" in out
    assert "x-portkey-cache-status: SEMANTIC_HIT" in out and "cache=SEMANTIC_HIT saved=$" in out
    assert "Mock reply to: My e-mail is <EMAIL_ADDRESS>" in out  # redacted before the provider
    assert "client got 446" in out and "failed check default.promptInjection" in out


def test_serve_help_lists_its_options() -> None:
    result = CliRunner().invoke(main, ["serve", "--help"])
    assert result.exit_code == 0
    for option in ("--host", "--port", "--config", "--workers"):
        assert option in result.output


def test_serve_rejects_an_invalid_server_file(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "bad.yaml"
    path.write_text("server:\n  port: -1\n")
    result = CliRunner().invoke(main, ["serve", "--config", str(path)])
    assert result.exit_code != 0
    assert "server.port" in result.output
