"""The outbound policy: which URLs and addresses the gateway may contact.

Every URL the gateway contacts on a client's or a config's behalf passes this one policy:
provider base URLs and custom hosts, webhooks, ``validUrls``, image fetches, token
endpoints. It is applied twice, by the same code that connects:

* to the URL, before anything is sent (:meth:`OutboundPolicy.check_url`): http(s) only, no
  userinfo, no ambiguous host spellings, and a literal IP address checked at once;
* to every address a host name resolves to, inside the connection pool's resolver
  (:class:`PolicyResolver`), so the address checked is the address connected to and a DNS
  answer that changes between a check and the connect (rebinding) cannot slip past.

Private, loopback, link-local (cloud metadata), carrier-grade NAT, multicast, reserved,
documentation and IPv6 transition ranges (NAT64, 6to4, Teredo, IPv4-compatible) are
refused unless the operator allows them (``outbound.allow`` in the server file, Portkey's
``TRUSTED_CUSTOM_HOSTS`` for custom hosts). Loopback stays open to provider destinations
(custom hosts), so a local vLLM or Ollama works as with Portkey's gateway.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from portkey_mw.errors import DestinationNotAllowed, InvalidConfig, InvalidRequest
from portkey_mw.redact import redact_url

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
#: Portkey's variable: comma-separated host names a custom host may name.
TRUSTED_CUSTOM_HOSTS_VARIABLE = "TRUSTED_CUSTOM_HOSTS"
SCHEMES = frozenset({"http", "https"})


class Destination(StrEnum):
    """What an outbound request is for; the policy differs in one point, loopback."""

    #: a provider's base URL or a custom host the operator set: credentials go here;
    #: loopback allowed
    PROVIDER = "provider"
    #: a custom host the client chose (``x-portkey-custom-host``, an inline config's
    #: ``custom_host``): the same policy as PROVIDER, but a pool of its own, so that slow
    #: hosts a client names cannot take the connections the operator's upstreams need
    CUSTOM_HOST = "custom_host"
    #: a URL named in a config or a request (webhook, validUrls, image, token endpoint)
    FETCH = "fetch"


LOOPBACK = "loopback"


def _table(rows: Iterable[tuple[str, str]]) -> tuple[tuple[IPNetwork, str], ...]:
    return tuple((ipaddress.ip_network(net), kind) for net, kind in rows)


# Refused unless allowed, with the name an error gives them. Order matters only where
# ranges nest (the IPv6 loopback and unspecified addresses sit inside ::/96).
BLOCKED_IPV4 = _table(
    [
        ("0.0.0.0/8", "'this network'"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "carrier-grade NAT"),
        ("127.0.0.0/8", LOOPBACK),
        ("169.254.0.0/16", "link-local (cloud metadata)"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "IETF protocol assignment"),
        ("192.0.2.0/24", "documentation"),
        ("192.88.99.0/24", "6to4 relay"),
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "benchmarking"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),
    ]
)
BLOCKED_IPV6 = _table(
    [
        ("::1/128", LOOPBACK),
        ("::/128", "unspecified"),
        ("::/96", "IPv4-compatible"),
        ("::ffff:0:0:0/96", "IPv4-translated"),
        ("64:ff9b::/96", "NAT64"),
        ("64:ff9b:1::/48", "NAT64"),
        ("100::/64", "discard"),
        ("2001::/23", "IETF protocol assignment (Teredo included)"),
        ("2001:db8::/32", "documentation"),
        ("2002::/16", "6to4"),
        ("3fff::/20", "documentation"),
        ("5f00::/16", "segment routing"),
        ("fc00::/7", "unique local (private)"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local"),
        ("ff00::/8", "multicast"),
    ]
)
# Digits, hex and dots only: a host that the C library might read as an IPv4 address in
# one of its legacy spellings (2130706433, 0x7f.1, 0177.0.0.1, 127.1).
_NUMERIC_HOST = re.compile(r"^[0-9a-fx.]+$")


def address_kind(address: IPAddress) -> str | None:
    """The blocked range ``address`` falls in (``"loopback"``, ``"private"`` ...), or
    ``None`` for a public address. IPv4-mapped IPv6 addresses are judged as IPv4."""
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped
        if mapped is not None:
            return address_kind(mapped)
        table = BLOCKED_IPV6
    else:
        table = BLOCKED_IPV4
    for network, kind in table:
        if address in network:
            return kind
    return None


@dataclass(frozen=True, slots=True)
class AllowList:
    """Hosts and networks the operator allows although they are not public."""

    hosts: frozenset[str] = frozenset()
    #: ``*.corp.example`` entries, kept as ``.corp.example``
    domains: tuple[str, ...] = ()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str], source: str) -> AllowList:
        """Parse host names, ``*.domain`` wildcards, IP addresses and CIDR networks."""
        hosts: set[str] = set()
        domains: list[str] = []
        networks: list[IPNetwork] = []
        for raw in entries:
            entry = raw.strip().lower().rstrip(".")
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            if entry.startswith("*."):
                domains.append(entry[1:])
            elif re.fullmatch(r"[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?", entry):
                hosts.add(entry)
            else:
                raise InvalidConfig(
                    f"{source}: {raw!r} is not a host name, *.domain, IP address or network"
                )
        return cls(frozenset(hosts), tuple(domains), tuple(networks))

    def allows_host(self, host: str) -> bool:
        """Whether the name itself is allowed (then every address it resolves to is)."""
        return host in self.hosts or any(host.endswith(domain) for domain in self.domains)

    def allows_address(self, address: IPAddress) -> bool:
        """Whether the address falls in an allowed network."""
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)


#: Host verdicts kept per policy: checking a host costs microseconds, every request asks,
#: and clients choose custom hosts, so the memo is bounded.
MAX_REMEMBERED_HOSTS = 4096


class OutboundPolicy:
    """Which destinations the gateway may contact (see the module docstring).

    :param allow: allowed for every destination (``outbound.allow``).
    :param custom_hosts: allowed for provider destinations only (``TRUSTED_CUSTOM_HOSTS``).
    :param loopback_custom_hosts: whether provider destinations may be loopback addresses.
    """

    def __init__(
        self,
        allow: AllowList | None = None,
        custom_hosts: AllowList | None = None,
        loopback_custom_hosts: bool = True,
    ) -> None:
        self.allow = allow or AllowList()
        self.custom_hosts = custom_hosts or AllowList()
        self.loopback_custom_hosts = loopback_custom_hosts
        # (host, destination) -> why it is refused ("" when allowed), for the URL check
        self._hosts: dict[tuple[str, Destination], str] = {}

    @classmethod
    def from_settings(
        cls,
        allow: Iterable[str] = (),
        *,
        loopback_custom_hosts: bool = True,
        environ: Mapping[str, str] | None = None,
    ) -> OutboundPolicy:
        """The policy from the server file's ``outbound`` section and the environment."""
        env = os.environ if environ is None else environ
        trusted = env.get(TRUSTED_CUSTOM_HOSTS_VARIABLE, "")
        return cls(
            allow=AllowList.parse(allow, "outbound.allow"),
            custom_hosts=AllowList.parse(trusted.split(","), TRUSTED_CUSTOM_HOSTS_VARIABLE),
            loopback_custom_hosts=loopback_custom_hosts,
        )

    def check_url(self, url: str, destination: Destination) -> None:
        """Refuse a URL the gateway must not contact.

        :raises DestinationNotAllowed: a scheme other than http(s), userinfo, a host that is
            missing or spelled ambiguously, or a literal address the policy refuses.
        """
        try:
            parsed = URL(url)
            host = parsed.host
        except (ValueError, UnicodeError):
            raise _refused(url, "it is not a valid URL") from None
        if parsed.scheme not in SCHEMES:
            raise _refused(url, "only http:// and https:// URLs are allowed")
        if parsed.raw_user is not None or parsed.raw_password is not None:
            raise _refused(url, "URLs with a user name or password (user:pass@host) are refused")
        if not host:
            raise _refused(url, "it has no host")
        key = (host, destination)
        reason = self._hosts.get(key)
        if reason is None:
            reason = self._host_refusal(host, destination) or ""
            if len(self._hosts) >= MAX_REMEMBERED_HOSTS:
                self._hosts.clear()
            self._hosts[key] = reason
        if reason:
            raise _refused(url, reason)

    def _host_refusal(self, host: str, destination: Destination) -> str | None:
        """Why a URL naming ``host`` is refused before anything is resolved, if it is."""
        host = host.lower().rstrip(".")
        if any(c in host for c in "%\\ ") or not host:
            return f"the host {host!r} is not a plain host name"
        address = _literal_address(host)
        if address is None:
            if _NUMERIC_HOST.match(host) and _legacy_ipv4(host):
                return f"the host {host!r} spells an IPv4 address ambiguously: write a.b.c.d"
            return None  # a name: its addresses are checked when it is resolved
        return self.refusal(host, address, destination)

    def refusal(
        self, host: str, address: IPAddress, destination: Destination, *, resolved: bool = False
    ) -> str | None:
        """Why connecting to ``address`` (for ``host``) is refused, or ``None`` if allowed.

        :param resolved: ``address`` is what the name ``host`` resolved to; the reason then
            names the host and the kind of address, not the address (an internal address is
            not the client's to learn).
        """
        kind = address_kind(address)
        if kind is None:
            return None
        if self.allow.allows_host(host) or self.allow.allows_address(address):
            return None
        if destination is not Destination.FETCH:
            if kind == LOOPBACK and self.loopback_custom_hosts:
                return None
            trusted = self.custom_hosts
            if trusted.allows_host(host) or trusted.allows_address(address):
                return None
            if "localhost" in trusted.hosts and host.endswith(".localhost"):
                return None
        subject = f"{host!r} resolves to a" if resolved else f"{address} is a"
        return (
            f"{subject} {kind} address; allow it in the server file's outbound.allow "
            "if the gateway should reach it"
        )

    def resolver(
        self, destination: Destination, base: AbstractResolver | None = None
    ) -> PolicyResolver:
        """A resolver for a connection pool that serves ``destination``."""
        return PolicyResolver(self, destination, base)


