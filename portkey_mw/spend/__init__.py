"""Spend control in the gateway: budgets and rate limits of API keys, virtual keys and
metadata values, enforced in the request path with :mod:`portkey_mw.limits`.

See :class:`SpendControl` and docs/limits.md.
"""

from portkey_mw.limits.subject import Subject
from portkey_mw.spend.control import SpendControl, make_backend, total_tokens
from portkey_mw.spend.subjects import (
    InvalidLimits,
    MetadataPolicies,
    api_key_subject,
    virtual_key_subject,
)

__all__ = [
    "InvalidLimits",
    "MetadataPolicies",
    "SpendControl",
    "Subject",
    "api_key_subject",
    "make_backend",
    "total_tokens",
    "virtual_key_subject",
]
