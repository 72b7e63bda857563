"""Bad input never hurts (#19): every kind gives one ``error:`` line (exit status 2) or a counted skip.

Each case builds its bad input in a temporary project folder and runs the real entry point: the fetch
and split stages' ``main`` (in-process, from the project folder; a few as subprocesses, as DVC runs
them) and ``skinlesion-predict``'s ``main``. A case passes when the run fails with exactly one line
starting ``error:`` (the library's own log lines are never read) and no traceback, or succeeds with the
file counted under its reason in the stage's output; nothing produced before may be lost.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import yaml
from PIL import Image

from skinlesion.core.io import ESCAPE
from skinlesion.core.labels import LabelMap
from skinlesion.core.layout import read_split

from .conftest import REPO, corrupt_jpeg, make_class_tree, write_image

CASES: dict[str, Callable] = {}


def case(name: str) -> Callable:
    """Register a bad-input case under ``name`` (the test's id)."""

    def register(fn: Callable) -> Callable:
        CASES[name] = fn
        return fn

    return register


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def fails_once(rc: int, err: str, *words: str) -> str:
    """Assert one ``error:`` line, exit status 2 and no traceback; return the line (it must hold ``words``)."""
    assert "Traceback" not in err
    lines = error_lines(err)
    assert rc == 2 and len(lines) == 1, (rc, lines)
    assert all(w in lines[0] for w in words), (lines[0], words)
    return lines[0]


_STAGES: dict[str, Callable] = {}


def stage_main(script: str) -> Callable:
    """A stage script's ``main`` (wrapped by ``cli``, returning the exit status), loaded from stages/."""
    if script not in _STAGES:
        spec = importlib.util.spec_from_file_location(f"stage_{script}", REPO / "stages" / f"{script}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _STAGES[script] = module.main
    return _STAGES[script]


class Project:
    """A project folder with params.yaml (the repository's, edited) and a class-per-folder source ``src/``."""

    def __init__(self, root: Path, monkeypatch, capsys):
        self.root, self.capsys, self.src = root, capsys, root / "src"
        monkeypatch.chdir(root)
        self.params = yaml.safe_load((REPO / "params.yaml").read_text())
        self.params["data"].update(source="folder", path=str(self.src))
        self.params["runtime"]["workers"] = 1
        self.write_params()

    def write_params(self, **data) -> None:
        self.params["data"].update(data)
        (self.root / "params.yaml").write_text(yaml.safe_dump(self.params, sort_keys=False))

    def run(self, script: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        rc = stage_main(script)()
        out, err = self.capsys.readouterr()
        return rc, out, err

    def subprocess(self, script: str) -> tuple[int, str, str]:
        env = {"PATH": str(Path(sys.executable).parent), "PYTHONPATH": str(REPO)}
        proc = subprocess.run(
            [sys.executable, str(REPO / "stages" / f"{script}.py")], cwd=self.root, env=env, capture_output=True
        )
        return proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")

    def fetched(self, classes: dict[str, int] | None = None) -> Project:
        make_class_tree(self.src, classes or {"a": 10, "b": 10})
        rc, _, err = self.run("fetch")
        assert rc == 0, err
        return self

    def summary(self) -> dict:
        return json.loads((self.root / "reports" / "data.json").read_text())

    def skipped(self) -> pd.DataFrame:
        return pd.read_csv(self.root / "data" / "splits" / "skipped.csv", dtype=str, keep_default_na=False)

    def outputs(self) -> dict[str, bytes]:
        paths = [*(self.root / "data" / "splits").glob("*"), self.root / "reports" / "data.json"]
        return {p.name: p.read_bytes() for p in paths + [self.root / "plots" / "class_counts.csv"]}

    def raw_files(self) -> dict[str, bytes]:
        raw = self.root / "data" / "raw"
        return {p.relative_to(raw).as_posix(): p.read_bytes() for p in sorted(raw.rglob("*")) if p.is_file()}


def skipped_once(project: Project, reason: str, count: int = 1) -> None:
    """Assert that split succeeded and counted ``count`` files under ``reason`` in data.json and skipped.csv."""
    rc, out, err = project.run("split")
    assert rc == 0 and not error_lines(err) and "Traceback" not in err, err
    assert project.summary()["skipped"][reason] == count
    assert (project.skipped()["reason"] == reason).sum() == count
    assert f"'{reason}': {count}" in out  # the stage's closing line counts it too


@pytest.fixture
def project(tmp_path: Path, monkeypatch, capsys) -> Project:
    return Project(tmp_path, monkeypatch, capsys)


# --- Non-UTF-8 and other unprintable file names ------------------------------------------------------


@case("split: Latin-1 file name (copied from an archive made on Windows)")
def _(p: Project):
    write_image(Path(os.fsdecode(bytes(p.src / "a") + b"/caf\xe9.png")), 99)
    p.fetched()
    skipped_once(p, "bad_file_name")
    assert p.skipped()["path"].iloc[0] == "data/raw/unsplit/a/caf\\xe9.png"  # the bytes, shown safely


@case("split: Latin-1 class folder name")
def _(p: Project):
    make_class_tree(Path(os.fsdecode(bytes(p.src) + b"/n\xe6vus")), {"": 3}, start=50)
    p.fetched()
    skipped_once(p, "bad_file_name", 3)


@case("split: newline in a file name")
def _(p: Project):
    write_image(p.src / "a" / "two\nlines.png", 77)
    p.fetched()
    skipped_once(p, "bad_file_name")


@case("fetch+split: tar archive with a Latin-1 entry name")
def _(p: Project):
    make_class_tree(p.root / "tree" / "data", {"a": 10, "b": 10})
    write_image(Path(os.fsdecode(bytes(p.root / "tree/data/a") + b"/caf\xe9.png")), 99)
    with tarfile.open(p.root / "d.tar.gz", "w:gz") as tf:
        tf.add(p.root / "tree" / "data", arcname="data")
    p.write_params(source="zip", path=str(p.root / "d.tar.gz"))
    assert p.run("fetch")[0] == 0
    skipped_once(p, "bad_file_name")


# --- One class --------------------------------------------------------------------------------------


@case("split: one class")
def _(p: Project):
    p.fetched({"nevus": 12})
    fails_once(*p.run("split")[::2], "1 class (nevus)", "at least two")


@case("split: one class with train/test folders")
def _(p: Project):
    make_class_tree(p.src / "train", {"nevus": 8})
    make_class_tree(p.src / "test", {"nevus": 3}, start=20)
    assert p.run("fetch")[0] == 0
    fails_once(*p.run("split")[::2], "1 class (nevus)")


@case("fetch: a lone class folder is a class, not a wrapper")
def _(p: Project):
    p.fetched({"nevus": 12})
    assert (p.root / "data" / "raw" / "unsplit" / "nevus").is_dir()  # not "no class folders found"
    fails_once(*p.run("split")[::2], "nevus")


# --- Metadata ---------------------------------------------------------------------------------------


def _metadata(p: Project, rows: list[tuple[str, str]], name: str = "meta.csv", **split) -> None:
    pd.DataFrame(rows, columns=["image_id", "lesion_id"]).to_csv(p.src / name, index=False)
    p.params["split"].update(group_by="lesion_id", **split)
    p.write_params(metadata=name)


@case("split: duplicate image ids with different lesion ids")
def _(p: Project):
    make_class_tree(p.src, {"a": 10, "b": 10})
    rows = [(f"img_{i:04d}", f"L{i}") for i in range(20)] + [("img_0003", "L99"), ("img_0007", "L98")]
    _metadata(p, rows)
    assert p.run("fetch")[0] == 0
    fails_once(*p.run("split")[::2], "2 image id(s)", "img_0003", "img_0007", "keep one row per id")


@case("split: duplicate image ids with the same lesion id are one row (handled)")
def _(p: Project):
    make_class_tree(p.src, {"a": 10, "b": 10})
    _metadata(p, [(f"img_{i:04d}", f"L{i // 2}") for i in range(20)] + [("img_0003", "L1")])
    assert p.run("fetch")[0] == 0
    assert p.run("split")[0] == 0 and p.summary()["grouping"]["group_by"] == "lesion_id"


@case("split: 0-byte metadata CSV")
def _(p: Project):
    make_class_tree(p.src, {"a": 10, "b": 10})
    _metadata(p, [])
    (p.src / "meta.csv").write_bytes(b"")
    assert p.run("fetch")[0] == 0
    fails_once(*p.run("split")[::2], "data.metadata", "is empty")


@case("split: metadata CSV not in UTF-8")
def _(p: Project):
    make_class_tree(p.src, {"a": 10, "b": 10})
    _metadata(p, [])
    (p.src / "meta.csv").write_bytes("image_id,lesion_id\nimg_0000,l\xe9sion\n".encode("utf-16"))
    assert p.run("fetch")[0] == 0
    fails_once(*p.run("split")[::2], "data.metadata", "UTF-8")


@case("fetch: metadata is a folder")
def _(p: Project):
    make_class_tree(p.src, {"a": 10, "b": 10})
    (p.src / "meta.csv").mkdir()
    p.write_params(metadata="meta.csv")
    fails_once(*p.run("fetch")[::2], "data.metadata=meta.csv", "folder")


@case("fetch (subprocess): metadata name not in the data source")
def _(p: Project):
    make_class_tree(p.src, {"a": 10, "b": 10})
    p.write_params(metadata="HAM10000_metadata.csv")
    fails_once(*p.subprocess("fetch")[::2], "data.metadata=HAM10000_metadata.csv", "no such file")
    assert not (p.root / "data" / "raw").exists() and not (p.root / "data" / ".raw.partial").exists()


@case("params: metadata outside the data source")
def _(p: Project):
    p.write_params(metadata="../HAM10000_metadata.csv")
    fails_once(*p.run("fetch")[::2], "data.metadata", "inside the data source")


@case("params: metadata with a source that has none (synthetic)")
def _(p: Project):
    p.write_params(source="synthetic", metadata="meta.csv")
    fails_once(*p.run("fetch")[::2], "data.metadata", "must be empty for source=synthetic")


@case("split: group_by without metadata")
def _(p: Project):
    p.fetched()
    p.params["split"]["group_by"] = "lesion_id"
    p.write_params()
    fails_once(*p.run("split")[::2], "split.group_by=lesion_id", "data.metadata")


@case("split: raw folder fetched with other metadata params")
def _(p: Project):
    p.fetched()
    p.write_params(metadata="meta.csv")
    fails_once(*p.run("split")[::2], "metadata.csv", "rerun `dvc repro fetch`")


# --- Resource limits --------------------------------------------------------------------------------


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


@case("fetch: zip bomb (compression ratio over the limit)")
def _(p: Project):
    p.fetched()
    before = p.raw_files()
    p.write_params(source="zip", path=str(zip_bomb(p.root / "bomb.zip", 64)))
    fails_once(*p.run("fetch")[::2], "bomb.zip", "data.max_compression_ratio=100")
    assert p.raw_files() == before  # the previous raw folder is kept


@case("fetch: archive expanding past data.max_archive_mb")
def _(p: Project):
    _images_zip(p, {"data/a/big.bin": os.urandom(3 << 20)}, zipfile.ZIP_STORED)
    p.write_params(max_archive_mb=2)
    fails_once(*p.run("fetch")[::2], "d.zip", "data.max_archive_mb=2")


@case("fetch: archive whose headers understate its size (streamed limit)")
def _(p: Project, monkeypatch):
    from skinlesion.data import archives

    _images_zip(p, {"data/a/big.bin": os.urandom(3 << 20)}, zipfile.ZIP_STORED)
    p.write_params(max_archive_mb=2)
    monkeypatch.setattr(archives, "_check_sizes", lambda *args: None)  # as if the headers had lied
    fails_once(*p.run("fetch")[::2], "big.bin", "expands past data.max_archive_mb")
    assert not (p.root / "data" / "raw").exists() and not (p.root / "data" / ".raw.partial").exists()


@case("split: 144-megapixel PNG of 18 KB")
def _(p: Project):
    Image.new("1", (12_000, 12_000)).save((p.src / "a").mkdir(parents=True) or p.src / "a" / "huge.png")
    assert (p.src / "a" / "huge.png").stat().st_size < 100_000
    p.fetched()
    skipped_once(p, "too_large")
    assert "40,000,000" in p.skipped()["detail"].iloc[0]  # split.max_pixels, the stated limit


@case("split: image over a lowered split.max_pixels")
def _(p: Project):
    write_image(p.src / "a" / "big.png", 5, size=200)
    p.params["split"]["max_pixels"] = 30_000
    p.write_params()
    p.fetched()
    skipped_once(p, "too_large")


# --- Corrupt archives -------------------------------------------------------------------------------


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


@case("fetch: zip entry with a bad CRC")
def _(p: Project):
    archive = _images_zip(p, {"data/a/zz.png": b"x" * 4000}, zipfile.ZIP_STORED)
    _patched(archive, lambda d: [d.find(b"x" * 4000) + 100], lambda b: b ^ 0xFF)
    fails_once(*p.run("fetch")[::2], "d.zip", "data/a/zz.png", "corrupt")


@case("fetch: zip entry with a broken deflate stream")
def _(p: Project):
    archive = _images_zip(p, {"data/a/zz.txt": os.urandom(500) * 40})
    _patched(archive, lambda d: [d.find(b"data/a/zz.txt") + 13 + i for i in range(40, 60)], lambda b: b ^ 0x5A)
    fails_once(*p.run("fetch")[::2], "d.zip", "data/a/zz.txt")


@case("fetch: encrypted zip entry")
def _(p: Project):
    archive = _images_zip(p)
    # Set the "encrypted" flag bit in every local and central header: what a password-protected zip has.
    flags = lambda d: _headers(d, b"PK\x03\x04", 6) + _headers(d, b"PK\x01\x02", 8)  # noqa: E731
    _patched(archive, flags, lambda b: b | 0x01)
    fails_once(*p.run("fetch")[::2], "d.zip", "is encrypted", "password")


@case("fetch: zip with a file and a folder of the same name")
def _(p: Project):
    _images_zip(p, {"data/a/x.png": b"file", "data/a/x.png/y.png": b"inside"})
    fails_once(*p.run("fetch")[::2], "'data/a/x.png'", "needs a folder")


@case("fetch: zip with one entry twice")
def _(p: Project):
    make_class_tree(p.root / "tree", {"a": 10, "b": 10})
    with zipfile.ZipFile(p.root / "d.zip", "w") as zf, pytest.warns(UserWarning, match="Duplicate name"):
        for f in sorted((p.root / "tree").rglob("*.png")):
            zf.writestr(f"data/{f.relative_to(p.root / 'tree').as_posix()}", f.read_bytes())
        zf.writestr("data/a/img_0000.png", b"another file of the same name")
    p.write_params(source="zip", path=str(p.root / "d.zip"))
    fails_once(*p.run("fetch")[::2], "'data/a/img_0000.png' appears twice")


@case("fetch: truncated .tar.gz")
def _(p: Project):
    make_class_tree(p.root / "tree" / "data", {"a": 10, "b": 10})
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        tf.add(p.root / "tree" / "data", arcname="data")
    (p.root / "d.tar.gz").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    p.write_params(source="zip", path=str(p.root / "d.tar.gz"))
    fails_once(*p.run("fetch")[::2], "d.tar.gz")


@case("fetch: not an archive at all")
def _(p: Project):
    (p.root / "d.zip").write_bytes(b"PK\x03\x04 not really a zip")
    p.write_params(source="zip", path=str(p.root / "d.zip"))
    fails_once(*p.run("fetch")[::2], "d.zip", "not a readable .zip or .tar archive")


# --- Unreadable files, interrupted or missing fetch ---------------------------------------------------


@case("split: unreadable image (permission denied)")
def _(p: Project, monkeypatch):
    from skinlesion.core import images

    p.fetched()

    def open_(path, *args, **kwargs):
        if str(path).endswith("unsplit/a/img_0003.png"):
            raise PermissionError(13, "Permission denied", str(path))
        return open(path, *args, **kwargs)

    monkeypatch.setattr(images, "open", open_, raising=False)  # as chmod 000 does for a user other than root
    skipped_once(p, "unreadable")


@case("fetch: unreadable image (permission denied)")
def _(p: Project, monkeypatch):
    make_class_tree(p.src, {"a": 10, "b": 10})
    copy = shutil.copyfile

    def copyfile(source, dest, *args, **kwargs):
        if Path(source).name == "img_0004.png":
            raise PermissionError(13, "Permission denied", str(source))
        return copy(source, dest, *args, **kwargs)

    monkeypatch.setattr(shutil, "copyfile", copyfile)
    rc, out, err = p.run("fetch")
    assert rc == 0 and not error_lines(err)
    assert "1 unreadable" in out and json.loads((p.root / "data/raw/SOURCE.json").read_text())["skipped"] == {
        "unreadable": 1
    }


@case("fetch: interrupted part-way keeps the previous raw folder")
def _(p: Project, monkeypatch):
    p.fetched()
    before = p.raw_files()
    write_image(p.src / "b" / "new.png", 1234)
    copy, calls = shutil.copyfile, []

    def copyfile(*args, **kwargs):
        calls.append(args)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return copy(*args, **kwargs)

    monkeypatch.setattr(shutil, "copyfile", copyfile)
    rc, _, err = p.run("fetch")
    assert rc == 130 and error_lines(err) == ["error: interrupted"] and "Traceback" not in err
    assert p.raw_files() == before and not (p.root / "data" / ".raw.partial").exists()


@case("split: half-copied raw folder (no SOURCE.json)")
def _(p: Project):
    p.fetched()
    (p.root / "data" / "raw" / "SOURCE.json").unlink()
    fails_once(*p.run("split")[::2], "data/raw is incomplete", "rerun `dvc repro fetch`")


@case("split: raw folder changed after fetch")
def _(p: Project):
    p.fetched()
    (p.root / "data" / "raw" / "unsplit" / "a" / "img_0002.png").unlink()
    fails_once(*p.run("split")[::2], "data/raw holds 19 files", "rerun `dvc repro fetch`")


@case("split (subprocess): before fetch")
def _(p: Project):
    fails_once(*p.subprocess("split")[::2], "data/raw not found", "dvc repro fetch")


@case("fetch: a bad archive after a good fetch keeps the raw folder")
def _(p: Project):
    p.fetched()
    before = p.raw_files()
    (p.root / "d.zip").write_bytes(b"garbage")
    p.write_params(source="zip", path=str(p.root / "d.zip"))
    fails_once(*p.run("fetch")[::2], "d.zip")
    assert p.raw_files() == before


@case("fetch: file symlinked from outside the data folder is counted")
def _(p: Project):
    make_class_tree(p.src, {"a": 10, "b": 10})
    (p.src / "a" / "passwd.png").symlink_to(write_image(p.root / "outside.png", 3))
    (p.src / "b" / "elsewhere").symlink_to(p.root, target_is_directory=True)
    rc, out, err = p.run("fetch")
    assert rc == 0 and "2 link" in out
    info = json.loads((p.root / "data/raw/SOURCE.json").read_text())
    assert info["skipped"] == {"link": 2} and info["files"] == 20


# --- Params -----------------------------------------------------------------------------------------


@case("params: negative split.seed")
def _(p: Project):
    p.params["split"]["seed"] = -1
    p.write_params()
    fails_once(*p.run("split")[::2], "split.seed must be >= 0")


@case("params: negative data.synthetic.seed")
def _(p: Project):
    p.params["data"]["synthetic"]["seed"] = -3
    p.write_params(source="synthetic")
    fails_once(*p.run("fetch")[::2], "data.synthetic.seed must be >= 0")


@case("params: a key given twice")
def _(p: Project):
    text = (p.root / "params.yaml").read_text().replace("split:\n", "split:\n  seed: 5\n", 1)
    (p.root / "params.yaml").write_text(text)
    fails_once(*p.run("split")[::2], "'seed' appears twice", "keep one")


@case("params: empty data.path for the synthetic source (DVC cannot load it)")
def _(p: Project):
    p.write_params(source="synthetic", path="")
    fails_once(*p.run("fetch")[::2], "data.path must not be empty", "data/external")


@case("params: empty data.path for a folder source")
def _(p: Project):
    p.write_params(path="")
    fails_once(*p.run("fetch")[::2], "data.path must name a folder or archive")


# --- CSV formula injection --------------------------------------------------------------------------


@case("split: class folder and file names that start a spreadsheet formula")
def _(p: Project):
    make_class_tree(p.src, {"=HYPERLINK(1)": 10, "-ve": 10})
    write_image(p.src / "-ve" / "@SUM(A1).png", 42)
    assert p.run("fetch")[0] == 0 and p.run("split")[0] == 0
    splits = p.root / "data" / "splits"
    cells = [c for f in (*splits.glob("*.csv"), p.root / "plots" / "class_counts.csv") for c in _cells(f)]
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@")]
    assert {"'=HYPERLINK(1)", "'-ve", "'@SUM(A1)"} <= set(cells)
    train = read_split("train", splits)  # the project reads back the names it wrote
    assert set(train["label"]) == {"=HYPERLINK(1)", "-ve"} and ESCAPE not in "".join(train["label"])


def _cells(path: Path) -> list[str]:
    import csv

    with open(path, newline="", encoding="utf-8") as handle:
        return [cell for row in csv.reader(handle) for cell in row]


# --- Predict ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A small Keras classifier of 8x8 images into 3 classes, saved as train saves models."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.Rescaling(1 / 255), keras.layers.Flatten(), keras.layers.Dense(3)]
    )
    model = keras.Sequential([model, keras.layers.Softmax()])
    folder = tmp_path_factory.mktemp("model")
    LabelMap(("akiec", "bcc", "mel"), 8).save_model(model, folder)
    return folder / "model.keras"


class Predict:
    """The predict command run in-process in a project folder, with a copy of the tiny model."""

    def __init__(self, root: Path, model: Path, capsys):
        self.root, self.capsys = root, capsys
        self.model_dir = root / "model"
        self.model_dir.mkdir()
        shutil.copy(model, self.model_dir / "model.keras")
        shutil.copy(model.parent / "labels.json", self.model_dir / "labels.json")
        self.images = make_class_tree(root / "images", {"x": 3, "y": 2})

    def __call__(self, *args: str) -> tuple[int, str, str]:
        from skinlesion.deploy.predict import main

        self.capsys.readouterr()
        rc = main([str(self.model_dir / "model.keras"), *args])
        out, err = self.capsys.readouterr()
        return rc, out, err

    def labels(self, data) -> None:
        text = data if isinstance(data, str) else json.dumps(data)
        (self.model_dir / "labels.json").write_text(text)


def predict_case(name: str) -> Callable:
    """Register a case that needs the predict command (and the tiny model)."""

    def register(fn: Callable) -> Callable:
        fn.needs_model = True
        return case(name)(fn)

    return register


@predict_case("predict: Latin-1 file name among good images")
def _(run: Predict):
    write_image(Path(os.fsdecode(bytes(run.images / "x") + b"/caf\xe9.png")), 9)
    rc, _, err = run(str(run.images), "-o", str(run.root / "p.csv"))
    assert rc == 1 and "Traceback" not in err
    assert error_lines(err) == [
        f"error: {run.images}/x/caf\\xe9.png: bad_file_name: not valid UTF-8 or control characters"
    ]
    assert len(pd.read_csv(run.root / "p.csv")) == 5


@predict_case("predict: labels.json of another model with the same class count")
def _(run: Predict):
    run.labels({"classes": ["mel", "bcc", "akiec"], "image_size": 8})
    fails_once(*run(str(run.images))[::2], "labels.json does not belong to", "model.keras")


@predict_case("predict: labels.json with fewer classes")
def _(run: Predict):
    run.labels({"classes": ["akiec", "bcc"], "image_size": 8})
    fails_once(*run(str(run.images))[::2], "does not belong to")


@predict_case("predict: labels.json with more classes")
def _(run: Predict):
    run.labels({"classes": ["akiec", "bcc", "mel", "nv"], "image_size": 8})
    fails_once(*run(str(run.images))[::2], "does not belong to")


@predict_case("predict: labels.json of another input size")
def _(run: Predict):
    run.labels({"classes": ["akiec", "bcc", "mel"], "image_size": 224})
    fails_once(*run(str(run.images))[::2], "does not belong to", "224 px")


@predict_case("predict: labels.json without image_size")
def _(run: Predict):
    run.labels({"classes": ["akiec", "bcc", "mel"]})
    fails_once(*run(str(run.images))[::2], "labels.json: not a skinlesion label map")


@predict_case("predict: labels.json with a non-integer image_size")
def _(run: Predict):
    run.labels({"classes": ["akiec", "bcc", "mel"], "image_size": "big"})
    fails_once(*run(str(run.images))[::2], "labels.json: not a skinlesion label map", "image_size")


@predict_case("predict: labels.json that is not JSON")
def _(run: Predict):
    run.labels("classes: [a, b]")
    fails_once(*run(str(run.images))[::2], "labels.json: not a skinlesion label map")


@predict_case("predict: labels.json is a folder")
def _(run: Predict):
    (run.model_dir / "labels.json").unlink()
    (run.model_dir / "labels.json").mkdir()
    fails_once(*run(str(run.images))[::2], "labels.json")


@predict_case("predict: model saved without its class list, labels.json of another class count")
def _(run: Predict):
    import keras

    model = keras.saving.load_model(run.model_dir / "model.keras")
    model.save(run.model_dir / "model.keras")  # plain Keras: no class list in the archive
    run.labels({"classes": ["akiec", "bcc"], "image_size": 8})
    fails_once(*run(str(run.images))[::2], "lists 2 classes but", "has 3 outputs")


@predict_case("predict: model file that is not a Keras archive")
def _(run: Predict):
    (run.model_dir / "model.keras").write_text("not a model")
    fails_once(*run(str(run.images))[::2], "not a Keras model file")


@predict_case("predict: model path is a folder")
def _(run: Predict):
    (run.model_dir / "model.keras").unlink()
    (run.model_dir / "model.keras").mkdir()
    fails_once(*run(str(run.images))[::2], "model.keras not found (or not a file)")


@predict_case("predict: -o is a folder")
def _(run: Predict):
    fails_once(*run(str(run.images), "-o", str(run.root))[::2], "is a folder")


@predict_case("predict: -o names the model")
def _(run: Predict):
    before = (run.model_dir / "model.keras").read_bytes()
    fails_once(*run(str(run.images), "-o", str(run.model_dir / "model.keras"))[::2], "is the input", "model.keras")
    assert (run.model_dir / "model.keras").read_bytes() == before


@predict_case("predict: -o under a file")
def _(run: Predict):
    (run.root / "file").write_text("x")
    fails_once(*run(str(run.images), "-o", str(run.root / "file" / "p.csv"))[::2], "is a file, not a folder")


@predict_case("predict: -o names an input image, refused before any work")
def _(run: Predict, monkeypatch):
    from skinlesion.deploy import predict

    target = run.images / "x" / "img_0000.png"
    before, loaded = target.read_bytes(), []
    monkeypatch.setattr(predict, "load_model_and_labels", lambda *args: loaded.append(args))
    fails_once(*run(str(run.images), "-o", str(target))[::2], "is the input")
    assert target.read_bytes() == before and loaded == []  # the model was not even loaded


@predict_case("predict (subprocess): -o names an input image given by another path")
def _(run: Predict):
    target = run.images / "y" / "img_0004.png"
    before = target.read_bytes()
    env = {"PATH": str(Path(sys.executable).parent), "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    argv = [str(run.model_dir / "model.keras"), str(target), "-o", str(run.images / "x" / ".." / "y" / target.name)]
    proc = subprocess.run([sys.executable, "-m", "skinlesion.deploy.predict", *argv], env=env, capture_output=True)
    fails_once(proc.returncode, proc.stderr.decode(), "is the input")
    assert target.read_bytes() == before


@predict_case("predict: -o in a folder without write permission")
def _(run: Predict, monkeypatch):
    from skinlesion.deploy import outputs

    def open_(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(outputs, "open", open_, raising=False)  # as a read-only folder does for a user
    fails_once(*run(str(run.images), "-o", str(run.root / "p.csv"))[::2], "cannot write it", "Permission denied")


@predict_case("predict: --batch-size 0")
def _(run: Predict):
    fails_once(*run(str(run.images), "--batch-size", "0")[::2], "--batch-size", "must be an integer >= 1")


@predict_case("predict: --batch-size -1")
def _(run: Predict):
    fails_once(*run(str(run.images), "--batch-size", "-1")[::2], "--batch-size", "must be an integer >= 1")


@predict_case("predict: --top-k 0")
def _(run: Predict):
    fails_once(*run(str(run.images), "--top-k", "0")[::2], "--top-k")


@predict_case("predict: empty folder")
def _(run: Predict):
    (run.root / "empty").mkdir()
    fails_once(*run(str(run.root / "empty"), "-o", str(run.root / "p.csv"))[::2], "no image files to predict")
    assert not (run.root / "p.csv").exists()


@predict_case("predict: --explain names a file")
def _(run: Predict):
    (run.root / "cam").write_text("a file")
    fails_once(*run(str(run.images), "--explain", str(run.root / "cam"))[::2], "--explain", "cannot make that folder")


@predict_case("predict: dangling symbolic link in a folder")
def _(run: Predict):
    (run.images / "x" / "gone.png").symlink_to(run.root / "nowhere.png")
    rc, out, err = run(str(run.images))
    assert rc == 1 and "Traceback" not in err
    assert error_lines(err) == [
        f"error: {run.images}/x/gone.png: broken_link: the symbolic link's target does not exist"
    ]
    assert len(out.splitlines()) == 1 + 5


@predict_case("predict: looping symbolic link")
def _(run: Predict):
    (run.images / "x" / "loop.png").symlink_to(run.images / "x" / "loop.png")
    rc, out, err = run(str(run.images))
    assert rc == 1 and len(error_lines(err)) == 1 and "loop.png: broken_link" in err
    assert len(out.splitlines()) == 1 + 5


@predict_case("predict: a missing input among good ones")
def _(run: Predict):
    rc, out, err = run(str(run.images), str(run.root / "missing.jpg"))
    assert rc == 1 and error_lines(err) == [f"error: {run.root / 'missing.jpg'}: missing: no such file or folder"]
    assert len(out.splitlines()) == 1 + 5


@predict_case("predict: a corrupt image among good ones")
def _(run: Predict):
    jpeg = write_image(run.root / "ok.jpg", 5, size=48, fmt="JPEG").read_bytes()
    (run.images / "y" / "broken.jpg").write_bytes(corrupt_jpeg(jpeg))
    rc, out, err = run(str(run.images))
    assert rc == 1 and len(error_lines(err)) == 1 and "broken.jpg: corrupt" in err and len(out.splitlines()) == 6


@predict_case("predict: file names that start a spreadsheet formula")
def _(run: Predict, monkeypatch):
    write_image(run.root / "=cmd().png", 8)
    monkeypatch.chdir(run.root)
    rc, out, err = run("=cmd().png", "-o", "p.csv")
    assert rc == 0 and not error_lines(err)
    assert _cells(run.root / "p.csv")[len(_cells(run.root / "p.csv")) // 2] == "'=cmd().png"


@predict_case("predict: the model fails part-way")
def _(run: Predict, monkeypatch):
    failing_model(monkeypatch, after=1)
    rc, _, err = run(str(run.images), "-o", str(run.root / "p.csv"), "--batch-size", "2")
    fails_once(rc, err, "the model failed", "the 2 predictions before it are in")
    assert len(pd.read_csv(run.root / "p.csv")) == 2


def failing_model(monkeypatch, after: int) -> None:
    """Make every Keras model fail on its forward pass after ``after`` successful ones."""
    import keras

    real, calls = keras.Model.predict_on_batch, []

    def predict_on_batch(self, x):
        calls.append(len(x))
        if len(calls) > after:
            raise MemoryError("out of memory (test stub)")
        return real(self, x)

    monkeypatch.setattr(keras.Model, "predict_on_batch", predict_on_batch)


# --- Must-show checks beyond the matrix ------------------------------------------------------------


def _consistent(splits: Path) -> None:
    """The split files can be read, and no image (by content) is in two of them."""
    hashes = [set(read_split(name, splits)["sha256"]) for name in ("train", "val", "test")]
    assert not (hashes[0] & hashes[1] or hashes[0] & hashes[2] or hashes[1] & hashes[2])


def _changed_source(p: Project) -> dict[str, bytes]:
    """Split once, then fetch a source with one more image (every output of the next split differs)."""
    p.fetched({"a": 12, "b": 12})
    assert p.run("split")[0] == 0
    before = p.outputs()
    write_image(p.src / "b" / "new.png", 4321)
    assert p.run("fetch")[0] == 0
    return before


def test_split_crash_after_the_first_output_keeps_the_previous_outputs(project: Project, monkeypatch):
    from skinlesion.core import io as core_io

    before = _changed_source(project)
    real, swapped = core_io._swap, []

    def disk_full_after_one(new: Path, target: Path) -> None:
        if swapped:
            raise OSError(28, "No space left on device", str(target))
        swapped.append(target)
        real(new, target)

    monkeypatch.setattr(core_io, "_swap", disk_full_after_one)
    rc, _, err = project.run("split")
    fails_once(rc, err, "No space left on device", "the previous outputs are kept")
    assert swapped == [Path("data/splits/train.csv")]  # the crash came after the first file was replaced
    assert project.outputs() == before  # every file as the previous run left it, none from this one
    assert not [f for f in (project.root / "data").rglob(".*") if f.is_file()]  # no journal, no leftovers
    _consistent(project.root / "data" / "splits")
    monkeypatch.undo()
    monkeypatch.chdir(project.root)
    assert project.run("split")[0] == 0 and project.outputs() != before


# Runs the split stage with its process killed (os._exit: no except or finally block runs) right after
# the first of its outputs was replaced.
KILLED_AFTER_FIRST_SWAP = """
import os, runpy, sys
from skinlesion.core import io
real = io._swap
def swap(new, target):
    if getattr(swap, "done", False):
        os._exit(137)
    swap.done = True
    real(new, target)
io._swap = swap
runpy.run_path(sys.argv[1], run_name="__main__")
"""


def test_split_killed_during_the_swap_is_refused_then_rolled_back(project: Project):
    from skinlesion.core import io as core_io
    from skinlesion.core.layout import split_journal

    before = _changed_source(project)
    env = {"PATH": str(Path(sys.executable).parent), "PYTHONPATH": str(REPO)}
    script = [sys.executable, "-c", KILLED_AFTER_FIRST_SWAP, str(REPO / "stages" / "split.py")]
    assert subprocess.run(script, cwd=project.root, env=env, capture_output=True).returncode == 137
    splits = project.root / "data" / "splits"
    assert split_journal(splits).exists() and project.outputs() != before  # a mix on disk ...
    with pytest.raises(Exception, match="interrupted while replacing its files; rerun `dvc repro split`"):
        read_split("val", splits)  # ... that nothing reads
    core_io.roll_back(split_journal(splits))  # what the next split run does first
    assert project.outputs() == before and not split_journal(splits).exists()  # the previous outputs, whole
    assert project.run("split")[0] == 0 and project.outputs() != before
    _consistent(splits)


def _dvc_project(root: Path, params: dict, dvc_yaml: str) -> subprocess.CompletedProcess:
    root.mkdir()
    (root / "dvc.yaml").write_text(dvc_yaml)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.copytree(REPO / ".dvc", root / ".dvc", ignore=shutil.ignore_patterns("tmp", "cache", "plots"))
    shutil.copy(REPO / ".dvcignore", root / ".dvcignore")
    env = {"PATH": os.environ["PATH"], "HOME": str(root), "GIT_CONFIG_NOSYSTEM": "1"}
    subprocess.run(["git", "init", "-q"], cwd=root, check=True, env=env)
    return subprocess.run([sys.executable, "-m", "dvc", "status"], cwd=root, env=env, capture_output=True, text=True)


def test_dvc_status_with_no_metadata_gives_the_status_not_an_unexpected_error(tmp_path: Path):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    assert params["data"]["metadata"] == ""  # "no metadata", the default
    dvc_yaml = (REPO / "dvc.yaml").read_text()
    proc = _dvc_project(tmp_path / "repo", params, dvc_yaml)
    assert proc.returncode == 0 and "unexpected error" not in proc.stdout + proc.stderr, proc.stderr
    assert "fetch:" in proc.stdout and "split:" in proc.stdout  # DVC loaded the pipeline and reports on it
    # The check can fail: with the user's metadata path interpolated into split's deps, as it was, DVC
    # cannot even load dvc.yaml.
    old = dvc_yaml.replace(
        "      - data/raw\n    params:\n      - split\n",
        "      - data/raw\n      - ${data.metadata}\n    params:\n      - split\n",
    )
    assert old != dvc_yaml
    proc = _dvc_project(tmp_path / "old", params, old)
    assert proc.returncode != 0 and "unexpected error" in proc.stdout + proc.stderr


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_gives_one_error_line_or_a_counted_skip(name: str, request, tmp_path: Path, capsys):
    fn = CASES[name]
    arguments = {}
    if getattr(fn, "needs_model", False):
        arguments["run"] = Predict(tmp_path, request.getfixturevalue("tiny_model"), capsys)
    else:
        arguments["p"] = request.getfixturevalue("project")
    if "monkeypatch" in fn.__code__.co_varnames[: fn.__code__.co_argcount]:
        arguments["monkeypatch"] = request.getfixturevalue("monkeypatch")
    fn(**arguments)


def test_the_matrix_covers_at_least_40_kinds():
    assert len(CASES) >= 40
