"""Atomic file output: write to a temporary file beside the target, then ``os.replace``.

A stage killed half-way never leaves a truncated JSON, CSV, PNG or model behind for DVC to cache, and a
stage whose outputs are several files replaces them as one unit (:func:`write_together`). Every CSV the
project writes is safe to open in a spreadsheet (:func:`neutralise`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` that replaces it on success and is removed on failure.

    Args:
        path: The final destination; parent folders are created.

    Yields:
        A temporary path with the same suffix, for writers that need a file name (Keras, matplotlib).

    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix="".join(path.suffixes) or ".tmp", dir=path.parent)
    # mkstemp creates 0600; outputs are ordinary files, readable as the umask allows (0644 under 022).
    os.fchmod(fd, 0o666 & ~_umask())
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | Path, text: str) -> None:
    """Write UTF-8 text atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, obj: Any, sort_keys: bool = True) -> None:
    """Write JSON atomically; keys sorted by default so equal content gives equal bytes.

    ``sort_keys=False`` keeps the insertion order, for metrics files whose first keys should be the
    first columns of ``dvc exp show``.
    """
    write_text(path, json_text(obj, sort_keys))


def json_text(obj: Any, sort_keys: bool = True) -> str:
    """The text :func:`write_json` writes."""
    return json.dumps(obj, indent=2, sort_keys=sort_keys, ensure_ascii=False) + "\n"


