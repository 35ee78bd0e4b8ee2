"""The gateway's client for URLs that configs and requests name: webhooks, ``validUrls``,
images, token endpoints.

It sends through the process's transport with the ``fetch`` destination, so every request
passes the outbound policy (loopback and private addresses refused unless allowed). A
redirect is followed only when the caller allows it, and each hop goes through the policy
again: a public host cannot redirect the gateway to an internal one. Bodies are read up
to a limit, never whole first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urljoin

from portkey_mw.auth.outbound import Destination
from portkey_mw.errors import DestinationNotAllowed, UpstreamBadResponse
from portkey_mw.redact import redact_url
from portkey_mw.transport import Transport, UpstreamRequest

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True, slots=True)
class Fetched:
    """A complete response to a fetch (header names lower-cased)."""

    status: int
    headers: Mapping[str, str]
    body: bytes = b""
    #: the URL that answered (after redirects)
    url: str = ""
    #: the content type without parameters, lower-cased
    media_type: str = ""


class Fetcher:
    """Fetches URLs on behalf of configs and requests, through the outbound policy.

    :param transport: the process's transport (its pools, its policy).
    :param budget: how many requests this fetcher may still send (``None``: no limit);
        each request gets one of its own (:meth:`for_request`), so that one request's
        config cannot fan out into thousands of calls, nor take the fetch pool.
    """

    def __init__(self, transport: Transport, budget: int | None = None) -> None:
        self.transport = transport
        self.budget = budget

    def for_request(self, budget: int) -> Fetcher:
        """A fetcher for one request, allowed ``budget`` sends in all (redirects count)."""
        return Fetcher(self.transport, budget)

    def spend(self, url: str) -> None:
        """Count one outbound call (a send, or a DNS lookup done for a check).

        :raises DestinationNotAllowed: the budget is spent (``fetch_budget_spent``).
        """
        if self.budget is None:
            return
        if self.budget <= 0:
            raise DestinationNotAllowed(
                f"the gateway will not contact {redact_url(url)!r}: this request has used "
                "all the outbound calls it may make (outbound.max_fetches_per_request)",
                param="url",
                code="fetch_budget_spent",
            )
        self.budget -= 1

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        time_limit: float,
        max_bytes: int,
        redirects: int = 0,
        read_body: bool = True,
    ) -> Fetched:
        """Send one request; follow up to ``redirects`` redirects (``GET`` and ``HEAD``).

        :param time_limit: seconds for each hop, the body included.
        :param max_bytes: the largest body accepted; a longer one is a 502.
        :param read_body: ``False`` to learn only the status and headers.
        :raises DestinationNotAllowed: the policy refuses a URL or address on the way.
        :raises UpstreamBadResponse: too many redirects, or a body over ``max_bytes``.
        """
        hops = 0
        while True:
            self.spend(url)
            request = UpstreamRequest(
                method,
                url,
                headers=dict(headers or {}),
                body=body,
                timeout=time_limit,
                destination=Destination.FETCH,
                max_body=max_bytes,
            )
            response = await self.transport.send(request)
            try:
                location = response.headers.get("location")
                if response.status in REDIRECT_STATUSES and location:
                    if hops >= redirects or method not in ("GET", "HEAD"):
                        raise UpstreamBadResponse(
                            f"{redact_url(url)} redirected ({response.status}) more often "
                            f"than the {redirects} time(s) allowed",
                            code="too_many_redirects",
                        )
                    hops += 1
                    url = urljoin(url, location)
                    continue
                declared = response.headers.get("content-length", "")
                if read_body and declared.isdigit() and int(declared) > max_bytes:
                    raise UpstreamBadResponse(
                        f"{redact_url(url)} announced {declared} bytes, more than the "
                        f"{max_bytes} allowed",
                        code="upstream_body_too_large",
                    )
                data = await response.read() if read_body else b""
                media = response.headers.get("content-type", "").split(";", 1)[0].strip()
                lowered = {name.lower(): value for name, value in response.headers.items()}
                return Fetched(response.status, lowered, data, url, media.lower())
            finally:
                await response.aclose()
