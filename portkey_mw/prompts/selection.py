"""Which version a prompt id means: ``pp-x`` (the published one), ``pp-x@12``,
``pp-x@latest``, ``pp-x@<label>`` -- and, for a label split between versions, which side
of the split a caller is on.

A split is sticky: the caller's ``user`` (the body's ``user``, else the ``_user``
metadata), the trace id, or a metadata value chosen per label is hashed with the prompt
and the label into a point of the weights' range, so the same caller always lands on the
same version while the weights stay as they are. A caller with no such value (no user
sent) is placed by the request id: spread by the weights, not sticky.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from portkey_mw.errors import InvalidRequest, NotFound
from portkey_mw.store.records import Label, Prompt, PromptVersion

#: Labels every prompt library has; they cannot be renamed or removed. Their ids are
#: their names.
BUILT_IN_LABELS: tuple[str, ...] = ("production", "staging", "development")
#: What a split may stick by: ``user``, ``trace`` or ``metadata.<key>``.
STICKY_DEFAULT = "user"
#: Most versions one label may split between.
MAX_SPLIT = 10


class PromptNotFound(NotFound):
    """An unknown prompt, version, label or partial (404, naming it)."""

    code = "prompt_not_found"


def is_version_number(text: str) -> bool:
    """Whether a selector is a version number: ASCII digits only (``str.isdigit`` takes
    ``"²"`` too, which ``int`` refuses), at most nine."""
    return text.isascii() and text.isdigit() and len(text) <= 9


def reserved_label_name(name: str) -> bool:
    """Whether ``pp-x@<name>`` would mean something else: ``latest``, a number, or a
    built-in label's name (a custom label so named could never be called)."""
    lowered = name.lower()
    return lowered == "latest" or lowered in BUILT_IN_LABELS or (name.isascii() and name.isdigit())


def split_id(text: str) -> tuple[str, str | None]:
    """``"pp-x@12"`` -> ``("pp-x", "12")``; ``"pp-x"`` -> ``("pp-x", None)``."""
    slug, at, selector = text.partition("@")
    return slug, (selector if at else None)


def label_id(name: str, labels: Mapping[str, Label], workspace_id: str | None) -> str | None:
    """The id of the label called ``name`` (a built-in one, else a custom one of the
    prompt's workspace or the organisation's), if there is one."""
    lowered = name.lower()
    if lowered in BUILT_IN_LABELS:
        return lowered
    if name in labels:
        return name  # a label id works too
    for label in labels.values():
        if label.name.lower() == lowered and label.workspace_id in (None, workspace_id):
            return label.id
    return None


def check_split(entries: Any, prompt: Prompt) -> list[dict[str, Any]]:
    """A label's split as stored: ``[{"version": n, "weight": w}, ...]``.

    :raises InvalidRequest: not a list of versions the prompt has with positive weights.
    """
    if not isinstance(entries, list) or not entries or len(entries) > MAX_SPLIT:
        raise InvalidRequest(
            f"a label's versions are a list of 1 to {MAX_SPLIT} {{version, weight}} objects",
            param="versions",
            code="invalid_split",
        )
    seen: set[int] = set()
    split = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise InvalidRequest(f"versions[{index}] is not an object", param="versions")
        number, weight = entry.get("version"), entry.get("weight", 1)
        if type(number) is not int or prompt.version(number) is None:
            raise PromptNotFound(
                f"versions[{index}]: prompt {prompt.slug!r} has no version {number!r}",
                param="versions",
            )
        if type(weight) not in (int, float) or not 0 < weight < 1e9:
            raise InvalidRequest(
                f"versions[{index}].weight must be a positive number, got {weight!r}",
                param="versions",
                code="invalid_split",
            )
        if number in seen:
            raise InvalidRequest(
                f"versions[{index}]: version {number} is listed twice",
                param="versions",
                code="invalid_split",
            )
        seen.add(number)
        split.append({"version": number, "weight": weight})
    return split


def check_sticky(value: Any) -> str:
    """A split's sticky key: ``user``, ``trace`` or ``metadata.<key>``.

    :raises InvalidRequest: anything else.
    """
    if value in ("user", "trace") or (
        isinstance(value, str) and value.startswith("metadata.") and 9 < len(value) <= 137
    ):
        return str(value)
    raise InvalidRequest(
        f"sticky must be 'user', 'trace' or 'metadata.<key>', got {str(value)[:60]!r}",
        param="sticky",
        code="invalid_split",
    )


def pick_split(
    split: Sequence[Mapping[str, Any]], *, prompt_id: str, label: str, caller: str
) -> int:
    """The version of ``split`` that ``caller`` (a user, trace or metadata value) is on.

    The same caller always gets the same version for the same weights: a point in
    ``[0, 1)`` from a hash of the prompt, the label and the caller, mapped onto the
    weights in their order.
    """
    total = sum(float(entry["weight"]) for entry in split)
    digest = hashlib.blake2b(f"{prompt_id}\x00{label}\x00{caller}".encode(), digest_size=8).digest()
    point = int.from_bytes(digest, "big") / 2**64 * total
    for entry in split:
        point -= float(entry["weight"])
        if point < 0:
            return int(entry["version"])
    return int(split[-1]["version"])


def choose(
    prompt: Prompt,
    selector: str | None,
    labels: Mapping[str, Label],
    callers: Mapping[str, str | None],
    fallback_caller: str,
) -> tuple[PromptVersion, str | None]:
    """The version ``selector`` names, and the label it came through (if any).

    :param callers: the sticky values this request has: ``user``, ``trace`` and
        ``metadata.<key>`` for every metadata key.
    :param fallback_caller: what places a caller with no sticky value (the request id).
    :raises PromptNotFound: no such version or label, or the label points nowhere.
    """
    if selector is None or selector == "":
        found = prompt.version(prompt.default_version)
    elif is_version_number(selector):
        found = prompt.version(int(selector))
        if found is None:
            raise PromptNotFound(
                f"prompt {prompt.slug!r} has no version {selector} (it has 1 to "
                f"{len(prompt.versions)})",
                param="prompt_id",
            )
    elif selector == "latest":
        found = prompt.latest
    else:
        return _through_label(prompt, selector, labels, callers, fallback_caller)
    if found is None:
        raise PromptNotFound(f"prompt {prompt.slug!r} has no versions", param="prompt_id")
    return found, None


def _through_label(
    prompt: Prompt,
    name: str,
    labels: Mapping[str, Label],
    callers: Mapping[str, str | None],
    fallback_caller: str,
) -> tuple[PromptVersion, str]:
    found_id = label_id(name, labels, prompt.workspace_id)
    if found_id is None:
        raise PromptNotFound(
            f"no version or label {name[:100]!r} for prompt {prompt.slug!r}", param="prompt_id"
        )
    deployed = prompt.labels.get(found_id)
    if not isinstance(deployed, Mapping) or not deployed.get("versions"):
        raise PromptNotFound(
            f"label {name[:100]!r} points at no version of prompt {prompt.slug!r}",
            param="prompt_id",
        )
    split = deployed["versions"]
    if len(split) == 1:
        number = int(split[0]["version"])
    else:
        sticky = str(deployed.get("sticky") or STICKY_DEFAULT)
        caller = callers.get(sticky) or fallback_caller
        number = pick_split(split, prompt_id=prompt.id, label=found_id, caller=caller)
    version = prompt.version(number)
    if version is None:  # the store refuses this; a hand-edited row could still hold it
        raise PromptNotFound(
            f"label {name!r} points at version {number}, which prompt {prompt.slug!r} lacks",
            param="prompt_id",
        )
    return version, found_id
