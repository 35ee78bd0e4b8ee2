"""The admin key: what every ``/v1/admin/*`` route asks for.

The operator sets it with ``PORTKEY_MW_ADMIN_KEY`` or puts its SHA-256 in the server file
(``admin.key_sha256``), so the file need not hold the key. Clients send it as
``x-portkey-api-key`` (what the portkey-ai SDK sends) or ``Authorization: Bearer``. It is
compared as a digest, in constant time. Without a configured key the admin routes answer
403 and say how to set one: nothing is open by default.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping

from portkey_mw.errors import AuthenticationError, GatewayError, InvalidConfig

ADMIN_KEY_VARIABLE = "PORTKEY_MW_ADMIN_KEY"
#: Shorter keys are refused at start-up: an admin key must not be guessable.
MIN_ADMIN_KEY_LENGTH = 16


def hash_key(key: str) -> str:
    """The hex SHA-256 of ``key``, as ``admin.key_sha256`` takes it."""
    return hashlib.sha256(key.encode()).hexdigest()


class AdminDisabled(GatewayError):
    """No admin key is configured, so the admin routes are closed (403)."""

    status = 403
    type = "permission_error"
    code = "admin_key_not_configured"


class AdminKey:
    """Checks requests to the admin routes.

    :param digest: the SHA-256 of the key (raw bytes), or ``None`` when none is set.
    """

    def __init__(self, digest: bytes | None) -> None:
        self._digest = digest

    @classmethod
    def from_settings(
        cls, key_sha256: str | None, environ: Mapping[str, str] | None = None
    ) -> AdminKey:
        """The key from ``PORTKEY_MW_ADMIN_KEY`` (which wins), else the server file's hash.

        :raises InvalidConfig: the key in the environment is too short.
        """
        env = os.environ if environ is None else environ
        key = env.get(ADMIN_KEY_VARIABLE, "")
        if key:
            if len(key) < MIN_ADMIN_KEY_LENGTH:
                raise InvalidConfig(
                    f"{ADMIN_KEY_VARIABLE} must be at least {MIN_ADMIN_KEY_LENGTH} characters"
                )
            return cls(hashlib.sha256(key.encode()).digest())
        if key_sha256:
            return cls(bytes.fromhex(key_sha256))
        return cls(None)

    @property
    def configured(self) -> bool:
        """Whether an admin key is set."""
        return self._digest is not None

    def check(self, headers: Mapping[str, str]) -> None:
        """Let the request through, or raise why not.

        :raises AdminDisabled: no admin key is configured (403).
        :raises AuthenticationError: the request carries no key, or another one (401).
        """
        if self._digest is None:
            raise AdminDisabled(
                "the admin API is disabled: set PORTKEY_MW_ADMIN_KEY (16 characters or more) "
                "or admin.key_sha256 in the server file (portkey-mw admin hash-key)"
            )
        sent = sent_key(headers)
        if not sent:
            raise AuthenticationError(
                "the admin API needs the admin key: send it as x-portkey-api-key or "
                "'Authorization: Bearer <key>'",
                code="admin_key_required",
            )
        if not self.matches(sent):
            raise AuthenticationError("the admin key is not valid", code="invalid_admin_key")

    def matches(self, sent: str) -> bool:
        """Whether ``sent`` is the admin key (compared as digests, in constant time)."""
        if self._digest is None:
            return False
        return hmac.compare_digest(hashlib.sha256(sent.encode()).digest(), self._digest)


def sent_key(headers: Mapping[str, str]) -> str:
    """The key a request sends: ``x-portkey-api-key``, else a Bearer token."""
    key = headers.get("x-portkey-api-key", "").strip()
    if key:
        return key
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""
