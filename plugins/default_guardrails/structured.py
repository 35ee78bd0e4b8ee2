"""Checks on JSON in the answer, and on the request itself (model, metadata, endpoint)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import jsonschema
import orjson

from portkey_mw import patterns
from portkey_mw.guardrails.api import Guardrail, GuardrailInput, GuardrailVerdict
from portkey_mw.guardrails.spec import (
    operator_holds,
    require,
    require_names,
    require_operator,
)

from .text import excerpt, inverted

_FENCED = re.compile(r"```(?:json)?\s*\n?(.*?)```", re.DOTALL)


def json_candidates(text: str) -> Iterator[Any]:
    """JSON values in ``text``: the whole text, fenced code blocks, then every balanced
    ``{...}`` / ``[...]`` span (nested objects included)."""
    stripped = text.strip()
    seen: list[str] = []
    for candidate in (stripped, *_FENCED.findall(text), *_balanced(text)):
        candidate = candidate.strip()
        if not candidate or candidate in seen:
            continue
        seen.append(candidate)
        try:
            yield orjson.loads(candidate)
        except orjson.JSONDecodeError:
            continue


def _balanced(text: str) -> Iterator[str]:
    """Outermost spans from an opening brace or bracket to its matching close."""
    depth, start, quoted, escaped = 0, -1, False, False
    for i, char in enumerate(text):
        if quoted:
            escaped = not escaped and char == "\\"
            if char == '"' and not escaped:
                quoted = False
            continue
        if char == '"' and depth:
            quoted = True
        elif char in "{[":
            if depth == 0:
                start = i
            depth += 1
        elif char in "}]" and depth:
            depth -= 1
            if depth == 0:
                yield text[start : i + 1]


def _bounded(cls: Any) -> Any:
    """``cls`` with ``pattern`` and ``patternProperties`` matched through
    :mod:`portkey_mw.patterns`, in bounded time (a schema comes from a config)."""

    def pattern(validator: Any, expected: str, instance: Any, schema: Any) -> Any:
        if isinstance(instance, str) and patterns.search(expected, instance) is None:
            yield jsonschema.ValidationError(f"{instance!r} does not match {expected!r}")

    def pattern_properties(validator: Any, expected: Any, instance: Any, schema: Any) -> Any:
        if not isinstance(instance, dict):
            return
        for expression, subschema in expected.items():
            for name, value in instance.items():
                if patterns.search(expression, name):
                    yield from validator.descend(value, subschema, path=name, schema_path=name)

    return jsonschema.validators.extend(
        cls, {"pattern": pattern, "patternProperties": pattern_properties}
    )


class JsonSchema(Guardrail):
    """``default.jsonSchema``: JSON in the answer validates against ``schema``."""

    id: ClassVar[str] = "default.jsonSchema"

    def validate(self, params: Mapping[str, Any]) -> None:
        schema = require(params, "schema", dict)
        try:
            jsonschema.validators.validator_for(schema).check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise ValueError(f"'schema' is not a valid JSON schema: {exc.message}") from None

    async def check(self, subject: GuardrailInput, params: Mapping[str, Any]) -> GuardrailVerdict:
        schema = params["schema"]
        validator = _bounded(jsonschema.validators.validator_for(schema))(schema)
        first_errors: list[dict[str, str]] | None = None
        for value in json_candidates(subject.text):
            errors = sorted(validator.iter_errors(value), key=lambda e: list(e.path))
            if not errors:
                return GuardrailVerdict(
                    inverted(params, True), "JSON matching the schema found", {"matchedJson": value}
                )
            if first_errors is None:
                first_errors = [
                    {"path": "/".join(map(str, e.path)) or "/", "message": e.message}
                    for e in errors[:10]
                ]
        if first_errors is None:
            return GuardrailVerdict(False, "no JSON found in the text", {"not": params.get("not")})
        return GuardrailVerdict(
            inverted(params, False),
            "the JSON does not match the schema",
            {"validationErrors": first_errors},
        )


class JsonKeys(Guardrail):
    """``default.jsonKeys``: a JSON object in the answer has ``keys`` (``operator`` ``any``,
    ``all`` or ``none``)."""

    id: ClassVar[str] = "default.jsonKeys"

    def validate(self, params: Mapping[str, Any]) -> None:
        require_names(params, "keys")
        require_operator(params, "all")

    async def check(self, subject: GuardrailInput, params: Mapping[str, Any]) -> GuardrailVerdict:
        keys = [str(k) for k in params["keys"]]
        operator = params.get("operator", "all")
        best: tuple[list[str], list[str]] | None = None
        for value in json_candidates(subject.text):
            if not isinstance(value, dict):
                continue
            present = [k for k in keys if k in value]
            missing = [k for k in keys if k not in value]
            if operator_holds(operator, present, missing):
                return GuardrailVerdict(
                    True, "the JSON has the keys asked for", {"presentKeys": present}
                )
            if best is None or len(present) > len(best[0]):
                best = (present, missing)
        if best is None:
            return GuardrailVerdict(False, "no JSON object found in the text")
        return GuardrailVerdict(
            False,
            f"keys check '{operator}' failed",
            {"presentKeys": best[0], "missingKeys": best[1], "textExcerpt": excerpt(subject.text)},
        )


class ModelWhitelist(Guardrail):
    """``default.modelWhitelist``: the request's model is one of ``models``."""

    id: ClassVar[str] = "default.modelWhitelist"

    def validate(self, params: Mapping[str, Any]) -> None:
        require(params, "models", list)

    async def check(self, subject: GuardrailInput, params: Mapping[str, Any]) -> GuardrailVerdict:
        model = subject.model
        allowed = model in [str(m) for m in params["models"]]
        return GuardrailVerdict(
            inverted(params, allowed),
            f"model {model!r} is {'' if allowed else 'not '}in the list",
            {"requestedModel": model, "allowedModels": params["models"]},
        )


