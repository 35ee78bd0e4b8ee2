"""Google Cloud access tokens for Vertex AI, from a service account or (when the operator
opted in) Application Default Credentials, through google-auth
(``pip install "portkey-mw[vertex]"``).

google-auth refreshes tokens with blocking calls, so refreshes run in a worker thread. A
service account's token request goes through the gateway's own transport (an adapter
below): it passes the outbound policy, follows no redirect and reads a bounded answer. A
service account the client sent may only name Google's token endpoint, and nothing the
token endpoint answers is echoed to the client beyond an OAuth error code.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import orjson

from portkey_mw.errors import (
    AuthenticationError,
    DestinationNotAllowed,
    GatewayError,
    InvalidRequest,
    PluginMissingDependency,
)
from portkey_mw.fetch import Fetcher
from portkey_mw.transport import Transport

SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
#: The token endpoints a client-sent service account may name: Google's.
GOOGLE_TOKEN_URIS = frozenset(
    {"https://oauth2.googleapis.com/token", "https://accounts.google.com/o/oauth2/token"}
)
#: Service accounts whose credentials stay cached (clients may send their own).
MAX_ACCOUNTS = 256
TOKEN_TIMEOUT = 30.0
MAX_TOKEN_RESPONSE_BYTES = 64 * 1024
# An OAuth error code ("invalid_grant"): the one part of an answer worth repeating.
_OAUTH_ERROR = re.compile(r"[a-z_]{1,64}")
_AMBIENT = "adc"


class TokenSource:
    """Access tokens per service account (or ADC), cached and refreshed as needed."""

    def __init__(self) -> None:
        self._credentials: OrderedDict[str, Any] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}

    async def token(self, service_account: Any, transport: Transport, *, from_client: bool) -> str:
        """A valid access token for ``service_account`` (a dict or JSON text).

        :param from_client: the account came from the client, so its ``token_uri`` must be
            Google's.
        """
        info = _service_account_info(service_account)
        if from_client and info.get("token_uri") not in GOOGLE_TOKEN_URIS:
            raise InvalidRequest(
                "vertex-ai: a service account sent by the client must use Google's token "
                f"endpoint ({sorted(GOOGLE_TOKEN_URIS)[1]}) as its token_uri",
                param="vertex_service_account_json",
                code="invalid_token_uri",
            )
        key = hashlib.sha256(orjson.dumps(info, option=orjson.OPT_SORT_KEYS)).hexdigest()
        loop = asyncio.get_running_loop()
        return await self._cached(
            key, lambda: _account_credentials(info), _Request(transport, loop)
        )

    async def ambient_token(self) -> str:
        """A token for the gateway's own identity (ADC); the operator opted in to it, so its
        endpoints (the metadata server included) are reached with google-auth's transport."""
        return await self._cached(_AMBIENT, _ambient_credentials, None)

    async def _cached(self, key: str, build: Any, request: Any) -> str:
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            credentials = self._credentials.get(key)
            if credentials is None:
                try:
                    credentials = build()
                except GatewayError:
                    self._forget(key)
                    raise
                self._credentials[key] = credentials
                while len(self._credentials) > MAX_ACCOUNTS:
                    evicted, _ = self._credentials.popitem(last=False)
                    self._locks.pop(evicted, None)
            self._credentials.move_to_end(key)
            if not credentials.valid:  # google-auth treats tokens near expiry as invalid
                try:
                    await asyncio.to_thread(_refresh, credentials, request)
                except GatewayError:
                    self._forget(key)
                    raise
                except Exception as exc:
                    self._forget(key)
                    raise AuthenticationError(
                        f"vertex-ai: could not get a Google access token{_oauth_error(exc)}",
                        provider="vertex-ai",
                    ) from exc
            return str(credentials.token)

    def _forget(self, key: str) -> None:
        """Drop an account that failed, its lock too: clients may send any number of them."""
        self._credentials.pop(key, None)
        self._locks.pop(key, None)


def _oauth_error(exc: Exception) -> str:
    """``": invalid_grant"`` from a google-auth refresh error, or nothing: the rest of the
    token endpoint's answer is not repeated to the client."""
    for arg in getattr(exc, "args", ())[1:]:
        if isinstance(arg, Mapping):
            code = arg.get("error")
            if isinstance(code, str) and _OAUTH_ERROR.fullmatch(code):
                return f": {code}"
    return ""


def _service_account_info(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    try:
        parsed = orjson.loads(value) if isinstance(value, str | bytes) else None
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise AuthenticationError(
            "vertex-ai: vertex_service_account_json must be a service account key (JSON object)",
            provider="vertex-ai",
        )
    return parsed


def _account_credentials(info: dict[str, Any]) -> Any:
    try:
        from google.oauth2 import service_account
    except ImportError as exc:
        raise PluginMissingDependency("vertex-ai", "vertex", exc) from exc
    try:
        return service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
            info, scopes=SCOPES
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise AuthenticationError(
            "vertex-ai: the service account key is not usable (it needs client_email, "
            f"private_key and token_uri): {type(exc).__name__}",
            provider="vertex-ai",
        ) from exc


def _ambient_credentials() -> Any:
    try:
        import google.auth
    except ImportError as exc:
        raise PluginMissingDependency("vertex-ai", "vertex", exc) from exc
    try:
        credentials, _ = google.auth.default(scopes=SCOPES)
    except Exception as exc:
        raise AuthenticationError(
            "vertex-ai: application_default_credentials is on, but the gateway found no "
            f"Google credentials in its environment ({type(exc).__name__})",
            provider="vertex-ai",
        ) from exc
    return credentials


def _refresh(credentials: Any, request: Any) -> None:
    """Refresh in a worker thread, with ``request`` (the gateway's transport) or, for ADC,
    a requests session of our own, closed after (google-auth's default one never is)."""
    if request is not None:
        credentials.refresh(request)
        return
    import requests
    from google.auth.transport.requests import Request

    with requests.Session() as session:
        credentials.refresh(Request(session))


class _Response:
    """A google-auth transport response (status, headers, data)."""

    def __init__(self, status: int, headers: Mapping[str, str], data: bytes) -> None:
        self.status = status
        self.headers = headers
        self.data = data


class _Request:
    """google-auth's ``Request`` callable, sending through the gateway's transport.

    It is called from the refresh's worker thread and runs the request on the gateway's
    event loop, which is free meanwhile (it is awaiting the thread).
    """

    def __init__(self, transport: Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._fetcher = Fetcher(transport)
        self._loop = loop

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> _Response:
        future = asyncio.run_coroutine_threadsafe(
            self._send(url, method, body, headers, timeout), self._loop
        )
        return future.result()

    async def _send(
        self,
        url: str,
        method: str,
        body: bytes | None,
        headers: Mapping[str, str] | None,
        seconds: float | None,
    ) -> _Response:
        try:
            fetched = await self._fetcher.request(
                method,
                url,
                headers=headers,
                body=body.encode() if isinstance(body, str) else body,
                time_limit=seconds or TOKEN_TIMEOUT,
                max_bytes=MAX_TOKEN_RESPONSE_BYTES,
            )
        except DestinationNotAllowed:
            raise
        except GatewayError as exc:
            raise AuthenticationError(
                f"vertex-ai: the token endpoint could not be reached ({exc.code})",
                provider="vertex-ai",
            ) from None
        return _Response(fetched.status, fetched.headers, fetched.body)
