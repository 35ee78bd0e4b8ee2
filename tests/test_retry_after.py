"""Reading a provider's Retry-After hints."""

from __future__ import annotations

import time
from email.utils import formatdate

import pytest

from portkey_mw.routing import retry_after_seconds


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "1"}, 1.0),
        ({"retry-after": "2.5"}, 2.5),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),  # the precise one wins
        ({"retry-after-ms": "soon", "retry-after": "3"}, 3.0),
        ({"retry-after": "-4"}, 0.0),
        ({"retry-after": "tomorrow-ish"}, None),
        ({}, None),
    ],
)
def test_seconds_and_milliseconds(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after_seconds(headers) == expected


def test_http_date() -> None:
    wait = retry_after_seconds({"retry-after": formatdate(time.time() + 30, usegmt=True)})
    assert wait is not None and 28 <= wait <= 30
    assert retry_after_seconds({"retry-after": formatdate(time.time() - 30, usegmt=True)}) == 0.0
