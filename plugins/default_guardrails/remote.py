"""Checks that reach out: ``default.validUrls`` and ``default.webhook``.

Each keeps a pooled httpx client, with a timeout per call; a check that cannot finish in
time errors (which does not block unless the hook sets ``fail_on_error``).
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx
import orjson

from portkey_mw.guardrails.api import Guardrail, GuardrailInput, GuardrailVerdict
from portkey_mw.guardrails.spec import optional_number, require

from .text import excerpt, inverted

URL = re.compile(r"https?://[^\s,\"'<>{}\[\]()]+")
DEFAULT_URL_TIMEOUT = 3.0
DEFAULT_WEBHOOK_TIMEOUT_MS = 3000


class _HttpCheck(Guardrail):
    """A check with its own pooled HTTP client, opened in the loop that first uses it and
    closed by :meth:`aclose` at gateway shutdown."""

    def __init__(self) -> None:
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def http(self) -> httpx.AsyncClient:
        """The client for the running loop."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._client.is_closed or self._loop is not loop:
            self._client = httpx.AsyncClient(follow_redirects=False, trust_env=False)
            self._loop = loop
        return self._client

    async def aclose(self) -> None:
        if self._client is not None and self._loop is asyncio.get_running_loop():
            await self._client.aclose()
        self._client = None


class ValidUrls(_HttpCheck):
    """``default.validUrls``: every URL in the text answers (``HEAD``, then ``GET`` when
    HEAD is not allowed) with a status below 400, or with ``onlyDNS`` its host resolves.
    Text without URLs fails, as in Portkey."""

    id: ClassVar[str] = "default.validUrls"

    async def check(self, subject: GuardrailInput, params: Mapping[str, Any]) -> GuardrailVerdict:
        urls = list(dict.fromkeys(url.rstrip(".;:!?") for url in URL.findall(subject.text)))
        if not urls:
            return GuardrailVerdict(False, "no URLs found", {"textExcerpt": excerpt(subject.text)})
        only_dns = bool(params.get("onlyDNS", False))
        probe = self._resolves if only_dns else self._answers
        results = await asyncio.gather(*(probe(url) for url in urls))
        valid = [url for url, ok in zip(urls, results, strict=True) if ok]
        invalid = [url for url, ok in zip(urls, results, strict=True) if not ok]
        return GuardrailVerdict(
            inverted(params, not invalid),
            "all URLs are valid" if not invalid else f"{len(invalid)} invalid URL(s)",
            {
                "validUrls": valid,
                "invalidUrls": invalid,
                "validationMethod": "DNS lookup" if only_dns else "HTTP request",
            },
        )

    async def _answers(self, url: str) -> bool:
        client = self.http()
        try:
            reply = await client.head(url, timeout=DEFAULT_URL_TIMEOUT)
            if reply.status_code in (405, 501):
                reply = await client.get(url, timeout=DEFAULT_URL_TIMEOUT)
        except httpx.HTTPError:
            return False
        return reply.status_code < 400

    @staticmethod
    async def _resolves(url: str) -> bool:
        host = urlsplit(url).hostname
        if not host:
            return False
        try:
            loop = asyncio.get_running_loop()
            async with asyncio.timeout(DEFAULT_URL_TIMEOUT):
                return bool(await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM))
        except (OSError, TimeoutError, UnicodeError):
            return False


class Webhook(_HttpCheck):
    """``default.webhook``: asks the user's HTTP endpoint.

    POSTs ``{"request": {"json", "text"}, "response": {"json", "text", "statusCode"},
    "requestType", "metadata", "eventType"}`` to ``webhookURL`` (with ``headers``, an object
    or a JSON string), within ``timeout`` milliseconds (3000). The endpoint answers
    ``{"verdict": bool, "transformedData": {"request": {"json"}, "response": {"json"}},
    "data": ...}``; a missing verdict is a failure, a non-2xx status or non-JSON an error.
    """

    id: ClassVar[str] = "default.webhook"

    def validate(self, params: Mapping[str, Any]) -> None:
        url = require(params, "webhookURL", str)
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
            raise ValueError("'webhookURL' must be an http(s) URL")
        _headers(params)
        timeout = optional_number(params, "timeout")
        if timeout is not None and timeout <= 0:
            raise ValueError("'timeout' must be above 0 (milliseconds)")

    async def check(self, subject: GuardrailInput, params: Mapping[str, Any]) -> GuardrailVerdict:
        before = subject.phase == "before"
        payload = {
            "request": {"json": dict(subject.request), "text": subject.text if before else ""},
            "response": {
                "json": dict(subject.response or {}),
                "text": "" if before else subject.text,
                "statusCode": None if before else 200,
            },
            "requestType": subject.request_type,
            "metadata": dict(subject.metadata),
            "eventType": "beforeRequestHook" if before else "afterRequestHook",
        }
        timeout = (optional_number(params, "timeout") or DEFAULT_WEBHOOK_TIMEOUT_MS) / 1000
        reply = await self.http().post(
            str(params["webhookURL"]),
            content=orjson.dumps(payload),
            headers={"content-type": "application/json", **_headers(params)},
            timeout=timeout,
        )
        if not 200 <= reply.status_code < 300:
            raise RuntimeError(f"the webhook answered {reply.status_code}")
        try:
            answer = reply.json()
        except ValueError:
            raise RuntimeError("the webhook's answer is not JSON") from None
        if not isinstance(answer, dict):
            raise RuntimeError("the webhook's answer is not a JSON object")
        transformed = answer.get("transformedData") or {}
        new_request = ((transformed.get("request") or {}).get("json")) if before else None
        new_response = None if before else (transformed.get("response") or {}).get("json")
        return GuardrailVerdict(
            answer.get("verdict") is True,
            "the webhook passed the text"
            if answer.get("verdict") is True
            else "the webhook failed the text",
            {"webhookUrl": params["webhookURL"], "responseData": answer.get("data")},
            request=new_request if isinstance(new_request, dict) else None,
            response=new_response if isinstance(new_response, dict) else None,
        )


def _headers(params: Mapping[str, Any]) -> dict[str, str]:
    raw = params.get("headers") or {}
    if isinstance(raw, str):
        try:
            raw = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise ValueError("'headers' must be an object or a JSON object string") from None
    if not isinstance(raw, dict):
        raise ValueError("'headers' must be an object")
    return {str(k): str(v) for k, v in raw.items()}


CHECKS: tuple[type[Guardrail], ...] = (ValidUrls, Webhook)
