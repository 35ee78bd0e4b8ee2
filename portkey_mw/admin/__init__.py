"""The control plane's HTTP routes, Starlette routers off the hot path: Portkey's admin
API -- virtual keys, providers, API keys and saved configs, with the paths and shapes the
portkey-ai SDK uses (see ``docs/control-plane.md``), and their budget usage
(:mod:`portkey_mw.admin.usage`) -- and the operator's ``/v1/admin`` routes
(:mod:`portkey_mw.admin.operations`, :mod:`portkey_mw.admin.budgets`).

The gateway mounts :func:`control_plane_routes` at its root and supplies an
:data:`Authorize` callable and :class:`AdminServices`; the route/scope table is
:data:`~portkey_mw.admin.scopes.ROUTES`.
"""

from portkey_mw.admin.http import Limits
from portkey_mw.admin.routes import (
    CONTROL_PLANE_PREFIXES,
    control_plane_routes,
    is_control_plane_path,
)
from portkey_mw.admin.scopes import API_KEY_KINDS, ROUTES, RouteScope, every_scope
from portkey_mw.admin.services import (
    ADMIN_PRINCIPAL,
    AdminServices,
    Authorize,
    MissingScope,
    Principal,
    Services,
    SpendView,
    check_admin_custom_host,
)

__all__ = [
    "ADMIN_PRINCIPAL",
    "API_KEY_KINDS",
    "CONTROL_PLANE_PREFIXES",
    "ROUTES",
    "AdminServices",
    "Authorize",
    "Limits",
    "MissingScope",
    "Principal",
    "RouteScope",
    "Services",
    "SpendView",
    "check_admin_custom_host",
    "control_plane_routes",
    "every_scope",
    "is_control_plane_path",
]
