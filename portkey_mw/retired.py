"""Provider ids of Portkey's registry whose services have shut down.

A config or header naming one gets a 400 that says so, whatever the route, rather than
an "unknown provider" that would send the user looking for a typo.
"""

from __future__ import annotations

from portkey_mw.errors import InvalidRequest

#: id -> what replaced it
RETIRED: dict[str, str] = {
    "palm": "Google retired the PaLM API; use provider 'google' (Gemini) or 'vertex-ai'",
    "anyscale": "Anyscale Endpoints shut down in 2024; serve the models elsewhere "
    "(e.g. 'together-ai', 'fireworks-ai', or your own 'vllm')",
}


def refuse_retired(provider: str) -> None:
    """Raise the 400 for a retired provider id; nothing for any other.

    :raises InvalidRequest: ``provider_retired``.
    """
    replacement = RETIRED.get(provider)
    if replacement is not None:
        raise InvalidRequest(
            f"provider {provider!r} is a retired service: {replacement}",
            code="provider_retired",
            param="provider",
        )
