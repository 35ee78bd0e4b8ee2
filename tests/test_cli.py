"""The ``portkey-mw`` command: demo, serve options, the listings and validation."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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


def test_serve_rejects_an_invalid_server_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("server:\n  port: -1\n")
    result = CliRunner().invoke(main, ["serve", "--config", str(path)])
    assert result.exit_code != 0
    assert "server.port" in result.output


# -- what a new user trips on -------------------------------------------------------------


def lines_of(*args: str, columns: str | None = "80") -> list[str]:
    """The output lines of ``portkey-mw ARGS`` (not a terminal), every one within 80."""
    result = CliRunner().invoke(main, list(args), env={"COLUMNS": columns})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    too_wide = [line for line in lines if len(line) > 80]
    assert too_wide == [], too_wide
    return lines


def first_cells(lines: list[str]) -> set[str]:
    return {line.split()[0] for line in lines if line.strip() and not line.startswith(" ")}


def test_providers_fit_80_columns_with_every_id_whole() -> None:
    for columns in ("80", None):  # $COLUMNS, or output that is not a terminal
        ids = first_cells(lines_of("providers", columns=columns))
        assert {"openai", "openrouter", "azure-openai", "perplexity-ai", "mock"} <= ids


def test_providers_json_lists_endpoints_and_features() -> None:
    import orjson

    result = CliRunner().invoke(main, ["providers", "--json"])
    rows = {row["id"]: row for row in orjson.loads(result.output)}
    assert rows["openai"]["plugin"] == "portkey-mw.openai"
    assert "embeddings" in rows["openai"]["endpoints"] and "stream" in rows["openai"]["features"]


def test_plugins_show_what_each_registers() -> None:
    text = "\n".join(lines_of("plugins"))
    block = text.split("portkey-mw.default-guardrails (portkey-mw ", 1)[1].split("\n\n", 1)[0]
    assert "guardrails" in block and "default.requiredMetadataKeys," in block.split()
    assert "cache backends  memory" in text and "log sinks  structlog" in text
    assert "semantic indexes  qdrant" in text
    example = text.split("portkey-mw-example-plugin (0.1.0)", 1)[1].split("\n\n", 1)[0]
    assert "gateway_startup, on_request" in example


def test_plugins_json_lists_every_kind() -> None:
    import orjson

    result = CliRunner().invoke(main, ["plugins", "--json"])
    rows = {row["name"]: row for row in orjson.loads(result.output)}
    assert "default.pii" in rows["portkey-mw.default-guardrails"]["guardrails"]
    assert rows["portkey-mw.memory-cache"]["cache_backends"] == ["memory"]
    assert rows["portkey-mw.qdrant-cache"]["semantic_indexes"] == ["qdrant"]
    assert rows["portkey-mw.semantic-verifiers"]["semantic_verifiers"] == [
        "antonyms",
        "direction",
        "entities",
        "negation",
        "numbers",
        "time",
    ]
    assert rows["portkey-mw.structlog-sink"]["log_sinks"] == ["structlog"]


def test_guardrails_lists_ids_by_plugin_with_a_description() -> None:
    lines = lines_of("guardrails")
    by_id = {line.split()[0]: line for line in lines if line.startswith("  ")}
    assert "default.pii" in by_id and "example.bannedTopics" in by_id
    assert "Finds personal data" in by_id["default.pii"]
    groups = [line.strip() for line in lines if line.strip().endswith(":")]
    assert groups == [
        "portkey-mw-example-guardrail:",
        "portkey-mw.default-guardrails:",
        "portkey-mw.presidio:",
    ]
    import orjson

    result = CliRunner().invoke(main, ["guardrails", "--json"])
    rows = {row["id"]: row for row in orjson.loads(result.output)}
    assert rows["example.bannedTopics"]["plugin"] == "portkey-mw-example-guardrail"
    assert rows["default.jsonSchema"]["description"] == (
        "JSON in the answer validates against schema."
    )


def test_config_validate_names_an_unknown_provider(tmp_path: Path) -> None:
    path = tmp_path / "routing.json"
    path.write_text('{"strategy": {"mode": "fallback"}, "targets": [{"provider": "nope-ai"}]}')
    result = CliRunner().invoke(main, ["config", "validate", str(path)])
    assert result.exit_code == 1
    assert "unknown provider 'nope-ai'" in result.output and str(path) in result.output


def test_config_validate_names_an_unknown_guardrail(tmp_path: Path) -> None:
    path = tmp_path / "routing.json"
    path.write_text('{"provider": "openai", "input_guardrails": [{"nope.check": {}}]}')
    result = CliRunner().invoke(main, ["config", "validate", str(path)])
    assert result.exit_code == 1 and "nope.check" in result.output


def test_config_validate_knows_the_providers_of_a_server_file(tmp_path: Path) -> None:
    path = tmp_path / "routing.json"
    path.write_text('{"provider": "mock"}')
    assert CliRunner().invoke(main, ["config", "validate", str(path)]).exit_code == 0
    server = tmp_path / "portkey-mw.yaml"
    server.write_text("mock: false\n")
    args = ["config", "validate", str(path), "--server-file", str(server)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and "unknown provider 'mock'" in result.output


def test_yaml_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "portkey-mw.yaml"
    path.write_text("server:\n  port: [1\nmock: true\n")
    result = CliRunner().invoke(main, ["config", "validate", str(path)])
    assert result.exit_code == 1
    assert f'in "{path}", line 2' in result.output and "<unicode string>" not in result.output
