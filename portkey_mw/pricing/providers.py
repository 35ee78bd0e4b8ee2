"""Which genai-prices provider prices each portkey-mw provider: the one table of them."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

#: portkey-mw provider id -> genai-prices provider id. A provider not listed here is priced
#: by genai-prices only when its id is exactly one of genai-prices' (a provider the server
#: file adds as ``cerebras``, say); genai-prices' own fuzzy id matching is never used, as it
#: would price ``azure-openai`` as ``openai``. Self-hosted servers (``ollama``, ``vllm``,
#: ``lm-studio``), ``stability-ai`` and ``mock`` have no genai-prices entry: give their
#: models a price under the server file's ``pricing``.
PROVIDERS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "openai": "openai",
        "azure-openai": "azure",
        "anthropic": "anthropic",
        "bedrock": "aws",
        "google": "google",
        "vertex-ai": "google",
        "cohere": "cohere",
        "groq": "groq",
        "together-ai": "together",
        "fireworks-ai": "fireworks",
        "mistral-ai": "mistral",
        "deepseek": "deepseek",
        "perplexity-ai": "perplexity",
        "x-ai": "x-ai",
        "openrouter": "openrouter",
        "voyage": "voyageai",
    }
)

#: Providers genai-prices has no entry for (beyond the self-hosted servers, the mock and
#: ``stability-ai``): their requests cost 0 until the server file's ``pricing`` gives their
#: models a price. Kept here so that a new provider is a choice, not an oversight.
NO_LIST_PRICE: Final[frozenset[str]] = frozenset(
    {"ollama", "vllm", "lm-studio", "stability-ai", "mock"}
    | {"302ai", "ai21", "aibadgr", "azure-ai", "cometapi", "dashscope", "deepbricks"}
    | {"deepinfra", "featherless-ai", "github", "huggingface", "hyperbolic", "inference-net"}
    | {"iointelligence", "jina", "kluster-ai", "krutrim", "lambda", "lemonfox-ai", "lepton"}
    | {"lingyi", "matterai", "monsterapi", "moonshot", "ncompass", "nebius", "nextbit"}
    | {"nomic", "novita-ai", "nscale", "predibase", "recraft-ai", "reka-ai", "sagemaker"}
    | {"sambanova", "segmind", "siliconflow", "upstage", "workers-ai", "z-ai", "zhipu"}
    | {"replicate"}
)

#: Providers whose plugin translates a native API: their usage reaches the log in the
#: gateway's OpenAI shape (:func:`portkey_mw.translation.openai_usage`: cache reads in
#: ``prompt_tokens_details.cached_tokens``, cache writes in ``cache_creation_tokens``, both
#: inside ``prompt_tokens``). Every other provider relays its own OpenAI-compatible usage,
#: which is read the way genai-prices reads that provider's (xAI leaves reasoning tokens
#: out of ``completion_tokens``, Perplexity counts citation tokens apart, ...).
TRANSLATED: Final = frozenset({"anthropic", "bedrock", "google", "vertex-ai", "cohere"})
