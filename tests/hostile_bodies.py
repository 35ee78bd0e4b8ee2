"""Hypothesis strategies for hostile request bodies: any JSON, and near-valid bodies of each
endpoint whose every field is, now and then, any JSON instead.

Near-valid bodies matter more than random ones: a body of random JSON is refused at its
first field, while one that is right almost everywhere walks deep into the translators.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

#: integers orjson can write (it refuses anything wider than 64 bits)
INTEGERS = st.integers(min_value=-(2**63), max_value=2**64 - 1)
SCALARS = (
    st.none()
    | st.booleans()
    | INTEGERS
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
JSON: st.SearchStrategy[Any] = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
JSON_OBJECTS = st.dictionaries(st.text(max_size=8), JSON, max_size=4)
TEXT = st.text(max_size=16)


#: hypothesis, deterministic and quick: the same examples on every run
CHECKED = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def sometimes_junk(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly ``good``, now and then any JSON at all (null included): rarely enough that
    about half the bodies, which have a few dozen such places, have no junk at all."""
    # An interior value: hypothesis favours the ends of a range, which would make junk
    # everywhere at once far more common than one in forty.
    return st.integers(0, 39).flatmap(lambda roll: JSON if roll == 20 else good)


def _body(required: dict[str, Any], optional: dict[str, Any]) -> st.SearchStrategy[Any]:
    """An object with the ``required`` fields and some of the ``optional`` ones, each
    sometimes junk; the required ones are now and then missing altogether."""
    body = st.fixed_dictionaries(
        {k: sometimes_junk(v) for k, v in required.items()},
        optional={k: sometimes_junk(v) for k, v in optional.items() if k not in required},
    )
    extra = st.dictionaries(
        st.sampled_from(sorted({*required, *optional})) | TEXT, JSON, max_size=2
    )
    return st.one_of(body, body, body, st.builds(lambda b, e: {**e, **b}, body, extra))


MODELS = (
    st.sampled_from(
        [
            "gpt-4o-mini",
            "claude-3-5-haiku",
            "gemini-2.5-flash",
            "models/gemini-pro",
            "anthropic.claude-3-haiku-20240307-v1:0",
            "amazon.titan-embed-text-v2:0",
            "cohere.embed-english-v3",
            "stable-image-ultra",
            "sd3-large",
            "a/b c?d#e%",
            "",
        ]
    )
    | TEXT
)
NUMBERS = st.integers(-3, 300) | st.floats(-2, 2, allow_nan=False)
COUNTS = st.integers(-2, 12) | st.floats(0, 12, allow_nan=False)
IMAGE_URLS = (
    st.sampled_from(
        [
            "data:image/png;base64,iVBORw0KGgo=",
            "data:image/jpg;base64,/9j/",
            "data:image/tiff;base64,AAAA",
            "data:text/plain;base64,",
            # resolves to a private address: refused before any fetch, without the network
            "https://localhost/cat.png",
            "http://localhost:99999/cat.png",
            "http://[::1/cat.png",
            "ftp://example.com/a.png",
            "",
        ]
    )
    | TEXT
)
TOOL_IDS = st.sampled_from(["call_1", "call_2", "toolu_1", ""])
ARGUMENTS = (
    st.sampled_from(['{"a": 1}', "{}", "", "not json", "[1, 2]", "5", "null"]) | JSON_OBJECTS
)

# -- OpenAI chat --------------------------------------------------------------------------------

