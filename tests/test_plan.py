"""Compiling configs into plans: Portkey's inheritance rules between levels."""

from __future__ import annotations

from portkey_mw.config.resolve import validate_config
from portkey_mw.routing import ResolvedTarget, StrategyNode, compile_plan

CONFIG = {
    "strategy": {"mode": "fallback"},
    "override_params": {"temperature": 0, "max_tokens": 10},
    "retry": {"attempts": 2},
    "request_timeout": 5000,
    "custom_host": "http://parent.test/v1",
    "forward_headers": ["x-tenant"],
    "before_request_hooks": [{"id": "parent-check"}],
    "cache": {"mode": "simple", "max_age": 60},
    "targets": [
        {"provider": "openai", "override_params": {"max_tokens": 99, "model": "gpt-4o"}},
        {
            "strategy": {"mode": "loadbalance"},
            "retry": {"attempts": 0},
            "custom_host": "http://child.test/v1",
            "before_request_hooks": [],
            "targets": [
                {"provider": "groq", "request_timeout": 100, "weight": 3},
                {"provider": "mock", "forward_headers": ["x-other"], "name": "m"},
            ],
        },
    ],
}


def leaves(node: object) -> list[ResolvedTarget]:
    if isinstance(node, ResolvedTarget):
        return [node]
    assert isinstance(node, StrategyNode)
    return [leaf for child in node.children for leaf in leaves(child)]


def test_inheritance_between_levels() -> None:
    plan = compile_plan(validate_config(CONFIG))
    first, groq, mock = leaves(plan)
    # override_params merge, the child winning key by key
    assert first.override_params == {"temperature": 0, "max_tokens": 99, "model": "gpt-4o"}
    assert groq.override_params == {"temperature": 0, "max_tokens": 10}
    # the rest is inherited unless a level sets its own, which replaces the parent's whole
    assert first.retry is not None and first.retry.attempts == 2
    assert groq.retry is not None and groq.retry.attempts == 0
    assert (first.request_timeout, groq.request_timeout, mock.request_timeout) == (5000, 100, 5000)
    assert first.custom_host == "http://parent.test/v1"
    assert groq.custom_host == mock.custom_host == "http://child.test/v1"
    assert first.forward_headers == groq.forward_headers == ("x-tenant",)
    assert mock.forward_headers == ("x-other",)
    assert first.hooks.before_request == ({"id": "parent-check"},)
    assert groq.hooks.before_request == ()
    assert first.cache == groq.cache and first.cache is not None
    # paths name each target for x-portkey-last-used-option-index
    assert [leaf.path for leaf in (first, groq, mock)] == [
        "config.targets[0]",
        "config.targets[1].targets[0]",
        "config.targets[1].targets[1]",
    ]
    assert groq.weight == 3 and mock.weight == 1 and mock.name == "m"


def test_client_key_only_for_a_single_provider_id() -> None:
    single = compile_plan(validate_config({"provider": "openai"}), default_api_key="sk-c")
    assert isinstance(single, ResolvedTarget) and single.api_key == "sk-c"
    mixed = compile_plan(validate_config(CONFIG), default_api_key="sk-c")
    assert all(leaf.api_key is None for leaf in leaves(mixed))


def test_server_held_keys_are_marked() -> None:
    config = validate_config({"provider": "openai", "api_key": "sk-server"})
    assert compile_plan(config, server_held=True).key_from_server  # type: ignore[union-attr]
    assert not compile_plan(config).key_from_server  # type: ignore[union-attr]
