"""Request bodies of the control-plane routes, checked at the edge with pydantic.

Field names are the portkey-ai SDK's (``awsAccessKeyId``, ``sub-type`` ...); where the SDK
passes ``**kwargs`` straight into the body, unknown keys are allowed and reported back in
the response's ``warning`` rather than refused. Numbers, booleans and strings are strict:
``"10"`` is not a limit and ``"false"`` is not a boolean. Nested objects whose fields
decide budgets, limits or access (``usage_limits``, ``rate_limits``, ``defaults``) refuse
unknown keys, so a misspelt ``allow_config_overide`` is an error, not a silent no-op.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from portkey_mw.errors import InvalidRequest

#: Longest name, note or description kept.
MAX_TEXT = 1000
#: Longest credential accepted (a service account key is about 2.5 kB).
MAX_SECRET = 64 * 1024
#: Most rate limits on one record.
MAX_RATE_LIMITS = 16
#: Largest number a limit may hold (beyond it no budget or rate means anything, and
#: databases' integer columns end).
MAX_NUMBER = 10**12
#: Most scopes on one API key.
MAX_SCOPES = 256
#: A slug the caller chooses: lower-case letters, digits and dashes (pydantic searches, so
#: the pattern is anchored).
SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]{0,63}$"
SCOPE = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)+")

Model = TypeVar("Model", bound=BaseModel)


def parse_body(model: type[Model], body: dict[str, Any], what: str) -> Model:
    """Validate ``body`` as ``model``.

    :raises InvalidRequest: naming every bad field (``error.param`` is the first one).
    """
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise InvalidRequest(
            f"invalid {what}: {describe(exc)}", param=_first_field(exc), code="invalid_body"
        ) from None


def describe(exc: ValidationError) -> str:
    """One clause per problem, naming the field path and the rule broken (never the value)."""
    parts = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


def _first_field(exc: ValidationError) -> str | None:
    errors = exc.errors(include_url=False, include_input=False)
    loc = errors[0]["loc"] if errors else ()
    return ".".join(str(p) for p in loc) or None


def ignored_fields(model: BaseModel) -> list[str]:
    """The body's keys no field took (their names only: values may be credentials)."""
    return sorted(str(k)[:64] for k in (model.model_extra or {}))


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 timestamp as sent (a string); one without a zone is UTC."""
    if value is None or isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 timestamp string, e.g. 2030-01-31T00:00:00Z")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(
            "must be an ISO 8601 timestamp string, e.g. 2030-01-31T00:00:00Z"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class Strict(BaseModel):
    """Strict types; unknown keys refused."""

    model_config = ConfigDict(strict=True, extra="forbid", populate_by_name=True)


class Lenient(BaseModel):
    """Strict types; unknown keys kept aside (the SDK passes ``**kwargs`` through)."""

    model_config = ConfigDict(strict=True, extra="allow", populate_by_name=True)


# -- shared parts ---------------------------------------------------------------------------


class UsageLimits(Strict):
    """A budget (Portkey's ``usage_limits``); enforced by the limits layer."""

    credit_limit: float | None = Field(None, ge=0, le=MAX_NUMBER, allow_inf_nan=False)
    type: Literal["cost", "tokens"] = "cost"
    alert_threshold: float | None = Field(None, ge=0, le=MAX_NUMBER, allow_inf_nan=False)
    periodic_reset: Literal["monthly", "weekly"] | None = None
    periodic_reset_days: int | None = Field(None, ge=1, le=365)

    @model_validator(mode="after")
    def _consistent(self) -> UsageLimits:
        if self.periodic_reset and self.periodic_reset_days:
            raise ValueError("give periodic_reset or periodic_reset_days, not both")
        limit, alert = self.credit_limit, self.alert_threshold
        if limit is not None and alert is not None and alert > limit:
            raise ValueError("alert_threshold must not be above credit_limit")
        return self


class RateLimit(Strict):
    """One rate limit: ``value`` requests or tokens per ``unit``; 0 turns it off."""

    type: Literal["requests", "tokens"] = "requests"
    unit: Literal["rps", "rpm", "rph", "rpd", "rpw"]
    value: int = Field(ge=0, le=MAX_NUMBER)


def _rate_limit_list(value: Any) -> Any:
    # The providers API sends one limit as an object; virtual keys and API keys a list.
    return [value] if isinstance(value, dict) else value


def _unique_limits(limits: list[RateLimit] | None) -> list[RateLimit] | None:
    if limits:
        seen = [(lim.type, lim.unit) for lim in limits]
        if len(set(seen)) != len(seen):
            raise ValueError("each (type, unit) pair may appear once")
    return limits


class WithLimits(BaseModel):
    """Budget, rate limits and expiry, as every record kind takes them."""

    usage_limits: UsageLimits | None = None
    rate_limits: list[RateLimit] | None = Field(None, max_length=MAX_RATE_LIMITS)
    expires_at: datetime | None = None

    _rate_list = field_validator("rate_limits", mode="before")(_rate_limit_list)
    _rate_unique = field_validator("rate_limits", mode="after")(_unique_limits)
    _time = field_validator("expires_at", mode="before")(parse_time)

    def limit_changes(self) -> dict[str, Any]:
        """The record fields for the limits this body sets (only those it names)."""
        out: dict[str, Any] = {}
        given = self.model_fields_set
        if "usage_limits" in given:
            limits = self.usage_limits
            out["usage_limits"] = limits.model_dump(exclude_none=True) if limits else None
        if "rate_limits" in given:
            out["rate_limits"] = tuple(r.model_dump() for r in self.rate_limits or ())
        return out


# -- virtual keys and providers ---------------------------------------------------------------


class Deployment(Lenient):
    """One Azure deployment of Portkey's ``deploymentConfig``."""

    deployment_name: str = Field(alias="deploymentName", min_length=1, max_length=MAX_TEXT)
    api_version: str | None = Field(None, alias="apiVersion", max_length=100)
    alias: str | None = Field(None, max_length=MAX_TEXT)
    is_default: bool = False


class VirtualKeyDefaults(Strict):
    """Request defaults a virtual key applies: a model, and parameters it overrides."""

    model: str | None = Field(None, min_length=1, max_length=MAX_TEXT)
    override_params: dict[str, Any] | None = None


def _service_account(value: Any) -> Any:
    # Portkey takes the key file as a JSON string or as the object itself; kept as text.
    if isinstance(value, dict):
        return orjson.dumps(value).decode()
    if isinstance(value, str):
        try:
            parsed = orjson.loads(value)
        except orjson.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, dict):
            raise ValueError("must be a service account key: a JSON object or its text")
    return value


