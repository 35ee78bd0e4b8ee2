"""``GET /v1/analytics/groups/prompt-versions``: each version of one prompt with its
outcomes side by side -- requests, errors, latency, tokens, cost and the feedback on its
traces -- so an A/B split between versions can be judged.

An analytics group (one row per version, Portkey's analytics filters and time range, cost
in cents), with what a group by a plain column cannot give: the prompt must exist and be
in the caller's workspace (404 otherwise), every version is listed even without traffic,
and each row carries its version's id, whether it is published, the labels deploying it
with their weights, and the feedback given on the traces its requests belong to.
``prompt_label`` narrows to the calls made through one label (the split being judged).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from portkey_mw.admin.access import visible
from portkey_mw.admin.analytics import analytics_window, group_row, pct
from portkey_mw.admin.http import Call
from portkey_mw.admin.log_params import MAX_PAGE_SIZE, bad, parse_int
from portkey_mw.logstore.aggregate import Partial
from portkey_mw.prompts.selection import PromptNotFound
from portkey_mw.store.records import PROMPT, Prompt

__all__ = ["prompt_versions"]

#: the row key naming the version (as ``ai_model`` names a model's group)
LABEL = "version"
_EXTRA = ("current_page", "page_size")
#: feedback fields of a version no feedback was given on
_NO_FEEDBACK = {"feedback_count": 0, "feedback_avg": None, "feedback_weighted_avg": None}


def _deployments(prompt: Prompt, names: Mapping[str, str]) -> dict[int, list[dict[str, Any]]]:
    """Version number -> the labels deploying it, each with its weight and its share of
    the label's traffic in percent."""
    found: dict[int, list[dict[str, Any]]] = {}
    for label, deployed in prompt.labels.items():
        if not isinstance(deployed, Mapping):
            continue
        entries = [e for e in deployed.get("versions", ()) if isinstance(e, Mapping)]
        weights = sum(float(e.get("weight", 1)) for e in entries)
        for entry in entries:
            weight = float(entry.get("weight", 1))
            found.setdefault(int(entry["version"]), []).append(
                {
                    "label_id": label,
                    "name": names.get(label, label),
                    "weight": weight,
                    "share": pct(weight, weights),
                }
            )
    return found


async def prompt_versions(call: Call) -> tuple[int, dict[str, Any]]:
    """``GET /v1/analytics/groups/prompt-versions?prompt_slug=pp-x&time_of_generation_min=…``:
    one row per version of the prompt, newest first."""
    principal = await call.authorize()
    window, rest = await analytics_window(call, _EXTRA)
    page = parse_int("current_page", rest.get("current_page") or "0", maximum=10**6)
    size = parse_int("page_size", rest.get("page_size") or "50", minimum=1, maximum=MAX_PAGE_SIZE)
    if len(window.f.prompt_ids) != 1:
        raise bad("prompt_slug", "prompt_slug is required: the slug (or id) of one prompt")
    asked = window.f.prompt_ids[0]
    prompt = await call.store.get_prompt(asked, PROMPT)
    if prompt is None or not visible(principal, prompt.workspace_id):
        raise PromptNotFound(f"no prompt {asked[:100]!r}", param="prompt_slug")
    # The log records name the prompt by its slug, whichever name the caller used.
    f = replace(window.f, prompt_ids=(prompt.slug,))
    queries = window.logs.queries
    groups, _ = await queries.groups(f, by="prompt_version", limit=10**6)
    outcomes = {g["key"]: g for g in groups if g["key"] is not None}
    scores = await queries.feedback_groups(f, by="prompt_version", api_key_ids=window.allowed)
    names = {
        label.id: label.name
        for label in await call.store.list_labels()
        if visible(principal, label.workspace_id)
    }
    deployed = _deployments(prompt, names)
    ids = {v.version: v.id for v in prompt.versions}
    numbers = sorted({*ids, *outcomes}, reverse=True)  # a logged version is shown too
    requests = sum(g["requests"] for g in outcomes.values())
    rows = []
    for number in numbers[page * size : (page + 1) * size]:
        found = outcomes.get(number) or {"key": number, **Partial().result()}
        rows.append(
            {
                **group_row(LABEL, found),
                "version_id": ids.get(number),
                "is_default": number == prompt.default_version,
                "labels": deployed.get(number, []),
                "share": pct(found["requests"], requests),
                **scores.get(number, _NO_FEEDBACK),
            }
        )
    return 200, {
        "object": "list",
        "prompt": {
            "id": prompt.id,
            "slug": prompt.slug,
            "name": prompt.name,
            "default_version": prompt.default_version,
        },
        "requests": requests,
        "total": len(numbers),
        "data": rows,
    }
