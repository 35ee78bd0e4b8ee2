"""The self-hosted dashboard: one HTML page and its own scripts and styles, served by the
gateway at ``/dashboard``. The page holds no data; its scripts read the log query API
(``/v1/logs``, ``/v1/logs/stats``) and ``/v1/admin/budgets`` with the key the user types
in, so those routes decide what the user may see."""

from portkey_mw.dashboard.serve import DASHBOARD_PATH, Dashboard, is_dashboard_path

__all__ = ["DASHBOARD_PATH", "Dashboard", "is_dashboard_path"]
