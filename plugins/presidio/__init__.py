"""``presidio.pii``: personal data found (and redacted) by Microsoft Presidio.

Needs ``pip install "portkey-mw[presidio]"`` and a spaCy pipeline. Presidio's named-entity
recognizers (``PERSON``, ``LOCATION``, ``NRP``...) come from the spaCy model; its pattern
recognizers (e-mail, phone, credit card, IBAN, IP, national ids of many countries, URLs...)
work with any pipeline, a blank one included. Plugin settings
(``plugins.settings["portkey-mw.presidio"]``): ``spacy_model`` (an installed model's name or
a model directory; default ``en_core_web_lg``), ``language`` (``en``), ``offline`` (default
true: the URL recognizer's public-suffix list comes from the copy tldextract ships instead
of being downloaded).

Check parameters: ``entities`` (Presidio entity names; default all), ``score_threshold``
(0.5), ``redact`` (replace each finding by ``<ENTITY>`` and pass), ``not``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from portkey_mw import hookimpl
from portkey_mw.config.server import ServerSettings
from portkey_mw.guardrails.api import Guardrail, GuardrailInput, GuardrailVerdict
from portkey_mw.guardrails.spec import optional_number

PLUGIN_NAME = "portkey-mw.presidio"
DEFAULT_MODEL = "en_core_web_lg"
MISSING = 'presidio.pii needs Presidio: pip install "portkey-mw[presidio]"'
_ENGINES: dict[tuple[str, str, bool], tuple[Any, Any]] = {}
_LOCK = threading.Lock()


def presidio_installed() -> bool:
    """Whether the ``presidio`` extra is installed."""
    try:
        import presidio_analyzer  # noqa: F401
        import presidio_anonymizer  # noqa: F401
    except ImportError:
        return False
    return True


class PresidioPII(Guardrail):
    """Presidio's analyzer and anonymizer, loaded on first use, run off the event loop."""

    id: ClassVar[str] = "presidio.pii"

    def __init__(
        self, spacy_model: str = DEFAULT_MODEL, language: str = "en", offline: bool = True
    ) -> None:
        self.spacy_model = spacy_model
        self.language = language
        self.offline = offline

    def validate(self, params: Mapping[str, Any]) -> None:
        if not presidio_installed():
            raise ValueError(MISSING)
        entities = params.get("entities")
        if entities is not None and (
            not isinstance(entities, list) or not all(isinstance(e, str) for e in entities)
        ):
            raise ValueError("'entities' must be a list of Presidio entity names")
        threshold = optional_number(params, "score_threshold")
        if threshold is not None and not 0 <= threshold <= 1:
            raise ValueError("'score_threshold' must be between 0 and 1")

    def _load(self) -> tuple[Any, Any]:
        # Loading spaCy and Presidio takes seconds: once per process and model.
        key = (self.spacy_model, self.language, self.offline)
        with _LOCK:
            if key not in _ENGINES:
                from presidio_analyzer import AnalyzerEngine
                from presidio_analyzer.nlp_engine import NlpEngineProvider
                from presidio_anonymizer import AnonymizerEngine

                if self.offline:
                    import tldextract
                    from tldextract import tldextract as extractor_module

                    # The bundled public-suffix snapshot: nothing is fetched at run time.
                    extractor_module.TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=())
                provider = NlpEngineProvider(
                    nlp_configuration={
                        "nlp_engine_name": "spacy",
                        "models": [{"lang_code": self.language, "model_name": self.spacy_model}],
                    }
                )
                analyzer = AnalyzerEngine(
                    nlp_engine=provider.create_engine(), supported_languages=[self.language]
                )
                _ENGINES[key] = (analyzer, AnonymizerEngine())  # type: ignore[no-untyped-call]
            return _ENGINES[key]

    def _analyze(
        self, texts: list[str], entities: list[str] | None, threshold: float, redact: bool
    ) -> tuple[list[str], list[list[Any]]]:
        analyzer, anonymizer = self._load()
        findings = [
            analyzer.analyze(
                text=text,
                language=self.language,
                entities=entities,
                score_threshold=threshold,
            )
            if text
            else []
            for text in texts
        ]
        if not redact:
            return texts, findings
        rewritten = [
            anonymizer.anonymize(text=text, analyzer_results=found).text if found else text
            for text, found in zip(texts, findings, strict=True)
        ]
        return rewritten, findings

    async def check(self, subject: GuardrailInput, params: Mapping[str, Any]) -> GuardrailVerdict:
        if not presidio_installed():
            raise RuntimeError(MISSING)
        entities = params.get("entities")
        threshold = optional_number(params, "score_threshold")
        redact = bool(params.get("redact")) and not subject.streaming
        texts, findings = await asyncio.to_thread(
            self._analyze,
            list(subject.texts),
            entities,
            0.5 if threshold is None else threshold,
            redact,
        )
        found = sorted({result.entity_type for results in findings for result in results})
        count = sum(len(results) for results in findings)
        data = {"detectedEntities": found, "detections": count}
        if count and redact:
            return GuardrailVerdict(
                True, f"redacted {count} finding(s): {found}", data, texts=texts
            )
        passed = not count if not params.get("not") else bool(count)
        return GuardrailVerdict(
            passed, f"found {count} finding(s): {found}" if count else "nothing found", data
        )


@hookimpl
def register_guardrails(register: Callable[[Guardrail], None], settings: ServerSettings) -> None:
    """Register ``presidio.pii`` (Presidio itself is imported on first use)."""
    options = settings.plugins.settings.get(PLUGIN_NAME, {})
    register(
        PresidioPII(
            spacy_model=str(options.get("spacy_model", DEFAULT_MODEL)),
            language=str(options.get("language", "en")),
            offline=bool(options.get("offline", True)),
        )
    )
