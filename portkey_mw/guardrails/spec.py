"""Configs' hook lists compiled into :class:`HookSpec` objects, validated once.

Portkey's shapes are accepted as written:

* ``before_request_hooks`` / ``after_request_hooks``: ``[{"id", "type", "deny", "async",
  "sequential", "on_fail", "on_success", "checks": [{"id", "parameters", "is_enabled"}]}]``;
* ``input_guardrails`` / ``output_guardrails`` shorthand: each entry is either the id of a
  guardrail the server file defines (``guardrails:``), or an object whose hook keys
  (``deny``, ``async``, ``on_fail``...) are lifted and whose other keys are checks
  (``{"default.contains": {"operator": "none", "words": ["x"]}, "deny": true}``; an id
  without a dot gets ``default.``).

Unlike Portkey's gateway, an unknown check id, bad parameters (a regex that does not
compile, an invalid JSON schema) or a hook without checks is a config error (400) naming
the check, not a check that silently passes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from portkey_mw import patterns
from portkey_mw.errors import InvalidConfig
from portkey_mw.guardrails.api import Guardrail, Phase

#: hook-level keys of the shorthand; every other key is a check
HOOK_KEYS = frozenset(
    {
        "id",
        "type",
        "deny",
        "async",
        "sequential",
        "on_fail",
        "on_success",
        "onFail",
        "onSuccess",
        "fail_on_error",
        "timeout",
        "guardrail_version_id",
    }
)
#: seconds a check may take before it counts as errored (a hook's ``timeout`` overrides)
DEFAULT_CHECK_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class CheckSpec:
    """One check of a hook: which guardrail, with which parameters."""

    id: str
    guardrail: Guardrail
    params: Mapping[str, Any]
    #: an error (exception, timeout, bad answer) fails the hook instead of passing it
    fail_on_error: bool = False


@dataclass(frozen=True, slots=True)
class HookSpec:
    """One hook: checks that run together, with what a failure means."""

    id: str
    phase: Phase
    checks: tuple[CheckSpec, ...]
    type: str = "guardrail"
    deny: bool = False
    run_async: bool = False
    sequential: bool = False
    on_fail: Mapping[str, Any] | None = None
    on_success: Mapping[str, Any] | None = None
    timeout: float = DEFAULT_CHECK_TIMEOUT


@dataclass(frozen=True, slots=True)
class HookSet:
    """The compiled hooks of one target: before the call, and after it."""

    before: tuple[HookSpec, ...] = ()
    after: tuple[HookSpec, ...] = ()
    #: ``after`` cut down to what can judge a stream's partial text: the deny hooks' checks
    #: whose ``stream_mode`` is ``incremental`` (other failures are judged on the whole text)
    after_incremental: tuple[HookSpec, ...] = field(default=(), compare=False)

    def __bool__(self) -> bool:
        return bool(self.before or self.after)


NO_HOOKS = HookSet()


class HookCompiler:
    """Compiles and validates hook lists against the registered guardrails.

    :param guardrails: registered guardrails by id.
    :param named: the server file's ``guardrails`` section: id -> hook (either shape).
    """

    def __init__(
        self, guardrails: Mapping[str, Guardrail], named: Mapping[str, Any] | None = None
    ) -> None:
        self.guardrails = guardrails
        self.named = dict(named or {})
        self._counter = 0

    def validate_named(self) -> None:
        """Compile every named guardrail once, so a broken one stops the server at start."""
        for name, definition in self.named.items():
            self._hook(definition, "before", f"guardrails.{name}", name, lenient_phase=True)

    def compile(
        self,
        *,
        before_request_hooks: list[Any] | tuple[Any, ...] = (),
        after_request_hooks: list[Any] | tuple[Any, ...] = (),
        input_guardrails: list[Any] | tuple[Any, ...] = (),
        output_guardrails: list[Any] | tuple[Any, ...] = (),
        where: str = "config",
    ) -> HookSet:
        """The :class:`HookSet` for one target's lists (full hooks first, then shorthand)."""
        before = [
            self._hook(entry, "before", f"{where}.before_request_hooks[{i}]", None)
            for i, entry in enumerate(before_request_hooks)
        ] + [
            self._shorthand(entry, "before", f"{where}.input_guardrails[{i}]")
            for i, entry in enumerate(input_guardrails)
        ]
        after = [
            self._hook(entry, "after", f"{where}.after_request_hooks[{i}]", None)
            for i, entry in enumerate(after_request_hooks)
        ] + [
            self._shorthand(entry, "after", f"{where}.output_guardrails[{i}]")
            for i, entry in enumerate(output_guardrails)
        ]
        return HookSet(tuple(before), tuple(after), _incremental_only(after))

    # -- shapes ------------------------------------------------------------------------

    def _shorthand(self, entry: Any, phase: Phase, where: str) -> HookSpec:
        if isinstance(entry, str):
            if entry not in self.named:
                raise InvalidConfig(
                    f"{where}: no guardrail {entry!r} is defined in the server file's "
                    "'guardrails' section"
                )
            return self._hook(self.named[entry], phase, where, entry)
        if not isinstance(entry, dict):
            raise InvalidConfig(f"{where}: expected a guardrail id or an object")
        return self._hook(entry, phase, where, None)

    def _hook(
        self,
        entry: Any,
        phase: Phase,
        where: str,
        default_id: str | None,
        *,
        lenient_phase: bool = False,
    ) -> HookSpec:
        if not isinstance(entry, dict):
            raise InvalidConfig(f"{where}: a hook must be an object")
        if "checks" in entry:
            raw_checks = entry["checks"]
            if not isinstance(raw_checks, list):
                raise InvalidConfig(f"{where}.checks must be a list")
            checks = [
                self._check(check, phase, f"{where}.checks[{i}]", lenient_phase)
                for i, check in enumerate(raw_checks)
                if not (isinstance(check, dict) and check.get("is_enabled") is False)
            ]
        else:
            # Shorthand: every key that is not a hook setting is a check id.
            checks = [
                self._check(
                    {"id": _qualified(key), "parameters": value},
                    phase,
                    f"{where}.{key}",
                    lenient_phase,
                )
                for key, value in entry.items()
                if key not in HOOK_KEYS
                and not (isinstance(value, dict) and value.get("is_enabled") is False)
            ]
        if not checks:
            raise InvalidConfig(f"{where}: the hook has no (enabled) checks")
        hook_type = entry.get("type", "guardrail")
        if hook_type not in ("guardrail", "mutator"):
            raise InvalidConfig(f"{where}.type must be 'guardrail' or 'mutator'")
        timeout = entry.get("timeout", DEFAULT_CHECK_TIMEOUT * 1000)
        if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0:
            raise InvalidConfig(f"{where}.timeout must be a number of milliseconds above 0")
        fail_on_error = _flag(entry, "fail_on_error", where)
        if fail_on_error:
            checks = [_with_fail_on_error(check) for check in checks]
        return HookSpec(
            id=str(entry.get("id") or default_id or self._next_id(phase)),
            phase=phase,
            checks=tuple(checks),
            type=hook_type,
            deny=_flag(entry, "deny", where),
            run_async=_flag(entry, "async", where),
            # Mutators rewrite: each must see the previous one's result.
            sequential=_flag(entry, "sequential", where) or hook_type == "mutator",
            on_fail=_mapping(entry.get("on_fail", entry.get("onFail")), f"{where}.on_fail"),
            on_success=_mapping(
                entry.get("on_success", entry.get("onSuccess")), f"{where}.on_success"
            ),
            timeout=float(timeout) / 1000,
        )

    def _check(self, raw: Any, phase: Phase, where: str, lenient_phase: bool) -> CheckSpec:
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
            raise InvalidConfig(f"{where}: a check needs an 'id'")
        check_id = raw["id"]
        guardrail = self.guardrails.get(check_id)
        if guardrail is None:
            known = ", ".join(sorted(self.guardrails)) or "none"
            raise InvalidConfig(f"{where}: unknown check {check_id!r} (known: {known})")
        if not lenient_phase and phase not in guardrail.phases:
            raise InvalidConfig(
                f"{where}: check {check_id!r} runs only "
                f"{' and '.join(sorted(guardrail.phases))} the request"
            )
        params = raw.get("parameters", {})
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise InvalidConfig(f"{where}.parameters must be an object")
        try:
            guardrail.validate(params)
        except (ValueError, TypeError) as exc:
            raise InvalidConfig(f"{where}: check {check_id!r}: {exc}") from exc
        return CheckSpec(
            id=check_id,
            guardrail=guardrail,
            params=params,
            fail_on_error=bool(params.get("failOnError") or params.get("fail_on_error")),
        )

    def _next_id(self, phase: Phase) -> str:
        self._counter += 1
        return f"{'input' if phase == 'before' else 'output'}_guardrail_{self._counter}"


