"""The Presidio guardrail plugin, with real Presidio on a blank spaCy pipeline (its pattern
recognizers; named entities need a trained spaCy model, which is not downloaded here)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from portkey_mw_plugins.presidio import presidio_installed

from portkey_mw import Gateway, ServerSettings
from tests.conftest import in_process


@pytest.fixture(scope="module")
def blank_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not presidio_installed():
        if os.environ.get("CI") == "true":
            pytest.fail("presidio is not installed: the test extra installs it")
        pytest.skip('needs pip install "portkey-mw[presidio]"')
    import spacy

    path = tmp_path_factory.mktemp("spacy") / "blank-en"
    spacy.blank("en").to_disk(path)
    return path


def ask(model: Path, text: str, guardrail: dict[str, Any]) -> httpx.Response:
    settings = ServerSettings.from_mapping(
        {
            "mock": True,
            "plugins": {"settings": {"portkey-mw.presidio": {"spacy_model": str(model)}}},
        }
    )
    config = {"provider": "mock", "input_guardrails": [guardrail]}

    async def scenario() -> httpx.Response:
        async with in_process(Gateway(settings)) as client:
            return await client.post(
                "/v1/chat/completions",
                json={"model": "mock-gpt", "messages": [{"role": "user", "content": text}]},
                headers={"x-portkey-config": orjson.dumps(config).decode()},
            )

    return asyncio.run(scenario())


def test_presidio_redacts_before_the_provider(blank_model: Path) -> None:
    reply = ask(
        blank_model,
        "write to jane.doe@example.com",
        {"presidio.pii": {"entities": ["EMAIL_ADDRESS"], "redact": True}},
    )
    assert reply.status_code == 200
    assert (
        reply.json()["choices"][0]["message"]["content"]
        == "Mock reply to: write to <EMAIL_ADDRESS>"
    )


def test_presidio_denies_what_it_finds(blank_model: Path) -> None:
    guard = {"presidio.pii": {"entities": ["CREDIT_CARD"]}, "deny": True}
    denied = ask(blank_model, "card 4111 1111 1111 1111", guard)
    assert denied.status_code == 446
    check = denied.json()["hook_results"]["before_request_hooks"][0]["checks"][0]
    assert check["data"]["detectedEntities"] == ["CREDIT_CARD"]
    assert ask(blank_model, "nothing to see", guard).status_code == 200


def test_bad_presidio_parameters_are_a_400(blank_model: Path) -> None:
    reply = ask(blank_model, "x", {"presidio.pii": {"score_threshold": 3}})
    assert reply.status_code == 400
    assert "score_threshold" in reply.json()["error"]["message"]
