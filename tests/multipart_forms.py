"""Reading the multipart forms a fake upstream received, independently of the gateway's
parser (a plain split on the boundary: the tests' forms are well formed)."""

from __future__ import annotations

from dataclasses import dataclass

from tests.fake_upstream import Recorded


@dataclass
class Part:
    name: str
    filename: str | None
    content_type: str | None
    data: bytes


def parse_form(recorded: Recorded) -> list[Part]:
    """The parts of the form ``recorded`` carried, in order."""
    content_type = recorded.headers["content-type"]
    assert content_type.startswith("multipart/form-data; boundary="), content_type
    boundary = content_type.split("boundary=", 1)[1].strip('"').encode()
    body = recorded.body
    assert body.endswith(b"--" + boundary + b"--\r\n"), body[-80:]
    chunks = body.split(b"--" + boundary)
    assert chunks[0] == b"" and chunks[-1] == b"--\r\n"
    parts = []
    for chunk in chunks[1:-1]:
        assert chunk.startswith(b"\r\n") and chunk.endswith(b"\r\n")
        head, _, data = chunk[2:-2].partition(b"\r\n\r\n")
        headers = {}
        for line in head.split(b"\r\n"):
            key, _, value = line.decode().partition(":")
            headers[key.strip().lower()] = value.strip()
        disposition = dict(
            item.strip().split("=", 1) for item in headers["content-disposition"].split(";")[1:]
        )
        filename = disposition.get("filename")
        parts.append(
            Part(
                disposition["name"].strip('"'),
                filename.strip('"') if filename is not None else None,
                headers.get("content-type"),
                data,
            )
        )
    return parts


def text_fields(parts: list[Part]) -> dict[str, list[str]]:
    """The text fields of a form, each name with its values in order."""
    fields: dict[str, list[str]] = {}
    for part in parts:
        if part.filename is None:
            fields.setdefault(part.name, []).append(part.data.decode())
    return fields
