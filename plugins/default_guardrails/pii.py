"""Personal data and secrets: detection, and redaction as a rewrite.

``default.pii`` (and ``portkey.pii``, the id Portkey's configs use) finds, by category:

* ``EMAIL_ADDRESS``;
* ``PHONE_NUMBER`` -- found and validated by ``phonenumbers`` (libphonenumber's rules),
  international numbers and those of ``region`` (default ``US``);
* ``CREDIT_CARD`` -- 13 to 19 digits passing the Luhn check;
* ``IBAN`` -- with a valid ISO 7064 mod-97 checksum;
* ``SSN`` / ``NATIONAL_ID`` -- US social security numbers and UK national insurance numbers;
* ``IP_ADDRESS`` -- IPv4 and IPv6, validated by :mod:`ipaddress`;
* ``API_KEY`` -- credentials by their known shapes (OpenAI, Anthropic, AWS, GitHub, Slack,
  Google, Stripe, JWTs, private keys) and ``key=...`` assignments of long secrets.

Parameters: ``categories`` (default: all), ``redact`` (replace each finding by
``<CATEGORY>`` and pass, instead of failing), ``not`` (invert). Matches are found per text
part, so redaction puts every part back where it came from.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

import phonenumbers

from portkey_mw.guardrails.api import Guardrail, GuardrailInput, GuardrailVerdict, StreamMode

from .text import inverted

Span = tuple[int, int, str]  # start, end, category

EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
SSN = re.compile(r"(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])")
NINO = re.compile(
    r"\b(?![DFIQUV])[A-CEGHJ-PR-TW-Z](?![DFIQUVO])[A-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b"
)
IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
SECRETS = re.compile(
    "|".join(
        [
            r"\bsk-(?:ant-|proj-)?[A-Za-z0-9_-]{20,}",  # OpenAI, Anthropic
            r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",  # AWS access key id
            r"\bgh[pousr]_[A-Za-z0-9]{36,}\b|\bgithub_pat_[A-Za-z0-9_]{22,}",  # GitHub
            r"\bxox[abprs]-[A-Za-z0-9-]{10,}",  # Slack
            r"\bAIza[0-9A-Za-z_-]{35}\b",  # Google API key
            r"\b[rs]k_(?:live|test)_[0-9A-Za-z]{16,}",  # Stripe
            r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",  # JWT
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
            r"(?i:\b(?:api[_-]?key|secret|token|password)\b\s*[:=]\s*['\"]?[^\s'\"]{12,})",
        ]
    )
)

#: Portkey's category names map onto ours
ALIASES = {"NATIONAL_ID": ("SSN", "NATIONAL_ID"), "SSN": ("SSN",)}


def _luhn(digits: str) -> bool:
    total, double = 0, False
    for char in reversed(digits):
        value = int(char) * (2 if double else 1)
        total += value - 9 if value > 9 else value
        double = not double
    return total % 10 == 0


def _iban_valid(candidate: str) -> bool:
    compact = candidate.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    moved = compact[4:] + compact[:4]
    number = "".join(str(int(char, 36)) for char in moved)
    return int(number) % 97 == 1


Finder = Callable[[str, str], Iterator[Span]]


def _regex(
    pattern: re.Pattern[str], category: str, valid: Callable[[str], bool] | None = None
) -> Finder:
    def find(text: str, region: str) -> Iterator[Span]:
        for match in pattern.finditer(text):
            if valid is None or valid(match.group(0)):
                yield match.start(), match.end(), category

    return find


def _ip(text: str, region: str) -> Iterator[Span]:
    for pattern in (IPV4, IPV6):
        for match in pattern.finditer(text):
            try:
                ipaddress.ip_address(match.group(0))
            except ValueError:
                continue
            yield match.start(), match.end(), "IP_ADDRESS"


def _phones(text: str, region: str) -> Iterator[Span]:
    for match in phonenumbers.PhoneNumberMatcher(
        text, region, leniency=phonenumbers.Leniency.VALID
    ):
        yield match.start, match.end, "PHONE_NUMBER"


FINDERS: dict[str, Finder] = {
    "EMAIL_ADDRESS": _regex(EMAIL, "EMAIL_ADDRESS"),
    "CREDIT_CARD": _regex(CARD, "CREDIT_CARD", lambda s: _luhn(re.sub(r"\D", "", s))),
    "IBAN": _regex(IBAN, "IBAN", _iban_valid),
    "SSN": _regex(SSN, "SSN"),
    "NATIONAL_ID": _regex(NINO, "NATIONAL_ID"),
    "IP_ADDRESS": _ip,
    "API_KEY": _regex(SECRETS, "API_KEY"),
    "PHONE_NUMBER": _phones,
}
CATEGORIES = tuple(FINDERS)


def find_pii(text: str, categories: tuple[str, ...] = CATEGORIES, region: str = "US") -> list[Span]:
    """Non-overlapping findings in ``text``, in order (longer findings win overlaps)."""
    spans = [span for name in categories for span in FINDERS[name](text, region)]
    spans.sort(key=lambda s: (s[0], -(s[1] - s[0])))
    kept: list[Span] = []
    for span in spans:
        if not kept or span[0] >= kept[-1][1]:
            kept.append(span)
    return kept


def redact(text: str, spans: list[Span]) -> str:
    """``text`` with each finding replaced by ``<CATEGORY>``."""
    out, last = [], 0
    for start, end, category in spans:
        out.append(text[last:start])
        out.append(f"<{category}>")
        last = end
    out.append(text[last:])
    return "".join(out)


def _categories(params: Mapping[str, Any]) -> tuple[str, ...]:
    raw = params.get("categories")
    if raw is None:
        return CATEGORIES
    if not isinstance(raw, list) or not raw:
        raise ValueError("'categories' must be a non-empty list")
    chosen: list[str] = []
    for name in raw:
        upper = str(name).upper()
        if upper in ALIASES:
            chosen.extend(ALIASES[upper])
        elif upper in FINDERS:
            chosen.append(upper)
        elif upper in ("NAME", "LOCATION_ADDRESS"):
            # Names and street addresses need a language model: the Presidio plugin has them.
            raise ValueError(f"category {name!r} needs the presidio guardrail plugin")
        else:
            raise ValueError(f"unknown category {name!r} (known: {', '.join(CATEGORIES)})")
    return tuple(dict.fromkeys(chosen))


class PII(Guardrail):
    """Finds personal data and secrets; fails on any, or redacts them with ``redact``."""

    id: ClassVar[str] = "default.pii"
    stream_mode: ClassVar[StreamMode] = "incremental"

    def redact_text(self, text: str) -> str:
        """``text`` with every finding of every category masked as ``<CATEGORY>``: the
        gateway's log redaction (``logging.redact_pii``) uses this detector."""
        return redact(text, find_pii(text))

    def validate(self, params: Mapping[str, Any]) -> None:
        _categories(params)
        region = params.get("region", "US")
        if not isinstance(region, str) or region.upper() not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError("'region' must be a two-letter region code such as 'US' or 'GB'")

    async def check(self, subject: GuardrailInput, params: Mapping[str, Any]) -> GuardrailVerdict:
        categories = _categories(params)
        region = str(params.get("region", "US")).upper()
        findings = [find_pii(part, categories, region) for part in subject.texts]
        found = sorted({category for spans in findings for _, _, category in spans})
        count = sum(len(spans) for spans in findings)
        data = {"detectedCategories": found, "detections": count}
        if count and params.get("redact") and not subject.streaming:
            texts = [
                redact(part, spans) for part, spans in zip(subject.texts, findings, strict=True)
            ]
            return GuardrailVerdict(
                True, f"redacted {count} finding(s): {found}", data, texts=texts
            )
        return GuardrailVerdict(
            inverted(params, not count),
            f"found {count} finding(s): {found}" if count else "no personal data found",
            data,
        )


class PortkeyPII(PII):
    """``portkey.pii``: the same check under the id Portkey's configs use."""

    id: ClassVar[str] = "portkey.pii"


CHECKS: tuple[type[Guardrail], ...] = (PII, PortkeyPII)