IMAGE_URL_PART = st.fixed_dictionaries(
    {
        "type": st.just("image_url"),
        "image_url": sometimes_junk(
            IMAGE_URLS
            | st.fixed_dictionaries(
                {"url": sometimes_junk(IMAGE_URLS)},
                optional={"detail": sometimes_junk(st.sampled_from(["auto", "low"]))},
            )
        ),
    }
)
CONTENT_PART = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": sometimes_junk(TEXT)}),
    IMAGE_URL_PART,
    st.fixed_dictionaries(
        {"type": sometimes_junk(st.sampled_from(["input_audio", "file", "refusal"]))},
        optional={"text": JSON, "image_url": JSON},
    ),
)
CONTENT = st.one_of(st.none(), TEXT, st.lists(sometimes_junk(CONTENT_PART), max_size=3))
TOOL_CALL = st.fixed_dictionaries(
    {
        "id": sometimes_junk(TOOL_IDS),
        "type": sometimes_junk(st.just("function")),
        "function": sometimes_junk(
            st.fixed_dictionaries(
                {"name": sometimes_junk(st.sampled_from(["f", "g"]))},
                optional={"arguments": sometimes_junk(ARGUMENTS)},
            )
        ),
    }
)
MESSAGE = st.fixed_dictionaries(
    {
        "role": sometimes_junk(
            st.sampled_from(["system", "developer", "user", "assistant", "tool", "function"])
        ),
    },
    optional={
        "content": sometimes_junk(CONTENT),
        "tool_calls": sometimes_junk(st.lists(TOOL_CALL, max_size=2)),
        "tool_call_id": sometimes_junk(TOOL_IDS),
        "name": sometimes_junk(TEXT),
    },
)
FUNCTION = st.fixed_dictionaries(
    {"name": sometimes_junk(st.sampled_from(["f", "g", ""]))},
    optional={
        "description": sometimes_junk(TEXT),
        "parameters": sometimes_junk(st.just({"type": "object"}) | JSON_OBJECTS),
        "strict": sometimes_junk(st.booleans()),
    },
)
TOOL = st.fixed_dictionaries(
    {"type": sometimes_junk(st.sampled_from(["function", "web_search"]))},
    optional={"function": sometimes_junk(FUNCTION)},
)
TOOL_CHOICE = st.sampled_from(["auto", "none", "required", "any"]) | st.fixed_dictionaries(
    {"type": sometimes_junk(st.just("function"))},
    optional={"function": sometimes_junk(st.fixed_dictionaries({"name": sometimes_junk(TEXT)}))},
)
RESPONSE_FORMAT = st.fixed_dictionaries(
    {"type": sometimes_junk(st.sampled_from(["text", "json_object", "json_schema"]))},
    optional={
        "json_schema": sometimes_junk(
            st.fixed_dictionaries(
                {},
                optional={
                    "name": sometimes_junk(TEXT),
                    "schema": sometimes_junk(st.just({"type": "object"}) | JSON_OBJECTS),
                },
            )
        )
    },
)
STOP = TEXT | st.lists(TEXT, max_size=3)
STREAM_OPTIONS = st.fixed_dictionaries(
    {}, optional={"include_usage": sometimes_junk(st.booleans())}
)
_COMMON = {
    "model": MODELS,
    "user": TEXT,
    "metadata": JSON_OBJECTS,
    "stream": st.booleans(),
    "stream_options": STREAM_OPTIONS,
}
_GENERATION = {
    **_COMMON,
    "temperature": NUMBERS,
    "top_p": NUMBERS,
    "presence_penalty": NUMBERS,
    "frequency_penalty": NUMBERS,
    "max_tokens": COUNTS,
    "max_completion_tokens": COUNTS,
    "n": COUNTS,
    "seed": INTEGERS,
    "stop": STOP,
    "logit_bias": st.dictionaries(TEXT, NUMBERS, max_size=2),
}
CHAT = _body(
    {"model": MODELS, "messages": st.lists(MESSAGE, min_size=1, max_size=4)},
    {
        **_GENERATION,
        "tools": st.lists(TOOL, max_size=2),
        "tool_choice": TOOL_CHOICE,
        "parallel_tool_calls": st.booleans(),
        "response_format": RESPONSE_FORMAT,
        "logprobs": st.booleans(),
        "top_logprobs": COUNTS,
    },
)

# -- the other OpenAI endpoints ----------------------------------------------------------------

TOKENS = st.lists(st.integers(-1, 50_000), max_size=3)
TEXTS_OR_TOKENS = st.one_of(
    TEXT,
    st.lists(sometimes_junk(TEXT), max_size=3),
    TOKENS,
    st.lists(TOKENS, max_size=3),
)
COMPLETIONS = _body(
    {"model": MODELS, "prompt": TEXTS_OR_TOKENS},
    {**_GENERATION, "logprobs": COUNTS, "echo": st.booleans(), "suffix": TEXT},
)
EMBEDDINGS = _body(
    {"model": MODELS, "input": TEXTS_OR_TOKENS},
    {
        **_COMMON,
        "dimensions": COUNTS,
        "encoding_format": st.sampled_from(["float", "base64"]),
        "input_type": st.sampled_from(["search_query", "classification"]),
    },
)
IMAGES = _body(
    {"model": MODELS, "prompt": TEXT},
    {
        **_COMMON,
        "n": COUNTS,
        "size": st.sampled_from(["1024x1024", "1792x1024", "0x0", "axb", "x", "9" * 5000]) | TEXT,
        "response_format": st.sampled_from(["url", "b64_json"]),
        "quality": st.sampled_from(["standard", "hd"]),
        "style": st.sampled_from(["vivid", "natural"]),
        "negative_prompt": TEXT,
        "seed": INTEGERS,
        "style_preset": TEXT,
    },
)
MODERATIONS = _body(
    {
        "model": MODELS,
        "input": st.one_of(TEXT, st.lists(sometimes_junk(TEXT | CONTENT_PART), max_size=3)),
    },
    {},
)

