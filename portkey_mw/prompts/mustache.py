"""A bounded Mustache engine: a linear-time parser and a renderer that stops early.

Why not pystache's or chevron's engine (both were measured): pystache's tag regular
expression is quadratic (40 KB of ``{{`` takes 31 s to parse, 40 KB of spaces 4 s), its
renderer re-parses every partial on every render, builds the whole output before anyone
can bound it, and escapes HTML by default; chevron cannot turn escaping off. A prompt is
rendered per request with client-chosen values, so this module keeps to the parts of the
Mustache spec a prompt needs and bounds every one of them:

* parsing is one left-to-right pass (``str.find`` for the delimiters; the look-back for
  standalone lines never crosses the previous tag), so any source parses in linear time;
* rendering appends to one list and checks a character budget and a step budget (every
  node visited counts one) after each piece, so neither a section over a million items,
  nor partials that include the next one twice, nor nested loops that print nothing can
  build a huge string or spin: they stop with :class:`RenderTooLarge`.

Spec behaviour kept: variables ``{{x}}`` / ``{{{x}}}`` / ``{{& x}}`` (never HTML-escaped),
dotted names (resolved against the first context that has the first part; a numeric part
indexes a list), the implicit iterator ``{{.}}``, sections and inverted sections, comments,
partials, set-delimiter tags ``{{=<% %>=}}``, standalone lines (a section, comment,
partial or delimiter tag alone on its line removes the line) and standalone-partial
indentation. Left out: lambdas (values are JSON), dynamic partial names.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from portkey_mw.prompts.errors import RenderTooLarge, TemplateError

#: Nested sections deeper than this are refused at parse time (prompts need a few levels).
MAX_SECTION_DEPTH = 64
#: Partials including partials deeper than this are refused at render time.
MAX_PARTIAL_DEPTH = 10
#: Nodes visited per render; bounds loops that produce little or no output.
MAX_RENDER_STEPS = 1_000_000

_NAME = re.compile(r"[\w$-]+(?:\.[\w$-]+)*\Z")
_PARTIAL = re.compile(
    r"(?P<slug>[A-Za-z0-9][A-Za-z0-9_.-]*)(?:@(?P<selector>[A-Za-z0-9][A-Za-z0-9_.-]*))?\Z"
)
_LINE_END = re.compile(r"[ \t]*(?:\r?\n|\Z)")
_TAG_SIGILS = "#^/>&!={"
_STANDALONE_SIGILS = "#^/>!="


@dataclass(frozen=True, slots=True)
class PartialRef:
    """A ``{{> slug@selector}}`` tag's target.

    ``selector`` is ``None`` (the partial's default version), a version number as
    written (``"3"``), ``"latest"``, or a label name (``"production"``).
    """

    slug: str
    selector: str | None

    @property
    def text(self) -> str:
        """The reference as written in the tag: ``pp-greeting`` or ``pp-greeting@3``."""
        return self.slug if self.selector is None else f"{self.slug}@{self.selector}"


@dataclass(frozen=True, slots=True)
class Variable:
    """``{{name}}``: ``path`` is the dotted name split (``()`` for ``{{.}}``)."""

    path: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Section:
    """``{{#name}}...{{/name}}`` or, inverted, ``{{^name}}...{{/name}}``."""

    path: tuple[str, ...]
    inverted: bool
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Partial:
    """``{{> ref}}``; ``indent`` is the whitespace before a standalone partial tag."""

    ref: PartialRef
    indent: str


#: A parsed template is a tuple of these; literal text stays a plain ``str``.
Node = str | Variable | Section | Partial


@dataclass(frozen=True, slots=True)
class Parsed:
    """What :func:`parse` finds: the node tree and the names it uses."""

    nodes: tuple[Node, ...]
    required: tuple[str, ...]
    optional: tuple[str, ...]
    partials: tuple[PartialRef, ...]


def position(source: str, index: int) -> str:
    """``"line L, column C"`` (1-based) of ``index`` in ``source``."""
    line = source.count("\n", 0, index) + 1
    column = index - (source.rfind("\n", 0, index) + 1) + 1
    return f"line {line}, column {column}"


@dataclass(slots=True)
class _OpenSection:
    path: tuple[str, ...]
    inverted: bool
    tag: str
    start: int
    parent: list[Node]


class _Parser:
    """One pass over ``source``; see :func:`parse`."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.required: dict[str, None] = {}
        self.optional: dict[str, None] = {}
        self.partials: dict[PartialRef, None] = {}

    def fail(self, index: int, message: str) -> TemplateError:
        return TemplateError(f"{position(self.source, index)}: {message}")

    def name(self, content: str, start: int, tag: str) -> tuple[str, ...]:
        key = content.strip()
        if key == ".":
            return ()
        if not _NAME.match(key):
            raise self.fail(start, f"invalid name in {tag}: use letters, digits, _ - $ and dots")
        return tuple(key.split("."))

    def parse(self) -> Parsed:
        source = self.source
        length = len(source)
        opening, closing = "{{", "}}"
        open_sections: list[_OpenSection] = []
        children: list[Node] = []
        pos = 0
        while True:
            start = source.find(opening, pos)
            if start < 0:
                if pos < length:
                    children.append(source[pos:])
                break
            inner = start + len(opening)
            sigil = source[inner : inner + 1]
            if sigil and sigil in _TAG_SIGILS:
                body = inner + 1
                close = (
                    "}" + closing if sigil == "{" else "=" + closing if sigil == "=" else closing
                )
            else:
                sigil, body, close = "", inner, closing
            end = source.find(close, body)
            if end < 0:
                raise self.fail(start, f"unclosed tag {opening}{sigil}: no {close} after it")
            content = source[body:end]
            tag = f"{opening}{sigil}{content}{close}"
            if len(tag) > 80:
                tag = tag[:77] + "..."
            tag_end = end + len(close)

            indent = ""
            text_start, text_end, pos = pos, start, tag_end
            if sigil and sigil in _STANDALONE_SIGILS:
                line_start = self._line_start(text_start, start)
                after = None if line_start is None else _LINE_END.match(source, tag_end)
                if line_start is not None and after is not None:
                    indent = source[line_start:start]
                    text_end, pos = line_start, after.end()
            if text_end > text_start:
                children.append(source[text_start:text_end])

            if sigil == "!":
                continue
            if sigil == "=":
                delimiters = content.strip().split()
                if len(delimiters) != 2 or any("=" in d for d in delimiters):
                    raise self.fail(start, f"invalid delimiter tag {tag}: use {{{{=<% %>=}}}}")
                opening, closing = delimiters
                continue
            if not content.strip():
                raise self.fail(start, f"empty tag {tag}")
            if sigil in ("#", "^"):
                if len(open_sections) >= MAX_SECTION_DEPTH:
                    raise self.fail(start, f"sections nested deeper than {MAX_SECTION_DEPTH}")
                path = self.name(content, start, tag)
                if path:
                    self.optional.setdefault(path[0])
                open_sections.append(_OpenSection(path, sigil == "^", tag, start, children))
                children = []
            elif sigil == "/":
                path = self.name(content, start, tag)
                if not open_sections:
                    raise self.fail(start, f"{tag} closes no open section")
                section = open_sections.pop()
                if section.path != path:
                    raise self.fail(
                        start,
                        f"{tag} does not close {section.tag} "
                        f"(opened at {position(source, section.start)})",
                    )
                node = Section(path, section.inverted, tuple(children))
                children = section.parent
                children.append(node)
            elif sigil == ">":
                match = _PARTIAL.match(content.strip())
                if match is None:
                    raise self.fail(
                        start, f"invalid partial reference in {tag}: use slug or slug@version"
                    )
                ref = PartialRef(match["slug"], match["selector"])
                self.partials.setdefault(ref)
                children.append(Partial(ref, indent))
            else:
                path = self.name(content, start, tag)
                if path:
                    names = self.optional if open_sections else self.required
                    names.setdefault(path[0])
                children.append(Variable(path))
        if open_sections:
            section = open_sections[-1]
            raise self.fail(section.start, f"unclosed section {section.tag}")
        return Parsed(
            nodes=tuple(children),
            required=tuple(self.required),
            optional=tuple(n for n in self.optional if n not in self.required),
            partials=tuple(self.partials),
        )

    def _line_start(self, pos_before: int, start: int) -> int | None:
        """Where the tag's line starts, if only blanks stand between it and the tag.

        The search never goes back past the previous tag (``pos_before``): a tag on the
        same line is not blank, and this keeps the whole parse linear.
        """
        source = self.source
        newline = source.rfind("\n", pos_before, start)
        if newline >= 0:
            line_start = newline + 1
        elif pos_before == 0 or source[pos_before - 1] == "\n":
            line_start = pos_before
        else:
            return None
        if source[line_start:start].strip(" \t"):
            return None
        return line_start


def parse(source: str) -> Parsed:
    """Parse one Mustache string; raises :class:`TemplateError` naming line and column."""
    return _Parser(source).parse()


#: Given a partial's reference, its parsed nodes (the caller resolves and caches).
ResolvePartial = Callable[[PartialRef], tuple[Node, ...]]


class Budget:
    """What one render may still produce (characters) and do (nodes visited)."""

    __slots__ = ("chars", "max_chars", "steps")

    def __init__(self, max_chars: int, max_steps: int = MAX_RENDER_STEPS) -> None:
        self.max_chars = max_chars
        self.chars = max_chars
        self.steps = max_steps

    def too_large(self) -> RenderTooLarge:
        return RenderTooLarge(f"the rendered prompt is longer than {self.max_chars} characters")

    def too_long(self) -> RenderTooLarge:
        return RenderTooLarge(
            "rendering the prompt takes too many steps (sections over long lists of values)"
        )


def render(
    nodes: tuple[Node, ...],
    values: dict[str, Any],
    resolve: ResolvePartial,
    budget: Budget,
) -> str:
    """Render ``nodes`` against ``values``; stops with :class:`RenderTooLarge` on the budget."""
    out: list[str] = []
    _render(nodes, [values], out, budget, resolve, 0, "")
    return "".join(out)


def _render(
    nodes: tuple[Node, ...],
    stack: list[Any],
    out: list[str],
    budget: Budget,
    resolve: ResolvePartial,
    depth: int,
    indent: str,
) -> None:
    for node in nodes:
        budget.steps -= 1
        if budget.steps < 0:
            raise budget.too_long()
        kind = type(node)
        if kind is str:
            text: str = node  # type: ignore[assignment]
            if indent:
                text = text.replace("\n", "\n" + indent)
        elif kind is Variable:
            value = _lookup(stack, node.path)  # type: ignore[union-attr]
            if value is None:
                continue
            text = _text(value)
        elif kind is Section:
            section: Section = node  # type: ignore[assignment]
            value = _lookup(stack, section.path)
            if section.inverted:
                if not value:
                    _render(section.children, stack, out, budget, resolve, depth, indent)
            elif type(value) is list:
                for item in value:
                    budget.steps -= 1
                    if budget.steps < 0:
                        raise budget.too_long()
                    stack.append(item)
                    _render(section.children, stack, out, budget, resolve, depth, indent)
                    stack.pop()
            elif value:
                stack.append(value)
                _render(section.children, stack, out, budget, resolve, depth, indent)
                stack.pop()
            continue
        else:
            partial: Partial = node  # type: ignore[assignment]
            if depth >= MAX_PARTIAL_DEPTH:
                raise TemplateError(
                    f"partials nest deeper than {MAX_PARTIAL_DEPTH} levels at {partial.ref.text}",
                    code="partials_too_deep",
                )
            inner_indent = indent + partial.indent
            if inner_indent:
                out.append(inner_indent)
                budget.chars -= len(inner_indent)
            _render(resolve(partial.ref), stack, out, budget, resolve, depth + 1, inner_indent)
            # The partial's last newline ends the line the tag stood on: no indent after it.
            if inner_indent and out and out[-1].endswith("\n" + inner_indent):
                out[-1] = out[-1][: -len(inner_indent)]
            continue
        budget.chars -= len(text)
        if budget.chars < 0:
            raise budget.too_large()
        out.append(text)


def _lookup(stack: list[Any], path: tuple[str, ...]) -> Any:
    """Spec name resolution: the first context holding ``path[0]``, then down the rest."""
    if not path:
        return stack[-1]
    head = path[0]
    for context in reversed(stack):
        if type(context) is dict and head in context:
            value = context[head]
            break
    else:
        return None
    for part in path[1:]:
        if type(value) is dict:
            value = value.get(part)
        elif type(value) is list and part.isascii() and part.isdigit() and len(part) < 10:
            index = int(part)
            value = value[index] if index < len(value) else None
        else:
            return None
    return value


def _text(value: Any) -> str:
    """A JSON value as prompt text: strings as they are, everything else as compact JSON."""
    kind = type(value)
    if kind is str:
        return value  # type: ignore[no-any-return]
    if kind is bool:
        return "true" if value else "false"
    try:
        if kind is int:
            return str(value)  # any size orjson cannot write, up to Python's digit limit
        return orjson.dumps(value).decode()
    except (orjson.JSONEncodeError, TypeError, ValueError) as exc:
        raise TemplateError(
            f"a value cannot be written into the prompt ({exc})", param="variables"
        ) from None
