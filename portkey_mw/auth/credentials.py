"""Credentials bound to their destination: one rule for every provider and every kind of
credential.

A credential the server holds (an API key, AWS keys and session token, an Azure key or AD
token, a Google service account or the gateway's own cloud identity -- anything a provider
declares in ``secret_options``) goes only to the provider's canonical host or to the
``custom_host`` the operator configured with it. So when a target holds one, any
client-supplied value that would change the destination is refused before the provider is
called: ``x-portkey-custom-host``, and every option the provider declares in
``destination_options`` (region, resource, deployment, project...) sent as a header.
Userinfo in URLs and ``Host`` through ``forward_headers`` are refused for everyone (see
:mod:`portkey_mw.auth.outbound` and :mod:`portkey_mw.forwarding`), and provider calls never
follow redirects (:mod:`portkey_mw.transport`).
"""

from __future__ import annotations

from collections.abc import Mapping

from portkey_mw.errors import InvalidRequest
from portkey_mw.interfaces import Provider
from portkey_mw.routing.plan import ResolvedTarget

CUSTOM_HOST_HEADER = "x-portkey-custom-host"


def enforce_binding(headers: Mapping[str, str], target: ResolvedTarget, provider: Provider) -> None:
    """Refuse a request whose headers would move a server-held credential elsewhere.

    :raises InvalidRequest: ``custom_host_not_allowed`` or ``destination_option_not_allowed``
        (400), naming the header (``param``).
    """
    if not provider.holds_server_credentials(target):
        return
    if headers.get(CUSTOM_HOST_HEADER) and not target.custom_host:
        raise InvalidRequest(
            f"{CUSTOM_HOST_HEADER} cannot redirect target {target.path}: its credentials are "
            "held by the server; set custom_host in the server's config instead",
            param=CUSTOM_HOST_HEADER,
            code="custom_host_not_allowed",
        )
    options = target.options or {}
    for name in sorted(provider.destination_options):
        if options.get(name):
            continue  # the operator's value wins over any header
        header = provider.option_header(name)
        if headers.get(header):
            raise InvalidRequest(
                f"{header} cannot change where target {target.path} sends its credentials: "
                f"they are held by the server; set {name} on the target in the server's config",
                param=header,
                code="destination_option_not_allowed",
            )
