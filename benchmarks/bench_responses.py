"""What serving ``/v1/responses`` through chat completions adds, beside chat pass-through.

One run, one process, one gateway (the in-process ``mock`` provider answering at once, no
control-plane store, no log store), requests driven straight through its ASGI interface so
that the gateway's own work is what is measured, the cases interleaved:

1. a chat completion (the baseline: what a chat request costs when nothing is translated);
2. the same question as a Responses request, ``"store": false`` (the translation alone:
   the Responses body to a chat request, the completion back to a Responses object);
3. the same with ``"store": true`` (the default: the response kept in the in-process archive,
   which ``previous_response_id`` reads);
4. a second turn naming the first as ``previous_response_id`` (the conversation rebuilt
   from the archive);
5. streamed: a chat stream and a Responses stream of the same answer, at two answer lengths
   (``--short`` and ``--long`` words: one chunk, so one ``response.output_text.delta``, per
   word). The added cost per streamed event is the slope: how much more the Responses stream
   costs at the long length than at the short one, beyond what the chat stream does, per
   extra event.

And the translation functions alone, without the HTTP path: ``response_object`` on one
completion, and ``ResponseStreamTranslator`` per chunk.

Each line: mean µs per request (median of batches) and the difference from its baseline.
Nothing is asserted: the numbers depend on the machine.

    python benchmarks/bench_responses.py [--requests 3000] [--rounds 5] [--short 10] [--long 100]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import time
from collections.abc import Awaitable, Callable

import orjson
from _harness import batches, call

from portkey_mw import Gateway, ServerSettings
from portkey_mw.inbound.responses_translate import ResponseStreamTranslator, response_object
from portkey_mw.streaming import SSEDecoder

QUESTION = "Where is my order 1234? It was due on Monday."
INSTRUCTIONS = "You help customers of Widgets with their orders. Answer politely."


def reply_of(words: int) -> str:
    return " ".join(f"word{i}" for i in range(words))


def config(words: int) -> str:
    target = {"provider": "mock", "api_key": "sk-bench", "mock_reply": reply_of(words)}
    return orjson.dumps(target).decode()


def chat_body(stream: bool) -> bytes:
    return orjson.dumps(
        {
            "model": "mock-gpt",
            "messages": [
                {"role": "system", "content": INSTRUCTIONS},
                {"role": "user", "content": QUESTION},
            ],
            "stream": stream,
        }
    )


def responses_body(stream: bool, store: bool, previous: str | None = None) -> bytes:
    body = {
        "model": "mock-gpt",
        "instructions": INSTRUCTIONS,
        "input": QUESTION,
        "stream": stream,
        "store": store,
    }
    if previous is not None:
        body["previous_response_id"] = previous
    return orjson.dumps(body)


def translation_alone(words: int, repeats: int) -> tuple[float, float]:
    """µs for ``response_object`` on one completion, and µs per chunk for the stream
    translator (over a ``words``-chunk stream)."""
    body = orjson.loads(responses_body(False, False))
    completion = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "mock-gpt",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply_of(words)},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 20, "completion_tokens": words, "total_tokens": 20 + words},
    }
    started = time.perf_counter()
    for _ in range(repeats):
        response_object(completion, body, "resp_bench", store=False)
    whole = (time.perf_counter() - started) / repeats * 1e6

    def chunk(delta: dict[str, str], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return b"data: " + orjson.dumps({"id": "c", "model": "mock-gpt", "choices": [choice]})

    stream = b"\n\n".join(
        [chunk({"role": "assistant", "content": ""})]
        + [chunk({"content": f"word{i} "}) for i in range(words)]
        + [chunk({}, "stop"), b"data: [DONE]"]
    )
    events = SSEDecoder().feed(stream + b"\n\n")
    started = time.perf_counter()
    for _ in range(repeats):
        translator = ResponseStreamTranslator(body, "resp_bench", store=False)
        translator.feed(events)
    per_chunk = (time.perf_counter() - started) / repeats / len(events) * 1e6
    return whole, per_chunk


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--short", type=int, default=10, help="words in the short answer")
    parser.add_argument("--long", type=int, default=100, help="words in the long answer")
    args = parser.parse_args()
    os.environ["PORTKEY_MW_AUTH"] = "off"
    settings = ServerSettings.from_mapping(
        {
            "mock": True,
            "store": {"enabled": False},
            "responses": {"store": "memory"},
            "logging": {"store": "off"},
            "plugins": {"block": ["portkey-mw.structlog-sink"]},
        }
    )
    gateway = Gateway(settings)
    await gateway.startup()
    short, long = config(args.short), config(args.long)

    def request(
        path: str, words_config: str, body: bytes | Callable[[int], bytes]
    ) -> Callable[[int], Awaitable[None]]:
        headers = {"x-portkey-config": words_config}

        async def run(i: int) -> None:
            sent = body(i) if callable(body) else body
            status, reply = await call(gateway, "POST", path, headers, sent)
            assert status == 200, reply

        return run

    # One stored first turn for the second-turn case (each second turn is stored too, but
    # all name the same first one: the conversation the archive rebuilds stays two turns).
    status, first = await call(
        gateway, "POST", "/v1/responses", {"x-portkey-config": short},
        responses_body(False, True),
    )  # fmt: skip
    assert status == 200, first
    first_id = orjson.loads(first)["id"]

    # What is measured is what it says: a Responses object, and its semantic events.
    status, answer = await call(
        gateway, "POST", "/v1/responses", {"x-portkey-config": short},
        responses_body(False, False),
    )  # fmt: skip
    assert status == 200 and orjson.loads(answer)["object"] == "response", answer
    status, answer = await call(
        gateway, "POST", "/v1/responses", {"x-portkey-config": short},
        responses_body(True, False),
    )  # fmt: skip
    assert status == 200 and b"event: response.output_text.delta" in answer, answer
    assert b"event: response.completed" in answer, answer

    cases: list[tuple[str, Callable[[int], Awaitable[None]]]] = [
        ("chat completion (baseline)", request("/v1/chat/completions", short, chat_body(False))),
        (
            "responses, store false",
            request("/v1/responses", short, responses_body(False, False)),
        ),
        ("responses, store true", request("/v1/responses", short, responses_body(False, True))),
        (
            "responses, previous_response_id",
            request("/v1/responses", short, responses_body(False, True, first_id)),
        ),
        (
            f"chat stream, {args.short} words",
            request("/v1/chat/completions", short, chat_body(True)),
        ),
        (
            f"responses stream, {args.short} words",
            request("/v1/responses", short, responses_body(True, False)),
        ),
        (
            f"chat stream, {args.long} words",
            request("/v1/chat/completions", long, chat_body(True)),
        ),
        (
            f"responses stream, {args.long} words",
            request("/v1/responses", long, responses_body(True, False)),
        ),
    ]
    print(
        f"{args.requests} requests per case and round, {args.rounds} rounds interleaved, "
        "in process, mock provider"
    )
    gc.collect()
    gc.freeze()  # start-up data out of the collector's sweeps (see bench_prompts)
    results: dict[str, list[float]] = {title: [] for title, _ in cases}
    for _ in range(args.rounds):
        for title, run in cases:
            gc.collect()
            results[title].append(await batches(run, args.requests))
            await gateway.settled()
    await gateway.shutdown()
    mean = {title: statistics.median(values) for title, values in results.items()}
    base = mean[cases[0][0]]
    for title, _ in cases[:4]:
        print(f"{title:40s} {mean[title]:8.1f} µs/request  {mean[title] - base:+8.1f} µs vs chat")
    chat_short, resp_short, chat_long, resp_long = (mean[title] for title, _ in cases[4:])
    print(
        f"{cases[4][0]:40s} {chat_short:8.1f} µs/request\n"
        f"{cases[5][0]:40s} {resp_short:8.1f} µs/request  {resp_short - chat_short:+8.1f} µs "
        "vs chat stream\n"
        f"{cases[6][0]:40s} {chat_long:8.1f} µs/request\n"
        f"{cases[7][0]:40s} {resp_long:8.1f} µs/request  {resp_long - chat_long:+8.1f} µs "
        "vs chat stream"
    )
    extra = args.long - args.short
    chat_event = (chat_long - chat_short) / extra
    resp_event = (resp_long - resp_short) / extra
    print(
        f"per streamed event: chat {chat_event:.2f} µs, responses {resp_event:.2f} µs, "
        f"added {resp_event - chat_event:+.2f} µs per event"
    )
    whole, per_chunk = translation_alone(args.long, max(200, args.requests // 5))
    print(
        f"translation alone: response_object ({args.long} words) {whole:.1f} µs; "
        f"ResponseStreamTranslator {per_chunk:.2f} µs per chunk"
    )


if __name__ == "__main__":
    asyncio.run(main())