def read_json(path: str | Path) -> Any:
    """Read a JSON file."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def printable(text: str) -> str:
    r"""``text`` safe to print or write as UTF-8 on one line: undecodable bytes and control characters escaped.

    A file name is bytes; Python hands the bytes that are not UTF-8 (``caf\xe9.jpg`` from a Latin-1
    archive) over as lone surrogates, which no UTF-8 file accepts.
    """
    shown = os.fsencode(text).decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in shown)


def is_printable(text: str) -> bool:
    """Whether ``text`` is valid UTF-8 without control characters, i.e. :func:`printable` leaves it as it is."""
    return printable(text) == text


# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection): a class folder
# or file name such as `=HYPERLINK(...)` must reach a CSV as text. Such a cell gets ESCAPE in front, as
# OWASP recommends; so does a cell that already starts with ESCAPE, which keeps the escape reversible:
# read_csv removes exactly one, and the project reads back the very strings it wrote.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
ESCAPE = "'"


def neutralise(value: Any) -> Any:
    """A CSV cell a spreadsheet shows as text: ``ESCAPE`` before a string starting a formula (or ``ESCAPE``).

    Numbers are left alone (a negative number is not a formula), so numeric columns stay numeric.
    """
    if isinstance(value, str) and value.startswith((*FORMULA_STARTS, ESCAPE)):
        return ESCAPE + value
    return value


def restore(value: Any) -> Any:
    """The string :func:`neutralise` was given (one leading ``ESCAPE`` removed)."""
    return value[1:] if isinstance(value, str) and value.startswith(ESCAPE) else value


def _text_columns(frame: Any, cell: Any) -> Any:
    import pandas as pd

    frame = frame.rename(columns=cell)
    for column in frame.columns:
        if pd.api.types.is_object_dtype(frame[column]) or pd.api.types.is_string_dtype(frame[column]):
            frame[column] = frame[column].map(cell)
    return frame


def csv_text(frame: Any) -> str:
    """A DataFrame as CSV text (no index, Unix line endings), every string cell neutralised."""
    return _text_columns(frame, neutralise).to_csv(index=False, lineterminator="\n")


def write_csv(path: str | Path, frame: Any) -> None:
    """Write a pandas DataFrame as CSV atomically (:func:`csv_text`)."""
    write_text(path, csv_text(frame))


def read_csv(path: str | Path, **kwargs: Any) -> Any:
    """Read a CSV the project wrote (``pandas.read_csv`` arguments), undoing :func:`neutralise`."""
    import pandas as pd

    return _text_columns(pd.read_csv(path, **kwargs), restore)


def _sibling(path: Path, tag: str) -> Path:
    return path.with_name(f".{path.name}.{tag}")


def write_together(files: dict[Path, str], journal: Path) -> None:
    """Replace several files as one unit: afterwards they all hold the new text, or all the old.

    Every new file is written in full beside its target first, and every old one kept as a hard link;
    only then are the targets replaced, one ``os.replace`` each. A failure during the swap puts the
    old files back before the error propagates. A process killed during the swap leaves ``journal``
    behind: the next call rolls the old files back first, and readers can refuse to read meanwhile.

    Args:
        files: Each target path and its complete new text (UTF-8).
        journal: Where the list of files being swapped is kept while the swap runs.
    """
    roll_back(journal)
    targets = [Path(p) for p in files]
    try:
        for path, text in zip(targets, files.values(), strict=True):
            write_text(_sibling(path, "new"), text)
        kept = [str(path) for path in targets if _keep(path)]
        write_json(journal, {"targets": [str(p) for p in targets], "kept": kept})
        for path in targets:
            _swap(_sibling(path, "new"), path)
    except BaseException:
        roll_back(journal)
        for path in targets:  # links to the old files, which are in place again
            _sibling(path, "old").unlink(missing_ok=True)
        raise
    finally:
        for path in targets:
            _sibling(path, "new").unlink(missing_ok=True)
    journal.unlink()
    for path in targets:
        _sibling(path, "old").unlink(missing_ok=True)


def _keep(path: Path) -> bool:
    """Keep the current ``path`` (if any) as ``.<name>.old``, a hard link (a copy where links are refused)."""
    old = _sibling(path, "old")
    old.unlink(missing_ok=True)
    if not path.exists():
        return False
    try:
        os.link(path, old)
    except OSError:
        shutil.copy2(path, old)
    return True


def _swap(new: Path, target: Path) -> None:
    os.replace(new, target)


def roll_back(journal: Path) -> None:
    """Undo an unfinished :func:`write_together` recorded in ``journal``: the old files back, the new ones gone."""
    if not journal.exists():
        return
    recorded = read_json(journal)
    kept = set(recorded["kept"])
    for name in recorded["targets"]:
        path = Path(name)
        if name not in kept:  # there was no old file: the unit's old state is its absence
            path.unlink(missing_ok=True)
        elif _sibling(path, "old").exists():  # else restored already, by a roll-back killed half-way
            os.replace(_sibling(path, "old"), path)
            _sibling(path, "old").unlink(missing_ok=True)  # rename() does nothing when both name one file
        _sibling(path, "new").unlink(missing_ok=True)
    journal.unlink()


# The fixed timestamp of every entry of a saved .keras archive (the zip format's earliest date).
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def save_keras_model(model: Any, path: str | Path, metadata: dict | None = None) -> None:
    """Save a Keras model atomically so that the same weights always give the same bytes.

    Keras stamps ``date_saved`` into ``metadata.json`` and the save time onto the weights entry of the
    zip; both are dropped here, so retraining to identical weights leaves the file's md5 unchanged
    and DVC reruns nothing downstream.

    Args:
        model: The Keras model.
        path: The ``.keras`` file.
        metadata: Entries added to the archive's ``metadata.json`` (Keras ignores keys it does not know),
            read back with :func:`read_keras_metadata` without loading the model.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{path.stem}.", dir=path.parent) as scratch:
        raw = Path(scratch) / path.name
        model.save(raw)
        with atomic_path(path) as tmp, zipfile.ZipFile(raw) as src, zipfile.ZipFile(tmp, "w") as dst:
            for info in src.infolist():
                data = src.read(info)
                if info.filename == "metadata.json":
                    meta = json.loads(data)
                    meta.pop("date_saved", None)
                    meta |= metadata or {}
                    data = json.dumps(meta, sort_keys=True).encode()
                entry = zipfile.ZipInfo(info.filename, date_time=_ZIP_EPOCH)
                entry.compress_type, entry.external_attr = info.compress_type, 0o644 << 16
                dst.writestr(entry, data)


def read_keras_metadata(path: str | Path) -> dict:
    """The ``metadata.json`` of a ``.keras`` archive, read without TensorFlow.

    Raises:
        OSError: If the file cannot be read.
        zipfile.BadZipFile: If it is not a zip archive.
        KeyError: If the archive holds no ``metadata.json`` (not a Keras 3 model file).
        ValueError: If ``metadata.json`` is not a JSON object.
    """
    with zipfile.ZipFile(path) as archive:
        meta = json.loads(archive.read("metadata.json"))
    if not isinstance(meta, dict):
        raise ValueError("metadata.json is not a JSON object")
    return meta


def save_figure(fig: Any, path: str | Path, dpi: int = 110) -> None:
    """Save a matplotlib figure atomically and close it.

    PNG metadata (software version) is stripped so the bytes depend only on the drawing.
    """
    plt = pyplot()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png", metadata={"Software": None})
    plt.close(fig)


def pyplot() -> Any:
    """Return ``matplotlib.pyplot`` on the non-interactive Agg backend (stages run headless)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
