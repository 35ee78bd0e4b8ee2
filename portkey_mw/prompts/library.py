"""Prompts as the data plane uses them: found in the catalog's memory, parsed once per
version, rendered into a chat completion request.

Nothing here reads the store on a request's path but the catalog's budgeted read of a name
it does not know yet (a prompt created on another replica less than a refresh interval
ago). Each version's template is parsed once and kept (versions never change).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from portkey_mw.errors import InvalidRequest
from portkey_mw.prompts.selection import PromptNotFound, choose, split_id
from portkey_mw.prompts.template import (
    PartialRef,
    PromptTemplate,
    Template,
    parse_template,
    partial_closure,
)
from portkey_mw.store.records import PARTIAL, PROMPT, Label, Prompt, PromptVersion

#: parsed versions kept (prompts and partials together; the least recently used go first)
COMPILED_ENTRIES = 4096
#: the longest prompt id worth a lookup (a slug and a selector)
MAX_PROMPT_ID = 300
#: how deep partials may include partials (the template layer stops rendering there too)
MAX_PARTIAL_DEPTH = 10
#: body keys of a prompt call that are not chat parameters
CALL_KEYS = frozenset({"variables"})
#: chat parameters a call may not override: the template makes them
FIXED_KEYS = frozenset({"messages"})
#: what a version's ``parameters`` may not set (they come from elsewhere in the version)
NOT_PARAMETERS = frozenset({"messages", "stream", "variables"})


class PromptSource(Protocol):
    """Where the library finds prompts: the catalog (:class:`portkey_mw.auth.catalog.Catalog`)."""

    @property
    def labels(self) -> Mapping[str, Label]:
        """Custom labels by id."""

    def saved_prompt(self, name: str) -> Prompt | None:
        """A prompt or partial in memory, by slug or id."""

    async def prompt(self, name: str) -> Prompt | None:
        """A prompt or partial by slug or id; the store is read (within a budget) for a name
        memory does not hold."""


@dataclass(frozen=True, slots=True)
class RenderedPrompt:
    """A prompt call made into a chat completion request."""

    #: the chat completion body (model, messages, the version's and the call's parameters)
    body: dict[str, Any]
    prompt: Prompt
    version: PromptVersion
    #: the label the version was chosen through (its id), if any
    label: str | None
    #: where the version routes: ``virtual_key``, ``provider`` or ``config`` (set ones only)
    binding: dict[str, str]


class PromptLibrary:
    """Finds, parses and renders prompts.

    :param source: the catalog (``None``: no store, every prompt id is unknown).
    :param strict_variables: refuse (400) variables a template does not use, rather than
        ignore them.
    :param max_rendered_chars: the longest rendered prompt (a 400 past it).
    """

    def __init__(
        self,
        source: PromptSource | None,
        *,
        strict_variables: bool = False,
        max_rendered_chars: int = 1_048_576,
    ) -> None:
        self.source = source
        self.strict_variables = strict_variables
        self.max_rendered_chars = max_rendered_chars
        self._compiled: OrderedDict[str, PromptTemplate | Template] = OrderedDict()

    # -- finding ---------------------------------------------------------------------------
    async def find(self, name: str, workspace_id: str | None, *, kind: str = PROMPT) -> Prompt:
        """The live prompt (or partial) called ``name`` that a caller of ``workspace_id``
        may use (``None``: every workspace).

        :raises PromptNotFound: unknown, deleted, another workspace's, or the other kind.
        """
        found = None
        if self.source is not None and 0 < len(name) <= MAX_PROMPT_ID:
            found = await self.source.prompt(name)
        if (
            found is None
            or found.kind != kind
            or (workspace_id is not None and found.workspace_id != workspace_id)
        ):
            what = "partial" if kind == PARTIAL else "prompt"
            raise PromptNotFound(f"no {what} {name[:MAX_PROMPT_ID]!r}", param="prompt_id")
        return found

    def compiled(self, version: PromptVersion, kind: str = PROMPT) -> PromptTemplate | Template:
        """``version``'s template, parsed (once per version: versions never change)."""
        cached = self._compiled.get(version.id)
        if cached is None:
            cached = (
                PromptTemplate.parse(version.template)
                if kind == PROMPT
                else parse_template(version.template)
            )
            self._compiled[version.id] = cached
            while len(self._compiled) > COMPILED_ENTRIES:
                self._compiled.popitem(last=False)
        else:
            self._compiled.move_to_end(version.id)
        return cached

    def _labels(self) -> Mapping[str, Label]:
        return self.source.labels if self.source is not None else {}

    def _partials_of(self, prompt: Prompt) -> Callable[[PartialRef], Template]:
        """The partials ``prompt`` may include: the organisation's and its workspace's
        (slugs are one namespace, and a slug freed by a deletion may be taken by another
        workspace: its text must not reach this prompt)."""

        def lookup(ref: PartialRef) -> Template:
            return self._partial_template(ref, prompt.workspace_id)

        return lookup

    def _partial_template(self, ref: PartialRef, workspace_id: str | None = None) -> Template:
        """The partial ``ref`` names, from memory (:meth:`_load_partials` fetched them)."""
        found = self.source.saved_prompt(ref.slug) if self.source is not None else None
        if found is None or found.kind != PARTIAL or found.workspace_id not in (None, workspace_id):
            raise PromptNotFound(f"no partial {ref.slug[:MAX_PROMPT_ID]!r}", param="partial")
        version, _ = choose(found, ref.selector, self._labels(), {}, "")
        template = self.compiled(version, PARTIAL)
        assert isinstance(template, Template)
        return template

    async def _load_partials(
        self, template: PromptTemplate | Template, partials: Callable[[PartialRef], Template]
    ) -> None:
        """Bring every partial ``template`` reaches into memory (a budgeted store read for
        one created elsewhere moments ago), so rendering needs no await."""
        if self.source is None:
            return
        frontier = list(template.partials)
        seen: set[str] = set()
        for _ in range(MAX_PARTIAL_DEPTH + 1):
            following: list[PartialRef] = []
            for ref in frontier:
                if ref.text in seen:
                    continue
                seen.add(ref.text)
                if self.source.saved_prompt(ref.slug) is None:
                    await self.source.prompt(ref.slug)
                try:
                    following.extend(partials(ref).partials)
                except PromptNotFound:
                    continue  # said when rendering reaches it
            if not following:
                return
            frontier = following

    # -- rendering ------------------------------------------------------------------------
    async def render(
        self,
        name: str,
        body: Mapping[str, Any],
        *,
        workspace_id: str | None,
        callers: Mapping[str, str | None],
        fallback_caller: str,
    ) -> RenderedPrompt:
        """A prompt call (``body``: ``variables`` and chat parameters) as a chat request.

        :param name: the prompt id as sent (``pp-x``, ``pp-x@3``, ``pp-x@production``).
        :param callers: sticky values for label splits (see :func:`choose`).
        :raises PromptNotFound: no such prompt, version, label or partial (404).
        :raises InvalidRequest: a missing variable, an unknown one under
            ``strict_variables``, a bad override, a rendered prompt that is too large (400).
        """
        slug, selector = split_id(name)
        prompt = await self.find(slug, workspace_id)
        version, label = choose(prompt, selector, self._labels(), callers, fallback_caller)
        template = self.compiled(version)
        assert isinstance(template, PromptTemplate)
        partials = self._partials_of(prompt)
        await self._load_partials(template, partials)
        values = self._values(template, version, body.get("variables"), partials)
        messages = template.render(values, partials, max_chars=self.max_rendered_chars)
        return RenderedPrompt(
            body=_request(version, messages, body),
            prompt=prompt,
            version=version,
            label=label,
            binding=binding(version.definition),
        )

    def _values(
        self,
        template: PromptTemplate,
        version: PromptVersion,
        given: Any,
        partials: Callable[[PartialRef], Template],
    ) -> dict[str, Any]:
        if given is None:
            given = {}
        if not isinstance(given, dict):
            raise InvalidRequest(
                "variables must be an object of variable names to values",
                param="variables",
                code="invalid_variables",
            )
        declared = version.definition.get("variables")
        defaults: dict[str, Any] = dict(declared) if isinstance(declared, Mapping) else {}
        if self.strict_variables:
            known = set(template.required) | set(template.optional) | set(defaults)
            for ref in partial_closure(template, partials):
                used = partials(ref)
                known.update(used.required, used.optional)
            unknown = sorted(set(given) - known)
            if unknown:
                raise InvalidRequest(
                    f"variable {unknown[0][:100]!r} is not used by this prompt "
                    "(prompts.strict_variables is on)",
                    param=f"variables.{unknown[0][:100]}",
                    code="unknown_variable",
                )
        values = {**defaults, **given}
        for needed in template.required:
            if needed not in values:
                raise InvalidRequest(
                    f"missing required variable {needed!r}: send it in variables",
                    param=f"variables.{needed}",
                    code="missing_variable",
                )
        return values


