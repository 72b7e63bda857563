"""Resuming a killed run: the key its checkpoints live under, and the checkpoint of one phase.

Checkpoints live outside DVC's outputs (DVC deletes those before rerunning a stage), under
``.cache/train/<backbone>/seed<k>/<key>/``. The key hashes everything that decides the weights: the
resolved config, the split's image hashes, the training code and the library versions, so a checkpoint
is only ever resumed by a run that would have produced exactly it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from skinlesion.core.io import read_json, write_json
from skinlesion.modeling.schedule import Plateau

PACKAGE = Path(__file__).resolve().parents[1]
# The package folders whose code decides a run's weights.
TRAINING_CODE = ("core", "modeling")


def fingerprint(*parts: Any) -> str:
    """Hash JSON-able parts (resolved config, split file hashes) into a short run identifier."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def environment_fingerprint(package: Path = PACKAGE) -> dict[str, str]:
    """The training code and libraries, as part of a run's resume key.

    A checkpoint is then only resumed by the same training code (the ``core`` and ``modeling``
    sources) with the same TensorFlow, Keras and NumPy.

    Args:
        package: The ``skinlesion`` package folder.
    """
    digest = hashlib.sha256()
    for path in sorted(p for folder in TRAINING_CODE for p in (package / folder).glob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes())
    versions = {name: importlib.metadata.version(name) for name in ("tensorflow", "keras", "numpy")}
    return {"code": digest.hexdigest()[:16]} | versions


def resume_key(resolved: dict, train_sha256: list[str], val_sha256: list[str]) -> str:
    """The key of a run's checkpoints: its resolved config, images, training code and library versions."""
    return fingerprint(resolved, train_sha256, val_sha256, environment_fingerprint())


@dataclass
class PhaseCheckpoint:
    """What a phase has done so far, written after every epoch.

    Attributes:
        epoch: Epochs completed.
        schedule: The learning-rate schedule's state after them.
        rows: Their history rows (replayed into the training log on resume).
        done: Whether the phase has finished (all epochs, or early stopping).
        weights: File name of the newest per-epoch weights in the state folder ("" before the first).
    """

    schedule: Plateau
    epoch: int = 0
    rows: list[dict] = field(default_factory=list)
    done: bool = False
    weights: str = ""

    @classmethod
    def read(cls, path: Path) -> PhaseCheckpoint:
        """Read a checkpoint written by :meth:`write`."""
        data = read_json(path)
        return cls(**(data | {"schedule": Plateau(**data["schedule"])}))

    def write(self, path: Path) -> None:
        """Write atomically: a kill leaves the previous checkpoint or this one, never half of either."""
        write_json(path, asdict(self))


def clear_state(state_dir: Path) -> None:
    """Remove a finished run's checkpoints."""
    shutil.rmtree(state_dir, ignore_errors=True)