class VirtualKeyFields(Lenient, WithLimits):
    """Every field a virtual key (or provider) body may set; all optional (update)."""

    name: str | None = Field(None, min_length=1, max_length=MAX_TEXT)
    provider: str | None = Field(None, min_length=1, max_length=100)
    note: str | None = Field(None, max_length=MAX_TEXT)
    workspace_id: str | None = Field(None, max_length=200)
    status: Literal["active", "disabled"] | None = None
    custom_host: str | None = Field(None, min_length=1, max_length=2048)
    defaults: VirtualKeyDefaults | None = None
    # credentials (kept in the vault, never shown)
    key: str | None = Field(None, min_length=1, max_length=MAX_SECRET)
    aws_access_key_id: str | None = Field(None, alias="awsAccessKeyId", max_length=MAX_TEXT)
    aws_secret_access_key: str | None = Field(
        None, alias="awsSecretAccessKey", max_length=MAX_SECRET
    )
    aws_session_token: str | None = Field(None, alias="awsSessionToken", max_length=MAX_SECRET)
    vertex_service_account_json: str | None = Field(
        None, alias="vertexServiceAccountJson", max_length=MAX_SECRET
    )
    # options (where requests go; shown as model_config)
    aws_region: str | None = Field(None, alias="awsRegion", max_length=100)
    resource_name: str | None = Field(None, alias="resourceName", max_length=MAX_TEXT)
    deployment_id: str | None = Field(None, alias="deploymentName", max_length=MAX_TEXT)
    deployment_config: list[Deployment] | None = Field(
        None, alias="deploymentConfig", max_length=64
    )
    api_version: str | None = Field(None, alias="apiVersion", max_length=100)
    vertex_project_id: str | None = Field(None, alias="vertexProjectId", max_length=MAX_TEXT)
    vertex_region: str | None = Field(None, alias="vertexRegion", max_length=100)

    _account = field_validator("vertex_service_account_json", mode="before")(_service_account)