# -- Anthropic Messages (the inbound format) ---------------------------------------------------

IMAGE_SOURCE = st.one_of(
    st.fixed_dictionaries(
        {
            "type": st.just("base64"),
            "media_type": sometimes_junk(st.sampled_from(["image/png", "image/tiff"])),
            "data": sometimes_junk(st.just("iVBORw0KGgo=")),
        }
    ),
    st.fixed_dictionaries(
        {"type": st.just("url"), "url": sometimes_junk(IMAGE_URLS)},
    ),
    st.fixed_dictionaries({"type": sometimes_junk(st.just("file"))}),
)
TEXT_BLOCK = st.fixed_dictionaries({"type": st.just("text"), "text": sometimes_junk(TEXT)})
IMAGE_BLOCK = st.fixed_dictionaries(
    {"type": st.just("image"), "source": sometimes_junk(IMAGE_SOURCE)}
)
BLOCK = st.one_of(
    TEXT_BLOCK,
    IMAGE_BLOCK,
    st.fixed_dictionaries(
        {
            "type": st.just("tool_use"),
            "id": sometimes_junk(TOOL_IDS),
            "name": sometimes_junk(st.sampled_from(["f", "g"])),
        },
        optional={"input": sometimes_junk(JSON_OBJECTS)},
    ),
    st.fixed_dictionaries(
        {"type": st.just("tool_result"), "tool_use_id": sometimes_junk(TOOL_IDS)},
        optional={
            "content": sometimes_junk(TEXT | st.lists(TEXT_BLOCK | IMAGE_BLOCK, max_size=2)),
            "is_error": sometimes_junk(st.booleans()),
        },
    ),
    st.fixed_dictionaries({"type": sometimes_junk(st.sampled_from(["thinking", "document"]))}),
)
ANTHROPIC_MESSAGE = st.fixed_dictionaries(
    {
        "role": sometimes_junk(st.sampled_from(["user", "assistant", "system"])),
        "content": sometimes_junk(TEXT | st.lists(sometimes_junk(BLOCK), max_size=3)),
    }
)
ANTHROPIC_TOOL = st.fixed_dictionaries(
    {"name": sometimes_junk(st.sampled_from(["f", "g"]))},
    optional={
        "description": sometimes_junk(TEXT),
        "input_schema": sometimes_junk(st.just({"type": "object"}) | JSON_OBJECTS),
        "type": sometimes_junk(st.sampled_from(["custom", "web_search_20250305"])),
    },
)
ANTHROPIC_TOOL_CHOICE = st.fixed_dictionaries(
    {"type": sometimes_junk(st.sampled_from(["auto", "any", "none", "tool"]))},
    optional={
        "name": sometimes_junk(st.sampled_from(["f", "g"])),
        "disable_parallel_tool_use": sometimes_junk(st.booleans()),
    },
)
MESSAGES = _body(
    {
        "model": MODELS,
        "max_tokens": COUNTS,
        "messages": st.lists(ANTHROPIC_MESSAGE, min_size=1, max_size=4),
    },
    {
        "system": TEXT | st.lists(TEXT_BLOCK, max_size=2),
        "temperature": NUMBERS,
        "top_p": NUMBERS,
        "stop_sequences": st.lists(TEXT, max_size=2),
        "metadata": st.fixed_dictionaries({}, optional={"user_id": sometimes_junk(TEXT)}),
        "stream": st.booleans(),
        "tools": st.lists(ANTHROPIC_TOOL, max_size=2),
        "tool_choice": ANTHROPIC_TOOL_CHOICE,
    },
)
