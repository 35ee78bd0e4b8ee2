"""``/v1/responses`` in both run modes (mounted, and ``portkey-mw serve`` with its SQLite
store in the data directory), through the openai SDK."""

from __future__ import annotations

import openai

from tests.conftest import RunningGateway
from tests.fake_upstream import FakeUpstream


def test_create_stream_retrieve_and_continue(gateway: RunningGateway, fake: FakeUpstream) -> None:
    client = openai.OpenAI(
        base_url=gateway.base_url,
        api_key="sk-test",
        max_retries=0,
        default_headers={"x-portkey-config": "together-fake"},
    )
    first = client.responses.create(model="fake-model", input="one two three")
    assert first.status == "completed" and first.output_text
    events = list(
        client.responses.create(
            model="fake-model", input="four", previous_response_id=first.id, stream=True
        )
    )
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    second = events[-1].response  # type: ignore[union-attr]
    assert second.previous_response_id == first.id
    sent = fake.requests[-1].json()["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[1]["content"] == first.output_text
    assert client.responses.retrieve(second.id).output_text == second.output_text
    items = client.responses.input_items.list(second.id, order="asc")
    assert [item.type for item in items.data] == ["message", "message", "message"]
