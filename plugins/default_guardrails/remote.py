"""Checks that reach out: ``default.validUrls`` and ``default.webhook``.

Both call out through the gateway's fetcher (``subject.fetcher``), so the operator's
outbound policy applies: private and loopback addresses are refused unless allowed, each
redirect is checked again, and answers are read up to a limit. A refused URL is reported
the same way whether or not anything listens there, so a config cannot map the network.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

import orjson

from portkey_mw.auth.outbound import Destination
from portkey_mw.bounds import MAX_JSON_DEPTH, json_too_deep
from portkey_mw.errors import GatewayError
from portkey_mw.fetch import Fetcher
from portkey_mw.forwarding import unforwardable
from portkey_mw.guardrails.api import Guardrail, GuardrailInput, GuardrailVerdict
from portkey_mw.guardrails.spec import optional_number, require
from portkey_mw.redact import redact_url

from .text import excerpt, inverted

URL = re.compile(r"https?://[^\s,\"'<>{}\[\]()]+")
DEFAULT_URL_TIMEOUT = 3.0
DEFAULT_WEBHOOK_TIMEOUT_MS = 3000
#: URLs one validUrls check probes at most (the server file's outbound.max_valid_urls)
DEFAULT_MAX_URLS = 10
#: Redirects a probed URL may take, each through the outbound policy.
URL_REDIRECTS = 3
#: The largest webhook answer read.
MAX_WEBHOOK_ANSWER_BYTES = 1024 * 1024


def _fetcher(subject: GuardrailInput) -> Fetcher:
    if subject.fetcher is None:
        raise RuntimeError("this check calls out, and needs the gateway's fetcher")
    return subject.fetcher


class ValidUrls(Guardrail):
    """``default.validUrls``: every URL in the text answers (``HEAD``, then ``GET`` when
    HEAD is not allowed) with a status below 400, or with ``onlyDNS`` its host resolves.
    Text without URLs fails, as in Portkey. At most ``max_urls`` distinct URLs are probed;
    a text with more fails, since the rest cannot be vouched for.

    :param max_urls: the fan-out bound (``outbound.max_valid_urls``).
    """

    id: ClassVar[str] = "default.validUrls"

    def __init__(self, max_urls: int = DEFAULT_MAX_URLS) -> None:
        self.max_urls = max_urls

    async def check(self, subject: GuardrailInput, params: Mapping[str, Any]) -> GuardrailVerdict:
        urls = list(dict.fromkeys(url.rstrip(".;:!?") for url in URL.findall(subject.text)))
        if not urls:
            return GuardrailVerdict(False, "no URLs found", {"textExcerpt": excerpt(subject.text)})
        unchecked = urls[self.max_urls :]
        urls = urls[: self.max_urls]
        only_dns = bool(params.get("onlyDNS", False))
        fetcher = _fetcher(subject)
        probe = self._resolves if only_dns else self._answers
        results = await asyncio.gather(*(probe(fetcher, url) for url in urls))
        valid = [url for url, ok in zip(urls, results, strict=True) if ok]
        invalid = [url for url, ok in zip(urls, results, strict=True) if not ok]
        data: dict[str, Any] = {
            "validUrls": valid,
            "invalidUrls": invalid,
            "validationMethod": "DNS lookup" if only_dns else "HTTP request",
        }
        if unchecked:
            data["uncheckedUrls"] = unchecked
        explanation = "all URLs are valid"
        if unchecked:
            explanation = f"more than {self.max_urls} URLs: the rest were not checked"
        elif invalid:
            explanation = f"{len(invalid)} invalid URL(s)"
        return GuardrailVerdict(inverted(params, not invalid and not unchecked), explanation, data)

    @staticmethod
    async def _answers(fetcher: Fetcher, url: str) -> bool:
        try:
            reply = await fetcher.request(
                "HEAD",
                url,
                time_limit=DEFAULT_URL_TIMEOUT,
                max_bytes=0,
                redirects=URL_REDIRECTS,
                read_body=False,
            )
            if reply.status in (405, 501):
                reply = await fetcher.request(
                    "GET",
                    url,
                    time_limit=DEFAULT_URL_TIMEOUT,
                    max_bytes=0,
                    redirects=URL_REDIRECTS,
                    read_body=False,
                )
        except GatewayError:
            return False  # refused by the policy, unreachable or too slow: all alike
        return reply.status < 400

    @staticmethod
    async def _resolves(fetcher: Fetcher, url: str) -> bool:
        """Whether the host resolves to an address the outbound policy allows (an internal
        name counts as unresolved: its existence is not the config's to learn)."""
        host = urlsplit(url).hostname
        if not host:
            return False
        policy = fetcher.transport.policy
        try:
            fetcher.spend(url)  # a lookup is an outbound call too
            loop = asyncio.get_running_loop()
            async with asyncio.timeout(DEFAULT_URL_TIMEOUT):
                infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except (OSError, TimeoutError, UnicodeError, GatewayError):
            return False
        for info in infos:
            address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
            if policy.refusal(host.lower(), address, Destination.FETCH) is None:
                return True
        return False


class Webhook(Guardrail):
    """``default.webhook``: asks the user's HTTP endpoint.

    POSTs ``{"request": {"json", "text"}, "response": {"json", "text", "statusCode"},
    "requestType", "metadata", "eventType"}`` to ``webhookURL`` (with ``headers``, an object
    or a JSON string), within ``timeout`` milliseconds (3000). The endpoint answers
    ``{"verdict": bool, "transformedData": {"request": {"json"}, "response": {"json"}},
    "data": ...}``; a missing verdict is a failure, a non-2xx status or non-JSON an error.
    The webhook is never followed through a redirect (it receives the request's text).
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
        url = str(params["webhookURL"])
        try:
            reply = await _fetcher(subject).request(
                "POST",
                url,
                body=orjson.dumps(payload),
                headers={"content-type": "application/json", **_headers(params)},
                time_limit=timeout,
                max_bytes=MAX_WEBHOOK_ANSWER_BYTES,
            )
        except GatewayError as exc:
            raise RuntimeError(f"the webhook could not be called: {exc.message}") from None
        if not 200 <= reply.status < 300:
            raise RuntimeError(f"the webhook answered {reply.status}")
        try:
            answer = orjson.loads(reply.body)
        except orjson.JSONDecodeError:
            raise RuntimeError("the webhook's answer is not JSON") from None
        if json_too_deep(reply.body, answer):
            raise RuntimeError(f"the webhook's answer nests JSON deeper than {MAX_JSON_DEPTH}")
        if not isinstance(answer, dict):
            raise RuntimeError("the webhook's answer is not a JSON object")
        transformed = answer.get("transformedData") or {}
        if not isinstance(transformed, dict):
            transformed = {}
        new_request = _json_of(transformed.get("request")) if before else None
        new_response = None if before else _json_of(transformed.get("response"))
        return GuardrailVerdict(
            answer.get("verdict") is True,
            "the webhook passed the text"
            if answer.get("verdict") is True
            else "the webhook failed the text",
            {"webhookUrl": redact_url(url), "responseData": answer.get("data")},
            request=new_request,
            response=new_response,
        )


def _json_of(part: Any) -> dict[str, Any] | None:
    """The ``json`` object of one side of ``transformedData``, if it is one."""
    value = part.get("json") if isinstance(part, dict) else None
    return value if isinstance(value, dict) else None


def _headers(params: Mapping[str, Any]) -> dict[str, str]:
    raw = params.get("headers") or {}
    if isinstance(raw, str):
        try:
            raw = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise ValueError("'headers' must be an object or a JSON object string") from None
    if not isinstance(raw, dict):
        raise ValueError("'headers' must be an object")
    refused = unforwardable(str(name) for name in raw)
    if refused:
        # Host, Content-Length, Transfer-Encoding...: they would readdress or reframe the
        # call to the webhook, which the gateway makes.
        raise ValueError(f"'headers' may not set {', '.join(refused)}")
    return {str(k): str(v) for k, v in raw.items()}


CHECKS: tuple[type[Guardrail], ...] = (Webhook,)
