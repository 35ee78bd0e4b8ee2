"""The config parser, fed hostile input: any ``x-portkey-config`` text (JSON or not), any
provider header, near-valid configs of every kind, resolve to a plan or fail with a 4xx
:class:`GatewayError` naming the problem -- never another exception.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portkey_mw import Gateway
from portkey_mw.config.resolve import ConfigResolver
from portkey_mw.errors import GatewayError
from tests import hostile_bodies as bodies

CHECKED = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
junk = bodies.sometimes_junk


@pytest.fixture(scope="module")
def resolver() -> ConfigResolver:
    """The resolver of a gateway with every installed plugin (providers, guardrails)."""
    return Gateway().resolver


def assert_resolves_or_refuses(resolver: ConfigResolver, headers: dict[str, str]) -> None:
    try:
        asyncio.run(resolver.resolve(headers))
    except GatewayError as error:
        assert 400 <= error.status < 500, error.to_dict()
        assert error.message


PROVIDER_IDS = st.sampled_from(["openai", "anthropic", "bedrock", "mock", "vllm", "nope", ""])
CHECK_IDS = st.sampled_from(
    [
        "default.regexMatch",
        "default.contains",
        "default.jsonSchema",
        "default.wordCount",
        "default.webhook",
        "default.modelWhitelist",
        "regexMatch",
        "no.such",
    ]
)
CHECK = st.fixed_dictionaries(
    {"id": junk(CHECK_IDS)},
    optional={
        "parameters": junk(
            st.fixed_dictionaries(
                {},
                optional={
                    "rule": junk(st.sampled_from(["a+", "(", "", "[a-"])),
                    "words": junk(st.lists(bodies.TEXT, max_size=2)),
                    "operator": junk(st.sampled_from(["any", "all", "none", "some"])),
                    "schema": junk(st.just({"type": "object"}) | bodies.JSON_OBJECTS),
                    "minWords": junk(bodies.NUMBERS),
                    "url": junk(st.sampled_from(["http://hooks.test/x", "ftp://x", ""])),
                    "models": junk(st.lists(bodies.TEXT, max_size=2)),
                },
            )
        ),
        "is_enabled": junk(st.booleans()),
    },
)
HOOK = st.fixed_dictionaries(
    {"checks": junk(st.lists(CHECK, max_size=2))},
    optional={
        key: junk(value)
        for key, value in {
            "id": bodies.TEXT,
            "type": st.sampled_from(["guardrail", "mutator", "other"]),
            "deny": st.booleans(),
            "async": st.booleans(),
            "sequential": st.booleans(),
            "on_fail": bodies.JSON_OBJECTS,
            "timeout": bodies.NUMBERS,
        }.items()
    },
)
SHORTHAND = st.one_of(
    bodies.TEXT,
    st.dictionaries(CHECK_IDS | st.sampled_from(["deny", "async"]), bodies.JSON, max_size=3),
)
QUERY = st.recursive(
    st.dictionaries(
        st.sampled_from(["metadata.user", "params.model", "url.pathname", "$foo"]),
        bodies.JSON
        | st.dictionaries(
            st.sampled_from(["$eq", "$ne", "$gt", "$in", "$nin", "$regex", "$bad"]),
            bodies.JSON | st.sampled_from(["(", "a.*"]),
            max_size=2,
        ),
        max_size=2,
    ),
    lambda inner: st.dictionaries(
        st.sampled_from(["$and", "$or"]), st.lists(inner, max_size=2) | bodies.JSON, max_size=1
    ),
    max_leaves=4,
)
STRATEGY = st.fixed_dictionaries(
    {"mode": junk(st.sampled_from(["single", "fallback", "loadbalance", "conditional", "x"]))},
    optional={
        "on_status_codes": junk(st.lists(st.integers(0, 700), max_size=2)),
        "conditions": junk(
            st.lists(
                st.fixed_dictionaries(
                    {"query": junk(QUERY), "then": junk(st.sampled_from(["a", "b", "c"]))}
                ),
                max_size=2,
            )
        ),
        "default": junk(st.sampled_from(["a", "b", "c"])),
    },
)
TARGET_FIELDS = {
    "name": st.sampled_from(["a", "b"]),
    "api_key": bodies.TEXT,
    "virtual_key": bodies.TEXT,
    "weight": bodies.NUMBERS,
    "on_status_codes": st.lists(st.integers(0, 700), max_size=2),
    "retry": st.fixed_dictionaries(
        {},
        optional={
            "attempts": junk(st.integers(-1, 7)),
            "on_status_codes": junk(st.lists(st.integers(0, 700), max_size=2)),
            "use_retry_after_header": junk(st.booleans()),
        },
    ),
    "cache": st.fixed_dictionaries(
        {"mode": junk(st.sampled_from(["simple", "semantic", "x"]))},
        optional={"max_age": junk(bodies.COUNTS), "similarity_threshold": junk(bodies.NUMBERS)},
    ),
    "request_timeout": bodies.COUNTS,
    "custom_host": st.sampled_from(["http://h.test/v1", "https://h.test", "h.test", ""]),
    "forward_headers": st.lists(bodies.TEXT, max_size=2),
    "override_params": bodies.JSON_OBJECTS,
    "before_request_hooks": st.lists(HOOK, max_size=2),
    "after_request_hooks": st.lists(HOOK, max_size=2),
    "input_guardrails": st.lists(SHORTHAND, max_size=2),
    "output_guardrails": st.lists(SHORTHAND, max_size=2),
    "strict_open_ai_compliance": st.booleans(),
    "aws_region": bodies.TEXT,  # a provider option, kept as is
}


def _target(children: st.SearchStrategy[Any] | None) -> st.SearchStrategy[Any]:
    optional = {key: junk(value) for key, value in TARGET_FIELDS.items()}
    if children is not None:
        optional["strategy"] = junk(STRATEGY)
        optional["targets"] = junk(st.lists(children, max_size=3))
    return st.fixed_dictionaries({"provider": junk(PROVIDER_IDS)}, optional=optional)


CONFIGS = st.recursive(_target(None), _target, max_leaves=4)


@CHECKED
@given(config=CONFIGS, provider=st.none() | PROVIDER_IDS, key=st.none() | bodies.TEXT)
def test_a_near_valid_config_resolves_or_is_a_4xx(
    resolver: ConfigResolver, config: Any, provider: str | None, key: str | None
) -> None:
    headers = {"x-portkey-config": orjson.dumps(config).decode()}
    if provider is not None:
        headers["x-portkey-provider"] = provider
    if key is not None:
        headers["authorization"] = f"Bearer {key}"
    assert_resolves_or_refuses(resolver, headers)


HEADER_TEXT = st.text(max_size=40) | st.sampled_from(["{", "{}", "[]", "null", '{"a":'])


@CHECKED
@given(
    config=st.one_of(
        HEADER_TEXT,
        bodies.JSON.map(lambda value: orjson.dumps(value).decode()),
        HEADER_TEXT.map(lambda text: "{" + text),
    ),
    provider=st.none() | HEADER_TEXT,
    custom_host=st.none() | HEADER_TEXT,
    authorization=st.none() | HEADER_TEXT,
)
def test_any_header_text_resolves_or_is_a_4xx(
    resolver: ConfigResolver,
    config: str,
    provider: str | None,
    custom_host: str | None,
    authorization: str | None,
) -> None:
    headers = {"x-portkey-config": config}
    for name, value in (
        ("x-portkey-provider", provider),
        ("x-portkey-custom-host", custom_host),
        ("authorization", authorization),
    ):
        if value is not None:
            headers[name] = value
    assert_resolves_or_refuses(resolver, headers)
