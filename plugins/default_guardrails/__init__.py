"""The built-in guardrail checks, under the ids and parameter names of Portkey's ``default``
plugin where one exists (``default.regexMatch``, ``default.contains``...), plus personal
data (``default.pii``, also as ``portkey.pii``) and prompt injection
(``default.promptInjection``). See docs/guardrails.md for each check's parameters.
"""

from __future__ import annotations

from collections.abc import Callable

from portkey_mw import hookimpl
from portkey_mw.config.server import ServerSettings
from portkey_mw.guardrails.api import Guardrail

from . import injection, moderation, pii, remote, structured, text


@hookimpl
def register_guardrails(register: Callable[[Guardrail], None], settings: ServerSettings) -> None:
    """Register every built-in check."""
    for module in (text, structured, remote, pii, moderation):
        for check in module.CHECKS:
            register(check())
    register(remote.ValidUrls(max_urls=settings.outbound.max_valid_urls))
    register(injection.PromptInjection(settings.embedding))
