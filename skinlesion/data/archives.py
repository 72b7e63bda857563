"""Archives as data sources: refuse unsafe, hostile or broken ones, then extract within limits.

A ``.zip`` or ``.tar[.gz|.bz2|.xz]`` is refused before anything is written when an entry has an absolute
path, a ``..`` component, is a link or special file, is encrypted, or clashes with another entry (one
name twice, or a file where another entry needs a folder); and when the sizes its entries declare add
up to more than ``data.max_archive_mb`` or to more than ``data.max_compression_ratio`` times the
archive's own size (a zip bomb). Extraction then streams every entry with a byte budget, in case the
headers lie, and a corrupt entry (bad CRC, broken deflate stream, truncated file) is one error line
naming the archive and the entry.
"""

from __future__ import annotations

import lzma
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from skinlesion.core.errors import DataError

# Errors the zip, tar and decompression modules raise for a corrupt, truncated or unsupported entry.
CORRUPT = (zipfile.BadZipFile, tarfile.TarError, zlib.error, lzma.LZMAError, EOFError, NotImplementedError, OSError)
_BLOCK = 1 << 20  # bytes copied at a time: memory stays flat whatever an entry expands to
MIB = 1 << 20


@dataclass(frozen=True)
class Member:
    """One archive entry as its header declares it."""

    name: str
    kind: str  # file, dir, or link (also devices, FIFOs and hard links)
    size: int  # expanded size in bytes
    encrypted: bool = False

    @property
    def parts(self) -> tuple[str, ...]:
        """The path components (backslashes, as some Windows tools write them, count as separators)."""
        return tuple(p for p in PurePosixPath(self.name.replace("\\", "/")).parts if p not in ("", "."))


@dataclass(frozen=True)
class Limits:
    """``data.max_archive_mb`` and ``data.max_compression_ratio``."""

    max_mb: int
    max_ratio: int


def _zip_members(zf: zipfile.ZipFile) -> list[Member]:
    out = []
    for info in zf.infolist():
        mode = info.external_attr >> 16
        kind = "link" if stat.S_ISLNK(mode) else ("dir" if info.is_dir() else "file")
        out.append(Member(info.filename, kind, info.file_size, bool(info.flag_bits & 0x1)))
    return out


def _tar_kind(m: tarfile.TarInfo) -> str:
    return "file" if m.isfile() else "dir" if m.isdir() else "link"


@contextmanager
def _reading(archive: Path, entry: str = "") -> Iterator[None]:
    """Turn what the zip, tar and decompression modules raise for a broken archive into one DataError."""
    try:
        yield
    except UnicodeDecodeError as exc:
        raise DataError(f"{archive}: an entry name is not valid UTF-8 though the archive says so ({exc})") from None
    except CORRUPT as exc:
        first = str(exc).splitlines()[0].rstrip(":") if str(exc) else type(exc).__name__
        where = f"entry {entry!r} " if entry else ""
        raise DataError(
            f"data.path={archive}: {where}cannot be read ({first}); the archive is corrupt, truncated or of an "
            "unsupported kind: download it again, or extract it yourself and use data.source: folder"
        ) from None


def _archive_members(archive: Path) -> list[Member]:
    """List every entry of a zip or tar archive, as its headers declare it."""
    with _reading(archive):
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                return _zip_members(zf)
        try:
            with tarfile.open(archive) as tf:
                return [Member(m.name, _tar_kind(m), m.size) for m in tf.getmembers()]
        except tarfile.ReadError as exc:  # tarfile lists every compression method it tried
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise DataError(f"data.path={archive}: not a readable .zip or .tar archive ({first.rstrip(':')})") from None


def check_archive(archive: Path, limits: Limits) -> list[Member]:
    """Refuse an unsafe, encrypted, clashing or oversized archive, reading only its member list.

    Args:
        archive: ``.zip`` or ``.tar[.gz|.bz2|.xz]`` file.
        limits: The expanded size and compression ratio allowed.

    Returns:
        The members.

    Raises:
        DataError: Naming the archive and the first offending entry, or the limit exceeded; nothing
            has been extracted.

    """
    members = _archive_members(archive)
    for m in members:
        posix = PurePosixPath(m.name.replace("\\", "/"))
        if posix.is_absolute() or (len(m.name) > 1 and m.name[1] == ":"):
            raise DataError(f"{archive}: unsafe entry {m.name!r} has an absolute path; refusing to extract")
        if ".." in posix.parts:
            raise DataError(f"{archive}: unsafe entry {m.name!r} points outside the archive; refusing to extract")
        if m.kind == "link":
            raise DataError(f"{archive}: entry {m.name!r} is a link or special file; refusing to extract")
        if m.encrypted:
            raise DataError(
                f"{archive}: entry {m.name!r} is encrypted; extract the archive yourself with its password and "
                "use data.source: folder"
            )
    _check_names(archive, members)
    _check_sizes(archive, members, limits)
    return members


