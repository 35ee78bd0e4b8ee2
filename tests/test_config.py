"""Config models, the shipped JSON Schema, validation caching and ``portkey-mw config``."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from portkey_mw.cli import main
from portkey_mw.config import resolve
from portkey_mw.config.jsonschema import SCHEMA_PATH, config_json_schema
from portkey_mw.config.resolve import ConfigResolver, bearer_token, validate_config
from portkey_mw.config.server import ServerSettings
from portkey_mw.errors import GatewayError, InvalidConfig
from tests.conftest import in_process

FALLBACK = {
    "strategy": {"mode": "fallback", "on_status_codes": [429, 503]},
    "retry": {"attempts": 2},
    "override_params": {"temperature": 0},
    "targets": [
        {"provider": "openai", "api_key": "sk-a", "override_params": {"model": "gpt-4o"}},
        {
            "strategy": {"mode": "loadbalance"},
            "targets": [
                {"provider": "groq", "api_key": "gsk", "weight": 0.7},
                {"provider": "mock", "weight": 0.3},
            ],
        },
    ],
}


def test_shipped_schema_matches_models() -> None:
    shipped = orjson.loads(SCHEMA_PATH.read_bytes())
    assert shipped == config_json_schema(), (
        "config.schema.json is stale: run `portkey-mw config schema > "
        "portkey_mw/config/config.schema.json`"
    )


def test_schema_covers_portkey_keys() -> None:
    target = config_json_schema()["$defs"]["Target"]["properties"]
    for key in (
        "strategy",
        "targets",
        "provider",
        "api_key",
        "override_params",
        "retry",
        "cache",
        "request_timeout",
        "custom_host",
        "forward_headers",
        "before_request_hooks",
        "after_request_hooks",
        "input_guardrails",
        "output_guardrails",
        "weight",
        "name",
    ):
        assert key in target, key


def test_nested_config_validates() -> None:
    config = validate_config(FALLBACK)
    assert config.strategy is not None and config.strategy.mode == "fallback"
    assert config.targets[1].targets[0].weight == 0.7


@pytest.mark.parametrize(
    ("config", "mentions"),
    [
        ({"strategy": {"mode": "random"}, "targets": [{"provider": "openai"}]}, "strategy.mode"),
        (
            {
                "strategy": {"mode": "loadbalance"},
                "targets": [{"provider": "openai", "weight": -1}],
            },
            "targets.0.weight",
        ),
        ({"strategy": {"mode": "fallback"}, "targets": []}, "targets"),
        (
            {
                "strategy": {"mode": "loadbalance"},
                "targets": [{"provider": "openai", "weight": 0}, {"provider": "groq", "weight": 0}],
            },
            "weight",
        ),
        ({"provider": "openai", "retry": {"attempts": 99}}, "retry.attempts"),
        ({"provider": "openai", "cache": {"mode": "fuzzy"}}, "cache.mode"),
        ({"provider": "openai", "request_timeout": -5}, "request_timeout"),
        ([1, 2], "JSON object"),
    ],
)
def test_invalid_configs_name_the_field(config: object, mentions: str) -> None:
    with pytest.raises(InvalidConfig) as info:
        validate_config(config)
    assert info.value.status == 400
    assert mentions in info.value.message


async def test_inline_configs_are_validated_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    original = resolve.validate_config

    def counting(raw: object, source: str = "config") -> object:
        calls.append(raw)
        return original(raw, source)

    monkeypatch.setattr(resolve, "validate_config", counting)
    resolver = ConfigResolver(ServerSettings(), {"openai", "groq", "mock"})
    headers = {"x-portkey-config": orjson.dumps(FALLBACK).decode()}
    first = await resolver.resolve(headers)
    for _ in range(5):
        assert await resolver.resolve(headers) is first
    assert len(calls) == 1


async def test_config_without_provider_takes_the_header_provider() -> None:
    resolver = ConfigResolver(ServerSettings(), {"openai", "groq"})
    config = '{"retry": {"attempts": 1}}'
    plan_a = await resolver.resolve({"x-portkey-config": config, "x-portkey-provider": "openai"})
    plan_b = await resolver.resolve({"x-portkey-config": config, "x-portkey-provider": "groq"})
    assert plan_a.provider == "openai"  # type: ignore[union-attr]
    assert plan_b.provider == "groq"  # type: ignore[union-attr]


def test_sdk_placeholder_key_means_no_key() -> None:
    assert bearer_token({"authorization": "Bearer OPENAI_API_KEY"}) is None
    assert bearer_token({"authorization": "Bearer sk-real"}) == "sk-real"


def test_server_file_rejects_unknown_keys_and_providers(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("server:\n  prot: 80\n")
    with pytest.raises(InvalidConfig, match=r"server\.prot"):
        ServerSettings.from_file(bad)
    settings = ServerSettings.from_mapping({"configs": {"x": {"provider": "nope-ai"}}})
    with pytest.raises(GatewayError, match="nope-ai"):
        ConfigResolver(settings, {"openai"})


# -- portkey-mw config validate / schema ---------------------------------------------------


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_cli_validates_a_json_config(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_bytes(orjson.dumps(FALLBACK))
    assert run("config", "validate", str(good)) == (0, f"{good}: valid\n")

    bad = tmp_path / "bad.json"
    bad.write_bytes(orjson.dumps({"strategy": {"mode": "roulette"}, "targets": []}))
    code, output = run("config", "validate", str(bad))
    assert code == 1 and "strategy.mode" in output

    broken = tmp_path / "broken.json"
    broken.write_text("{")
    code, output = run("config", "validate", str(broken))
    assert code == 1 and "not valid JSON" in output


def test_cli_validates_a_server_file(tmp_path: Path) -> None:
    good = tmp_path / "portkey-mw.yaml"
    good.write_text(
        "server:\n  port: 9000\nmock: true\nconfigs:\n  main:\n    provider: mock\n"
        "default_config: main\n"
    )
    assert run("config", "validate", str(good))[0] == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("default_config: missing\n")
    code, output = run("config", "validate", str(bad))
    assert code == 1 and "missing" in output


def test_cli_prints_the_schema() -> None:
    code, output = run("config", "schema")
    assert code == 0 and orjson.loads(output) == config_json_schema()


def test_inline_default_config_providers_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "portkey-mw.yaml"
    path.write_text("default_config:\n  provider: nope-ai\n")
    code, output = run("config", "validate", str(path))
    assert code == 1 and "nope-ai" in output and "default_config" in output


def test_serve_refuses_unknown_providers_before_starting(tmp_path: Path) -> None:
    path = tmp_path / "portkey-mw.yaml"
    path.write_text("configs:\n  main:\n    provider: nope-ai\n")
    code, output = run("serve", "--config", str(path))
    assert code != 0 and "nope-ai" in output


@pytest.mark.parametrize(
    ("entry", "mentions"),
    [
        ({"paths": "oops"}, "paths"),
        ({"auth": "basic"}, "auth"),
        ({"endpoints": ["chat"]}, "endpoints.0"),
        ({"base_url": "http://x", "colour": "red"}, "colour"),
    ],
)
def test_bad_extra_provider_entries_are_clear_errors(
    entry: dict[str, object], mentions: str
) -> None:
    from portkey_mw import Gateway

    settings = ServerSettings.from_mapping({"providers": {"my-llm": entry}})
    with pytest.raises(InvalidConfig, match=mentions) as info:
        Gateway(settings)
    assert "my-llm" in info.value.message


def test_extra_provider_described_as_data() -> None:
    from portkey_mw import Gateway

    settings = ServerSettings.from_mapping(
        {
            "providers": {
                "my-llm": {
                    "base_url": "http://127.0.0.1:9/v1",
                    "endpoints": ["chat_completions"],
                    "auth": "none",
                }
            }
        }
    )
    provider = Gateway(settings).providers["my-llm"]
    # (pass-through comes with a base URL that does not name the model)
    assert sorted(e.value for e in provider.endpoints) == ["chat_completions", "proxy"]


def test_server_request_timeout_is_the_default_per_attempt(tmp_path: Path) -> None:
    import asyncio

    import httpx

    from portkey_mw import Gateway

    settings = ServerSettings.from_mapping(
        {
            "server": {"request_timeout": 100},
            "mock": True,
            "configs": {"slow": {"provider": "mock", "mock_latency_ms": 2000}},
        }
    )

    async def scenario() -> httpx.Response:
        async with in_process(Gateway(settings)) as client:
            return await client.post(
                "/v1/chat/completions",
                json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
                headers={"x-portkey-config": "slow"},
            )

    response = asyncio.run(scenario())
    assert response.status_code == 408, response.text


@pytest.mark.parametrize(
    ("query", "mentions"),
    [
        ({"metadata.tier": {"$like": "gold"}}, "unknown operator '$like'"),
        ({"$xor": [{"metadata.a": 1}]}, "unknown operator '$xor'"),
        ({"params.model": {"$regex": "(unclosed"}}, "does not compile"),
        ({"$and": {"metadata.a": 1}}, "$and takes a list of queries"),
        ({"metadata.team": {"$in": "research"}}, "$in takes a list of values"),
    ],
)
def test_bad_conditions_name_the_rule(query: dict[str, object], mentions: str) -> None:
    config = {
        "strategy": {"mode": "conditional", "conditions": [{"query": query, "then": "a"}]},
        "targets": [{"provider": "openai", "name": "a"}],
    }
    with pytest.raises(InvalidConfig) as info:
        validate_config(config)
    assert mentions in info.value.message
    assert "strategy.conditions.0.query" in info.value.message


def test_server_side_configs_are_checked_at_load(tmp_path: Path) -> None:
    path = tmp_path / "portkey-mw.yaml"
    path.write_text(
        "configs:\n"
        "  lb:\n"
        "    strategy: {mode: loadbalance}\n"
        "    targets: [{provider: openai, weight: 0}, {provider: groq, weight: 0}]\n"
    )
    code, output = run("config", "validate", str(path))
    assert code == 1 and "configs.lb" in output and "weight > 0" in output
