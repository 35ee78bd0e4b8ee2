"""The control plane's HTTP routes: the operator's ``/v1/admin`` routes and (in
:mod:`portkey_mw.admin.control`) Portkey's admin API. Starlette routers, off the hot path."""
