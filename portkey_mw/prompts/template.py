"""Prompt templates: a prompt version's ``string``, parsed once, rendered per request.

A prompt version's ``string`` is EITHER a JSON array of chat messages OR plain text:

* **Messages array** — a string whose JSON parses to an array: each item an object with a
  ``role`` (``system``, ``developer``, ``user``, ``assistant``, ``tool``) and a ``content``
  that is a string, ``null``, or a list of parts. A ``{"type": "text", "text": ...}`` part
  has its ``text`` templated, an ``{"type": "image_url", "image_url": {"url": ...}}`` part
  its ``url``; other parts, and a message's other keys (``name``, ``tool_call_id``,
  ``tool_calls``), pass through unchanged. The JSON is parsed once, at :meth:`parse`, and
  each string is a template of its own: a value is never written into JSON text, so a
  value with ``"`` cannot break or add to the structure.
* **Plain text** — anything else (also text that merely starts with ``[``): one template,
  rendered as one ``user`` message.

Templates are Mustache (see :mod:`portkey_mw.prompts.mustache` for what is supported and
why the engine is this package's own): values are JSON; nothing is HTML-escaped
(``{{x}}`` writes ``<b>&"'`` as is); strings are written as they are, ``true``/``false``
as such, ``null`` or a missing name as nothing, numbers, objects and arrays as compact
JSON. A value is text, never template: ``{{…}}`` inside a value is written literally, also
through sections and partials. Set-delimiter tags are supported.

Names: :attr:`Template.required` lists the first part of every variable outside any
section (``{{user.name}}`` needs ``user``), in first-use order; :attr:`Template.optional`
the names of sections and inverted sections and names used only inside sections (a name
that is also required is listed only there). ``{{.}}`` and comments name nothing.
Variables inside partials are the partials' own (walk :func:`partial_closure`).

Parse errors are :class:`TemplateError` (HTTP 400) whose message starts with the place:
``"line 3, column 7: ..."`` in the plain text; for a messages array,
``"messages[1].content[0].text: line 1, column 4: ..."`` — the message index, the field,
then line and column within that field's (JSON-decoded) text.

Bounds: a ``string`` over 256 KiB (UTF-8) is refused; sections nest at most 64 deep;
partials at most 10 deep (at render time and in :func:`partial_closure`); a render stops
with :class:`RenderTooLarge` once its output passes ``max_chars`` (counted over all
messages) or it visits a million nodes, before any huge string is built.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from portkey_mw.bounds import json_too_deep
from portkey_mw.prompts import mustache
from portkey_mw.prompts.errors import PartialCycle, RenderTooLarge, TemplateError
from portkey_mw.prompts.mustache import PartialRef

__all__ = [
    "MAX_TEMPLATE_BYTES",
    "ROLES",
    "PartialCycle",
    "PartialRef",
    "PromptTemplate",
    "RenderTooLarge",
    "Template",
    "TemplateError",
    "parse_template",
    "partial_closure",
]

#: The largest ``string`` (a prompt's or a partial's) accepted, in UTF-8 bytes.
MAX_TEMPLATE_BYTES = 256 * 1024
#: The roles a message of a messages array may have.
ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
_DEFAULT_MAX_CHARS = 1_048_576


@dataclass(frozen=True)
class Template:
    """One Mustache string, parsed once; rendering walks the kept node tree."""

    source: str
    required: tuple[str, ...]
    optional: tuple[str, ...]
    partials: tuple[PartialRef, ...]
    nodes: tuple[mustache.Node, ...] = field(repr=False, compare=False)


def _check_size(source: str, param: str) -> None:
    # Characters bound bytes from below, so most strings skip the encode.
    if len(source) * 4 > MAX_TEMPLATE_BYTES and len(source.encode()) > MAX_TEMPLATE_BYTES:
        raise TemplateError(f"the template is larger than {MAX_TEMPLATE_BYTES} bytes", param=param)


def parse_template(source: str) -> Template:
    """Parse one Mustache string; raises :class:`TemplateError` (with line and column)."""
    _check_size(source, "string")
    return _parse_part(source)


def _parse_part(source: str) -> Template:
    parsed = mustache.parse(source)
    return Template(source, parsed.required, parsed.optional, parsed.partials, parsed.nodes)


# A message's content as parsed: a template, None, or parts. A part is a text template,
# an image_url template (with the image_url object's other keys), or passed through.
@dataclass(frozen=True, slots=True)
class _TextPart:
    fields: dict[str, Any]
    text: Template


@dataclass(frozen=True, slots=True)
class _ImagePart:
    fields: dict[str, Any]
    image_fields: dict[str, Any]
    url: Template


_Part = _TextPart | _ImagePart | dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Message:
    fields: dict[str, Any]  # every key but content, passed through
    content: Template | tuple[_Part, ...] | None


@dataclass(frozen=True)
class PromptTemplate:
    """A prompt version's ``string`` parsed: a messages array or one plain-text template.

    ``required``, ``optional`` and ``partials`` are unions over every templated string,
    with the meaning of :class:`Template`'s.
    """

    messages_json: bool
    messages: tuple[_Message, ...] = field(repr=False)
    templates: tuple[Template, ...]
    required: tuple[str, ...]
    optional: tuple[str, ...]
    partials: tuple[PartialRef, ...]

    @classmethod
    def parse(cls, string: str) -> PromptTemplate:
        """Parse ``string``; raises :class:`TemplateError` naming where it is wrong."""
        _check_size(string, "string")
        decoded = _decode_messages(string)
        templates: list[Template] = []
        if decoded is None:
            text = _parse_part(string)
            templates.append(text)
            messages: tuple[_Message, ...] = (_Message({"role": "user"}, text),)
        else:
            messages = tuple(
                _parse_message(index, item, templates) for index, item in enumerate(decoded)
            )
        required: dict[str, None] = {}
        optional: dict[str, None] = {}
        partials: dict[PartialRef, None] = {}
        for template in templates:
            required.update(dict.fromkeys(template.required))
            optional.update(dict.fromkeys(template.optional))
            partials.update(dict.fromkeys(template.partials))
        return cls(
            messages_json=decoded is not None,
            messages=messages,
            templates=tuple(templates),
            required=tuple(required),
            optional=tuple(name for name in optional if name not in required),
            partials=tuple(partials),
        )

    def render(
        self,
        values: Mapping[str, Any],
        partials: Callable[[PartialRef], Template],
        *,
        max_chars: int = _DEFAULT_MAX_CHARS,
    ) -> list[dict[str, Any]]:
        """The OpenAI chat messages for ``values``.

        :param values: JSON values by name (missing names render as nothing).
        :param partials: a partial's parsed template; whatever it raises (e.g. ``NotFound``
            for an unknown partial) passes through.
        :param max_chars: the most characters of templated text, over all messages.
        :raises RenderTooLarge: past ``max_chars`` or the step bound.
        :raises TemplateError: partials nested too deep, a value that is not JSON.
        """
        context = values if type(values) is dict else dict(values)
        budget = mustache.Budget(max_chars)

        def resolve(ref: PartialRef) -> tuple[mustache.Node, ...]:
            return partials(ref).nodes

        def text(template: Template) -> str:
            return mustache.render(template.nodes, context, resolve, budget)

        rendered: list[dict[str, Any]] = []
        for message in self.messages:
            out = _copy(message.fields)
            content = message.content
            if content is None:
                out["content"] = None
            elif type(content) is Template:
                out["content"] = text(content)
            else:
                out["content"] = [_render_part(part, text) for part in content]  # type: ignore[union-attr]
            rendered.append(out)
        return rendered


def _render_part(part: _Part, text: Callable[[Template], str]) -> dict[str, Any]:
    if type(part) is _TextPart:
        return {**_copy(part.fields), "text": text(part.text)}
    if type(part) is _ImagePart:
        image = {**_copy(part.image_fields), "url": text(part.url)}
        return {**_copy(part.fields), "image_url": image}
    return _copy(part)  # type: ignore[arg-type]


def _copy(fields: dict[str, Any]) -> dict[str, Any]:
    """A copy the caller may change without changing the parsed template."""
    if all(type(value) not in (dict, list) for value in fields.values()):
        return dict(fields)
    return orjson.loads(orjson.dumps(fields))  # type: ignore[no-any-return]


def _decode_messages(string: str) -> list[Any] | None:
    """The messages array, or ``None`` when ``string`` is plain text."""
    if not string.lstrip().startswith("["):
        return None
    try:
        decoded = orjson.loads(string)
    except orjson.JSONDecodeError:
        return None  # e.g. "[INST] ..." is text
    if type(decoded) is not list:
        return None
    if not decoded:
        raise TemplateError("the messages array is empty")
    if json_too_deep(string, decoded):
        raise TemplateError("the messages array nests too deep")
    return decoded


def _parse_message(index: int, item: Any, templates: list[Template]) -> _Message:
    where = f"messages[{index}]"
    if type(item) is not dict:
        raise TemplateError(f"{where}: a message must be an object with role and content")
    role = item.get("role")
    if role not in ROLES:
        raise TemplateError(f"{where}.role: must be one of {', '.join(sorted(ROLES))}")
    if "content" not in item:
        raise TemplateError(f"{where}: a message needs content")
    fields = {key: value for key, value in item.items() if key != "content"}
    content = item["content"]
    if content is None:
        return _Message(fields, None)
    if type(content) is str:
        return _Message(fields, _parse_field(f"{where}.content", content, templates))
    if type(content) is not list:
        raise TemplateError(f"{where}.content: must be a string, null or a list of parts")
    parts: list[_Part] = []
    for number, part in enumerate(content):
        at = f"{where}.content[{number}]"
        if type(part) is not dict or type(part.get("type")) is not str:
            raise TemplateError(f"{at}: a content part must be an object with a type")
        rest = {key: value for key, value in part.items()}
        if part["type"] == "text":
            if type(part.get("text")) is not str:
                raise TemplateError(f"{at}.text: must be a string")
            del rest["text"]
            parts.append(_TextPart(rest, _parse_field(f"{at}.text", part["text"], templates)))
        elif part["type"] == "image_url":
            image = part.get("image_url")
            if type(image) is not dict or type(image.get("url")) is not str:
                raise TemplateError(f"{at}.image_url: must be an object with a url string")
            del rest["image_url"]
            image_fields = {key: value for key, value in image.items() if key != "url"}
            url = _parse_field(f"{at}.image_url.url", image["url"], templates)
            parts.append(_ImagePart(rest, image_fields, url))
        else:
            parts.append(rest)
    return _Message(fields, tuple(parts))


def _parse_field(where: str, source: str, templates: list[Template]) -> Template:
    try:
        template = _parse_part(source)
    except TemplateError as exc:
        raise TemplateError(f"{where}: {exc.message}") from None
    templates.append(template)
    return template


def partial_closure(
    template: Template | PromptTemplate,
    lookup: Callable[[PartialRef], Template],
    *,
    max_depth: int = mustache.MAX_PARTIAL_DEPTH,
    slug: str | None = None,
) -> list[PartialRef]:
    """Every partial ``template`` reaches, directly or through others, in discovery order.

    :param slug: when ``template`` is a partial's new version, its slug: a chain back to it
        is a cycle (``lookup`` would return its stored versions, not this one).

    A cycle is a partial whose slug is already on the chain that reached it (also through
    another selector: ``pp-a@1`` including ``pp-a@2`` is refused, as selectors move).

    :raises PartialCycle: naming the chain, ``"pp-a -> pp-b -> pp-a"``.
    :raises TemplateError: (code ``partials_too_deep``) a chain longer than ``max_depth``.
    Whatever ``lookup`` raises (e.g. ``NotFound``) passes through.
    """
    reached: dict[PartialRef, None] = {}
    # Height below each ref explored: a diamond is walked once, yet depth stays exact.
    heights: dict[PartialRef, int] = {}
    chain: list[PartialRef] = [] if slug is None else [PartialRef(slug, None)]
    base = len(chain)

    def height(ref: PartialRef) -> int:
        if any(step.slug == ref.slug for step in chain):
            names = [step.text for step in chain[[s.slug for s in chain].index(ref.slug) :]]
            raise PartialCycle(f"partials include each other: {' -> '.join([*names, ref.text])}")
        if ref in heights:
            known = heights[ref]
        else:
            if len(chain) - base >= max_depth:
                raise _too_deep(chain, ref, max_depth)
            reached.setdefault(ref)
            chain.append(ref)
            known = 1 + max((height(child) for child in lookup(ref).partials), default=0)
            chain.pop()
            heights[ref] = known
        if len(chain) - base + known > max_depth:
            raise _too_deep(chain, ref, max_depth)
        return known

    for ref in template.partials:
        height(ref)
    return list(reached)


def _too_deep(chain: list[PartialRef], ref: PartialRef, max_depth: int) -> TemplateError:
    names = " -> ".join([*(step.text for step in chain), ref.text])
    return TemplateError(
        f"partials nest deeper than {max_depth} levels: {names} ...", code="partials_too_deep"
    )
