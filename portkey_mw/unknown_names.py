"""Names a store read found nothing for, remembered a short while: a request naming an
unknown id costs one store read per interval, not one each (negative caching). A leaf
module: anything may import it."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Hashable

#: names remembered at most; past it the oldest are forgotten first
MAX_UNKNOWN = 10_000


class UnknownNames:
    """A bounded, expiring set of names known to be unknown.

    :param max_entries: how many names are remembered (the oldest go first).
    """

    __slots__ = ("_until", "max_entries")

    def __init__(self, max_entries: int = MAX_UNKNOWN) -> None:
        self.max_entries = max_entries
        self._until: OrderedDict[Hashable, float] = OrderedDict()

    def __contains__(self, name: Hashable) -> bool:
        """Whether ``name`` was found unknown within its time to live."""
        until = self._until.get(name)
        return until is not None and until > time.monotonic()

    def __len__(self) -> int:
        return len(self._until)

    def remember(self, name: Hashable, ttl: float) -> None:
        """``name`` was read and not found: skip reading it for ``ttl`` seconds."""
        self._until[name] = time.monotonic() + ttl
        self._until.move_to_end(name)
        while len(self._until) > self.max_entries:
            self._until.popitem(last=False)

    def forget(self, name: Hashable) -> None:
        """``name`` exists now (this process wrote it)."""
        self._until.pop(name, None)

    def clear(self) -> None:
        """Forget every name (the store changed)."""
        self._until.clear()