def _check_names(archive: Path, members: list[Member]) -> None:
    files: dict[tuple[str, ...], str] = {}
    folders: dict[tuple[str, ...], str] = {}
    for m in members:
        if m.kind == "file" and m.parts:
            if m.parts in files:
                raise DataError(f"{archive}: entry {m.name!r} appears twice; the second would overwrite the first")
            files[m.parts] = m.name
        for i in range(1, len(m.parts) + (m.kind == "dir")):
            folders.setdefault(m.parts[:i], m.name)
    for parts, name in files.items():
        if parts in folders:
            raise DataError(
                f"{archive}: entry {name!r} is a file, but entry {folders[parts]!r} needs a folder of that name; "
                "rename one of them"
            )


def _check_sizes(archive: Path, members: list[Member], limits: Limits) -> None:
    total = sum(m.size for m in members if m.kind == "file")
    if total > limits.max_mb * MIB:
        raise DataError(
            f"{archive}: its entries expand to {total / MIB:,.0f} MiB, over data.max_archive_mb={limits.max_mb}; "
            "raise the limit if the archive is genuine and the disk has room"
        )
    ratio = total / max(1, archive.stat().st_size)
    if ratio > limits.max_ratio:
        raise DataError(
            f"{archive}: its entries expand to {ratio:,.0f} times its size, over "
            f"data.max_compression_ratio={limits.max_ratio} (image archives barely compress: a zip bomb?); "
            "refusing to extract"
        )


def extract_archive(archive: Path, dest: Path, limits: Limits) -> None:
    """Check ``archive`` with :func:`check_archive`, then extract it into ``dest`` within ``limits``.

    Raises:
        DataError: For an archive :func:`check_archive` refuses, a corrupt entry, or an expansion past
            ``data.max_archive_mb`` (headers that lie).
    """
    if not archive.is_file():
        raise DataError(f"data.path={archive} does not exist; set data.path to a .zip or .tar.* file")
    check_archive(archive, limits)
    dest.mkdir(parents=True, exist_ok=True)
    budget = [limits.max_mb * MIB]
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                kind = "dir" if info.is_dir() else "file"
                _extract(archive, Member(info.filename, kind, info.file_size), lambda i=info: zf.open(i), dest, budget)
        return
    with _reading(archive), tarfile.open(archive) as tf:
        for m in tf:
            _extract(archive, Member(m.name, _tar_kind(m), m.size), lambda m=m: tf.extractfile(m), dest, budget)


def _extract(archive: Path, member: Member, open_entry: Callable[[], IO[bytes]], dest: Path, budget: list[int]) -> None:
    """Write one entry under ``dest``, streaming it, and charge its bytes to ``budget``."""
    target = dest.joinpath(*member.parts)
    if member.kind == "dir" or not member.parts:
        target.mkdir(parents=True, exist_ok=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    with _reading(archive, member.name), open_entry() as src:
        try:
            out = open(target, "wb")  # noqa: SIM115 (closed below; write errors get their own message)
        except OSError as exc:
            raise DataError(f"{archive}: cannot write entry {member.name!r} to {target} ({exc.strerror})") from None
        with out:
            while block := src.read(_BLOCK):
                budget[0] -= len(block)
                if budget[0] < 0:
                    raise DataError(
                        f"{archive}: entry {member.name!r} expands past data.max_archive_mb, though the headers "
                        "said otherwise; refusing to extract"
                    )
                _write(out, block, archive, member.name)


def _write(out: IO[bytes], block: bytes, archive: Path, name: str) -> None:
    try:
        out.write(block)
    except OSError as exc:  # disk full, quota: not the archive's fault
        raise DataError(f"{archive}: cannot write entry {name!r} ({exc.strerror}); free some disk space") from None
