"""Multipart request bodies (``/v1/audio/transcriptions``, ``…/translations``,
``/v1/images/edits``): read with a size limit, and written again for the provider.

The form is parsed as it arrives (python-multipart's streaming parser, which Starlette
uses too), so a body over ``server.max_upload_bytes`` is refused as soon as it passes the
limit -- before that when its ``Content-Length`` says so -- and never held whole. The
small text fields (``model``, ``prompt``, ``language``…) become the request's body, so
routing, a config's ``override_params``, budgets and the log see them as they see a JSON
body's; the file parts are kept as they came, and the provider gets a form built from the
(possibly overridden) fields and those files. The log never sees a file's bytes: the
request body it keeps is :meth:`Form.description`, the field names and byte sizes.
"""

from __future__ import annotations

import io
import tempfile
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import IO, Any

import orjson
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from portkey_mw.client_body import UPLOAD_LIMIT, ClientBody, declared_length
from portkey_mw.context import Endpoint, RequestContext
from portkey_mw.errors import InvalidRequest, UnsupportedMediaType
from portkey_mw.transport import StreamedBody
from portkey_mw.types import Receive

#: the endpoints whose requests are multipart forms
MULTIPART_ENDPOINTS = frozenset(
    {Endpoint.AUDIO_TRANSCRIPTIONS, Endpoint.AUDIO_TRANSLATIONS, Endpoint.IMAGE_EDITS}
)
#: the file fields each endpoint needs one of (``image[]`` is the SDK's spelling for several)
FILE_FIELDS: dict[Endpoint, tuple[str, ...]] = {
    Endpoint.AUDIO_TRANSCRIPTIONS: ("file",),
    Endpoint.AUDIO_TRANSLATIONS: ("file",),
    Endpoint.IMAGE_EDITS: ("image", "image[]"),
}
#: the text fields each endpoint cannot do without (OpenAI's image edits default the model)
REQUIRED_FIELDS: dict[Endpoint, tuple[str, ...]] = {
    Endpoint.AUDIO_TRANSCRIPTIONS: ("model",),
    Endpoint.AUDIO_TRANSLATIONS: ("model",),
    Endpoint.IMAGE_EDITS: ("prompt",),
}
#: largest text field (an image edit's prompt is at most 32,000 characters)
MAX_FIELD_BYTES = 256 * 1024
#: most parts in one form (16 images, a mask and the fields fit many times over)
MAX_PARTS = 128
#: a file part larger than this goes to a temporary file instead of staying in memory
SPOOL_BYTES = 2 * 1024 * 1024
#: how much of a spooled file is read at a time to send it on
READ_BYTES = 256 * 1024
#: ``ctx.state`` key of the request's :class:`Form`
FORM_STATE = "portkey_mw.form"
#: body fields that are booleans in the gateway's view of the form
_BOOLEAN_FIELDS = frozenset({"stream"})
#: fields the gateway may add to a body that a form upstream does not take (spend control
#: asks a JSON stream for its usage; a transcription stream reports it unasked)
_NOT_FORM_FIELDS = frozenset({"stream_options"})


@dataclass(slots=True)
class FilePart:
    """One file of the form, as the client sent it: in memory up to ``SPOOL_BYTES``, in a
    temporary file beyond."""

    name: str
    filename: str
    content_type: str
    #: a spooled temporary file (as read from a request), or any binary file object
    file: IO[bytes]
    size: int

    @classmethod
    def of_bytes(cls, name: str, filename: str, content_type: str, data: bytes) -> FilePart:
        """A file part holding ``data`` (for plugins and tests that build a form)."""
        return cls(name, filename, content_type, io.BytesIO(data), len(data))

    def read(self) -> bytes:
        """The whole file (for plugins and tests; the provider's body streams it)."""
        self.file.seek(0)
        return self.file.read()


@dataclass(slots=True)
class Form:
    """A parsed multipart form: its text fields and its files, in order. :meth:`close`
    it (the pipeline does, when the request is over)."""

    #: text fields; a name sent more than once (``timestamp_granularities[]``) has a list
    fields: dict[str, Any]
    files: list[FilePart]

    def close(self) -> None:
        """Delete the files' temporary copies."""
        for part in self.files:
            part.file.close()

    def description(self) -> dict[str, Any]:
        """The form as the log keeps it: the text fields, and each file's name, type and
        size instead of its bytes."""
        described: dict[str, Any] = dict(self.fields)
        for part in self.files:
            entry = {
                "filename": part.filename,
                "content_type": part.content_type,
                "bytes": part.size,
            }
            current = described.get(part.name)
            if isinstance(current, list):
                current.append(entry)
            elif current is not None:
                described[part.name] = [current, entry]
            else:
                described[part.name] = entry
        return described

    def encode(self, fields: Mapping[str, Any]) -> tuple[UploadBody, str]:
        """The form for the provider: ``fields`` (the body after a config's overrides) and
        the client's files, with a new boundary. Returns the body (streamed from the
        files: a request holds its files once) and its content type."""
        boundary = "portkey-mw-" + uuid.uuid4().hex
        dash = b"--" + boundary.encode("ascii")
        pieces: list[bytes | FilePart] = []
        for name, value in fields.items():
            if name in _NOT_FORM_FIELDS or value is None:
                continue
            for item in value if isinstance(value, list) else [value]:
                pieces += [dash, b"\r\n", _disposition(name), b"\r\n\r\n", _text(item), b"\r\n"]
        for part in self.files:
            pieces += [
                dash,
                b"\r\n",
                _disposition(part.name, part.filename),
                b"\r\ncontent-type: ",
                _header_safe(part.content_type).encode("latin-1", "replace"),
                b"\r\n\r\n",
                part,
                b"\r\n",
            ]
        pieces += [dash, b"--\r\n"]
        return UploadBody(pieces), f"multipart/form-data; boundary={boundary}"