def _incremental_only(hooks: list[HookSpec]) -> tuple[HookSpec, ...]:
    kept = []
    for hook in hooks:
        if not hook.deny or hook.run_async:
            continue
        checks = tuple(c for c in hook.checks if c.guardrail.stream_mode == "incremental")
        if checks:
            kept.append(replace(hook, checks=checks))
    return tuple(kept)


def _qualified(check_id: str) -> str:
    return check_id if "." in check_id else f"default.{check_id}"


def _flag(entry: Mapping[str, Any], key: str, where: str) -> bool:
    value = entry.get(key, False)
    if not isinstance(value, bool):
        raise InvalidConfig(f"{where}.{key} must be true or false")
    return value


def _mapping(value: Any, where: str) -> Mapping[str, Any] | None:
    if value is None or isinstance(value, dict):
        return value
    raise InvalidConfig(f"{where} must be an object")


def _with_fail_on_error(check: CheckSpec) -> CheckSpec:
    return CheckSpec(check.id, check.guardrail, check.params, fail_on_error=True)


# -- parameter helpers for guardrail implementations -------------------------------------


def compile_regex(pattern: Any, name: str = "rule") -> patterns.Pattern[str]:
    """``pattern`` compiled (``/body/flags`` accepted, with ``i``, ``m``, ``s``, ``g``),
    or ``ValueError`` naming the parameter. Match it with :func:`portkey_mw.patterns.search`,
    which bounds its time."""
    if not isinstance(pattern, str) or not pattern:
        raise ValueError(f"'{name}' must be a non-empty regular expression")
    flags = 0
    literal = re.fullmatch(r"/(.*)/([gimsuy]*)", pattern, flags=re.DOTALL)
    if literal:
        pattern = literal.group(1)
        for letter in literal.group(2):
            flags |= {
                "i": patterns.IGNORECASE,
                "m": patterns.MULTILINE,
                "s": patterns.DOTALL,
            }.get(letter, 0)
    try:
        return patterns.compile_pattern(pattern, flags)
    except patterns.error as exc:
        raise ValueError(f"'{name}' is not a valid regular expression: {exc}") from None


