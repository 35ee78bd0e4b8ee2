"""Verification before a semantic hit: the first-party verifiers one by one, and the core
that runs them (a hit needs similarity *and* verification; a verifier that fails or hangs
is a miss; configs name verifiers that exist)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
from fastapi import FastAPI
from portkey_mw_plugins.semantic_verifiers import FIRST_PARTY
from portkey_mw_plugins.semantic_verifiers.analysis import analyse
from portkey_mw_plugins.semantic_verifiers.lexicon import lemmas, opposed

from portkey_mw import Gateway, SemanticVerifier, ServerSettings, hookimpl
from portkey_mw.errors import InvalidConfig
from portkey_mw.plugin import PluginManager
from tests.conftest import RunningGateway, ThreadedServer, server_file
from tests.fake_upstream import FakeUpstream

VERIFIERS = {cls.name: cls() for cls in FIRST_PARTY}

#: verifier -> pairs it must veto, and paraphrases it must let through
CASES: dict[str, tuple[list[tuple[str, str]], list[tuple[str, str]]]] = {
    "numbers": (
        [
            ("Book a table for 4 people", "Book a table for 5 people"),
            ("How many ounces are in a cup?", "How many grams are in a cup?"),
            ("What is 100 USD in yen?", "What is 100 EUR in yen?"),
            ("Do you have size 9 in these boots?", "Do you have size 10 in these boots?"),
            ("I need three tickets", "I need 4 tickets"),
        ],
        [
            ("I need three tickets", "I need 3 tickets"),
            ("How long does shipping take?", "How many days does shipping take?"),
            ("What is $100 in euros?", "What is 100 dollars in euros?"),
            ("How many days are in a leap year?", "How many days does a leap year have?"),
        ],
    ),
    "negation": (
        [
            ("What foods are safe during pregnancy?", "What foods are not safe during pregnancy?"),
            ("Why does my laptop charge?", "Why doesn't my laptop charge?"),
            ("Which plans include support?", "Which plans dont include support?"),
        ],
        [
            ("Why doesn't my laptop charge?", "Why is my laptop not charging?"),
            ("How do I reset my password?", "How can I reset my password?"),
        ],
    ),
    "direction": (
        [
            ("convert 3 gigabytes to megabytes", "convert 3 megabytes to gigabytes"),
            ("flights from Denver to Boston", "flights from Boston to Denver"),
            ("Is a cat bigger than a dog?", "Is a dog bigger than a cat?"),
            ("USD to EUR exchange rate", "EUR to USD exchange rate"),
        ],
        [
            (
                "How do I get to the airport from the hotel?",
                "How do I get from the hotel to the airport?",
            ),
            ("Convert 5 km to miles", "Convert 5 km into miles"),
            ("Translate 'thank you' into French", "How do you say 'thank you' in French?"),
        ],
    ),
    "time": (
        [
            ("What was the weather yesterday?", "What will the weather be tomorrow?"),
            ("Are you open on Sunday?", "Are you open on Monday?"),
            ("What were my sales last month?", "What are my sales next month?"),
            ("When did the sale start?", "When will the sale start?"),
        ],
        [
            ("Are you open on Sundays?", "Do you open on Sunday?"),
            ("When was the Eiffel Tower built?", "In what year was the Eiffel Tower constructed?"),
        ],
    ),
    "antonyms": (
        [
            ("Is the museum open on Good Friday?", "Is the museum closed on Good Friday?"),
            ("How do I turn on dark mode?", "How do I turn off dark mode?"),
            ("Should I eat before a run?", "Should I eat after a run?"),
            ("How do I increase the font size?", "How do I decrease the font size?"),
            ("How do I log in?", "How do I log out?"),
            ("Is it safe to fly while pregnant?", "Is it unsafe to fly while pregnant?"),
        ],
        [
            ("What are your opening hours?", "When are you open?"),
            ("How do I increase the font size?", "How can I make the font size bigger?"),
        ],
    ),
    "entities": (
        [
            ("What is the capital of France?", "What is the capital of Germany?"),
            ("How do I install numpy?", "How do I install pandas?"),
            ("Who painted the Mona Lisa?", "Who painted The Starry Night?"),
            ("Translate 'good morning' into Spanish", "Translate 'good night' into Spanish"),
            ("Is the iPhone 15 waterproof?", "Is the Pixel 8 waterproof?"),
        ],
        [
            ("What is the capital of France?", "whats the capital of frnace"),
            ("How do I install numpy?", "how can i instal numpy"),
            ("Who wrote Pride and Prejudice?", "Who is the author of Pride and Prejudice?"),
        ],
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_verifier_vetoes_its_kind_and_passes_paraphrases(name: str) -> None:
    verifier = VERIFIERS[name]
    vetoes, passes = CASES[name]
    for new, old in vetoes:
        for a, b in ((new, old), (old, new)):  # whichever of the two was cached
            assert not asyncio.run(verifier.verify(a, b)), f"{name} let {a!r} / {b!r} through"
    for new, old in passes:
        for a, b in ((new, old), (old, new)):
            assert asyncio.run(verifier.verify(a, b)), f"{name} vetoed {a!r} / {b!r}"


def test_every_verifier_lets_every_listed_paraphrase_through() -> None:
    """A paraphrase listed for one verifier is no veto for the others either."""
    for _, passes in CASES.values():
        for new, old in passes:
            vetoed = [n for n, v in VERIFIERS.items() if not asyncio.run(v.verify(new, old))]
            assert not vetoed, f"{vetoed} vetoed {new!r} / {old!r}"


def test_the_lexicon_is_wordnet() -> None:
    assert {"close", "closed"} <= lemmas("closed") and "mouse" in lemmas("mice")
    assert opposed("open", "closed") and opposed("increase", "decrease")
    assert opposed("safe", "unsafe")  # a negating prefix on a word WordNet knows
    assert not opposed("open", "museum")
    assert "france" in analyse("what is the capital of france").entities  # WordNet's names
    licence = Path(__file__).parent.parent / "plugins/semantic_verifiers/data/WORDNET-LICENSE"
    assert "Princeton University" in licence.read_text(encoding="utf-8")


# -- the core: verification in the lookup -------------------------------------------------


class Slow(SemanticVerifier):
    name = "slow"

    async def verify(self, question: str, cached: str) -> bool:
        await asyncio.sleep(3600)
        return True


class Broken(SemanticVerifier):
    name = "broken"

    async def verify(self, question: str, cached: str) -> bool:
        raise RuntimeError("the judge is down")


class TestVerifiers:
    @hookimpl
    def register_semantic_verifiers(self, register: Any) -> None:
        register(Slow())
        register(Broken())


pytestmark = pytest.mark.usefixtures("needs_embedding_model")


@pytest.fixture(scope="module")
def gateway(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    path = server_file(
        tmp_path_factory.mktemp("verifiers"),
        upstream_server,
        configs={"semantic": {"provider": "openai", "cache": {"mode": "semantic"}}},
        cache={"semantic_timeout": 2.0},
    )
    plugins = PluginManager()
    plugins.load_entry_points()
    plugins.register(TestVerifiers(), "test-verifiers")
    gw = Gateway(config_file=path, plugins=plugins)
    app = FastAPI(lifespan=gw.lifespan)
    app.mount("/llm", gw)
    with ThreadedServer(app) as server:
        yield RunningGateway("mounted", server.url + "/llm", server.url, app=gw)


def ask(
    gateway: RunningGateway, fake: FakeUpstream, namespace: str, question: str, **cache: Any
) -> str:
    config = {
        "provider": "openai",
        "custom_host": fake.base_url,
        "cache": {"mode": "semantic", "max_age": 60, **cache},
    }
    client = openai.OpenAI(
        base_url=gateway.base_url,
        api_key="sk-verify",
        max_retries=0,
        default_headers={
            "x-portkey-config": orjson.dumps(config).decode(),
            "x-portkey-cache-namespace": namespace,
        },
    )
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": question}]
    )
    gateway.settle()
    client.close()
    return raw.headers["x-portkey-cache-status"]


def test_a_hit_needs_similarity_and_verification(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    first, swapped = (
        "Flights from Denver to Boston on Friday",
        "Flights from Boston to Denver on Friday",
    )
    assert ask(gateway, fake, "both", first) == "MISS"
    # Similar enough for a hit on similarity alone...
    assert ask(gateway, fake, "both", swapped, verifiers=[]) == "SEMANTIC_HIT"
    # ...and vetoed by the default verifiers (the direction is swapped).
    assert ask(gateway, fake, "both", swapped) == "MISS"
    # A paraphrase passes both.
    assert ask(gateway, fake, "both", "flights from Denver to Boston on friday?") in {
        "SEMANTIC_HIT"
    }
    # Verification alone is not enough: an unrelated question fails the similarity.
    assert ask(gateway, fake, "both", "What is the capital of France?") == "MISS"


def test_the_best_candidate_that_passes_is_served(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    # The closest entry is vetoed (closed vs open); a farther one that passes is served.
    assert ask(gateway, fake, "order", "Is the museum closed on Good Friday?") == "MISS"
    assert ask(gateway, fake, "order", "Is the museum open on Good Friday?") == "MISS"
    fake.reset()
    assert (
        ask(gateway, fake, "order", "Is the museum open on Good Friday, please?") == "SEMANTIC_HIT"
    )
    assert not fake.requests


def test_a_slow_verifier_is_a_miss_within_the_timeout(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    assert ask(gateway, fake, "slow", "How do I reset my password?", verifiers=["slow"]) == "MISS"
    fake.reset()
    # semantic_timeout is 2 s: the request is answered (by the provider), not held for an hour.
    status = ask(gateway, fake, "slow", "How can I reset my password?", verifiers=["slow"])
    assert status == "MISS" and len(fake.requests) == 1


def test_a_verifier_that_raises_is_a_miss(gateway: RunningGateway, fake: FakeUpstream) -> None:
    assert ask(gateway, fake, "broken", "How do I cancel my order?", verifiers=["broken"]) == "MISS"
    fake.reset()
    status = ask(gateway, fake, "broken", "How can I cancel my order?", verifiers=["broken"])
    assert status == "MISS" and len(fake.requests) == 1
    # The same entry is a hit with a verifier that works.
    assert (
        ask(gateway, fake, "broken", "How could I cancel my order?", verifiers=["numbers"])
        == "SEMANTIC_HIT"
    )


def test_an_unknown_verifier_in_a_config_is_a_400_naming_it(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    config = {"provider": "openai", "cache": {"mode": "semantic", "verifiers": ["numbers", "nope"]}}
    response = httpx.post(
        f"{gateway.base_url}/chat/completions",
        headers={"x-portkey-config": orjson.dumps(config).decode(), "authorization": "Bearer sk"},
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "unknown_verifier" and "'nope'" in error["message"]
    assert "numbers" in error["message"]  # the known ones are listed
    assert not fake.requests


def test_an_unknown_verifier_in_the_server_file_fails_the_start() -> None:
    settings = ServerSettings.from_mapping({"mock": True, "cache": {"verifiers": ["nope"]}})
    with pytest.raises(InvalidConfig, match="'nope'"):
        Gateway(settings)
    # Without a semantic index nothing could use it, so nothing fails.
    blocked = {
        "mock": True,
        "cache": {"verifiers": ["nope"]},
        "plugins": {"block": ["portkey-mw.qdrant-cache"]},
    }
    Gateway(ServerSettings.from_mapping(blocked))


def test_the_shipped_table_is_what_wordnet_derives() -> None:
    """The shipped table is rebuilt from Debian's wordnet-base (which .ci/run installs)."""
    import gzip
    import json

    from portkey_mw_plugins.semantic_verifiers.derive import derive
    from portkey_mw_plugins.semantic_verifiers.lexicon import TABLE

    root = Path("/usr/share/wordnet")
    if not (root / "data.noun").exists():
        if os.environ.get("CI") == "true":
            pytest.fail("wordnet-base is not installed (.ci/run installs it)")
        pytest.skip("needs Debian's wordnet-base")
    shipped = json.loads(gzip.decompress(TABLE.read_bytes()))
    assert json.loads(json.dumps(derive(root))) == shipped
