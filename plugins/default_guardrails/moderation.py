"""``default.moderation`` (also ``portkey.moderateContent``): a provider's moderation
endpoint, called through the gateway itself.

The check sends ``POST /v1/moderations`` to the gateway that runs it, in process, with a
routing config of its own -- so the call gets the gateway's routing, retries, fallbacks,
circuit breaking and logging like any other request. Parameters:

* ``config``: the routing config for the call: the id of a config in the server file, or
  an object (default ``{"provider": "openai"}``);
* ``credentials``: ``{"apiKey": ...}``, the provider key when the config has none;
* ``model`` (default ``omni-moderation-latest``);
* ``categories``: fail only when one of these OpenAI categories is flagged (default: when
  the provider flags the text at all); ``not`` inverts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import httpx
import orjson

from portkey_mw.guardrails.api import Guardrail, GuardrailInput, GuardrailVerdict

from .text import inverted

DEFAULT_MODEL = "omni-moderation-latest"


class Moderation(Guardrail):
    """Fails text the provider's moderation model flags."""

    id: ClassVar[str] = "default.moderation"

    def validate(self, params: Mapping[str, Any]) -> None:
        config = params.get("config", {"provider": "openai"})
        if not isinstance(config, str | dict):
            raise ValueError("'config' must be a config id or a config object")
        categories = params.get("categories")
        if categories is not None and (
            not isinstance(categories, list) or not all(isinstance(c, str) for c in categories)
        ):
            raise ValueError("'categories' must be a list of category names")
        credentials = params.get("credentials", {})
        if not isinstance(credentials, dict):
            raise ValueError("'credentials' must be an object")

    async def check(self, subject: GuardrailInput, params: Mapping[str, Any]) -> GuardrailVerdict:
        if subject.gateway is None:
            raise RuntimeError("moderation needs the gateway that runs the check")
        if not subject.text.strip():
            return GuardrailVerdict(True, "nothing to moderate")
        config = params.get("config", {"provider": "openai"})
        headers = {
            "x-portkey-config": config if isinstance(config, str) else orjson.dumps(config).decode()
        }
        key = (params.get("credentials") or {}).get("apiKey")
        if key:
            headers["authorization"] = f"Bearer {key}"
        if subject.ctx is not None:
            headers["x-portkey-trace-id"] = f"{subject.ctx.trace_id}-moderation"
        body = {"model": params.get("model", DEFAULT_MODEL), "input": subject.text}
        transport = httpx.ASGITransport(app=subject.gateway)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            reply = await client.post("/v1/moderations", json=body, headers=headers)
        if reply.status_code != 200:
            raise RuntimeError(
                f"the moderation call answered {reply.status_code}: {reply.text[:200]}"
            )
        results = reply.json().get("results") or []
        flagged = sorted(
            {
                name
                for result in results
                for name, hit in (result.get("categories") or {}).items()
                if hit
            }
        )
        wanted = params.get("categories")
        hits = [c for c in flagged if wanted is None or c in wanted]
        failed = bool(hits) if wanted is not None else any(r.get("flagged") for r in results)
        return GuardrailVerdict(
            inverted(params, not failed),
            f"flagged: {hits}" if failed else "not flagged",
            {"flaggedCategories": flagged, "model": reply.json().get("model")},
        )


class PortkeyModeration(Moderation):
    """``portkey.moderateContent``: the same check under the id Portkey's configs use."""

    id: ClassVar[str] = "portkey.moderateContent"


CHECKS: tuple[type[Guardrail], ...] = (Moderation, PortkeyModeration)
