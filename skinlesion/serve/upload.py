"""One uploaded image, read from a multipart body as it streams in: in memory, size-limited, never on disk.

Starlette's own form parsing (``request.form()``, FastAPI's ``UploadFile``) reads the whole body and spools
any part over 1 MB to a temporary file before the handler runs: an image (patient data) would be written to
disk, and an oversized body read in full before it could be refused. Here python-multipart's streaming
parser (the one Starlette uses underneath) is fed the body chunk by chunk: the first byte over the limit
ends the request with 413, the part is kept in memory (``bytearray``), and nothing is written anywhere.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from python_multipart.multipart import MultipartParser, parse_options_header

# The multipart field that carries the image (the API; the page and the docs use it).
FIELD = "file"
# Headers of one part, and parts of one body, at most: a form with more is not an upload of one image.
MAX_HEADER_BYTES = 16 * 1024
MAX_PARTS = 8


class UploadError(Exception):
    """A request that carries no usable upload: ``status`` is the HTTP status, the message one line."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class _Part:
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    data: bytearray = field(default_factory=bytearray)
    name: str = ""
    filename: str | None = None


@dataclass
class _Parts:
    """Callbacks of the streaming parser: collect the parts, headers and data, in memory."""

    parts: list[_Part] = field(default_factory=list)
    header_bytes: int = 0
    _field: bytearray = field(default_factory=bytearray)
    _value: bytearray = field(default_factory=bytearray)
    ended: bool = False

    def callbacks(self) -> dict:
        """The parser's callback table."""
        return {
            "on_part_begin": self._begin,
            "on_header_field": lambda d, s, e: self._add(self._field, d[s:e]),
            "on_header_value": lambda d, s, e: self._add(self._value, d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_done,
            "on_part_data": lambda d, s, e: self.parts[-1].data.extend(d[s:e]),
            "on_end": self._end,
        }

    def _begin(self) -> None:
        if len(self.parts) >= MAX_PARTS:
            raise UploadError(400, f"more than {MAX_PARTS} form fields: send one image in the field '{FIELD}'")
        self.parts.append(_Part())

    def _add(self, buffer: bytearray, data: bytes) -> None:
        self.header_bytes += len(data)
        if self.header_bytes > MAX_HEADER_BYTES:
            raise UploadError(400, "multipart headers too long")
        buffer.extend(data)

    def _header_end(self) -> None:
        self.parts[-1].headers.append((bytes(self._field).lower(), bytes(self._value)))
        self._field.clear()
        self._value.clear()

    def _headers_done(self) -> None:
        part = self.parts[-1]
        disposition = dict(part.headers).get(b"content-disposition", b"")
        _, options = parse_options_header(disposition)
        part.name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename")
        part.filename = None if filename is None else filename.decode("utf-8", "replace")

    def _end(self) -> None:
        self.ended = True


async def read_upload(content_type: str | None, body: AsyncIterator[bytes], max_bytes: int) -> tuple[bytes, str]:
    """The one image of a ``multipart/form-data`` body, read as it streams, refused past ``max_bytes``.

    Args:
        content_type: The request's ``Content-Type`` (with its boundary).
        body: The body's chunks (``request.stream()``).
        max_bytes: The most body bytes read (``--max-upload-mb``); one more ends the request.

    Returns:
        The image's bytes and the name the client gave it ("" when none).

    Raises:
        UploadError: 415 for a body that is not multipart, 413 for one over the limit, 400 for a malformed
            body, an empty or missing ``file`` field, or another field name.
    """
    kind, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise UploadError(415, f"send the image as multipart/form-data in the field '{FIELD}'")
    parts = _Parts()
    parser = MultipartParser(boundary, parts.callbacks())
    received = 0
    try:
        async for chunk in body:
            received += len(chunk)
            if received > max_bytes:
                raise UploadError(413, f"upload over the limit of {max_bytes / 2**20:g} MB (--max-upload-mb)")
            parser.write(chunk)
        parser.finalize()
    except UploadError:
        raise
    except Exception as exc:  # python-multipart's parse errors: a malformed body, not a server fault
        raise UploadError(400, f"malformed multipart body ({type(exc).__name__})") from None
    return _the_file(parts)


def _the_file(parts: _Parts) -> tuple[bytes, str]:
    if not parts.ended:
        raise UploadError(400, "malformed multipart body (it ends before its closing boundary)")
    files = [p for p in parts.parts if p.name == FIELD]
    if not files:
        named = ", ".join(sorted({repr(p.name) for p in parts.parts})) or "none"
        raise UploadError(400, f"no field '{FIELD}' in the form (fields: {named}); send the image as '{FIELD}'")
    if len(files) > 1:
        raise UploadError(400, f"{len(files)} fields '{FIELD}': send one image per request")
    part = files[0]
    if not part.data:
        raise UploadError(400, f"the field '{FIELD}' is empty: choose an image file")
    return bytes(part.data), part.filename or ""
