"""Where the predict command's rows go: checked before any work, then written safely as they are produced.

``-o`` is written through a temporary file beside it that replaces it when the run ends, however it ends:
a reader, or a second run writing the same file, never sees half of one. CSV rows are written batch by
batch, so a run that stops part-way (a failing model, Ctrl-C, a full disk) leaves every whole row before
it at ``-o``, never half a row; JSON is one document, and a run that cannot write all of it leaves ``-o``
as it was. A symbolic link is written through (its target is replaced, the link stays), a file with several
hard links is overwritten in place at the end (every name shows the new rows), and a device or a FIFO is
written straight into (neither can be replaced, nor cut back).
Every CSV cell is neutralised like all the project's CSV files (:func:`skinlesion.core.io.neutralise`).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import secrets
import shutil
import stat
import sys
from pathlib import Path
from typing import BinaryIO

from skinlesion.core.errors import DataError
from skinlesion.core.io import neutralise
from skinlesion.core.layout import probability_column

# The first columns (skinlesion.deploy.predict.prediction_row); the decision's and the probabilities follow.
LEADING_COLUMNS = ("path", "predicted", "probability", "top_k")


def check_output(path: Path, inputs: list[Path]) -> None:
    """Refuse an output file that cannot be written, or that is one of the inputs, before any work.

    Args:
        path: ``-o``.
        inputs: The files the command reads: the images, the model and its labels.json.

    Raises:
        DataError: When ``path`` is a folder, lies under a file, is a looping symbolic link, or is one of
            ``inputs`` (by any name).
    """
    if path.is_dir():
        raise DataError(f"-o {path} is a folder; give a file name, e.g. -o {path / 'predictions.csv'}")
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):  # a new file, a link to one; under a file: said below
        pass
    except OSError as exc:  # a looping link (ELOOP), a name too long
        raise DataError(f"-o {path}: {exc.strerror or exc}; give another output file") from None
    target = Path(os.path.realpath(path))
    parent = target.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise DataError(f"-o {path}: {parent} is a file, not a folder; give another output file")
    if target.exists():
        found = os.stat(target)
        for item in inputs:
            if item.exists() and os.path.samestat(found, os.stat(item)):
                raise DataError(
                    f"-o {path} is the input {item}; writing there would overwrite it: give another output file"
                )


class OutputFile:
    """``-o``, written safely: through a temporary file beside it, or straight into it when it is not a file.

    Attributes:
        name: ``-o`` as given (for messages).
        target: The file written: ``-o``, or the file its symbolic link points to.
        through: Whether ``target`` is written straight into (a device, a FIFO: it cannot be replaced).
        written: Bytes written in whole pieces (rows, the document) so far.
    """

    def __init__(self, name: str):
        self.name, self.written, self.stream = name, 0, None
        self.target = Path(os.path.realpath(name))
        try:
            self.found = os.stat(self.target)
        except FileNotFoundError:
            self.found = None
        except OSError as exc:  # a looping link, a name too long
            raise DataError(f"-o {name}: {exc.strerror or exc}; give another output file") from None
        self.through = self.found is not None and not stat.S_ISREG(self.found.st_mode)
        self.temp = None if self.through else self.target.with_name(f".{self.target.name}.{secrets.token_hex(6)}.tmp")
        if self.temp is not None:  # created now: a folder that cannot take it is refused before any work
            try:
                self.target.parent.mkdir(parents=True, exist_ok=True)
                self.stream = self._open(self.temp, "xb")
                if self.found is not None:
                    os.chmod(self.temp, stat.S_IMODE(self.found.st_mode))  # the file it replaces keeps its mode
            except OSError as exc:
                self.close(keep=False)
                raise DataError(
                    f"-o {name}: cannot write it ({exc.strerror or exc}); give another output file"
                ) from None

    @staticmethod
    def _open(path: Path, mode: str) -> BinaryIO:
        # Unbuffered: a failed write leaves nothing pending, and the file can be cut back to whole rows.
        return open(path, mode, buffering=0)  # noqa: SIM115 (close() closes it)

    def write(self, text: str) -> None:
        """Write ``text`` in full; on failure cut back to the last whole piece and raise one line.

        Raises:
            DataError: Naming ``-o`` and the cause (a full disk, a closed FIFO).
        """
        raw = text.encode("utf-8")
        data = memoryview(raw)
        try:
            if self.stream is None:  # a device or FIFO, opened at the first write (a FIFO waits for a reader)
                self.stream = self._open(self.target, "wb")
            while data:
                data = data[self.stream.write(data) :]
        except OSError as exc:
            self._cut_back()
            raise DataError(f"-o {self.name}: cannot write it ({exc.strerror or exc})") from None
        self.written += len(raw)

    def _cut_back(self) -> None:
        """Drop a piece written in part (a row cut by a full disk), where the file can be truncated."""
        try:
            os.ftruncate(self.stream.fileno(), self.written)
        except (AttributeError, OSError, ValueError):  # not open, or a device or FIFO: what went out is out
            pass

    def close(self, keep: bool = True) -> None:
        """Close, and put what was written in place of ``-o`` (``keep``) or throw it away.

        A file with several hard links is overwritten in place, so that every name shows the new rows;
        any other file is replaced by the temporary one.

        Raises:
            DataError: When the temporary file cannot take the place of ``-o``; it is removed.
        """
        if self.stream is not None:
            self.stream.close()
        if self.temp is None or not self.temp.exists():
            return
        try:
            if keep and self.found is not None and self.found.st_nlink > 1:
                with open(self.temp, "rb") as new, open(self.target, "r+b") as old:
                    shutil.copyfileobj(new, old)
                    old.truncate()
            elif keep:
                os.replace(self.temp, self.target)
        except OSError as exc:
            raise DataError(f"-o {self.name}: cannot write it ({exc.strerror or exc})") from None
        finally:
            self.temp.unlink(missing_ok=True)


class StandardOutput:
    """Standard output, with :class:`OutputFile`'s ``write``/``close`` (a closed pipe is one error line)."""

    name = "standard output"

    def write(self, text: str) -> None:
        """Write and flush ``text``.

        Raises:
            DataError: When standard output is closed (``| head``) or full.
        """
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except OSError as exc:
            if isinstance(exc, BrokenPipeError):  # nothing more can go there, not even Python's flush at exit
                with contextlib.suppress(OSError, ValueError):
                    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise DataError(f"standard output: cannot write it ({exc.strerror or exc})") from None

    def close(self, keep: bool = True) -> None:
        """Nothing to close: standard output stays open."""


