"""``POST /v1/rerank`` in Cohere's shape through cohere, voyage and jina (fake upstreams
speaking each provider's wire format)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import RunningGateway, mounted_gateway, server_file
from tests.fake_upstream import FakeUpstream, Reply

DOCUMENTS = ["Paris is in France.", {"text": "Berlin is in Germany."}, "Rome is in Italy."]


@pytest.fixture(scope="module")
def gateway(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    host = upstream_server.host_url
    path = server_file(
        tmp_path_factory.mktemp("rerank"),
        upstream_server,
        configs={
            "cohere": {"provider": "cohere", "custom_host": host},
            "voyage": {"provider": "voyage", "custom_host": host + "/v1"},
            "jina": {"provider": "jina", "custom_host": host + "/v1"},
            "cached": {
                "provider": "cohere",
                "custom_host": host,
                "cache": {"mode": "simple", "max_age": 60},
            },
        },
    )
    with mounted_gateway(path) as running:
        yield running


def rerank(gateway: RunningGateway, config: str, **body: Any) -> httpx.Response:
    payload = {"model": "rerank-v3.5", "query": "capital of Germany?", "documents": DOCUMENTS}
    return httpx.post(
        gateway.base_url + "/rerank",
        json={**payload, **body},
        headers={"authorization": "Bearer up-key", "x-portkey-config": config},
        timeout=10,
    )


def test_cohere(gateway: RunningGateway, fake: FakeUpstream) -> None:
    answer = {
        "id": "r-1",
        "results": [{"index": 1, "relevance_score": 0.9}, {"index": 0, "relevance_score": 0.1}],
        "meta": {"billed_units": {"search_units": 1}},
    }
    fake.script("/v2/rerank", Reply(json=answer))
    response = rerank(gateway, "cohere", top_n=2, return_documents=True)
    assert response.status_code == 200, response.text
    sent = fake.requests[-1]
    assert sent.path == "/v2/rerank"
    assert sent.headers["authorization"] == "Bearer up-key"
    assert sent.json() == {
        "model": "rerank-v3.5",
        "query": "capital of Germany?",
        "documents": ["Paris is in France.", "Berlin is in Germany.", "Rome is in Italy."],
        "top_n": 2,
    }
    body = response.json()
    assert body["id"] == "r-1"
    assert body["meta"] == {"billed_units": {"search_units": 1}}
    assert body["results"] == [
        {"index": 1, "relevance_score": 0.9, "document": {"text": "Berlin is in Germany."}},
        {"index": 0, "relevance_score": 0.1, "document": {"text": "Paris is in France."}},
    ]


def test_voyage(gateway: RunningGateway, fake: FakeUpstream) -> None:
    answer = {
        "object": "list",
        "data": [{"index": 2, "relevance_score": 0.2}, {"index": 1, "relevance_score": 0.8}],
        "model": "rerank-2",
        "usage": {"total_tokens": 26},
    }
    fake.script("/v1/rerank", Reply(json=answer))
    response = rerank(gateway, "voyage", model="rerank-2", top_n=2)
    assert response.status_code == 200, response.text
    sent = fake.requests[-1].json()
    assert sent["top_k"] == 2 and "top_n" not in sent
    body = response.json()
    # best first, no documents unless asked, usage for the spend and the log
    assert body["results"] == [
        {"index": 1, "relevance_score": 0.8},
        {"index": 2, "relevance_score": 0.2},
    ]
    assert body["usage"] == {"prompt_tokens": 26, "total_tokens": 26}


def test_jina(gateway: RunningGateway, fake: FakeUpstream) -> None:
    answer = {
        "model": "jina-reranker-v2-base-multilingual",
        "usage": {"total_tokens": 30, "prompt_tokens": 30},
        "results": [
            {"index": 1, "relevance_score": 0.7, "document": {"text": "planted by upstream"}}
        ],
    }
    fake.script("/v1/rerank", Reply(json=answer))
    response = rerank(gateway, "jina", top_n=1, return_documents=True)
    assert response.status_code == 200, response.text
    assert fake.requests[-1].headers["authorization"] == "Bearer up-key"
    assert fake.requests[-1].json()["top_n"] == 1
    # the document is the one the client sent, at the index the provider chose
    assert response.json()["results"] == [
        {"index": 1, "relevance_score": 0.7, "document": {"text": "Berlin is in Germany."}}
    ]


def test_exact_cache(gateway: RunningGateway, fake: FakeUpstream) -> None:
    answer = {"id": "r-2", "results": [{"index": 0, "relevance_score": 0.5}]}
    fake.script("/v2/rerank", Reply(json=answer))
    first = rerank(gateway, "cached", query="cache me")
    gateway.settle()
    second = rerank(gateway, "cached", query="cache me")
    assert first.headers["x-portkey-cache-status"] == "MISS"
    assert second.headers["x-portkey-cache-status"] == "HIT"
    assert second.json() == first.json()


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"documents": []}, "documents"),
        ({"documents": [{"title": "no text"}]}, "documents.0.text"),
        ({"documents": [3]}, "documents.0"),
        ({"query": None}, "query"),
        ({"top_n": 0}, "top_n"),
        ({"return_documents": "yes"}, "return_documents"),
    ],
)
def test_bad_input(gateway: RunningGateway, fake: FakeUpstream, body: Any, param: str) -> None:
    calls = len(fake.requests)
    response = rerank(gateway, "cohere", **body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    assert len(fake.requests) == calls


def test_missing_documents(gateway: RunningGateway) -> None:
    response = httpx.post(
        gateway.base_url + "/rerank",
        json={"model": "m", "query": "q"},
        headers={"authorization": "Bearer k", "x-portkey-config": "cohere"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "documents"


def test_provider_without_rerank(gateway: RunningGateway) -> None:
    response = rerank(gateway, "openai-fake")
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "openai" in message and "rerank" in message


@pytest.mark.parametrize(
    "results",
    [
        [{"index": 7, "relevance_score": 0.5}],
        [{"index": -1, "relevance_score": 0.5}],
        [{"index": 0, "relevance_score": "high"}],
        None,
    ],
)
def test_upstream_naming_other_documents(
    gateway: RunningGateway, fake: FakeUpstream, results: Any
) -> None:
    fake.script("/v2/rerank", Reply(json={"results": results}))
    response = rerank(gateway, "cohere", query=f"bad {results}")
    assert response.status_code == 502, response.text


@pytest.mark.parametrize(
    "path", ["/v1/no-such-route", "/v1/proxy/chat", "/v1/proxy/../../admin/cache"]
)
def test_unknown_paths_without_a_provider(gateway: RunningGateway, path: str) -> None:
    # Unknown paths under /v1 are a pass-through: with no provider resolved, a clear 400
    # naming what is missing (the dotted one is collapsed by the client, and its 404 too);
    # none reaches the admin routes.
    response = httpx.get(gateway.root + path, headers={"authorization": "Bearer k"})
    assert response.status_code in (400, 404), response.text
    if response.status_code == 400:
        assert response.json()["error"]["code"] == "missing_provider"
    assert "purged" not in response.text


def test_admin_routes_not_shadowed(gateway: RunningGateway) -> None:
    response = httpx.get(
        gateway.base_url + "/admin/cache",
        headers={"authorization": "Bearer k", "x-portkey-config": "cohere"},
    )
    assert response.status_code in (401, 403), response.text
