"""Atomic file output: write to a temporary file beside the target, then ``os.replace``.

A stage killed half-way never leaves a truncated JSON, CSV, PNG or model behind for DVC to cache.
"""

from __future__ import annotations

import contextlib
import json
import os
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
    write_text(path, json.dumps(obj, indent=2, sort_keys=sort_keys, ensure_ascii=False) + "\n")


def read_json(path: str | Path) -> Any:
    """Read a JSON file."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_csv(path: str | Path, frame: Any) -> None:
    """Write a pandas DataFrame as CSV atomically, without the index and with Unix line endings."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, lineterminator="\n")


# The fixed timestamp of every entry of a saved .keras archive (the zip format's earliest date).
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def save_keras_model(model: Any, path: str | Path) -> None:
    """Save a Keras model atomically so that the same weights always give the same bytes.

    Keras stamps ``date_saved`` into ``metadata.json`` and the save time onto the weights entry of the
    zip; both are dropped here, so retraining to identical weights leaves the file's md5 unchanged
    and DVC reruns nothing downstream.
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
                    data = json.dumps(meta, sort_keys=True).encode()
                entry = zipfile.ZipInfo(info.filename, date_time=_ZIP_EPOCH)
                entry.compress_type, entry.external_attr = info.compress_type, 0o644 << 16
                dst.writestr(entry, data)


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