class UploadBody(StreamedBody):
    """A form on its way to the provider: its text pieces, and its files read in chunks
    from their spooled copies, again from the start for each attempt."""

    __slots__ = ("_pieces", "length")

    def __init__(self, pieces: list[bytes | FilePart]) -> None:
        self._pieces = pieces
        self.length = sum(p.size if isinstance(p, FilePart) else len(p) for p in pieces)

    async def chunks(self) -> AsyncIterator[bytes]:
        text: list[bytes] = []
        for piece in self._pieces:
            if not isinstance(piece, FilePart):
                text.append(piece)
                continue
            if text:
                yield b"".join(text)
                text = []
            piece.file.seek(0)
            while chunk := piece.file.read(READ_BYTES):
                yield chunk
        if text:
            yield b"".join(text)

    def read(self) -> bytes:
        """The whole body at once (what a plugin that must sign the bytes needs)."""
        out: list[bytes] = []
        for piece in self._pieces:
            out.append(piece.read() if isinstance(piece, FilePart) else piece)
        return b"".join(out)


def form_of(ctx: RequestContext) -> Form:
    """The request's form (read by the pipeline before routing).

    :raises InvalidRequest: the request has none (a plugin built a multipart call itself).
    """
    form = ctx.state.get(FORM_STATE)
    if not isinstance(form, Form):
        raise InvalidRequest(f"{ctx.endpoint.value} needs a multipart/form-data body")
    return form


async def read_form(
    receive: Receive,
    headers: Mapping[str, str],
    endpoint: Endpoint,
    limit: int,
    time_limit: float | None = None,
) -> Form:
    """Read and check the request's multipart form.

    :raises UnsupportedMediaType: the body is not ``multipart/form-data`` (415).
    :raises PayloadTooLarge: it is over ``limit`` bytes, by its ``Content-Length`` or as it
        arrives (413, before the rest is read).
    :raises InvalidRequest: a malformed form, a text field that is not UTF-8 or too long,
        or a required file or field missing (400); a body that did not arrive within
        ``time_limit`` seconds (408).
    """
    content_type = headers.get("content-type", "")
    kind, params = parse_options_header(content_type)
    if kind != b"multipart/form-data":
        raise UnsupportedMediaType(
            f"content-type {content_type[:100]!r} is not supported: {endpoint.value} takes "
            "multipart/form-data"
        )
    boundary = params.get(b"boundary")
    if not boundary:
        raise InvalidRequest("the multipart/form-data content-type has no boundary")
    declared_length(headers, limit, UPLOAD_LIMIT)
    reader = _FormReader(boundary)
    try:
        await reader.feed_all(ClientBody(receive, limit, time_limit, setting=UPLOAD_LIMIT))
        form = reader.form()
        _check(endpoint, form)
    except BaseException:
        reader.close()  # the files read so far go with the request
        raise
    return form


def _check(endpoint: Endpoint, form: Form) -> None:
    names = FILE_FIELDS[endpoint]
    if not any(part.name in names for part in form.files):
        raise InvalidRequest(
            f"'{names[0]}' is a required file of {endpoint.value}",
            param=names[0],
            code="missing_param",
        )
    for name in REQUIRED_FIELDS[endpoint]:
        value = form.fields.get(name)
        if not isinstance(value, str) or not value:
            raise InvalidRequest(
                f"'{name}' is a required property", param=name, code="missing_param"
            )
    stray = next((p.name for p in form.files if p.name in form.fields), None)
    if stray is not None:
        raise InvalidRequest(f"'{stray}' is sent both as a file and as a text field", param=stray)


