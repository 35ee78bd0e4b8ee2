"""Request bodies of the prompt library's routes (the portkey-ai SDK's field names).

A version's fields (``string``, ``model``, ``parameters`` ...) are one group: a create
takes them all, an update that names any of them makes a new version from the newest one
with those fields replaced. ``provider``, ``config`` and ``variables`` are portkey-mw's
additions (a version may route by a provider id or a saved config rather than a virtual
key, and declare its variables' defaults).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from portkey_mw.admin.schemas import MAX_TEXT, Lenient, Strict

#: Longest template (Portkey's ``string``) kept.
MAX_TEMPLATE = 256 * 1024
#: The fields that make up a version (an update naming one makes a new version).
VERSION_FIELDS = (
    "string", "model", "virtual_key", "provider", "config", "parameters", "tools",
    "tool_choice", "functions", "response_format", "variables", "template_metadata",
)  # fmt: skip
_ID = Field(None, max_length=200)


class VersionFields(Lenient):
    """What a prompt version holds besides its number."""

    string: str | None = Field(None, max_length=MAX_TEMPLATE)
    model: str | None = Field(None, max_length=256)
    virtual_key: str | None = Field(None, max_length=255)
    provider: str | None = Field(None, max_length=128)
    config: str | None = Field(None, max_length=255)
    parameters: dict[str, Any] | None = None
    tools: list[Any] | None = Field(None, max_length=128)
    tool_choice: str | dict[str, Any] | None = None
    functions: list[Any] | None = Field(None, max_length=128)
    response_format: dict[str, Any] | None = None
    #: variable name -> default value (a name with a default may be left out of a call)
    variables: dict[str, Any] | None = Field(None, max_length=256)
    template_metadata: dict[str, Any] | None = None
    version_description: str | None = Field(None, max_length=MAX_TEXT)


class PromptCreate(VersionFields):
    """``POST /v1/prompts`` and ``POST /v1/prompts/partials``."""

    name: str = Field(min_length=1, max_length=MAX_TEXT)
    string: str = Field(max_length=MAX_TEMPLATE)
    collection_id: str | None = _ID
    workspace_id: str | None = _ID


class PromptUpdate(VersionFields):
    """``PUT /v1/prompts/{slug}``: a version field makes a new version."""

    name: str | None = Field(None, min_length=1, max_length=MAX_TEXT)
    collection_id: str | None = _ID
    description: str | None = Field(None, max_length=MAX_TEXT)
    status: Literal["active", "archived"] | None = None


class Publish(Strict):
    """``PUT …/makeDefault``."""

    version: int = Field(ge=1, le=10**9)


class LabelVersion(Lenient):
    """``PUT /v1/prompts/{slug}/versions/{version}``: point a label at this version."""

    label_id: str = Field(min_length=1, max_length=200)


class LabelSplit(Strict):
    """``PUT /v1/prompts/{slug}/labels/{label}`` (portkey-mw's): a label split by weight."""

    versions: list[dict[str, Any]]
    sticky: str = "user"


class LabelCreate(Lenient):
    """``POST /v1/labels``."""

    name: str = Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
    description: str | None = Field(None, max_length=MAX_TEXT)
    color_code: str | None = Field(None, max_length=32)
    workspace_id: str | None = _ID
    organization_id: str | None = _ID


class LabelUpdate(Lenient):
    """``PUT /v1/labels/{id}``."""

    name: str | None = Field(
        None, min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$"
    )
    description: str | None = Field(None, max_length=MAX_TEXT)
    color_code: str | None = Field(None, max_length=32)


class CollectionCreate(Lenient):
    """``POST /v1/collections``."""

    name: str = Field(min_length=1, max_length=255)
    workspace_id: str | None = _ID
    parent_collection_id: str | None = _ID


class CollectionUpdate(Lenient):
    """``PUT /v1/collections/{id}``."""

    name: str | None = Field(None, min_length=1, max_length=255)
    parent_collection_id: str | None = _ID