class RequiredMetadataKeys(Guardrail):
    """``default.requiredMetadataKeys``: ``metadataKeys`` in ``x-portkey-metadata``
    (``operator`` ``all`` by default, ``any`` or ``none``)."""

    id: ClassVar[str] = "default.requiredMetadataKeys"
    phases: ClassVar[frozenset[str]] = frozenset({"before"})

    def validate(self, params: Mapping[str, Any]) -> None:
        require_names(params, "metadataKeys")
        require_operator(params, "all")

    async def check(self, subject: GuardrailInput, params: Mapping[str, Any]) -> GuardrailVerdict:
        keys = [str(k) for k in params["metadataKeys"]]
        operator = params.get("operator", "all")
        found = [k for k in keys if k in subject.metadata]
        missing = [k for k in keys if k not in subject.metadata]
        passed = operator_holds(operator, found, missing)
        return GuardrailVerdict(
            passed,
            f"metadata keys check '{operator}' {'passed' if passed else 'failed'}",
            {"missing_metadata_keys": missing, "found_metadata_keys": found},
        )


def _names(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list):
        return [str(part) for part in value]
    raise ValueError("expected a list or a comma-separated string")


class AllowedRequestTypes(Guardrail):
    """``default.allowedRequestTypes``: the endpoint (``chatComplete``, ``complete``,
    ``embed``...) is in ``allowedTypes`` and not in ``blockedTypes``; without either, the
    metadata keys ``supported_endpoints`` / ``blocked_endpoints`` decide."""

    id: ClassVar[str] = "default.allowedRequestTypes"
    phases: ClassVar[frozenset[str]] = frozenset({"before"})

    def validate(self, params: Mapping[str, Any]) -> None:
        allowed = _names(params.get("allowedTypes")) or []
        blocked = _names(params.get("blockedTypes")) or []
        both = set(allowed) & set(blocked)
        if both:
            raise ValueError(f"{sorted(both)} are both allowed and blocked")

    async def check(self, subject: GuardrailInput, params: Mapping[str, Any]) -> GuardrailVerdict:
        allowed = _names(params.get("allowedTypes"))
        blocked = _names(params.get("blockedTypes"))
        source = "parameters"
        if allowed is None and blocked is None:
            allowed = _names(subject.metadata.get("supported_endpoints"))
            blocked = _names(subject.metadata.get("blocked_endpoints"))
            source = "metadata" if allowed is not None or blocked is not None else "default"
        kind = subject.request_type
        passed = not (blocked and kind in blocked) and (not allowed or kind in allowed)
        return GuardrailVerdict(
            passed,
            f"request type {kind!r} is {'allowed' if passed else 'not allowed'}",
            {
                "currentRequestType": kind,
                "allowedTypes": allowed,
                "blockedTypes": blocked,
                "source": source,
            },
        )


CHECKS: tuple[type[Guardrail], ...] = (
    JsonSchema,
    JsonKeys,
    ModelWhitelist,
    RequiredMetadataKeys,
    AllowedRequestTypes,
)
