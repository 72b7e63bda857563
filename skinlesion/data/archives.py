"""Archives as data sources: refuse unsafe entries, then extract.

A ``.zip`` or ``.tar[.gz|.bz2|.xz]`` is refused before anything is written when an entry has an absolute
path, a ``..`` component, or is a link or special file.
"""

from __future__ import annotations

import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from skinlesion.core.errors import DataError


def _archive_members(archive: Path) -> list[tuple[str, str]]:
    """List ``(name, kind)`` of every entry; kind is ``file``, ``dir`` or ``link`` (also devices etc.)."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            out = []
            for info in zf.infolist():
                mode = info.external_attr >> 16
                kind = "link" if stat.S_ISLNK(mode) else ("dir" if info.is_dir() else "file")
                out.append((info.filename, kind))
            return out
    try:
        with tarfile.open(archive) as tf:
            return [(m.name, "file" if m.isfile() else "dir" if m.isdir() else "link") for m in tf.getmembers()]
    except tarfile.TarError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__  # tarfile lists every method tried
        raise DataError(f"data.path={archive}: not a readable .zip or .tar archive ({first.rstrip(':')})") from None


def check_archive(archive: Path) -> None:
    """Refuse an archive with an absolute path, a ``..`` component, or a link/device entry.

    Args:
        archive: ``.zip`` or ``.tar[.gz|.bz2|.xz]`` file.

    Raises:
        DataError: Naming the first unsafe entry; nothing has been extracted.

    """
    for name, kind in _archive_members(archive):
        posix = PurePosixPath(name.replace("\\", "/"))
        if posix.is_absolute() or (len(name) > 1 and name[1] == ":"):
            raise DataError(f"{archive}: unsafe entry {name!r} has an absolute path; refusing to extract")
        if ".." in posix.parts:
            raise DataError(f"{archive}: unsafe entry {name!r} points outside the archive; refusing to extract")
        if kind == "link":
            raise DataError(f"{archive}: entry {name!r} is a link or special file; refusing to extract")


def extract_archive(archive: Path, dest: Path) -> None:
    """Check ``archive`` with :func:`check_archive`, then extract it into ``dest``."""
    if not archive.is_file():
        raise DataError(f"data.path={archive} does not exist; set data.path to a .zip or .tar.* file")
    check_archive(archive)
    dest.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(dest)
    else:
        with tarfile.open(archive) as tf:
            tf.extractall(dest, filter="data")  # the stdlib's own guard, in addition to ours
