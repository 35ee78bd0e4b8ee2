"""Virtual keys (Portkey's "providers") on the data plane: what a record puts into a target,
and the checks made before each attempt with it.

A virtual key is a server-held credential like a key in the server file: the target it
supplies is marked so (``key_from_server``), so no client header moves it to another host
(:mod:`portkey_mw.auth.credentials`), and its host, options and credentials are the
operator's even inside a config the client sent (``from_vault``).
"""

from __future__ import annotations

import time

from portkey_mw.errors import NotFound, PermissionDenied
from portkey_mw.routing.plan import ResolvedTarget, VirtualKeyBinding
from portkey_mw.spend.subjects import virtual_key_subject
from portkey_mw.store.records import ACTIVE, VirtualKey

#: ``model`` spelled ``@<slug>/<model>`` names a virtual key and a model at once
MODEL_REF_PREFIX = "@"


class VirtualKeyNotFound(NotFound):
    """No virtual key has this slug, or it was deleted (404)."""

    code = "virtual_key_not_found"


def binding(vk: VirtualKey) -> VirtualKeyBinding:
    """What ``vk`` puts into a target."""
    secrets = dict(vk.secrets)
    api_key = secrets.pop("api_key", None)
    defaults = vk.defaults or {}
    model = defaults.get("model")
    override = defaults.get("override_params")
    return VirtualKeyBinding(
        slug=vk.slug,
        provider=vk.provider,
        api_key=api_key,
        options={**vk.options, **secrets} or None,
        custom_host=vk.custom_host,
        override_params=override if isinstance(override, dict) and override else None,
        default_params={"model": model} if isinstance(model, str) and model else None,
        status=vk.status,
        expires_at=vk.expires_at.timestamp() if vk.expires_at is not None else None,
        spend=virtual_key_subject(vk),
        workspace_id=vk.workspace_id,
    )


def not_found(slug: str, where: str, deleted: bool = False) -> VirtualKeyNotFound:
    """The 404 for a slug nothing answers to."""
    state = "was deleted" if deleted else "does not exist"
    return VirtualKeyNotFound(f"virtual key {slug!r} ({where}) {state}", param="virtual_key")


def check_usable(
    target: ResolvedTarget, now: float | None = None, workspace_id: str | None = None
) -> None:
    """Refuse an attempt with a virtual key that is turned off, has expired, or belongs to
    another workspace than the caller's.

    :param workspace_id: the caller's workspace, when it holds a workspace API key: such a
        key uses only its own workspace's virtual keys (another's answers as if absent).
    :raises PermissionDenied: ``virtual_key_disabled`` / ``virtual_key_expired`` (403).
    :raises VirtualKeyNotFound: another workspace's virtual key (404).
    """
    slug = target.virtual_key
    if slug is None:
        return
    if workspace_id is not None and target.virtual_key_workspace != workspace_id:
        raise not_found(slug, "in this API key's workspace")
    if target.virtual_key_status != ACTIVE:
        raise PermissionDenied(
            f"virtual key {slug!r} is {target.virtual_key_status}",
            code=f"virtual_key_{target.virtual_key_status}",
            param="virtual_key",
        )
    if target.expires_at is not None and (now or time.time()) >= target.expires_at:
        raise PermissionDenied(
            f"virtual key {slug!r} has expired", code="virtual_key_expired", param="virtual_key"
        )


def split_model_ref(model: str) -> tuple[str, str] | None:
    """``("slug", "model")`` for ``"@slug/model"``; ``None`` for a plain model name."""
    if not model.startswith(MODEL_REF_PREFIX):
        return None
    slug, sep, name = model[1:].partition("/")
    if not (sep and slug and name):
        return None
    return slug, name
