"""The fetch stage on bad sources: archives over the limits or corrupt, unreadable files, links, one class."""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from ..conftest import make_class_tree, write_image
from .helpers import Project, error_lines, fails_once, skipped_once


def _zip(path: Path, entries: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", method) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return path


def _images_zip(p: Project, extra: dict[str, bytes] | None = None, method: int = zipfile.ZIP_DEFLATED) -> Path:
    make_class_tree(p.root / "tree", {"a": 10, "b": 10})
    entries = {
        f"data/{f.relative_to(p.root / 'tree').as_posix()}": f.read_bytes() for f in (p.root / "tree").rglob("*.png")
    }
    archive = _zip(p.root / "d.zip", entries | (extra or {}), method)
    p.write_params(source="zip", path=str(archive))
    return archive


def zip_bomb(path: Path, megabytes: int) -> Path:
    """A zip whose one entry expands ``megabytes`` MiB of zeros (deflate: ~1,000 times its size), streamed."""
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf,
        zf.open("data/a/zeros.png", "w", force_zip64=True) as f,
    ):
        block = bytes(1 << 20)
        for _ in range(megabytes):
            f.write(block)
    return path


def _patched(archive: Path, offset_of: Callable[[bytes], list[int]], change: Callable[[int], int]) -> None:
    data = bytearray(archive.read_bytes())
    for offset in offset_of(bytes(data)):
        data[offset] = change(data[offset])
    archive.write_bytes(bytes(data))


def _headers(data: bytes, signature: bytes, field: int) -> list[int]:
    out, at = [], data.find(signature)
    while at >= 0:
        out.append(at + field)
        at = data.find(signature, at + 1)
    return out


# --- Class folders and names -------------------------------------------------------------------------


def test_fetch_takes_a_lone_class_folder_as_a_class_not_a_wrapper(project: Project):
    project.fetched({"nevus": 12})
    assert (project.root / "data" / "raw" / "unsplit" / "nevus").is_dir()  # not "no class folders found"
    fails_once(*project.run("split")[::2], "nevus")


def test_fetch_and_split_count_a_latin1_entry_name_in_a_tar_archive(project: Project):
    p = project
    make_class_tree(p.root / "tree" / "data", {"a": 10, "b": 10})
    write_image(Path(os.fsdecode(bytes(p.root / "tree/data/a") + b"/caf\xe9.png")), 99)
    with tarfile.open(p.root / "d.tar.gz", "w:gz") as tf:
        tf.add(p.root / "tree" / "data", arcname="data")
    p.write_params(source="zip", path=str(p.root / "d.tar.gz"))
    assert p.run("fetch")[0] == 0
    skipped_once(p, "bad_file_name")


# --- Resource limits --------------------------------------------------------------------------------


def test_fetch_refuses_a_zip_bomb_and_keeps_the_previous_raw_folder(project: Project):
    # The compression ratio is over the limit.
    project.fetched()
    before = project.raw_files()
    project.write_params(source="zip", path=str(zip_bomb(project.root / "bomb.zip", 64)))
    fails_once(*project.run("fetch")[::2], "bomb.zip", "data.max_compression_ratio=100")
    assert project.raw_files() == before  # the previous raw folder is kept


def test_fetch_refuses_an_archive_expanding_past_max_archive_mb(project: Project):
    _images_zip(project, {"data/a/big.bin": os.urandom(3 << 20)}, zipfile.ZIP_STORED)
    project.write_params(max_archive_mb=2)
    fails_once(*project.run("fetch")[::2], "d.zip", "data.max_archive_mb=2")


def test_fetch_stops_an_archive_whose_headers_understate_its_size(project: Project, monkeypatch):
    # The limit is enforced on the streamed bytes too, not only on the sizes the headers state.
    from skinlesion.data import archives

    _images_zip(project, {"data/a/big.bin": os.urandom(3 << 20)}, zipfile.ZIP_STORED)
    project.write_params(max_archive_mb=2)
    monkeypatch.setattr(archives, "_check_sizes", lambda *args: None)  # as if the headers had lied
    fails_once(*project.run("fetch")[::2], "big.bin", "expands past data.max_archive_mb")
    assert not (project.root / "data" / "raw").exists() and not (project.root / "data" / ".raw.partial").exists()


# --- Corrupt archives -------------------------------------------------------------------------------


