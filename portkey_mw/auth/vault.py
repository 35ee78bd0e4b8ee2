"""The vault: AES-GCM encryption of what the control-plane store keeps secret.

One master key (32 random bytes) protects everything. It comes from
``PORTKEY_MW_MASTER_KEY`` (base64url, or 64 hex characters) or from the key file
``<data dir>/master.key``, which is created (mode 0600) on first start when neither
exists. The key itself never encrypts data: an AES-256 data key is derived from it with
HKDF, so a future format can derive other keys without reusing this one.

A sealed value is ``format byte · key id (4 bytes) · nonce (12 bytes) · ciphertext+tag``.
The key id (a keyed digest of the master key) lets a wrong key be told apart from damaged
data; the associated data binds each value to where it is stored (a row id), so a
ciphertext copied into another row does not decrypt.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from portkey_mw.errors import GatewayError

__all__ = [
    "KEY_FILE_NAME",
    "KEY_SIZE",
    "MASTER_KEY_VARIABLE",
    "MasterKey",
    "Vault",
    "VaultError",
    "encode_key",
    "generate_key",
    "load_master_key",
    "parse_key",
    "read_master_key",
    "rotate_master_key",
    "write_key_file",
]

MASTER_KEY_VARIABLE = "PORTKEY_MW_MASTER_KEY"
KEY_FILE_NAME = "master.key"
KEY_SIZE = 32
#: The sealed-value format this module writes (the first byte of every value).
FORMAT_V1 = 1
_KEY_ID_SIZE = 4
_NONCE_SIZE = 12
_HEADER_SIZE = 1 + _KEY_ID_SIZE + _NONCE_SIZE
_TAG_SIZE = 16
#: Said whenever the master key does not open what the store holds.
WRONG_KEY = (
    "the master key does not decrypt this store's vault "
    f"(wrong {MASTER_KEY_VARIABLE} or {KEY_FILE_NAME}?)"
)


class VaultError(GatewayError):
    """The master key is missing, malformed or wrong, or a sealed value is damaged.

    Raised at start-up (the server refuses to start) and by ``vault rotate-master-key``;
    the message names the problem and never contains key material.
    """

    status = 500
    type = "api_error"
    code = "vault_error"


def generate_key() -> bytes:
    """A new random master key."""
    return secrets.token_bytes(KEY_SIZE)


def encode_key(key: bytes) -> str:
    """``key`` as the key file and ``PORTKEY_MW_MASTER_KEY`` hold it (base64url, no
    padding)."""
    return base64.urlsafe_b64encode(key).rstrip(b"=").decode("ascii")


def parse_key(text: str, source: str) -> bytes:
    """The 32-byte key written in ``text`` (base64url with or without padding, or 64 hex
    characters).

    :param source: where the text came from, for the error message.
    :raises VaultError: ``text`` is not a 32-byte key.
    """
    value = text.strip()
    if len(value) == 2 * KEY_SIZE:
        try:
            return bytes.fromhex(value)
        except ValueError:
            pass  # 64 characters may still be base64url of something else: try that
    try:
        key = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_SIZE:
        raise VaultError(
            f"{source} is not a master key: expected {KEY_SIZE} bytes as base64url "
            f"or {2 * KEY_SIZE} hex characters"
        )
    return key


@dataclass(frozen=True, slots=True)
class MasterKey:
    """A master key and where it came from.

    :param key: the key.
    :param path: the key file it was read from or written to; ``None`` when it came from
        the environment or a caller.
    :param created: the key file was created just now.
    """

    key: bytes
    path: Path | None = None
    created: bool = False

    def __repr__(self) -> str:  # the key never shows in a traceback or a log
        return f"MasterKey(path={self.path!r}, created={self.created})"


def read_master_key(
    data_dir: Path, environ: Mapping[str, str] | None = None, *, create: bool = True
) -> MasterKey:
    """The master key from ``PORTKEY_MW_MASTER_KEY``, else from ``<data_dir>/master.key``.

    When neither exists and ``create`` is true, a new key is written to the key file
    (mode 0600, never replacing a file that appeared meanwhile).

    :raises VaultError: the variable or the file does not hold a key, or there is none
        and ``create`` is false.
    """
    env = os.environ if environ is None else environ
    text = env.get(MASTER_KEY_VARIABLE, "")
    if text.strip():
        return MasterKey(parse_key(text, MASTER_KEY_VARIABLE))
    path = data_dir / KEY_FILE_NAME
    try:
        return MasterKey(parse_key(path.read_text(encoding="ascii"), str(path)), path)
    except FileNotFoundError:
        pass
    except (OSError, UnicodeDecodeError) as exc:
        raise VaultError(f"cannot read the master key file {path}: {_reason(exc)}") from None
    if not create:
        raise VaultError(
            f"this store's vault is sealed and no master key is set: "
            f"set {MASTER_KEY_VARIABLE} or restore {path}"
        )
    key = generate_key()
    try:
        _write_new(path, key)
    except FileExistsError:
        # Another process created it first: use its key, so both agree.
        return read_master_key(data_dir, {}, create=False)
    return MasterKey(key, path, created=True)


def load_master_key(data_dir: Path, environ: Mapping[str, str] | None = None) -> tuple[bytes, bool]:
    """The master key and whether its key file was created just now (see
    :func:`read_master_key`)."""
    master = read_master_key(data_dir, environ)
    return master.key, master.created


def _write_new(path: Path, key: bytes) -> None:
    """Write ``key`` to a new file at ``path`` with mode 0600 (fails if it exists).

    The key is written and synced under a private name first, then linked into place: a
    process starting at the same moment sees either no file or the whole key, never an
    empty one.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    staged = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.write(fd, (encode_key(key) + "\n").encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.link(staged, path)  # atomic; FileExistsError when another process won
    finally:
        staged.unlink(missing_ok=True)


def write_key_file(path: Path, key: bytes) -> Path:
    """Write ``key`` to ``<path>.new`` (mode 0600, synced) and return that path.

    Rotation writes the new key there *before* it commits, and renames it over ``path``
    only after: whatever fails in between, one of the two files holds the key the store
    is encrypted under.
    """
    staged = path.with_name(path.name + ".new")
    staged.unlink(missing_ok=True)
    _write_new(staged, key)
    return staged


class Vault:
    """Seals and opens values under one master key.

    :param master_key: the 32-byte master key.
    """

    __slots__ = ("_aead", "key_id")

    def __init__(self, master_key: bytes) -> None:
        if len(master_key) != KEY_SIZE:
            raise VaultError(f"a master key is {KEY_SIZE} bytes, not {len(master_key)}")
        #: identifies the master key inside every sealed value; reveals nothing of it
        self.key_id = hmac.new(master_key, b"portkey-mw vault key id", hashlib.sha256).digest()[
            :_KEY_ID_SIZE
        ]
        data_key = HKDF(
            algorithm=hashes.SHA256(), length=KEY_SIZE, salt=None, info=b"portkey-mw vault v1"
        ).derive(master_key)
        self._aead = AESGCM(data_key)

    def __repr__(self) -> str:
        return f"Vault(key_id={self.key_id.hex()})"

    def encrypt(self, plaintext: bytes, aad: bytes) -> bytes:
        """``plaintext`` sealed, bound to ``aad`` (where it is stored)."""
        nonce = os.urandom(_NONCE_SIZE)  # random 96-bit nonces: far below the 2**32 bound
        return bytes([FORMAT_V1]) + self.key_id + nonce + self._aead.encrypt(nonce, plaintext, aad)

    def decrypt(self, sealed: bytes, aad: bytes) -> bytes:
        """The plaintext of ``sealed``.

        :raises VaultError: the value was sealed under another master key, is damaged, or
            belongs to another place (``aad`` differs).
        """
        if len(sealed) < _HEADER_SIZE + _TAG_SIZE or sealed[0] != FORMAT_V1:
            raise VaultError("a sealed value in the vault is damaged (unknown format)")
        if not hmac.compare_digest(sealed[1 : 1 + _KEY_ID_SIZE], self.key_id):
            raise VaultError(WRONG_KEY)
        nonce = sealed[1 + _KEY_ID_SIZE : _HEADER_SIZE]
        try:
            return self._aead.decrypt(nonce, sealed[_HEADER_SIZE:], aad)
        except InvalidTag:
            raise VaultError(
                "a sealed value in the vault is damaged or was moved (authentication failed)"
            ) from None

    def sealed_by_me(self, sealed: bytes) -> bool:
        """Whether ``sealed`` carries this vault's key id (says nothing of its integrity)."""
        return len(sealed) > _HEADER_SIZE and hmac.compare_digest(
            sealed[1 : 1 + _KEY_ID_SIZE], self.key_id
        )


async def rotate_master_key(
    url: str | None = None,
    *,
    new_key: bytes | None = None,
    old_key: bytes | None = None,
    data_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> MasterKey:
    """Re-encrypt the store's vault under a new master key, in one transaction.

    The old key is ``old_key`` or the one :func:`read_master_key` finds. When it came from
    the key file, the new key (``new_key`` or a fresh random one) replaces that file, after
    the commit; when it came from ``PORTKEY_MW_MASTER_KEY``, ``new_key`` is required and the
    operator sets the variable to it afterwards. A failure leaves the store and the key file
    as they were. Running servers keep the old key in memory: restart them.

    :returns: the new key, with the key file it was written to (if any).
    :raises VaultError: no old key, a wrong old key, or ``new_key`` missing where needed.
    """
    from portkey_mw.store.sql import SQLStore  # the store imports this module

    store = SQLStore(url, master_key=old_key, data_dir=data_dir, environ=environ, migrate=False)
    await store.open()
    try:
        return await store.rotate_master_key(new_key)
    finally:
        await store.aclose()


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or type(exc).__name__
