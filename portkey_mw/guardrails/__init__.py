"""Guardrails: checks on requests and responses, configured per routing config.

The plugin API is in :mod:`portkey_mw.guardrails.api`; configs are compiled into hook specs
by :mod:`.spec`, run by :mod:`.runner`, and applied to streams by :mod:`.stream`.
"""

from portkey_mw.guardrails.api import Guardrail, GuardrailInput, GuardrailVerdict

__all__ = ["Guardrail", "GuardrailInput", "GuardrailVerdict"]
