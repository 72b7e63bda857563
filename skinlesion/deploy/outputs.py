"""Where the predict command's rows go: checked before any work, then written as they are produced.

CSV rows are streamed to the file (or standard output) and flushed batch by batch, so a run that stops
part-way keeps every row before the failure; JSON is one document, written when the run ends, however
it ends. Every CSV cell is neutralised like all the project's CSV files
(:func:`skinlesion.core.io.neutralise`).
"""

from __future__ import annotations

import csv
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import TextIO

from skinlesion.core.errors import DataError
from skinlesion.core.io import neutralise, write_text
from skinlesion.core.layout import probability_column

# The columns before the per-class probabilities (skinlesion.deploy.predict.prediction_row).
LEADING_COLUMNS = ("path", "predicted", "probability", "top_k")


def check_output(path: Path, inputs: list[Path]) -> None:
    """Refuse an output file that cannot be written, or that is one of the inputs, before any work.

    Args:
        path: ``-o``.
        inputs: The files the command reads: the images, the model and its labels.json.

    Raises:
        DataError: When ``path`` is a folder, lies under a file, or is one of ``inputs`` (by any name).
    """
    if path.is_dir():
        raise DataError(f"-o {path} is a folder; give a file name, e.g. -o {path / 'predictions.csv'}")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise DataError(f"-o {path}: {parent} is a file, not a folder; give another output file")
    if path.exists():
        target = os.stat(path)
        for item in inputs:
            if item.exists() and os.path.samestat(target, os.stat(item)):
                raise DataError(
                    f"-o {path} is the input {item}; writing there would overwrite it: give another output file"
                )


class CsvRows:
    """Predictions as CSV, one line per image, flushed after every batch."""

    def __init__(self, stream: TextIO, classes: list[str], where: str, errors: list[dict]):
        self.stream, self.where, self.errors, self.count = stream, where, list(errors), 0
        self.columns = [*LEADING_COLUMNS, *map(probability_column, classes)]
        self.writer = csv.writer(stream, lineterminator="\n")
        self.writer.writerow([neutralise(c) for c in self.columns])
        stream.flush()

    def add(self, rows: list[dict], errors: list[dict]) -> None:
        """Write a batch's rows and remember its errors."""
        self.writer.writerows([neutralise(row[c]) for c in self.columns] for row in rows)
        self.stream.flush()
        self.count += len(rows)
        self.errors += errors

    def close(self) -> None:
        """Close the file (standard output stays open)."""
        if self.stream is not sys.stdout:
            self.stream.close()


class JsonRows:
    """Predictions as one JSON document (``predictions``, ``errors``), written by :meth:`close`."""

    def __init__(self, output: str | None, errors: list[dict]):
        self.output, self.where = output, output or "standard output"
        self.rows: list[dict] = []
        self.errors = list(errors)

    @property
    def count(self) -> int:
        """Rows so far."""
        return len(self.rows)

    def add(self, rows: list[dict], errors: list[dict]) -> None:
        """Keep a batch's rows and errors."""
        self.rows += rows
        self.errors += errors

    def close(self) -> None:
        """Write the document: to the file atomically, or to standard output."""
        text = json.dumps({"predictions": self.rows, "errors": self.errors}, indent=2, ensure_ascii=False) + "\n"
        if self.output:
            write_text(self.output, text)
        else:
            sys.stdout.write(text)


def open_rows(output: str | None, fmt: str, classes: list[str], errors: list[dict]) -> CsvRows | JsonRows:
    """The writer of ``--format`` into ``-o`` (standard output when None), holding the input errors so far.

    Raises:
        DataError: When the output file cannot be created.
    """
    if not output:
        return JsonRows(None, errors) if fmt == "json" else CsvRows(sys.stdout, classes, "standard output", errors)
    try:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        if fmt == "json":  # written at the end, atomically: make sure now that it can be
            tempfile.TemporaryFile(dir=Path(output).parent).close()
            return JsonRows(output, errors)
        stream = open(output, "w", encoding="utf-8", newline="")  # noqa: SIM115 (CsvRows closes it)
    except OSError as exc:
        raise DataError(f"-o {output}: cannot write it ({exc.strerror or exc}); give another output file") from None
    return CsvRows(stream, classes, output, errors)
