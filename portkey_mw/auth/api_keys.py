"""Gateway API keys: how they look, how they are made, and how they are recognised.

A key is ``pk-mw-`` followed by 32 random bytes (base64url): high entropy, so a fast keyed
hash is the right way to store it -- HMAC-SHA256 under the store's pepper (random, kept
encrypted in the vault), not a slow password hash on every request. The store holds only
that digest and a hint (the prefix and last four characters) to show.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

#: every gateway API key starts with this: a Bearer value with it is a gateway key, never
#: a provider key, so it is never forwarded upstream
KEY_PREFIX = "pk-mw-"
_RANDOM_BYTES = 32
#: the longest value looked up as a key: a longer one is refused as invalid unread
MAX_KEY_LENGTH = 128


@dataclass(frozen=True, slots=True)
class NewKey:
    """A key just made: ``key`` is shown once; the store keeps ``digest`` and ``hint``."""

    key: str
    digest: str
    hint: str


class KeyHasher:
    """Makes and digests gateway API keys under one pepper.

    :param pepper: the store's secret (``SQLStore.api_key_pepper``).
    """

    def __init__(self, pepper: bytes) -> None:
        self._pepper = pepper

    def digest(self, key: str) -> str:
        """The hex HMAC-SHA256 of ``key``."""
        return hmac.new(self._pepper, key.encode(), hashlib.sha256).hexdigest()

    def new_key(self) -> NewKey:
        """A fresh random key, with its digest and hint."""
        key = KEY_PREFIX + secrets.token_urlsafe(_RANDOM_BYTES)
        return NewKey(key=key, digest=self.digest(key), hint=key_hint(key))


def key_hint(key: str) -> str:
    """What may be shown of a key: its prefix and last four characters."""
    return f"{KEY_PREFIX}…{key[-4:]}"


def is_gateway_key(value: str | None) -> bool:
    """Whether ``value`` claims to be a gateway API key (not whether it is valid): any value
    with the prefix, so that a malformed one is refused rather than taken for a provider
    key and sent upstream."""
    return value is not None and value.startswith(KEY_PREFIX)