def require(params: Mapping[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    """``params[name]``, which must be present and of ``kind``; ``ValueError`` otherwise."""
    value = params.get(name)
    if value is None or not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise ValueError(f"'{name}' is required ({_kind_name(kind)})")
    return value


OPERATORS = ("any", "all", "none")


def require_operator(params: Mapping[str, Any], default: str) -> str:
    """``params["operator"]`` (``any``, ``all`` or ``none``), or ``ValueError``."""
    operator = params.get("operator", default)
    if operator not in OPERATORS:
        raise ValueError("'operator' must be 'any', 'all' or 'none'")
    return str(operator)


def require_names(params: Mapping[str, Any], name: str) -> list[str]:
    """``params[name]``: a non-empty list of strings, or ``ValueError``."""
    value = require(params, name, list)
    if not value or not all(isinstance(item, str) for item in value):
        raise ValueError(f"'{name}' must be a non-empty list of strings")
    return [str(item) for item in value]


def operator_holds(operator: str, present: list[str], missing: list[str]) -> bool:
    """Whether ``any``/``all``/``none`` of the wanted items are present."""
    return {"any": bool(present), "all": not missing, "none": not present}[operator]


def optional_number(params: Mapping[str, Any], name: str) -> float | None:
    """``params[name]`` if given, as a number; ``ValueError`` if it is not one."""
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"'{name}' must be a number")
    return float(value)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {str: "a string", list: "a list", dict: "an object", int: "an integer"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)
