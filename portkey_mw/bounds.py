"""Limits on what a client (or an upstream) can make the gateway hold or walk.

One place for the numbers every parser shares, so that a limit is the same wherever JSON
or events enter the gateway. Sizes that an operator may want to tune (body, headers,
inline configs) live in the server file (``server.*``); the ones here are structural.
"""

from __future__ import annotations

from typing import Any

import orjson

from portkey_mw.errors import InvalidRequest

#: The deepest nesting of JSON arrays and objects accepted anywhere (request bodies,
#: ``x-portkey-config``, ``x-portkey-metadata``). Real requests stay far below it (a tool's
#: JSON schema is rarely ten levels deep); orjson itself refuses to serialise past 254, so a
#: deeper body accepted here would fail later, in the cache key or the log.
MAX_JSON_DEPTH = 64
#: The largest server-sent event accepted from an upstream (one ``data:`` block).
MAX_SSE_EVENT_BYTES = 8 * 1024 * 1024


def json_too_deep(raw: bytes | str, value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``value`` (parsed from ``raw``) nests deeper than ``limit``.

    Counting brackets in ``raw`` is done in C and bounds the depth from above, so only
    documents with more brackets than the limit are looked at again.
    """
    if isinstance(raw, str):
        brackets = raw.count("[") + raw.count("{")
    else:
        brackets = raw.count(b"[") + raw.count(b"{")
    if brackets <= limit:
        return False
    return _depth_exceeds(value, limit)


def _serialisable_depth() -> int:
    """The deepest nesting orjson serialises (254 today), probed once rather than assumed."""
    low, high = 1, 4096
    while low < high:
        middle = (low + high + 1) // 2
        try:
            orjson.dumps(_nested(None, middle))
        except orjson.JSONEncodeError:
            high = middle - 1
        else:
            low = middle
    return low


def _nested(value: Any, levels: int) -> Any:
    for _ in range(levels):
        value = [value]
    return value


_SERIALISABLE_DEPTH = _serialisable_depth()


def _depth_exceeds(value: Any, limit: int) -> bool:
    # orjson refuses to serialise past a fixed depth, in C: wrapped in just enough lists that
    # a value deeper than ``limit`` crosses it, a failed dumps answers the question about
    # five times faster than a walk in Python (20 us for a 100-message chat).
    if limit < _SERIALISABLE_DEPTH:
        try:
            orjson.dumps(_nested(value, _SERIALISABLE_DEPTH - limit))
        except orjson.JSONEncodeError:
            return True
        return False
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:  # iterative: the check itself must not hit Python's recursion limit
        node, depth = pending.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        pending.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False


def check_json_depth(raw: bytes | str, value: Any, source: str) -> None:
    """Raise a 400 naming ``source`` when ``value`` nests deeper than :data:`MAX_JSON_DEPTH`."""
    if json_too_deep(raw, value):
        raise InvalidRequest(
            f"{source} nests JSON deeper than {MAX_JSON_DEPTH} levels",
            code="json_too_deep",
        )


#: the most digits a whole number a client sends (a header, a query parameter) may have:
#: 18 fit in an int64, and ``int()`` of a few thousand digits is refused (or slow)
MAX_NUMBER_DIGITS = 18


def whole_number(text: str | None, max_digits: int = MAX_NUMBER_DIGITS) -> int | None:
    """``text`` as a non-negative whole number, or ``None`` when it is not one: ASCII digits
    only, at most ``max_digits`` of them. (``str.isdigit`` alone lets ``'²'`` through,
    which ``int()`` then refuses with a ``ValueError`` -- a 500 for a client's typo.)"""
    if text is None or not (0 < len(text) <= max_digits) or not text.isascii():
        return None
    return int(text) if text.isdigit() else None
