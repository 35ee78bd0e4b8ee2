"""The server file (YAML): listen address, limits, named configs, default config, plugins."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from portkey_mw.config.schema import Config
from portkey_mw.errors import InvalidConfig

DEFAULT_PORT = 8787  # the Portkey gateway's port
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
#: multipart uploads: OpenAI takes audio files up to 25 MB and image edits up to 50 MB
DEFAULT_MAX_UPLOAD_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_HEADER_BYTES = 64 * 1024
DEFAULT_MAX_HEADER_VALUE_BYTES = 32 * 1024
DEFAULT_MAX_CONFIG_BYTES = 16 * 1024
DEFAULT_MAX_UPSTREAM_BODY_BYTES = 64 * 1024 * 1024
#: measured on tests/data/paraphrases.toml with all-MiniLM-L6-v2 (benchmarks/bench_cache.py)
DEFAULT_SIMILARITY_THRESHOLD = 0.85
#: the first-party verifiers (portkey-mw.semantic-verifiers), the default of cache.verifiers
DEFAULT_VERIFIERS = ("numbers", "negation", "direction", "time", "antonyms", "entities")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerOptions(_Strict):
    """``server``: how the standalone server listens and what it accepts."""

    host: str = "127.0.0.1"
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    workers: int = Field(default=1, ge=1)
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, gt=0)
    max_upload_bytes: int = Field(
        default=DEFAULT_MAX_UPLOAD_BYTES,
        gt=0,
        description="a multipart body (audio transcriptions and translations, image edits, "
        "file uploads); more is a 413",
    )
    request_timeout: int | None = Field(default=None, gt=0, description="ms, per attempt")
    connect_timeout: float = Field(default=10.0, gt=0, description="seconds")
    max_connections: int = Field(default=1000, gt=0, description="upstream pool size")
    max_connections_per_host: int = Field(
        default=256,
        gt=0,
        description="upstream connections to any one host: a slow host cannot take the pool",
    )
    max_header_bytes: int = Field(
        default=DEFAULT_MAX_HEADER_BYTES,
        gt=0,
        description="request line and headers together; more is a 431",
    )
    max_header_value_bytes: int = Field(
        default=DEFAULT_MAX_HEADER_VALUE_BYTES,
        gt=0,
        description="any one request header; more is a 431",
    )
    max_config_bytes: int = Field(
        default=DEFAULT_MAX_CONFIG_BYTES,
        gt=0,
        description="an inline x-portkey-config; more is a 400",
    )
    header_timeout: float = Field(
        default=10.0, gt=0, description="seconds a client has to send its request headers"
    )
    body_timeout: float = Field(
        default=60.0, gt=0, description="seconds a client has to send the whole request body"
    )
    auth: AuthMode | None = Field(
        default=None,
        description="gateway API keys on the data plane: off, optional or required "
        "(PORTKEY_MW_AUTH wins; default: required when an admin key is set, else off)",
    )
    max_upstream_body_bytes: int = Field(
        default=DEFAULT_MAX_UPSTREAM_BODY_BYTES,
        gt=0,
        description="a complete (not streamed) upstream response; more is a 502",
    )


class CircuitBreakerOptions(_Strict):
    """``routing.circuit_breaker``: skip a target that keeps failing, for a while."""

    enabled: bool = True
    failure_threshold: int = Field(
        default=5, ge=1, description="consecutive failures that open a target's circuit"
    )
    cooldown: float = Field(
        default=30.0, gt=0, description="seconds a circuit stays open before one trial request"
    )


class RoutingOptions(_Strict):
    """``routing``: limits that keep retries and fallbacks from making an outage worse."""

    max_attempts: int = Field(
        default=10,
        ge=1,
        description="upstream attempts per request, retries and fallbacks together",
    )
    retry_base_delay: float = Field(default=0.5, ge=0, description="seconds; doubles per retry")
    retry_max_delay: float = Field(default=8.0, ge=0, description="seconds; backoff ceiling")
    max_retry_after: float = Field(
        default=30.0, ge=0, description="seconds; longest Retry-After wait honoured"
    )
    stream_idle_timeout: float = Field(
        default=60.0, gt=0, description="seconds a stream may stay silent between chunks"
    )
    circuit_breaker: CircuitBreakerOptions = Field(default_factory=CircuitBreakerOptions)


class CacheOptions(_Strict):
    """``cache``: where cached responses live (configs turn caching on per request)."""

    backend: str = Field(default="memory", description="name of a registered cache backend")
    semantic_index: str = Field(
        default="qdrant", description="name of a registered semantic index (mode: semantic)"
    )
    similarity_threshold: float = Field(
        default=DEFAULT_SIMILARITY_THRESHOLD,
        ge=0.0,
        le=1.0,
        description="cosine similarity a semantic hit needs when the config sets none",
    )
    verifiers: list[str] = Field(
        default_factory=lambda: list(DEFAULT_VERIFIERS),
        description="registered semantic verifiers a candidate must pass before it is "
        "served, when the config names none ([]: similarity alone decides)",
    )
    semantic_candidates: int = Field(
        default=5,
        ge=1,
        le=50,
        description="candidates above the threshold a semantic lookup verifies, best first",
    )
    semantic_timeout: float = Field(
        default=1.0,
        gt=0,
        description="seconds for embedding plus search; slower is a miss, never a failure",
    )
    coalesce: bool = Field(
        default=True,
        description="identical cacheable misses in flight together make one upstream call",
    )
    coalesce_max_stream_bytes: int = Field(
        default=2 * 1024 * 1024,
        gt=0,
        description="bytes of a streamed answer kept for replay to requests that share it",
    )


class EmbeddingOptions(_Strict):
    """``embedding``: the sentence-embedding model (semantic cache)."""

    model: str = Field(
        default="sentence-transformers/all-MiniLM-L6-v2", description="fastembed model name"
    )
    path: str | None = Field(
        default=None, description="local model directory (model.onnx and tokenizer files)"
    )
    dim: int | None = Field(default=None, gt=0, description="vector size of a local model")
    pooling: Literal["mean", "cls"] = Field(default="mean", description="for a local model")
    threads: int = Field(default=1, ge=1, description="onnxruntime threads per encoding")
    workers: int = Field(default=2, ge=1, description="encodings that may run at once")


class OutboundOptions(_Strict):
    """``outbound``: what the gateway may contact on a client's or a config's behalf (see
    docs/security.md). Public addresses always; loopback for custom hosts; anything else
    only when listed here."""

    allow: list[str] = Field(
        default_factory=list,
        description="host names, *.domains, IP addresses and CIDR networks the gateway may "
        "reach although they are private (an internal vLLM, a webhook on the intranet)",
    )
    loopback_custom_hosts: bool = Field(
        default=True,
        description="whether custom hosts may be loopback addresses (a local vLLM or Ollama)",
    )
    max_valid_urls: int = Field(
        default=10, ge=1, le=100, description="URLs one validUrls check probes at most"
    )
    max_fetches_per_request: int = Field(
        default=32,
        ge=1,
        description="calls the guardrail checks of one request may make in all (webhooks, "
        "validUrls probes, redirects included)",
    )


class AdminOptions(_Strict):
    """``admin``: the key every ``/v1/admin/*`` route requires (PORTKEY_MW_ADMIN_KEY, or the
    SHA-256 of it here, so that the file need not hold the key itself)."""

    key_sha256: str | None = Field(
        default=None,
        pattern=r"^[0-9a-fA-F]{64}$",
        description="hex SHA-256 of the admin key (portkey-mw admin hash-key prints it)",
    )


AuthMode = Literal["off", "optional", "required"]


class StoreOptions(_Strict):
    """``store``: where the control plane (virtual keys, API keys, saved configs) lives."""

    url: str | None = Field(
        default=None,
        description="SQLAlchemy URL (sqlite+aiosqlite:///..., postgresql://...); "
        "PORTKEY_MW_DATABASE_URL wins; default: control.db in the data directory",
    )
    enabled: bool = Field(
        default=True,
        description="open the store at start-up (false: no control plane, no vault)",
    )
    refresh_interval: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="seconds between checks for changes made by other processes: the "
        "bound on how stale a virtual key, API key or saved config can be",
    )
    miss_reads_per_second: float = Field(
        default=20.0,
        ge=0,
        description="store reads per second this process may spend on unknown keys, slugs "
        "and config ids (the rest are answered from memory)",
    )


class PromptOptions(_Strict):
    """``prompts``: how prompt calls (``/v1/prompts/{id}/completions``) are rendered."""

    strict_variables: bool = Field(
        default=False,
        description="refuse (400 unknown_variable) variables a prompt's template does not "
        "use; by default they are ignored",
    )
    max_rendered_chars: int = Field(
        default=1_048_576,
        ge=1024,
        le=64 * 1024 * 1024,
        description="the longest rendered prompt, in characters (400 past it)",
    )
    directory: Path | None = Field(
        default=None,
        description="prompt files (*.yaml, *.yml) applied to the store at start-up; relative "
        "to the server file; default: the prompts/ directory beside the server file, if any",
    )
    bad_files: Literal["stop", "skip"] = Field(
        default="stop",
        description="a bad prompt file stops the start (stop), or is logged and left out (skip)",
    )

    def beside(self, server_file: Path) -> PromptOptions:
        """These options with ``directory`` resolved against the server file's folder."""
        base = server_file.parent
        if self.directory is None:
            default = base / "prompts"
            return self.model_copy(update={"directory": default}) if default.is_dir() else self
        if self.directory.is_absolute():
            return self
        return self.model_copy(update={"directory": base / self.directory})


class ResponsesOptions(_Strict):
    """``responses``: the responses ``/v1/responses`` stores when it translates to chat
    completions (``store``, ``previous_response_id``; see docs/http.md)."""

    store: Literal["sql", "memory"] = Field(
        default="sql",
        description="where stored responses live: the control-plane SQL store (memory when "
        "store.enabled is false), or this process only",
    )
    ttl: float = Field(
        default=7 * 24 * 3600,
        gt=0,
        description="seconds a stored response can be read or continued (default 7 days)",
    )
    max_entry_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=1024,
        description="the largest stored response, conversation included (a request whose "
        "conversation is larger, with store on, is refused: 400 conversation_too_large)",
    )
    memory_entries: int = Field(
        default=10_000, ge=1, description="stored responses each process keeps in memory"
    )
    memory_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=1024,
        description="bytes of stored responses each process keeps in memory",
    )


class EnforcedHooks(_Strict):
    """``enforced``: guardrails every request runs, whatever config it uses (before the
    config's own)."""

    before_request_hooks: list[dict[str, Any]] = Field(default_factory=list)
    after_request_hooks: list[dict[str, Any]] = Field(default_factory=list)
    input_guardrails: list[Any] = Field(default_factory=list)
    output_guardrails: list[Any] = Field(default_factory=list)

    @property
    def any(self) -> bool:
        """Whether any hook is enforced."""
        return bool(
            self.before_request_hooks
            or self.after_request_hooks
            or self.input_guardrails
            or self.output_guardrails
        )


class PluginOptions(_Strict):
    """``plugins``: which entry points load, and settings handed to plugins by name."""

    load: list[str] | None = Field(
        default=None, description="allow-list of entry-point names; None loads all"
    )
    block: list[str] = Field(default_factory=list, description="entry-point names never loaded")
    settings: dict[str, dict[str, Any]] = Field(default_factory=dict)


class PriceOptions(_Strict):
    """One model's price, in US dollars per million tokens; it wins over genai-prices'."""

    input: float = Field(ge=0)
    output: float = Field(default=0.0, ge=0)
    cache_read: float | None = Field(
        default=None, ge=0, description="cached input tokens read (default: the input price)"
    )
    cache_write: float | None = Field(
        default=None, ge=0, description="input tokens written to a cache (default: input price)"
    )


#: longest ``limits.metadata`` match, written out (``team=search``): the store keeps
#: usage under it
MAX_MATCH_LENGTH = 256


class MetadataBudget(_Strict):
    """One ``limits.metadata`` policy: every request whose metadata has all of ``match``
    counts against one shared budget and rate limits (e.g. a team's)."""

    name: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
        description="how messages, the admin API and the CLI name it (default: the match, "
        "e.g. team=search)",
    )
    match: dict[str, str | int | bool] = Field(
        min_length=1,
        max_length=8,
        description="metadata keys and the values a request must carry (all of them)",
    )
    usage_limits: dict[str, Any] | None = Field(
        default=None, description="a budget, as on API keys (Portkey's usage_limits)"
    )
    rate_limits: list[dict[str, Any]] | None = Field(
        default=None, max_length=16, description="rate limits, as on API keys"
    )

    @field_validator("usage_limits")
    @classmethod
    def _budget(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        from portkey_mw.limits.spec import parse_budget

        parse_budget(value)  # ValueError names the field
        return value

    @field_validator("rate_limits")
    @classmethod
    def _rates(cls, value: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        from portkey_mw.limits.spec import parse_rate_limits

        parse_rate_limits(value)
        return value

    @field_validator("match")
    @classmethod
    def _short(cls, value: dict[str, str | int | bool]) -> dict[str, str | int | bool]:
        label = ",".join(f"{key}={_plain(item)}" for key, item in value.items())
        if len(label) > MAX_MATCH_LENGTH:
            raise ValueError(f"keys and values together must be at most {MAX_MATCH_LENGTH} chars")
        return value

    @property
    def label(self) -> str:
        """``team=search``: the match, sorted, as one string."""
        return ",".join(f"{key}={_plain(value)}" for key, value in sorted(self.match.items()))


def _plain(value: str | int | bool) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


class LimitsOptions(_Strict):
    """``limits``: where budgets and rate limits are counted, and budgets on metadata."""

    backend: Literal["auto", "memory", "redis"] = Field(
        default="auto",
        description="memory: this process's counters; redis: shared by every replica; "
        "auto: redis when redis_url or PORTKEY_MW_REDIS_URL is set, else memory",
    )
    redis_url: str | None = Field(
        default=None,
        description="redis:// or rediss:// URL (PORTKEY_MW_REDIS_URL wins); it may hold a "
        "password, so it is never logged",
    )
    redis_timeout: float = Field(
        default=0.25, gt=0, le=10, description="seconds per Redis call before it degrades"
    )
    persist_interval: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="seconds between writes of budget usage to the store (and at shutdown)",
    )
    alert_webhook: str | None = Field(
        default=None,
        pattern=r"^https?://",
        max_length=2048,
        description="URL POSTed a JSON event when a budget crosses its alert_threshold or "
        "is exhausted (once per period)",
    )
    metadata: list[MetadataBudget] = Field(
        default_factory=list, max_length=256, description="budgets on metadata values"
    )

    @field_validator("metadata")
    @classmethod
    def _distinct(cls, value: list[MetadataBudget]) -> list[MetadataBudget]:
        names = [policy.name or policy.label for policy in value]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"two metadata budgets are named {twice[0]!r}")
        return value


class LoggingOptions(_Strict):
    """``logging``: what each request's log record holds and where it is kept (see
    docs/observability.md)."""

    bodies: bool = Field(
        default=False,
        description="keep request and response bodies in the log record (an API key's "
        "defaults.log_bodies wins; x-portkey-debug: false turns them off per request)",
    )
    max_body_bytes: int = Field(
        default=65_536, ge=0, le=16 * 1024 * 1024, description="cap on each body kept"
    )
    redact_pii: bool = Field(
        default=False, description="mask PII in kept bodies with the PII guardrail's detector"
    )
    store: Literal["sql", "off"] = Field(
        default="sql",
        description="the SQL log store (the control plane's database) or none; the "
        "dashboard, the query API and Portkey's analytics read it",
    )
    retention_days: float = Field(
        default=30, ge=0, description="delete records older than this (0: keep them)"
    )
    max_records: int = Field(
        default=1_000_000, ge=0, description="keep at most this many records (0: no cap)"
    )
    queue_size: int = Field(
        default=10_000,
        ge=1,
        le=10_000_000,
        description="records held for the sinks (while a sink is down, too); past it, new "
        "records are dropped and counted",
    )
    drain_timeout: float = Field(
        default=10.0,
        ge=0,
        le=3600,
        description="seconds shutdown waits for the sinks to take the records they hold; "
        "what a sink that stays down still holds then is logged as lost",
    )


class RealtimeOptions(_Strict):
    """``realtime``: bounds on ``/v1/realtime`` WebSocket sessions (see docs/http.md)."""

    max_frame_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        le=256 * 1024 * 1024,
        description="largest WebSocket message relayed either way; a larger one closes the "
        "session with 1009 (message too big)",
    )
    max_session_seconds: float = Field(
        default=3600,
        ge=0,
        description="a session open longer is closed with 1008 (0: no limit)",
    )
    connect_timeout: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="seconds to open the upstream WebSocket (handshake included)",
    )


class ServerSettings(_Strict):
    """The whole server file. Every key is optional: the defaults run the gateway."""

    server: ServerOptions = Field(default_factory=ServerOptions)
    configs: dict[str, Config] = Field(
        default_factory=dict, description="named configs, referenced by x-portkey-config: <id>"
    )
    default_config: Config | str | None = Field(
        default=None, description="used when a request names neither config nor provider"
    )
    providers: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="extra OpenAI-compatible providers described as data (see docs)",
    )
    routing: RoutingOptions = Field(default_factory=RoutingOptions)
    cache: CacheOptions = Field(default_factory=CacheOptions)
    embedding: EmbeddingOptions = Field(default_factory=EmbeddingOptions)
    guardrails: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="named guardrails (hooks), referenced by id from input/output_guardrails",
    )
    pricing: dict[str, PriceOptions] = Field(
        default_factory=dict,
        description="model prices (USD per 1M tokens) that add to or win over genai-prices'",
    )
    outbound: OutboundOptions = Field(default_factory=OutboundOptions)
    admin: AdminOptions = Field(default_factory=AdminOptions)
    store: StoreOptions = Field(default_factory=StoreOptions)
    enforced: EnforcedHooks = Field(default_factory=EnforcedHooks)
    limits: LimitsOptions = Field(default_factory=LimitsOptions)
    logging: LoggingOptions = Field(default_factory=LoggingOptions)
    prompts: PromptOptions = Field(default_factory=PromptOptions)
    responses: ResponsesOptions = Field(default_factory=ResponsesOptions)
    realtime: RealtimeOptions = Field(default_factory=RealtimeOptions)
    mock: bool = Field(
        default=False,
        description="register the in-process mock provider (for demos and tests only)",
    )
    plugins: PluginOptions = Field(default_factory=PluginOptions)

    @field_validator("default_config")
    @classmethod
    def _named_default_exists(cls, value: Config | str | None, info: Any) -> Config | str | None:
        configs = info.data.get("configs", {})
        if isinstance(value, str) and value not in configs:
            raise ValueError(f"default_config names {value!r}, which configs does not define")
        return value

    @classmethod
    def from_file(cls, path: str | Path) -> ServerSettings:
        """Read and validate a YAML server file, raising :class:`InvalidConfig` with details."""
        try:
            # from the open file, so that YAML's error marks name it, not "<unicode string>"
            with Path(path).open(encoding="utf-8") as stream:
                raw = yaml.safe_load(stream)
        except OSError as exc:
            raise InvalidConfig(f"cannot read server file {path}: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            raise InvalidConfig(f"server file {path} is not valid YAML: {exc}") from exc
        settings = cls.from_mapping(raw or {}, source=str(path))
        # paths in the file are relative to the file, not to the working directory
        return settings.model_copy(update={"prompts": settings.prompts.beside(Path(path))})

    @classmethod
    def from_mapping(cls, raw: Any, *, source: str = "settings") -> ServerSettings:
        """Validate already-parsed settings (e.g. from tests or an embedding app)."""
        if not isinstance(raw, dict):
            raise InvalidConfig(f"{source}: the top level must be a mapping")
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise InvalidConfig(f"{source}: {describe_validation_error(exc)}") from exc


def describe_validation_error(exc: ValidationError) -> str:
    """One line per problem, each naming the field path and the rule broken."""
    parts = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)