class VirtualKeyCreate(VirtualKeyFields):
    """``POST /v1/virtual-keys``: a name and a provider at least."""

    name: str = Field(min_length=1, max_length=MAX_TEXT)
    provider: str = Field(min_length=1, max_length=100)
    slug: str | None = Field(None, pattern=SLUG_PATTERN, max_length=64)


class ProviderCreate(VirtualKeyFields):
    """``POST /v1/providers``: portkey-mw has no integrations, so ``integration_id`` names
    the provider (``openai``, ``azure-openai`` ...), as ``provider`` does."""

    name: str = Field(min_length=1, max_length=MAX_TEXT)
    integration_id: str | None = Field(None, min_length=1, max_length=100)
    slug: str | None = Field(None, pattern=SLUG_PATTERN, max_length=64)


class VirtualKeyUpdate(VirtualKeyFields):
    """``PUT /v1/virtual-keys/{slug}``: the virtual key fields, plus ``reset_usage`` (true:
    the budget's current period starts over once the update is made)."""

    reset_usage: bool | None = None


class ProviderUpdate(VirtualKeyUpdate):
    """``PUT /v1/providers/{slug}``: the same fields (the SDK sends ``reset_usage``)."""


# -- API keys ------------------------------------------------------------------------------


class ApiKeyDefaults(Strict):
    """What requests made with the key get unless they say otherwise."""

    config_id: str | None = Field(None, min_length=1, max_length=200)
    #: values are scalars, as in ``x-portkey-metadata`` (the log store indexes key=value)
    metadata: dict[str, str | int | float | bool | None] | None = None
    #: false: the key's config applies whatever the client sends
    allow_config_override: bool = True
    #: keep request and response bodies in the log records of the key's requests, or not,
    #: whatever the server's ``logging.bodies`` says (unset: the server decides)
    log_bodies: bool | None = None


def _scopes(value: list[str] | None) -> list[str] | None:
    if value is not None:
        bad = [i for i, scope in enumerate(value) if not SCOPE.fullmatch(scope)]
        if bad:
            raise ValueError(
                f"item {bad[0]} is not a scope name (lower-case words joined by dots, "
                "e.g. virtual_keys.read)"
            )
        return list(dict.fromkeys(value))
    return value


class ApiKeyFields(Lenient, WithLimits):
    """Fields an API key body may set, on create and on update."""

    name: str | None = Field(None, min_length=1, max_length=MAX_TEXT)
    description: str | None = Field(None, max_length=MAX_TEXT)
    scopes: list[str] | None = Field(None, max_length=MAX_SCOPES)
    defaults: ApiKeyDefaults | None = None

    _scope_names = field_validator("scopes", mode="after")(_scopes)


class ApiKeyCreate(ApiKeyFields):
    """``POST /v1/api-keys/{type}/{sub_type}``."""

    name: str = Field(min_length=1, max_length=MAX_TEXT)
    type: Literal["organisation", "workspace"] | None = None
    sub_type: Literal["service", "user"] | None = Field(None, alias="sub-type")
    workspace_id: str | None = Field(None, max_length=200)
    user_id: str | None = Field(None, min_length=1, max_length=200)


class ApiKeyUpdate(ApiKeyFields):
    """``PUT /v1/api-keys/{id}``; ``status: revoked`` is final; ``reset_usage: true``
    starts the budget's current period over once the update is made."""

    id: str | None = Field(None, max_length=200)
    status: Literal["active", "disabled", "revoked"] | None = None
    reset_usage: bool | None = None


# -- saved configs -------------------------------------------------------------------------


def _flag(value: Any) -> Any:
    # The SDK types is_default as an int (0 or 1).
    if type(value) is int and value in (0, 1):
        return bool(value)
    return value


class ConfigCreate(Lenient):
    """``POST /v1/configs``."""

    name: str = Field(min_length=1, max_length=MAX_TEXT)
    config: dict[str, Any]
    is_default: bool = False
    workspace_id: str | None = Field(None, max_length=200)

    _default = field_validator("is_default", mode="before")(_flag)


class ConfigUpdate(Lenient):
    """``PUT /v1/configs/{slug}``: a new ``config`` makes a new version."""

    slug: str | None = Field(None, max_length=200)
    name: str | None = Field(None, min_length=1, max_length=MAX_TEXT)
    config: dict[str, Any] | None = None
    status: Literal["active", "disabled"] | None = None
    is_default: bool | None = None

    _default = field_validator("is_default", mode="before")(_flag)
