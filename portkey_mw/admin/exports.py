"""Portkey's log exports: made as a draft, started (the file is written by a background
task), retrieved until ``success``, downloaded through a signed link.

The link ``download`` answers (``signed_url``) points at ``GET
/v1/logs/exports/{id}/file?token=...``: the token is random (256 bits), works for
:data:`~portkey_mw.admin.log_services.DOWNLOAD_SECONDS` and only on this gateway process;
that route takes no API key -- the token is the credential. Files are JSON lines in
``<data dir>/exports``.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.responses import FileResponse, Response

from portkey_mw.admin.access import visible, workspace_for
from portkey_mw.admin.http import Call
from portkey_mw.admin.log_params import portkey_filter, restrict
from portkey_mw.admin.log_services import LogServices
from portkey_mw.admin.logs import key_ids, services
from portkey_mw.admin.services import Principal
from portkey_mw.errors import AuthenticationError, InvalidRequest, NotFound
from portkey_mw.logstore.exports import EXPORT_FIELDS, write_export
from portkey_mw.logstore.query import LogFilter

log = logging.getLogger(__name__)

_CREATE_FIELDS = frozenset({"filters", "workspace_id", "description", "requested_data"})


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000.0, UTC).isoformat().replace("+00:00", "Z")


def view(row: dict[str, Any]) -> dict[str, Any]:
    """An export as Portkey's retrieve answers it."""
    return {
        "id": row["id"],
        "organisation_id": None,
        "filters": row["filters"],
        "requested_data": row["requested_data"],
        "status": row["status"],
        "description": row["description"],
        "created_at": _iso(row["created_ms"]),
        "last_updated_at": _iso(row["updated_ms"]),
        "created_by": row["created_by"],
        "workspace_id": row["workspace_id"],
        "total_records": row["total_records"],
        "error": row["error"],
        "object": "export",
    }


def _checked_filters(raw: Any) -> tuple[dict[str, Any], LogFilter]:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise InvalidRequest("filters must be a JSON object", param="filters")
    f, _ = portkey_filter(raw, require_time=False)
    return raw, f


def _fields(raw: Any) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise InvalidRequest("requested_data must be a list of field names", param="requested_data")
    for name in raw:
        if name not in EXPORT_FIELDS:
            raise InvalidRequest(
                f"unknown requested_data field {name[:60]!r}: use {', '.join(EXPORT_FIELDS)}",
                param="requested_data",
            )
    return list(dict.fromkeys(raw))


def _body_fields(body: dict[str, Any]) -> None:
    unknown = sorted(set(body) - _CREATE_FIELDS)
    if unknown:
        raise InvalidRequest(f"unknown export field {unknown[0][:60]!r}", param=unknown[0][:60])
    description = body.get("description")
    if description is not None and (not isinstance(description, str) or len(description) > 2000):
        raise InvalidRequest(
            "description must be a string of at most 2000 characters", param="description"
        )
    workspace = body.get("workspace_id")
    if workspace is not None and (not isinstance(workspace, str) or len(workspace) > 128):
        raise InvalidRequest(
            "workspace_id must be a string of at most 128 characters", param="workspace_id"
        )


async def _mine(call: Call, principal: Principal, logs: LogServices) -> dict[str, Any]:
    export_id = call.param("id")
    row = await logs.exports.get(export_id)
    if row is None or not visible(principal, row["workspace_id"]):
        raise NotFound(f"no export {export_id[:100]!r}", param="id", code="export_not_found")
    return row


async def create(call: Call) -> tuple[int, dict[str, Any]]:
    """A new draft export; answer ``{id, total, object}``."""
    principal = await call.authorize()
    logs = services(call)
    body = await call.body()
    _body_fields(body)
    filters, _ = _checked_filters(body.get("filters"))
    row = await logs.exports.create(
        workspace_id=workspace_for(principal, body.get("workspace_id")),
        description=body.get("description"),
        filters=filters,
        requested_data=_fields(body.get("requested_data")),
        created_by=principal.key_id,
    )
    return 200, {"id": row["id"], "total": 0, "object": "export"}


async def list_exports(call: Call) -> tuple[int, dict[str, Any]]:
    """The exports, newest first (a workspace key's: its workspace's)."""
    principal = await call.authorize()
    logs = services(call)
    rows = await logs.exports.list(workspace_for(principal, call.query("workspace_id")))
    data = [view(r) for r in call.page(rows)]
    return 200, {"object": "list", "total": len(rows), "data": data}


async def retrieve(call: Call) -> tuple[int, dict[str, Any]]:
    """One export, its status and record count."""
    principal = await call.authorize()
    return 200, view(await _mine(call, principal, services(call)))


