"""The control plane's records, as the store hands them out: plain frozen dataclasses.

The store owns persistence (SQL, migrations, encryption at rest); everything else --
the admin API, the CLI, the in-process catalog the data plane reads -- sees only these.
Secrets appear here decrypted (``VirtualKey.secrets``) and only here: they are never
serialised by the admin API. Every record carries the store-wide ``revision`` at which it
last changed; deleted records stay as tombstones (``deleted=True``) so that replicas
polling :meth:`ControlStore.changes` learn about deletions too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

#: Status values shared by every record kind.
ACTIVE = "active"
#: A virtual key or API key turned off by an admin (kept, refused at request time).
DISABLED = "disabled"
#: A budget ran out (issue 12 sets it; refused with 412).
EXHAUSTED = "exhausted"
#: An API key that was revoked (refused with 401).
REVOKED = "revoked"


@dataclass(frozen=True, slots=True)
class VirtualKey:
    """A slug standing for a provider plus the credentials the vault holds for it.

    Portkey's "virtual keys" and its newer "providers" (Model Catalog) are two names for
    this one record.
    """

    id: str
    slug: str
    name: str
    #: the provider id (``openai``, ``azure-openai``, ``bedrock`` ...)
    provider: str
    #: the credentials, decrypted: ``api_key`` plus any of the provider's secret options
    #: (``aws_secret_access_key``, ``aws_session_token``, ``vertex_service_account_json``..);
    #: left out of ``repr``, so a record in a traceback or a log line shows none of them
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)
    #: provider options that are not secret (``resource_name``, ``aws_region``,
    #: ``vertex_project_id`` ...), snake_case as provider plugins read them
    options: Mapping[str, Any] = field(default_factory=dict)
    #: set by an admin only: where the credentials go instead of the provider's host
    custom_host: str | None = None
    #: request defaults: ``model`` and ``override_params``
    defaults: Mapping[str, Any] = field(default_factory=dict)
    note: str | None = None
    status: str = ACTIVE
    usage_limits: Mapping[str, Any] | None = None
    rate_limits: tuple[Mapping[str, Any], ...] = ()
    workspace_id: str | None = None
    expires_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    deleted: bool = False
    revision: int = 0


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A gateway API key. The key itself is never stored: only its keyed digest."""

    id: str
    name: str
    #: hex keyed digest of the key (see portkey_mw.auth.api_keys)
    key_digest: str
    #: what may be shown of the key after creation, e.g. ``pkmw-…a1b2``
    key_hint: str
    #: ``organisation`` | ``workspace``
    type: str = "organisation"
    #: ``service`` | ``user``
    sub_type: str = "service"
    description: str | None = None
    user_id: str | None = None
    workspace_id: str | None = None
    scopes: tuple[str, ...] = ()
    #: ``config_id``, ``metadata``, ``allow_config_override`` (default true)
    defaults: Mapping[str, Any] = field(default_factory=dict)
    status: str = ACTIVE
    usage_limits: Mapping[str, Any] | None = None
    rate_limits: tuple[Mapping[str, Any], ...] = ()
    expires_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    deleted: bool = False
    revision: int = 0

    @property
    def acting_workspace(self) -> str | None:
        """The workspace this key acts in: its own for a workspace key; ``None`` for an
        organisation key, which is organisation-wide whatever ``workspace_id`` it carries."""
        return self.workspace_id if self.type == "workspace" else None


@dataclass(frozen=True, slots=True)
class SavedConfig:
    """A routing config saved in the store; its slug works in ``x-portkey-config``."""

    id: str
    slug: str
    name: str
    #: the current version's config, as JSON (validated by the admin API before saving)
    config: Mapping[str, Any]
    #: id of the current version: every update makes a new one
    version_id: str
    is_default: bool = False
    status: str = ACTIVE
    workspace_id: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    deleted: bool = False
    revision: int = 0


@dataclass(frozen=True, slots=True)
class ConfigVersion:
    """One immutable version of a saved config."""

    id: str
    config_id: str
    config: Mapping[str, Any]
    created_at: datetime | None = None


#: A prompt's kind: a prompt one calls, or a partial other prompts include (``{{>pp-x}}``).
PROMPT = "prompt"
PARTIAL = "partial"


@dataclass(frozen=True, slots=True)
class PromptVersion:
    """One immutable, numbered version of a prompt or a partial."""

    id: str
    prompt_id: str
    #: 1, 2, ... per prompt, in creation order (the store numbers them)
    version: int
    #: the Mustache source (Portkey's ``string``): plain text or a JSON messages array
    template: str
    #: what the version holds besides its template, as JSON: ``model``, ``virtual_key``,
    #: ``provider``, ``config``, ``parameters``, ``tools``, ``tool_choice``, ``functions``,
    #: ``variables`` (declared names and their defaults), ``template_metadata``
    definition: Mapping[str, Any] = field(default_factory=dict)
    description: str | None = None
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Prompt:
    """A prompt (or a partial) with every version it has had.

    Its slug (``pp-…``) is unique among prompts and partials together: both are named the
    same way in ids and in ``{{>pp-…}}``.
    """

    id: str
    slug: str
    name: str
    #: :data:`PROMPT` or :data:`PARTIAL`
    kind: str = PROMPT
    #: the version ``pp-x`` (no ``@``) means: the published one
    default_version: int = 1
    #: oldest first; the store fills it in
    versions: tuple[PromptVersion, ...] = ()
    #: label id -> ``{"versions": [{"version": n, "weight": w}, ...], "sticky": "user"}``:
    #: where each label points (one version, or a weighted split between several)
    labels: Mapping[str, Any] = field(default_factory=dict)
    collection_id: str | None = None
    status: str = ACTIVE
    workspace_id: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    deleted: bool = False
    revision: int = 0

    def version(self, number: int) -> PromptVersion | None:
        """Version ``number``, if there is one."""
        if 1 <= number <= len(self.versions) and self.versions[number - 1].version == number:
            return self.versions[number - 1]
        return next((v for v in self.versions if v.version == number), None)

    @property
    def latest(self) -> PromptVersion | None:
        """The newest version."""
        return self.versions[-1] if self.versions else None


@dataclass(frozen=True, slots=True)
class Label:
    """A name a prompt version can be deployed under (``production`` ...)."""

    id: str
    name: str
    description: str | None = None
    color_code: str | None = None
    workspace_id: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    deleted: bool = False
    revision: int = 0


@dataclass(frozen=True, slots=True)
class Collection:
    """A folder of prompts (collections may nest)."""

    id: str
    slug: str
    name: str
    workspace_id: str | None = None
    parent_collection_id: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    deleted: bool = False
    revision: int = 0


@dataclass(frozen=True, slots=True)
class Changes:
    """What changed after a revision: every record touched since, tombstones included."""

    revision: int
    virtual_keys: tuple[VirtualKey, ...] = ()
    api_keys: tuple[ApiKey, ...] = ()
    configs: tuple[SavedConfig, ...] = ()
    prompts: tuple[Prompt, ...] = ()
    labels: tuple[Label, ...] = ()
