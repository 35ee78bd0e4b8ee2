"""``/v1/responses`` through the official openai SDK: native (OpenAI) and translated to chat
completions (anthropic, google, bedrock, an OpenAI-compatible provider), stored responses
and ``previous_response_id``, and the hostile cases."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest

from tests import planted
from tests.conftest import RunningGateway, mounted_gateway, server_file
from tests.fake_upstream import FakeUpstream, Reply
from tests.planted import ADMIN_KEY

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
    "strict": True,
}
BEDROCK_MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
CONVERSE = f"/model/{BEDROCK_MODEL}/converse"
GENERATE = "/v1beta/models/gemini-2.5-flash:generateContent"


def anthropic_text(text: str) -> dict[str, Any]:
    return {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-fake-1",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 3},
    }


ANTHROPIC_TOOL = {
    **anthropic_text(""),
    "content": [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}},
    ],
    "stop_reason": "tool_use",
}


def gemini_text(text: str) -> dict[str, Any]:
    return {
        "candidates": [
            {"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP"}
        ],
        "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 2, "totalTokenCount": 7},
    }


def converse_text(text: str) -> dict[str, Any]:
    return {
        "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 4, "outputTokens": 2, "totalTokens": 6},
    }


NATIVE_RESPONSE = {
    "id": "resp_upstream1",
    "object": "response",
    "created_at": 1,
    "status": "completed",
    "model": "gpt-4.1",
    "output": [
        {
            "type": "message",
            "id": "msg_u1",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "native hi", "annotations": []}],
        }
    ],
    "parallel_tool_calls": True,
    "tool_choice": "auto",
    "tools": [],
    "usage": {
        "input_tokens": 3,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 2,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 5,
    },
}


def settings(tmp: Path, fake: FakeUpstream, store: str) -> Path:
    return server_file(
        tmp,
        fake,
        configs={
            "claude": {"provider": "anthropic", "api_key": "k", "custom_host": fake.base_url},
            "gemini": {
                "provider": "google",
                "api_key": "k",
                "custom_host": f"{fake.host_url}/v1beta",
            },
            "bedrock": {
                "provider": "bedrock",
                "custom_host": fake.host_url,
                "aws_access_key_id": "AKIDEXAMPLE",
                "aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                "aws_region": "us-east-1",
            },
            "openai-native": {
                "provider": "openai",
                "api_key": "sk-o",
                "custom_host": fake.base_url,
            },
            "together": {"provider": "together-ai", "api_key": "t", "custom_host": fake.host_url},
        },
        responses={"store": store},
    )


@pytest.fixture(scope="module", params=["sql", "memory"])
def gateway(
    request: pytest.FixtureRequest,
    upstream_server: FakeUpstream,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningGateway]:
    path = settings(tmp_path_factory.mktemp("responses"), upstream_server, request.param)
    with mounted_gateway(path) as running:
        yield running


def sdk(gateway: RunningGateway, config: str, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=gateway.base_url,
        api_key="unused",
        max_retries=0,
        default_headers={"x-portkey-config": config, **headers},
    )


# -- translated: anthropic --------------------------------------------------------------------


def test_plain_response_through_anthropic(gateway: RunningGateway, fake: FakeUpstream) -> None:
    fake.script("/v1/messages", Reply(json=anthropic_text("Bonjour!")))
    response = sdk(gateway, "claude").responses.create(
        model="claude-fake-1",
        input="Say hello in French",
        instructions="Be terse.",
        max_output_tokens=50,
        temperature=0.2,
        metadata={"team": "a"},
    )
    assert response.id.startswith("resp_")
    assert response.object == "response"
    assert response.status == "completed"
    assert response.output_text == "Bonjour!"
    assert response.metadata == {"team": "a"}
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (12, 3)
    assert response.usage.total_tokens == 15
    (seen,) = fake.requests
    sent = seen.json()
    assert seen.path == "/v1/messages"
    assert sent["system"] == [{"type": "text", "text": "Be terse."}]
    assert sent["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Say hello in French"}]}
    ]
    assert sent["max_tokens"] == 50
    assert sent["temperature"] == 0.2


def test_multi_turn_with_previous_response_id(gateway: RunningGateway, fake: FakeUpstream) -> None:
    client = sdk(gateway, "claude")
    fake.script("/v1/messages", Reply(json=anthropic_text("I am Claude.")))
    first = client.responses.create(model="claude-fake-1", input="Who are you?")
    fake.script("/v1/messages", Reply(json=anthropic_text("You asked who I am.")))
    second = client.responses.create(
        model="claude-fake-1", input="What did I ask?", previous_response_id=first.id
    )
    assert second.output_text == "You asked who I am."
    assert second.previous_response_id == first.id
    sent = fake.requests[-1].json()
    assert [(m["role"], m["content"][0]["text"]) for m in sent["messages"]] == [
        ("user", "Who are you?"),
        ("assistant", "I am Claude."),
        ("user", "What did I ask?"),
    ]
    # retrieve, input items, delete
    again = client.responses.retrieve(second.id)
    assert again.id == second.id and again.output_text == second.output_text
    items = client.responses.input_items.list(second.id, order="asc")
    kinds = [(item.type, getattr(item, "role", None)) for item in items.data]
    assert kinds == [("message", "user"), ("message", "assistant"), ("message", "user")]
    assert items.first_id == items.data[0].id and items.has_more is False
    page = client.responses.input_items.list(second.id, limit=1)
    assert page.has_more is True and page.data[0].role == "user"  # type: ignore[union-attr]
    client.responses.delete(second.id)
    with pytest.raises(openai.NotFoundError) as gone:
        client.responses.retrieve(second.id)
    assert gone.value.code == "response_not_found"
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(second.id)


def test_function_tool_round_trip(gateway: RunningGateway, fake: FakeUpstream) -> None:
    client = sdk(gateway, "claude")
    fake.script("/v1/messages", Reply(json=ANTHROPIC_TOOL))
    asked = client.responses.create(
        model="claude-fake-1",
        input=[{"role": "user", "content": [{"type": "input_text", "text": "Weather in Paris?"}]}],
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice="auto",
    )
    sent = fake.requests[-1].json()
    assert sent["tools"][0]["name"] == "get_weather"
    assert sent["tools"][0]["input_schema"]["required"] == ["city"]
    message, call = asked.output
    assert message.type == "message"
    assert call.type == "function_call"
    assert call.call_id == "toolu_01" and call.name == "get_weather"
    assert orjson.loads(call.arguments) == {"city": "Paris"}
    fake.script("/v1/messages", Reply(json=anthropic_text("It is 18C in Paris.")))
    answered = client.responses.create(
        model="claude-fake-1",
        previous_response_id=asked.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "18C"}],
        tools=[WEATHER],  # type: ignore[list-item]
    )
    assert answered.output_text == "It is 18C in Paris."
    messages = fake.requests[-1].json()["messages"]
    assert messages[1]["role"] == "assistant"
    assert messages[1]["content"][-1] == {
        "type": "tool_use",
        "id": "toolu_01",
        "name": "get_weather",
        "input": {"city": "Paris"},
    }
    assert messages[2]["content"][0]["type"] == "tool_result"
    assert messages[2]["content"][0]["tool_use_id"] == "toolu_01"


def test_stream_through_anthropic(gateway: RunningGateway, fake: FakeUpstream) -> None:
    events = [
        {
            "type": "message_start",
            "message": {**anthropic_text(""), "content": [], "stop_reason": None},
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "lo"}},
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 2},
        },
        {"type": "message_stop"},
    ]
    fake.script("/v1/messages", Reply(stream=events, done=False))
    client = sdk(gateway, "claude")
    stream = client.responses.create(model="claude-fake-1", input="Say hello", stream=True)
    seen = list(stream)
    kinds = [event.type for event in seen]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [event.sequence_number for event in seen] == list(range(len(seen)))
    final = seen[-1].response  # type: ignore[union-attr]
    assert final.output_text == "Hello"
    assert final.usage is not None and final.usage.output_tokens == 2
    # the streamed response was stored: it is a previous_response_id like any other
    assert client.responses.retrieve(final.id).output_text == "Hello"


# -- translated: google, bedrock, an OpenAI-compatible provider --------------------------------


def test_multi_turn_through_google(gateway: RunningGateway, fake: FakeUpstream) -> None:
    client = sdk(gateway, "gemini")
    fake.script(GENERATE, Reply(json=gemini_text("Paris.")))
    first = client.responses.create(model="gemini-2.5-flash", input="Capital of France?")
    assert first.output_text == "Paris."
    fake.script(GENERATE, Reply(json=gemini_text("About 2 million.")))
    second = client.responses.create(
        model="gemini-2.5-flash", input="Its population?", previous_response_id=first.id
    )
    assert second.output_text == "About 2 million."
    contents = fake.requests[-1].json()["contents"]
    assert [(c["role"], c["parts"][0]["text"]) for c in contents] == [
        ("user", "Capital of France?"),
        ("model", "Paris."),
        ("user", "Its population?"),
    ]


def test_multi_turn_through_bedrock(gateway: RunningGateway, fake: FakeUpstream) -> None:
    client = sdk(gateway, "bedrock")
    fake.script(CONVERSE, Reply(json=converse_text("A haiku.")))
    first = client.responses.create(model=BEDROCK_MODEL, input="Write a haiku", instructions="DJ")
    fake.script(CONVERSE, Reply(json=converse_text("Another.")))
    second = client.responses.create(
        model=BEDROCK_MODEL, input="One more", previous_response_id=first.id
    )
    assert second.output_text == "Another."
    sent = fake.requests[-1].json()
    assert [(m["role"], m["content"][0]["text"]) for m in sent["messages"]] == [
        ("user", "Write a haiku"),
        ("assistant", "A haiku."),
        ("user", "One more"),
    ]
    assert "system" not in sent  # instructions do not carry over to the next turn
    assert fake.requests[0].json()["system"] == [{"text": "DJ"}]


def test_openai_compatible_provider_gets_chat(gateway: RunningGateway, fake: FakeUpstream) -> None:
    response = sdk(gateway, "together").responses.create(
        model="fake-model",
        input="hello there",
        text={"format": {"type": "json_schema", "name": "x", "schema": {"type": "object"}}},
        reasoning={"effort": "low"},
        user="u1",
    )
    assert response.output_text
    (seen,) = fake.requests
    assert seen.path == "/v1/chat/completions"
    sent = seen.json()
    assert sent["messages"] == [{"role": "user", "content": "hello there"}]
    assert sent["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "x", "schema": {"type": "object"}},
    }
    assert sent["reasoning_effort"] == "low"
    assert sent["user"] == "u1"


def test_tool_call_stream_through_chat(gateway: RunningGateway, fake: FakeUpstream) -> None:
    base = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    call = {"index": 0, "id": "call_9", "type": "function"}
    chunks = [
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Let me"}}]},
        {
            **base,
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {**call, "function": {"name": "get_weather", "arguments": '{"ci'}}
                        ]
                    },
                }
            ],
        },
        {
            **base,
            "choices": [
                {
                    "index": 0,
                    "delta": {"tool_calls": [{"index": 0, "function": {"arguments": 'ty":"P"}'}}]},
                }
            ],
        },
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        {**base, "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 4}},
    ]
    fake.script("/v1/chat/completions", Reply(stream=chunks))
    stream = sdk(gateway, "together").responses.create(
        model="m",
        input="weather?",
        tools=[WEATHER],
        stream=True,  # type: ignore[list-item]
    )
    seen = list(stream)
    kinds = [event.type for event in seen]
    assert "response.function_call_arguments.delta" in kinds
    assert kinds.index("response.output_item.done") < kinds.index(
        "response.function_call_arguments.done"
    )  # the text message closes when the call starts
    done = next(e for e in seen if e.type == "response.function_call_arguments.done")
    assert done.arguments == '{"city":"P"}'  # type: ignore[union-attr]
    final = seen[-1].response  # type: ignore[union-attr]
    assert seen[-1].type == "response.completed"
    assert [item.type for item in final.output] == ["message", "function_call"]
    assert final.output[1].call_id == "call_9"
    assert final.usage.input_tokens == 9 and final.usage.total_tokens == 13
    sent = fake.requests[-1].json()
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}


def test_mid_stream_failure_ends_with_response_failed(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    base = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    chunks: list[bytes | dict[str, Any]] = [
        {**base, "choices": [{"index": 0, "delta": {"content": "par"}}]},
        b"data: {not json}\n\n",
    ]
    fake.script("/v1/chat/completions", Reply(stream=chunks, done=False))
    stream = sdk(gateway, "together").responses.create(model="m", input="hi", stream=True)
    kinds = [event.type for event in stream]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-2:] == ["error", "response.failed"]


# -- native: openai ---------------------------------------------------------------------------


def test_native_openai_forwards_the_body(gateway: RunningGateway, fake: FakeUpstream) -> None:
    fake.script("/v1/responses", Reply(json=NATIVE_RESPONSE))
    response = sdk(gateway, "openai-native").responses.create(
        model="gpt-4.1",
        input="hi",
        previous_response_id="resp_kept_by_openai",
        tools=[{"type": "web_search_preview"}],
    )
    assert response.id == "resp_upstream1" and response.output_text == "native hi"
    (seen,) = fake.requests
    assert seen.path == "/v1/responses"
    assert seen.headers["authorization"] == "Bearer sk-o"
    assert seen.json() == {
        "model": "gpt-4.1",
        "input": "hi",
        "previous_response_id": "resp_kept_by_openai",
        "tools": [{"type": "web_search_preview"}],
    }


def test_native_openai_stream_is_relayed(gateway: RunningGateway, fake: FakeUpstream) -> None:
    events: list[bytes | dict[str, Any]] = []
    for number, (kind, data) in enumerate(
        [
            ("response.created", {"response": {**NATIVE_RESPONSE, "status": "in_progress"}}),
            (
                "response.output_text.delta",
                {"item_id": "msg_u1", "output_index": 0, "content_index": 0, "delta": "yo"},
            ),
            ("response.completed", {"response": NATIVE_RESPONSE}),
        ]
    ):
        payload = orjson.dumps({"type": kind, "sequence_number": number, **data})
        events.append(b"event: " + kind.encode() + b"\ndata: " + payload + b"\n\n")
    fake.script("/v1/responses", Reply(stream=events, done=False))
    stream = sdk(gateway, "openai-native").responses.create(
        model="gpt-4.1", input="hi", stream=True
    )
    kinds = [event.type for event in stream]
    assert kinds == ["response.created", "response.output_text.delta", "response.completed"]
    assert fake.requests[-1].json()["stream"] is True


# -- hostile ----------------------------------------------------------------------------------


def test_a_provider_error_is_an_openai_error(gateway: RunningGateway, fake: FakeUpstream) -> None:
    error = {"type": "error", "error": {"type": "invalid_request_error", "message": "bad model"}}
    fake.script("/v1/messages", Reply(status=400, json=error))
    with pytest.raises(openai.BadRequestError) as raised:
        sdk(gateway, "claude").responses.create(model="nope", input="hi")
    assert "bad model" in raised.value.message


def test_unknown_previous_response_id_is_404(gateway: RunningGateway, fake: FakeUpstream) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        sdk(gateway, "claude").responses.create(
            model="claude-fake-1", input="hi", previous_response_id="resp_nope"
        )
    assert raised.value.code == "response_not_found"
    assert not fake.requests


def test_built_in_tool_on_a_translated_provider_is_400(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        sdk(gateway, "claude").responses.create(
            model="claude-fake-1",
            input="search",
            tools=[{"type": "web_search_preview"}, {"type": "file_search"}],  # type: ignore[list-item]
        )
    assert "web_search_preview" in raised.value.message
    assert "file_search" in raised.value.message
    assert raised.value.code == "unsupported_tool"
    assert not fake.requests


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": 42}, "input"),
        ({"input": [{"type": "message", "role": "user", "content": 7}]}, "input.0.content"),
        ({"input": [{"type": "function_call", "call_id": "c"}]}, "input.0.name"),
        ({"input": [{"type": "computer_call_output", "call_id": "c"}]}, "input.0"),
        ({"input": [{"role": "robot", "content": "x"}]}, "input.0.role"),
        ({"input": "x", "tools": "all"}, "tools"),
        ({"input": "x", "max_output_tokens": -1}, "max_output_tokens"),
        ({"input": "x", "store": "yes"}, "store"),
        ({"input": "x", "background": True}, "background"),
        ({"input": "x", "tool_choice": {"type": "function"}}, "tool_choice.name"),
        ({"input": "x", "text": {"format": {"type": "json_schema"}}}, "text.format.name"),
        (
            {"input": [{"type": "message", "role": "user", "content": [{"type": "input_file"}]}]},
            "input.0.content.0",
        ),
        ({}, "input"),
    ],
)
def test_garbage_input_is_400(
    gateway: RunningGateway, fake: FakeUpstream, body: dict[str, Any], param: str
) -> None:
    client = sdk(gateway, "claude")
    with pytest.raises(openai.BadRequestError) as raised:
        client.post(
            "/responses",
            body={"model": "claude-fake-1", **body},
            cast_to=openai.types.responses.Response,
        )
    error = raised.value.body
    assert isinstance(error, dict) and error["param"] == param, error
    assert not fake.requests


def test_another_keys_response_is_404(
    fake: FakeUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With gateway API keys, each key sees only the responses it made."""
    monkeypatch.setenv("PORTKEY_MW_AUTH", "required")
    path = settings(tmp_path, fake, "sql")
    store_url = f"sqlite+aiosqlite:///{tmp_path / 'keys.db'}"
    path.write_text(path.read_text() + f"store:\n  url: {store_url}\n")
    with mounted_gateway(path) as running:

        def new_key() -> str:
            made = httpx.post(
                f"{running.base_url}/api-keys/organisation/service",
                headers={"x-portkey-api-key": ADMIN_KEY},
                json={"name": "app", "scopes": ["completions.write"]},
            )
            assert made.status_code == 200, made.text
            return planted.plant(made.json()["key"])

        def client(key: str) -> openai.OpenAI:
            return sdk(running, "claude", **{"x-portkey-api-key": key})

        mine, theirs = client(new_key()), client(new_key())
        fake.script("/v1/messages", Reply(json=anthropic_text("mine")))
        created = mine.responses.create(model="claude-fake-1", input="secret plans")
        assert mine.responses.retrieve(created.id).output_text == "mine"
        with pytest.raises(openai.NotFoundError):
            theirs.responses.retrieve(created.id)
        with pytest.raises(openai.NotFoundError):
            theirs.responses.input_items.list(created.id)
        with pytest.raises(openai.NotFoundError):
            theirs.responses.delete(created.id)
        with pytest.raises(openai.NotFoundError):
            theirs.responses.create(
                model="claude-fake-1", input="and?", previous_response_id=created.id
            )
        with pytest.raises(openai.AuthenticationError):
            sdk(running, "claude").responses.retrieve(created.id)  # no key at all
        assert mine.responses.retrieve(created.id).id == created.id  # still there
        assert len(fake.requests) == 1