class _FormReader:
    """Feeds the body to python-multipart and collects the parts its callbacks describe."""

    __slots__ = (
        "_data",
        "_ended",
        "_field",
        "_fields",
        "_filename",
        "_files",
        "_headers",
        "_name",
        "_parser",
        "_parts",
        "_size",
        "_spool",
        "_value",
    )

    def __init__(self, boundary: bytes) -> None:
        self._fields: dict[str, Any] = {}
        self._files: list[FilePart] = []
        self._headers: dict[bytes, bytes] = {}
        self._field = bytearray()
        self._value = bytearray()
        self._data: list[bytes] = []
        self._name = ""
        self._filename: bytes | None = None
        self._spool: tempfile.SpooledTemporaryFile[bytes] | None = None
        self._size = 0
        self._parts = 0
        self._ended = False
        try:
            self._parser = MultipartParser(
                boundary,
                {
                    "on_part_begin": self._part_begin,
                    "on_header_field": self._header_field,
                    "on_header_value": self._header_value,
                    "on_header_end": self._header_end,
                    "on_headers_finished": self._headers_finished,
                    "on_part_data": self._part_data,
                    "on_part_end": self._part_end,
                    "on_end": self._end,
                },
            )
        except (ValueError, MultipartParseError) as exc:
            raise _malformed(exc) from None

    async def feed_all(self, body: ClientBody) -> None:
        async for chunk in body:
            self._write(chunk)
        try:
            self._parser.finalize()
        except MultipartParseError as exc:
            raise _malformed(exc) from None
        if not self._ended:
            raise InvalidRequest(
                "malformed multipart body: it ends before its closing boundary",
                code="invalid_multipart",
            )

    def _write(self, chunk: bytes) -> None:
        try:
            self._parser.write(chunk)
        except MultipartParseError as exc:
            raise _malformed(exc) from None

    def form(self) -> Form:
        return Form(self._fields, self._files)

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()
        Form(self._fields, self._files).close()

    # -- python-multipart's callbacks ------------------------------------------------

    def _part_begin(self) -> None:
        self._parts += 1
        if self._parts > MAX_PARTS:
            raise InvalidRequest(
                f"a form may have at most {MAX_PARTS} parts", code="invalid_multipart"
            )
        self._headers = {}
        self._data = []
        self._size = 0

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[bytes(self._field).lower()] = bytes(self._value)
        self._field.clear()
        self._value.clear()

    def _headers_finished(self) -> None:
        disposition, options = parse_options_header(self._headers.get(b"content-disposition"))
        name = options.get(b"name")
        if disposition != b"form-data" or name is None:
            raise InvalidRequest(
                "malformed multipart body: a part has no 'content-disposition: form-data' "
                "with a name",
                code="invalid_multipart",
            )
        self._name = name.decode("utf-8", "replace")
        self._filename = options.get(b"filename")
        if self._filename is not None:
            # (written from the event loop: chunks of the body as they come, which the page
            # cache takes without waiting for the disk)
            self._spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        self._size += end - start
        if self._spool is not None:
            self._spool.write(data[start:end])
            return
        if self._size > MAX_FIELD_BYTES:
            # refused as it comes: a text field is never held beyond its own limit
            raise InvalidRequest(
                f"form field {self._name[:100]!r} is longer than {MAX_FIELD_BYTES} bytes",
                param=self._name,
                code="invalid_value",
            )
        self._data.append(data[start:end])

    def _part_end(self) -> None:
        key, filename, spool = self._name, self._filename, self._spool
        if filename is not None and spool is not None:
            self._spool = None
            kind = self._headers.get(b"content-type", b"application/octet-stream")
            self._files.append(
                FilePart(
                    key,
                    filename.decode("utf-8", "replace"),
                    kind.decode("latin-1").strip() or "application/octet-stream",
                    spool,
                    self._size,
                )
            )
            return
        data = b"".join(self._data)
        self._data = []
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidRequest(
                f"form field {key[:100]!r} is not UTF-8 text", param=key, code="invalid_value"
            ) from None
        value: Any = _boolean(key, text) if key in _BOOLEAN_FIELDS else text
        current = self._fields.get(key)
        if current is None:
            self._fields[key] = [value] if key.endswith("[]") else value
        elif isinstance(current, list):
            current.append(value)
        else:
            raise InvalidRequest(
                f"form field {key[:100]!r} is given more than once",
                param=key,
                code="invalid_value",
            )

    def _end(self) -> None:
        self._ended = True


def _boolean(name: str, text: str) -> bool:
    lowered = text.strip().lower()
    if lowered not in ("true", "false"):
        raise InvalidRequest(
            f"form field {name!r} is 'true' or 'false', not {text[:40]!r}",
            param=name,
            code="invalid_value",
        )
    return lowered == "true"


def _malformed(exc: Exception) -> InvalidRequest:
    return InvalidRequest(f"malformed multipart body: {exc}", code="invalid_multipart")


def _text(value: Any) -> bytes:
    """A field value as a form carries it: text as is, booleans as ``true``/``false``,
    anything else a config may set (numbers, objects) as JSON."""
    if isinstance(value, str):
        return value.encode("utf-8")
    return orjson.dumps(value)


def _header_safe(text: str) -> str:
    # A quoted parameter cannot hold a quote or a line break (the HTML form encoding).
    return text.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def _disposition(name: str, filename: str | None = None) -> bytes:
    line = f'content-disposition: form-data; name="{_header_safe(name)}"'
    if filename is not None:
        line += f'; filename="{_header_safe(filename)}"'
    return line.encode("utf-8")