def _refused(url: str, reason: str) -> DestinationNotAllowed:
    return DestinationNotAllowed(
        f"the gateway will not contact {redact_url(url)!r}: {reason}", param="url"
    )


def _literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _legacy_ipv4(host: str) -> bool:
    try:
        socket.inet_aton(host)
    except OSError:
        return False
    return True


class BlockedAddress(OSError):
    """Raised by :class:`PolicyResolver` when no address of a host is allowed; the
    transport turns it into :class:`~portkey_mw.errors.DestinationNotAllowed`."""

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(f"the gateway will not connect to {host!r}: {reason}")
        self.host = host
        self.reason = reason


class PolicyResolver(AbstractResolver):
    """An aiohttp resolver that drops every address the policy refuses.

    The connection pool connects to exactly the addresses this returns, so the check and
    the connect see the same answer. A host with no allowed address raises
    :class:`BlockedAddress` (an ``OSError``, which aiohttp reports as a DNS failure).
    """

    def __init__(
        self,
        policy: OutboundPolicy,
        destination: Destination,
        base: AbstractResolver | None = None,
    ) -> None:
        if base is None:
            from aiohttp import ThreadedResolver

            base = ThreadedResolver()
        self._policy = policy
        self._destination = destination
        self._base = base

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """The addresses of ``host`` that the policy allows."""
        results = await self._base.resolve(host, port, family)
        name = host.lower().rstrip(".")
        allowed: list[ResolveResult] = []
        reasons: list[str] = []
        for result in results:
            try:
                address = ipaddress.ip_address(result["host"].split("%", 1)[0])
            except ValueError:
                reasons.append(f"{result['host']!r} is not an IP address")
                continue
            reason = self._policy.refusal(name, address, self._destination, resolved=True)
            if reason is None:
                allowed.append(result)
            else:
                reasons.append(reason)
        if not allowed:
            raise BlockedAddress(host, reasons[0] if reasons else "it has no address")
        return allowed

    async def close(self) -> None:
        """Close the underlying resolver."""
        await self._base.close()


def check_client_host(url: str, source: str) -> None:
    """A custom host the client chose must be a base URL: http(s), a host, and no query
    string or fragment, which would let it pick any path on the host (the gateway appends
    the endpoint's path to the base URL)."""
    problem = None
    if not url.startswith(("http://", "https://")):
        problem = "must be an http(s) URL"
    elif "?" in url or "#" in url:
        problem = "must be a base URL, without a query string or fragment"
    else:
        try:
            if not URL(url).host:
                problem = "has no host"
        except (ValueError, UnicodeError):
            problem = "is not a valid URL"
    if problem is not None:
        raise InvalidRequest(
            f"{source} {problem}, got {redact_url(url[:200])!r}",
            param=source,
            code="invalid_custom_host",
        )