def binding(definition: Mapping[str, Any]) -> dict[str, str]:
    """Where a version routes: its ``virtual_key``, ``provider`` or ``config``."""
    return {
        name: value
        for name in ("virtual_key", "provider", "config")
        if isinstance(value := definition.get(name), str) and value
    }


def _request(
    version: PromptVersion, messages: list[dict[str, Any]], call: Mapping[str, Any]
) -> dict[str, Any]:
    """The chat body: the version's model and parameters, then the call's overrides."""
    definition = version.definition
    body: dict[str, Any] = {}
    model = definition.get("model")
    if isinstance(model, str) and model:
        body["model"] = model
    parameters = definition.get("parameters")
    if isinstance(parameters, Mapping):
        body.update({k: v for k, v in parameters.items() if k not in NOT_PARAMETERS})
    for name in ("tools", "tool_choice", "functions", "response_format"):
        value = definition.get(name)
        if value not in (None, [], {}):
            body[name] = value
    body["messages"] = messages
    for name, value in call.items():
        if name in CALL_KEYS:
            continue
        if name in FIXED_KEYS:
            raise InvalidRequest(
                f"a prompt's {name} come from its template: send variables instead",
                param=name,
                code="invalid_override",
            )
        body[name] = value
    return body


#: The actions of ``POST /v1/prompts/{id}/<action>``.
COMPLETIONS = "completions"
RENDER = "render"
_CALL_PREFIX = "/v1/prompts/"