class CsvRows:
    """Predictions as CSV, one line per image, written after every batch."""

    def __init__(self, out: OutputFile | StandardOutput, classes: list[str], errors: list[dict], decided: list[str]):
        self.out, self.where, self.errors, self.count = out, out.name, list(errors), 0
        self.columns = [*LEADING_COLUMNS, *decided, *map(probability_column, classes)]
        self._write([[neutralise(c) for c in self.columns]])

    def _write(self, rows: list[list]) -> None:
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerows(rows)
        self.out.write(text.getvalue())

    def add(self, rows: list[dict], errors: list[dict]) -> None:
        """Write a batch's rows and remember its errors."""
        self._write([[neutralise(row[c]) for c in self.columns] for row in rows])
        self.count += len(rows)
        self.errors += errors

    def close(self) -> None:
        """Put the rows written in place (every whole row, however the run ended)."""
        self.out.close(keep=True)


class JsonRows:
    """Predictions as one JSON document (``predictions``, ``errors``), written by :meth:`close`."""

    def __init__(self, out: OutputFile | StandardOutput, errors: list[dict]):
        self.out, self.where = out, out.name
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
        """Write the document; one that cannot be written whole leaves ``-o`` as it was."""
        text = json.dumps({"predictions": self.rows, "errors": self.errors}, indent=2, ensure_ascii=False) + "\n"
        try:
            self.out.write(text)
        except DataError as exc:
            self.out.close(keep=False)
            left = "as it was" if isinstance(self.out, OutputFile) else "with part of it"
            raise DataError(f"{exc}; {self.where} is left {left}") from None
        self.out.close(keep=True)


def open_output(output: str | None) -> OutputFile | StandardOutput:
    """``-o`` opened for writing (its temporary file created), or standard output when None.

    Raises:
        DataError: When the output file cannot be created.
    """
    return OutputFile(output) if output else StandardOutput()


def open_rows(
    out: OutputFile | StandardOutput, fmt: str, classes: list[str], errors: list[dict], decided: list[str]
) -> CsvRows | JsonRows:
    """The writer of ``--format`` into ``out``, holding the input errors so far.

    ``decided``: the columns of the model folder's decision rules, between ``top_k`` and the probabilities
    (:func:`~skinlesion.uncertainty.decision.decision_columns`).
    """
    if fmt == "json":
        return JsonRows(out, errors)
    try:
        return CsvRows(out, classes, errors, decided)
    except DataError:
        out.close(keep=False)
        raise
