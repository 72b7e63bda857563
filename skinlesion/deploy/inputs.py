"""What the predict command is asked to predict: the files given and those under the folders given.

Nothing is dropped without a word: a path that is missing, a broken or looping link, a name no output can
hold, something that is not a file (a FIFO, a device, a link to a folder, which is not followed) is
reported with its reason; a file given twice (by two names, or as itself and inside a folder given too)
is predicted once, and said so.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from skinlesion.core.io import is_printable, printable


@dataclass
class Inputs:
    """The files to predict, in order, and what was left out.

    Attributes:
        files: Each file once, in the order given (a folder's files sorted).
        errors: One ``path, error`` entry per path that cannot be predicted.
        repeats: One ``path, first`` entry per file given again, by this path, after ``first``.
    """

    files: list[Path] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    repeats: list[dict] = field(default_factory=list)
    _seen: dict[tuple[int, int], Path] = field(default_factory=dict)

    def add(self, path: Path, found: os.stat_result) -> None:
        """Take a regular file, unless it is one already taken (the same file by any name)."""
        first = self._seen.setdefault((found.st_dev, found.st_ino), path)
        if first is path:
            self.files.append(path)
        else:
            self.repeats.append({"path": str(path), "first": str(first)})

    def error(self, path: Path | str, reason: str) -> None:
        """Report ``path`` as not predicted, for ``reason``."""
        self.errors.append({"path": printable(str(path)), "error": reason})


def expand_inputs(inputs: list[str]) -> Inputs:
    """Files given directly, plus every file under the folders given (sorted); the rest reported.

    Names starting with ``.`` inside a folder (``.DS_Store``, editors' temporary files) are not images
    and are passed over, as a listing of the folder would.
    """
    found = Inputs()
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():  # named by the user: followed, even as a link
            for entry in sorted(path.rglob("*")):
                if not entry.name.startswith(".") and not (entry.is_dir() and not entry.is_symlink()):
                    _classify(entry, found)
        elif path.exists() or path.is_symlink():
            _classify(path, found)
        else:
            found.error(raw, "missing: no such file or folder")
    return found


def _classify(path: Path, found: Inputs) -> None:
    if not is_printable(str(path)):
        found.error(path, "bad_file_name: not valid UTF-8 or control characters")
        return
    try:
        info = path.stat()
    except FileNotFoundError:
        found.error(path, "broken_link: the symbolic link's target does not exist")
        return
    except OSError as exc:  # ELOOP, EACCES
        found.error(path, f"broken_link: {exc.strerror}" if path.is_symlink() else f"unreadable: {exc.strerror}")
        return
    if stat.S_ISREG(info.st_mode):
        found.add(path, info)
    elif stat.S_ISDIR(info.st_mode):
        found.error(path, "link_to_folder: a symbolic link to a folder is not followed; give the folder itself")
    else:
        found.error(path, "not_a_file: a FIFO, socket or device, not an image file")