@dataclass(frozen=True, slots=True)
class PromptCall:
    """``POST /v1/prompts/{id}/completions`` or ``…/render``: the id as sent and the
    action."""

    prompt_id: str
    action: str

    @classmethod
    def of_path(cls, path: str) -> PromptCall | None:
        """The call ``path`` is, if it is one (``/v1/prompts/pp-x@3/completions``)."""
        if not path.startswith(_CALL_PREFIX):
            return None
        prompt_id, slash, action = path[len(_CALL_PREFIX) :].rpartition("/")
        if not slash or action not in (COMPLETIONS, RENDER) or not prompt_id:
            return None
        if "/" in prompt_id or prompt_id == "partials":
            return None
        return cls(prompt_id, action)


def callers(
    body: Mapping[str, Any], metadata: Mapping[str, Any], trace_id: str
) -> dict[str, str | None]:
    """The sticky values a request offers a label split: ``user`` (the body's ``user``,
    else the ``_user`` metadata), ``trace``, and ``metadata.<key>`` for each metadata
    value."""
    user = body.get("user")
    if not isinstance(user, str) or not user:
        meta_user = metadata.get("_user")
        user = meta_user if isinstance(meta_user, str) and meta_user else None
    found: dict[str, str | None] = {"user": user, "trace": trace_id}
    for key, value in metadata.items():
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            found[f"metadata.{key}"] = str(value)
    return found


def _fits_render_model(name: str, value: Any) -> bool:
    """Whether the portkey-ai SDK's ``PromptRenderData`` can hold ``value`` under ``name``:
    it types ``tool_choice`` as a string and the penalties as whole numbers."""
    if name == "tool_choice":
        return value is None or isinstance(value, str)
    if name in ("presence_penalty", "frequency_penalty"):
        return isinstance(value, int | float) and float(value).is_integer()
    return True


def render_answer(rendered: RenderedPrompt) -> bytes:
    """The body of ``POST /v1/prompts/{id}/render``.

    ``data`` is the rendered request in the shape the portkey-ai SDK parses; a field its
    model cannot hold (a ``tool_choice`` object, a fractional penalty) is left out of
    ``data`` and named in ``warning``. ``rendered`` is the whole request exactly as it
    would go upstream, and ``prompt`` names the version chosen.
    """
    body = {k: v for k, v in rendered.body.items() if k != "stream"}
    left_out = sorted(k for k, v in body.items() if not _fits_render_model(k, v))
    answer: dict[str, Any] = {
        "success": True,
        "data": {k: v for k, v in body.items() if k not in left_out},
        "rendered": body,
        "prompt": {
            "id": rendered.prompt.slug,
            "version": rendered.version.version,
            "label": rendered.label,
        },
    }
    if left_out:
        answer["warning"] = (
            "left out of data (the portkey-ai SDK cannot parse them), given in rendered: "
            + ", ".join(left_out)
        )
    return orjson.dumps(answer)