def test_oversized_conversation_is_refused(fake: FakeUpstream, tmp_path: Path) -> None:
    path = settings(tmp_path, fake, "memory")
    text = path.read_text().replace("store: memory", "store: memory\n  max_entry_bytes: 2048")
    path.write_text(text)
    with mounted_gateway(path) as running:
        client = sdk(running, "claude")
        with pytest.raises(openai.BadRequestError) as raised:
            client.responses.create(model="claude-fake-1", input="x" * 5000)
        assert raised.value.code == "conversation_too_large"
        assert not fake.requests
        # without storing, the same input goes through
        fake.script("/v1/messages", Reply(json=anthropic_text("ok")))
        response = client.responses.create(model="claude-fake-1", input="x" * 5000, store=False)
        assert response.store is False
        with pytest.raises(openai.NotFoundError):
            client.responses.retrieve(response.id)


def test_stateless_tool_round_trip_through_google(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    """store: false, the client sends the whole conversation back (no gateway state)."""
    call = {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}
    asked_answer = {
        "candidates": [{"content": {"role": "model", "parts": [call]}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 2, "totalTokenCount": 7},
    }
    client = sdk(gateway, "gemini")
    fake.script(GENERATE, Reply(json=asked_answer))
    question = {"role": "user", "content": "Weather in Oslo?"}
    asked = client.responses.create(
        model="gemini-2.5-flash",
        input=[question],  # type: ignore[list-item]
        tools=[WEATHER],  # type: ignore[list-item]
        store=False,
    )
    (made,) = asked.output
    assert made.type == "function_call" and made.name == "get_weather"
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(asked.id)
    fake.script(GENERATE, Reply(json=gemini_text("Cold.")))
    answered = client.responses.create(
        model="gemini-2.5-flash",
        input=[
            question,
            made.model_dump(exclude_none=True),
            {"type": "function_call_output", "call_id": made.call_id, "output": "-3C"},
        ],  # type: ignore[list-item]
        tools=[WEATHER],  # type: ignore[list-item]
        store=False,
    )
    assert answered.output_text == "Cold."
    contents = fake.requests[-1].json()["contents"]
    assert contents[1]["role"] == "model"
    assert contents[1]["parts"][0]["functionCall"]["args"] == {"city": "Oslo"}
    response_part = contents[2]["parts"][0]["functionResponse"]
    assert response_part["name"] == "get_weather"