def test_fetch_refuses_a_zip_entry_with_a_bad_crc(project: Project):
    archive = _images_zip(project, {"data/a/zz.png": b"x" * 4000}, zipfile.ZIP_STORED)
    _patched(archive, lambda d: [d.find(b"x" * 4000) + 100], lambda b: b ^ 0xFF)
    fails_once(*project.run("fetch")[::2], "d.zip", "data/a/zz.png", "corrupt")


def test_fetch_refuses_a_zip_entry_with_a_broken_deflate_stream(project: Project):
    archive = _images_zip(project, {"data/a/zz.txt": os.urandom(500) * 40})
    _patched(archive, lambda d: [d.find(b"data/a/zz.txt") + 13 + i for i in range(40, 60)], lambda b: b ^ 0x5A)
    fails_once(*project.run("fetch")[::2], "d.zip", "data/a/zz.txt")


def test_fetch_refuses_an_encrypted_zip_entry(project: Project):
    archive = _images_zip(project)
    # Set the "encrypted" flag bit in every local and central header: what a password-protected zip has.
    flags = lambda d: _headers(d, b"PK\x03\x04", 6) + _headers(d, b"PK\x01\x02", 8)  # noqa: E731
    _patched(archive, flags, lambda b: b | 0x01)
    fails_once(*project.run("fetch")[::2], "d.zip", "is encrypted", "password")


def test_fetch_refuses_a_zip_with_a_file_and_a_folder_of_the_same_name(project: Project):
    _images_zip(project, {"data/a/x.png": b"file", "data/a/x.png/y.png": b"inside"})
    fails_once(*project.run("fetch")[::2], "'data/a/x.png'", "needs a folder")


def test_fetch_refuses_a_zip_with_one_entry_twice(project: Project):
    p = project
    make_class_tree(p.root / "tree", {"a": 10, "b": 10})
    with zipfile.ZipFile(p.root / "d.zip", "w") as zf, pytest.warns(UserWarning, match="Duplicate name"):
        for f in sorted((p.root / "tree").rglob("*.png")):
            zf.writestr(f"data/{f.relative_to(p.root / 'tree').as_posix()}", f.read_bytes())
        zf.writestr("data/a/img_0000.png", b"another file of the same name")
    p.write_params(source="zip", path=str(p.root / "d.zip"))
    fails_once(*p.run("fetch")[::2], "'data/a/img_0000.png' appears twice")


def test_fetch_refuses_a_truncated_tar_gz(project: Project):
    p = project
    make_class_tree(p.root / "tree" / "data", {"a": 10, "b": 10})
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        tf.add(p.root / "tree" / "data", arcname="data")
    (p.root / "d.tar.gz").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    p.write_params(source="zip", path=str(p.root / "d.tar.gz"))
    fails_once(*p.run("fetch")[::2], "d.tar.gz")


def test_fetch_refuses_a_file_that_is_not_an_archive_at_all(project: Project):
    (project.root / "d.zip").write_bytes(b"PK\x03\x04 not really a zip")
    project.write_params(source="zip", path=str(project.root / "d.zip"))
    fails_once(*project.run("fetch")[::2], "d.zip", "not a readable .zip or .tar archive")


# --- Unreadable files and links ---------------------------------------------------------------------


def test_fetch_counts_an_unreadable_image(project: Project, monkeypatch):
    make_class_tree(project.src, {"a": 10, "b": 10})
    copy = shutil.copyfile

    def copyfile(source, dest, *args, **kwargs):
        if Path(source).name == "img_0004.png":
            raise PermissionError(13, "Permission denied", str(source))
        return copy(source, dest, *args, **kwargs)

    monkeypatch.setattr(shutil, "copyfile", copyfile)
    rc, out, err = project.run("fetch")
    assert rc == 0 and not error_lines(err)
    assert "1 unreadable" in out and json.loads((project.root / "data/raw/SOURCE.json").read_text())["skipped"] == {
        "unreadable": 1
    }


def test_fetch_counts_files_symlinked_from_outside_the_data_folder(project: Project):
    make_class_tree(project.src, {"a": 10, "b": 10})
    (project.src / "a" / "passwd.png").symlink_to(write_image(project.root / "outside.png", 3))
    (project.src / "b" / "elsewhere").symlink_to(project.root, target_is_directory=True)
    rc, out, err = project.run("fetch")
    assert rc == 0 and "2 link" in out
    info = json.loads((project.root / "data/raw/SOURCE.json").read_text())
    assert info["skipped"] == {"link": 2} and info["files"] == 20
