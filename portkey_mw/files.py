"""Files and batches (``/v1/files``, ``/v1/batches``) in OpenAI's shape: which operation a
path names, the upload streamed to the provider as it arrives, and the upstream request a
provider builds for an operation.

The gateway does not parse an upload: the client's multipart bytes and content type go to
the provider unchanged, counted against ``server.max_upload_bytes`` as they pass (a body
over it is a 413 and the upstream request is aborted). A file's content comes back as a
stream of bytes. Ids in paths are one segment of letters, digits, ``_`` and ``-``: nothing
a client sends can climb to another upstream path. Which URL an operation goes to is the
provider's knowledge (its files and batches paths); this module adds the operation's
suffix (``/{id}``, ``/{id}/content``, ``/{id}/cancel``) and the query parameters OpenAI's
list calls take.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

from portkey_mw.client_body import UPLOAD_LIMIT, ClientBody, declared_length
from portkey_mw.context import Endpoint, RequestContext
from portkey_mw.errors import (
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    UnsupportedMediaType,
)
from portkey_mw.interfaces import ProviderCall
from portkey_mw.transport import UpstreamRequest
from portkey_mw.types import Receive

FILES_PATH = "/v1/files"
BATCHES_PATH = "/v1/batches"
#: the endpoints served here
FILE_ENDPOINTS = frozenset({Endpoint.FILES, Endpoint.BATCHES})
#: ``ctx.state`` key: the request's :class:`FileOperation`
OPERATION = "portkey_mw.files.operation"
#: ``ctx.state`` key: the upload's :class:`~portkey_mw.client_body.ClientBody`
UPLOAD = "portkey_mw.files.upload"
#: the query parameters of OpenAI's list calls; others are not forwarded
QUERY_PARAMS = ("limit", "after", "purpose", "order")
#: a file or batch id: one path segment, no dots (no ``..``), no slashes
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")

#: (endpoint, what follows the id, method) -> operation name; ``None``: no id
_OPERATIONS: dict[tuple[Endpoint, str | None, str], str] = {
    (Endpoint.FILES, None, "POST"): "upload",
    (Endpoint.FILES, None, "GET"): "list",
    (Endpoint.FILES, "", "GET"): "retrieve",
    (Endpoint.FILES, "", "DELETE"): "delete",
    (Endpoint.FILES, "/content", "GET"): "content",
    (Endpoint.BATCHES, None, "POST"): "create",
    (Endpoint.BATCHES, None, "GET"): "list",
    (Endpoint.BATCHES, "", "GET"): "retrieve",
    (Endpoint.BATCHES, "/cancel", "POST"): "cancel",
    # Portkey's: the batch's output file's content, in one call
    (Endpoint.BATCHES, "/output", "GET"): "output",
}


@dataclass(frozen=True, slots=True)
class FileOperation:
    """One files or batches call, as its path and method name it.

    :param endpoint: ``files`` or ``batches``.
    :param name: ``upload``, ``list``, ``retrieve``, ``content``, ``delete``, ``create``,
        ``cancel`` or ``output`` (a batch's output file's content).
    :param method: the HTTP method (the provider's is the same).
    :param suffix: what follows the provider's files or batches path (``""``,
        ``/{id}``, ``/{id}/content``, ``/{id}/cancel``).
    :param query: the forwarded query parameters.
    """

    endpoint: Endpoint
    name: str
    method: str
    suffix: str
    query: tuple[tuple[str, str], ...] = ()

    @property
    def reads_json(self) -> bool:
        """Whether the request has a JSON body (a batch's creation)."""
        return self.name == "create"

    @property
    def streams_answer(self) -> bool:
        """Whether the answer is a file's bytes, relayed as they come."""
        return self.name in ("content", "output")

    def batch(self) -> FileOperation:
        """For ``output``: retrieving the batch (``GET /batches/{id}``), which names the
        output file."""
        return FileOperation(self.endpoint, "retrieve", "GET", self.suffix.removesuffix("/output"))

    def url(self, base: str, extra_query: Mapping[str, str] | None = None) -> str:
        """``base`` (the provider's files or batches URL) with this operation's suffix and
        query, plus the provider's own parameters (``api-version``)."""
        query = [*self.query, *(extra_query or {}).items()]
        return base + self.suffix + ("?" + urlencode(query) if query else "")


def is_files_path(path: str) -> bool:
    """Whether ``path`` is below ``/v1/files`` or ``/v1/batches``."""
    return any(path == p or path.startswith(p + "/") for p in (FILES_PATH, BATCHES_PATH))


def match(path: str, method: str, query_string: bytes = b"") -> FileOperation:
    """The operation ``method path`` names (``is_files_path(path)`` holds).

    :raises InvalidRequest: an id that is not one plain segment, or a path below an id
        that no operation has (400; nothing is forwarded).
    :raises MethodNotAllowed: the path exists, not for this method (405).
    """
    endpoint, prefix = (
        (Endpoint.FILES, FILES_PATH)
        if path.startswith(FILES_PATH)
        else (Endpoint.BATCHES, BATCHES_PATH)
    )
    rest = path[len(prefix) :]
    sub: str | None = None
    item = ""
    if rest:
        item, slash, tail = rest[1:].partition("/")
        if not _ID.fullmatch(item):
            raise InvalidRequest(
                f"{item[:80]!r} is not a {endpoint.value[:-1]} id: ids are letters, digits, "
                "'_' and '-'",
                param="id",
                code="invalid_id",
            )
        sub = slash + tail
        if not any(k[0] is endpoint and k[1] == sub for k in _OPERATIONS):
            raise InvalidRequest(
                f"{path[:120]!r} names no {endpoint.value} operation", code="invalid_path"
            )
    name = _OPERATIONS.get((endpoint, sub, method))
    if name is None:
        allowed = sorted(m for e, s, m in _OPERATIONS if e is endpoint and s == sub)
        raise MethodNotAllowed(f"{path} accepts {', '.join(allowed)}, not {method}")
    query = tuple(
        (key, value)
        for key, value in parse_qsl(query_string.decode("latin-1"))
        if key in QUERY_PARAMS
    )
    suffix = "" if sub is None else "/" + item + sub
    return FileOperation(endpoint, name, method, suffix, query)


def output_file(batch: object) -> FileOperation:
    """Reading the content of a batch's output file, from the batch object the provider
    answered (``output_file_id``).

    :raises NotFound: the batch has no output (yet), or names no plain file id.
    """
    file_id = batch.get("output_file_id") if isinstance(batch, dict) else None
    if not isinstance(file_id, str) or not _ID.fullmatch(file_id):
        status = batch.get("status") if isinstance(batch, dict) else None
        raise NotFound(
            f"the batch has no output file (status {status!r})"
            if isinstance(status, str)
            else "the batch has no output file",
            code="batch_output_not_found",
        )
    return FileOperation(Endpoint.FILES, "content", "GET", f"/{file_id}/content")


#: the operations that put prompts in front of a provider (the file, the batch that runs it)
UNGUARDABLE = frozenset({"upload", "create"})


def refuse_unguardable(op: FileOperation) -> None:
    """Refuse an upload or a batch's creation on a route with guardrails: they cannot check
    a file's requests, which the provider runs later, so an enforced guardrail would be
    skipped by sending the prompts as a batch. Reading, listing, deleting and cancelling
    carry no prompt and pass.

    :raises InvalidRequest: ``guardrails_unsupported`` (400).
    """
    if op.name in UNGUARDABLE:
        raise InvalidRequest(
            f"{op.endpoint.value}: this route has guardrails, which cannot check the requests "
            "in a file (the provider runs them later); use a route without guardrails for "
            "file uploads and batches",
            code="guardrails_unsupported",
        )


def operation(ctx: RequestContext) -> FileOperation:
    """The files or batches operation of ``ctx`` (set when its path was matched)."""
    found = ctx.state.get(OPERATION)
    if not isinstance(found, FileOperation):
        raise InvalidRequest(f"{ctx.path} is not a files or batches operation")
    return found


def streams_answer(ctx: RequestContext) -> bool:
    """Whether the request's answer is a file's bytes (``GET /v1/files/{id}/content``)."""
    found = ctx.state.get(OPERATION)
    return isinstance(found, FileOperation) and found.streams_answer


def open_upload(
    receive: Receive, headers: Mapping[str, str], limit: int, time_limit: float | None
) -> ClientBody:
    """An upload's body, read from the client only as the provider's request sends it,
    its headers checked before anything of it is read.

    :param limit: ``server.max_upload_bytes``.
    :param time_limit: seconds the client has to send the whole body.
    :raises UnsupportedMediaType: not a multipart form (415).
    :raises PayloadTooLarge: a ``Content-Length`` over ``limit`` (413).
    """
    content_type = headers.get("content-type", "")
    if content_type.split(";", 1)[0].strip().lower() != "multipart/form-data":
        raise UnsupportedMediaType(
            f"content-type {content_type[:80]!r} is not supported: upload a file as "
            "multipart/form-data (file, purpose)"
        )
    declared = declared_length(headers, limit, UPLOAD_LIMIT)
    return ClientBody(
        receive,
        limit,
        time_limit,
        setting=UPLOAD_LIMIT,
        content_type=content_type,
        declared=declared,
    )


def upstream_request(call: ProviderCall, url: str, headers: dict[str, str]) -> UpstreamRequest:
    """The provider's request for a files or batches call to ``url`` (from
    :meth:`FileOperation.url`), with ``headers`` (its credentials, forwarded headers).

    An upload streams the client's body with its content type; a batch's creation sends
    the JSON body; the other operations send none.
    """
    op = operation(call.ctx)
    headers = {k: v for k, v in headers.items() if k not in ("content-type", "accept")}
    body: bytes | ClientBody | None = None
    upload = call.ctx.state.get(UPLOAD)
    if op.name == "upload" and isinstance(upload, ClientBody):
        headers.update(upload.headers())
        body = upload
    elif op.reads_json:
        headers["content-type"] = "application/json"
        body = call.body_bytes()
    if not op.streams_answer:
        headers["accept"] = "application/json"
    return UpstreamRequest(
        op.method,
        url,
        headers=headers,
        body=body,
        timeout=call.timeout,
        stream=op.streams_answer,
    )