async def update(call: Call) -> tuple[int, dict[str, Any]]:
    """Change a draft's filters, fields or description."""
    principal = await call.authorize()
    logs = services(call)
    row = await _mine(call, principal, logs)
    body = await call.body()
    _body_fields(body)
    if row["status"] != "draft":
        raise InvalidRequest(
            f"export {row['id']!r} is {row['status']}: only a draft can change",
            param="id",
            code="export_not_draft",
        )
    changes: dict[str, Any] = {}
    if "filters" in body:
        changes["filters"], _ = _checked_filters(body["filters"])
    if "requested_data" in body:
        changes["requested_data"] = _fields(body["requested_data"])
    if "description" in body:
        changes["description"] = body["description"]
    if "workspace_id" in body:
        changes["workspace_id"] = workspace_for(principal, body["workspace_id"])
    await logs.exports.update(row["id"], only_from=("draft",), **changes)
    return 200, {"id": row["id"], "total": row["total_records"], "object": "export"}


async def start(call: Call) -> tuple[int, dict[str, Any]]:
    """Start writing the file, off the request; the export moves to ``in_progress``."""
    principal = await call.authorize()
    logs = services(call)
    row = await _mine(call, principal, logs)
    _, f = _checked_filters(row["filters"])
    f = restrict(f, await key_ids(call, principal))
    if row["workspace_id"] is not None:
        # A workspace's export holds its keys' records only, whoever starts it.
        keys = await call.store.list_api_keys(workspace_id=row["workspace_id"])
        f = restrict(f, tuple(k.id for k in keys if k.type == "workspace"))
    if not await logs.exports.update(row["id"], only_from=("draft",), status="in_progress"):
        raise InvalidRequest(
            f"export {row['id']!r} is {row['status']}: only a draft can start",
            param="id",
            code="export_not_draft",
        )
    logs.spawn(_run(logs, row["id"], f, row["requested_data"]))
    return 200, {"message": "export started", "object": "export"}


async def _run(logs: LogServices, export_id: str, f: LogFilter, fields: list[str]) -> None:
    """Write the export's file, then mark it ``success`` (or ``failed``)."""
    started = time.monotonic()
    name = f"{export_id}.jsonl"
    try:
        logs.export_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        count = await write_export(
            logs.queries.records(f),
            fields,
            logs.export_dir / name,
            stopped=lambda: export_id in logs.stopping,
        )
    except Exception as exc:
        # the type only: a message could quote a record
        log.error("log export %s failed: %s", export_id, type(exc).__name__)
        await logs.exports.update(
            export_id,
            only_from=("in_progress",),
            status="failed",
            error=f"the export failed ({type(exc).__name__}); see the server log",
        )
        return
    if count is None:
        logs.stopping.discard(export_id)
        return
    await logs.exports.update(
        export_id,
        only_from=("in_progress",),
        status="success",
        total_records=count,
        file_path=name,
    )
    log.info(
        "log export %s wrote %d records in %.1f s", export_id, count, time.monotonic() - started
    )


async def cancel(call: Call) -> tuple[int, dict[str, Any]]:
    """Stop a draft or running export (``stopped``)."""
    principal = await call.authorize()
    logs = services(call)
    row = await _mine(call, principal, logs)
    if not await logs.exports.update(
        row["id"], only_from=("draft", "in_progress"), status="stopped"
    ):
        raise InvalidRequest(
            f"export {row['id']!r} is {row['status']}: it has already ended",
            param="id",
            code="export_ended",
        )
    if row["status"] == "in_progress":
        logs.stopping.add(row["id"])
    return 200, {"message": "export stopped", "object": "export"}


async def download(call: Call) -> tuple[int, dict[str, Any]]:
    """A signed link to the finished export's file."""
    principal = await call.authorize()
    logs = services(call)
    row = await _mine(call, principal, logs)
    if row["status"] != "success" or not row["file_path"]:
        raise InvalidRequest(
            f"export {row['id']!r} is {row['status']}: it can be downloaded once it is success",
            param="id",
            code="export_not_ready",
        )
    token = logs.new_link(row["id"])
    base = str(call.request.url.replace(query="")).rsplit("/", 1)[0]
    return 200, {"signed_url": f"{base}/file?token={token}", "object": "export-download"}


async def file(call: Call) -> Response:
    """The file a signed link opens (no API key: the token is the credential)."""
    logs = services(call)
    export_id = call.param("id")
    token = call.query("token") or ""
    if len(token) > 100 or logs.link_export(token) != export_id:
        raise AuthenticationError(
            "this download link is not valid or has expired: ask for a new one "
            "(logs.exports.download)",
            code="invalid_download_link",
        )
    row = await logs.exports.get(export_id)
    if row is None or not row["file_path"]:
        raise NotFound(f"no export file {export_id[:100]!r}", param="id")
    path = logs.export_dir / Path(row["file_path"]).name
    if not path.is_file():
        raise NotFound(f"the file of export {export_id!r} is gone", param="id")
    return FileResponse(
        path,
        media_type="application/x-ndjson",
        filename=f"{export_id}.jsonl",
        headers={"cache-control": "no-store"},
    )
