"""Google Cloud access tokens for Vertex AI, from a service account or Application Default
Credentials, through google-auth (``pip install "portkey-mw[vertex]"``).

google-auth refreshes tokens with blocking HTTP calls, so refreshes run in a worker thread;
tokens are cached per credential and refreshed shortly before they expire.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import orjson

from portkey_mw.errors import AuthenticationError, PluginMissingDependency

SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]


class TokenSource:
    """Access tokens per service account (or ADC), cached and refreshed as needed."""

    def __init__(self) -> None:
        self._credentials: dict[str, Any] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def token(self, service_account: Any) -> str:
        """A valid access token for ``service_account`` (a dict or JSON text; None: ADC)."""
        info = _service_account_info(service_account)
        key = (
            hashlib.sha256(orjson.dumps(info, option=orjson.OPT_SORT_KEYS)).hexdigest()
            if info
            else "adc"
        )
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            credentials = self._credentials.get(key)
            if credentials is None:
                credentials = _credentials(info)
                self._credentials[key] = credentials
            if not credentials.valid:  # google-auth treats tokens near expiry as invalid
                try:
                    await asyncio.to_thread(_refresh, credentials)
                except Exception as exc:
                    self._credentials.pop(key, None)
                    raise AuthenticationError(
                        f"vertex-ai: could not get a Google access token: {exc}",
                        provider="vertex-ai",
                    ) from exc
            return str(credentials.token)


def _service_account_info(value: Any) -> dict[str, Any] | None:
    if value is None or value == "":
        return None
    if isinstance(value, dict):
        return value
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise AuthenticationError(
            "vertex-ai: vertex_service_account_json must be a service account key (JSON object)",
            provider="vertex-ai",
        )
    return parsed


def _credentials(info: dict[str, Any] | None) -> Any:
    try:
        import google.auth
        from google.oauth2 import service_account
    except ImportError as exc:
        raise PluginMissingDependency("vertex-ai", "vertex", exc) from exc
    if info is None:
        try:
            credentials, _ = google.auth.default(scopes=SCOPES)
        except Exception as exc:
            raise AuthenticationError(
                "vertex-ai: no credentials: give vertex_service_account_json, send an access "
                f"token as 'Authorization: Bearer <token>', or configure ADC ({exc})",
                provider="vertex-ai",
            ) from exc
        return credentials
    try:
        return service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
            info, scopes=SCOPES
        )
    except (ValueError, KeyError) as exc:
        raise AuthenticationError(
            f"vertex-ai: the service account key is not usable: {exc}", provider="vertex-ai"
        ) from exc


def _refresh(credentials: Any) -> None:
    import requests
    from google.auth.transport.requests import Request

    # A session of our own, closed after: google-auth's default one is never closed and
    # leaves its connection open until garbage collection.
    with requests.Session() as session:
        credentials.refresh(Request(session))
