"""Where every stage's files live, and the typed contracts of the files stages hand each other.

This module is the only place that spells a path or a file-name contract: stages, library code
and tests take them from here (dvc.yaml repeats them, and ``tests/test_dvc_yaml.py`` checks the two
agree). Each training run owns one folder, ``runs/<backbone>/seed<k>/``::

    model/          model.keras + labels.json + metadata.json   (train; DVC-cached, what evaluate depends on)
    config.json     the resolved config the run was trained with (train)
    train/          dvclive log: per-epoch curves over every phase, best-epoch summary (train)
    eval/           dvclive summary of test metrics, predictions, per-class report, ROC, calibration (evaluate)

so ``aggregate`` depends on ``runs/`` as a whole, and adding a backbone or a seed needs no edit of
dvc.yaml. A *model folder* (a run's ``model/``, or the headline ``models/headline/``) always holds
``model.keras`` with its :class:`LabelMap` in ``labels.json`` and its description in ``metadata.json``
(:mod:`skinlesion.deploy.description`) beside it.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from skinlesion.core.errors import DataError
from skinlesion.core.io import read_csv
from skinlesion.core.modes import FoldPart

RAW = Path("data/raw")
# Provenance and counts, inside the raw folder: fetch writes it last, so a raw folder without it is
# unfinished (an interrupted fetch) and split refuses it.
SOURCE_FILE = "SOURCE.json"
# The source's metadata CSV (``data.metadata``), copied by fetch beside the images; split reads it.
RAW_METADATA = "metadata.csv"
SPLITS = Path("data/splits")
SKIPPED = SPLITS / "skipped.csv"
# Cross-validation: the cv-folds stage's folder per fold (:func:`fold_csv`) and its table of sizes and classes.
FOLDS = Path("data/folds")
FOLD_TABLE = FOLDS / "folds.json"
RUNS = Path("runs")
# Cross-validation's folder name: a backbone's fold runs (runs/<backbone>/cv/) and the pooled results (runs/cv/).
CV = "cv"
# Outside DVC's outputs, which DVC deletes before a rerun: resumable checkpoints and the decode-once cache.
TRAIN_STATE = Path(".cache/train")
DECODED = Path(".cache/decoded")

DATA_SUMMARY = Path("reports/data.json")
REPORT = Path("reports/report.md")
SUMMARY_JSON = Path("reports/summary.json")
SUMMARY_MD = Path("reports/summary.md")

HEADLINE_METRICS = Path("metrics/metrics.json")
BACKBONE_METRICS = Path("metrics/backbones.json")
EXPORT_METRICS = Path("metrics/export.json")

HEADLINE_MODEL = Path("models/headline")
EXPORT_DIR = Path("models/export")
EXPORT_TFLITE = EXPORT_DIR / "model.tflite"
# The headline's decision rules (metadata.json's decision: sets, referral, malignant threshold) beside the TFLite model.
EXPORT_DECISION = EXPORT_DIR / "decision.json"
MODEL_CARD = Path("models/MODEL_CARD.md")

PLOTS = Path("plots")
CLASS_COUNTS = PLOTS / "class_counts.csv"
AUGMENT_PREVIEW = PLOTS / "augment_preview.png"
CURVES = PLOTS / "curves.csv"
ROC = PLOTS / "roc.csv"
CALIBRATION = PLOTS / "calibration.csv"
CONFUSION = PLOTS / "confusion.csv"
# The headline's risk-coverage curves (referral), test and every external set (skinlesion.evaluation.uncertainty).
RISK_COVERAGE = PLOTS / "risk_coverage.csv"
# The headline on corrupted copies of the test split against severity (evaluate.shift_severities; header only when off).
SHIFT_TEST = PLOTS / "shift_test.csv"
COMPARISON = PLOTS / "comparison.png"
RECALL = PLOTS / "recall.png"
# The headline's malignant-vs-benign score: reliability curve, calibration intercept and slope (test split).
MALIGNANT_CALIBRATION = PLOTS / "malignant_calibration.png"
GRADCAM = PLOTS / "gradcam.png"
# The malignant call's net benefit over threshold probabilities, one CSV per set (data for `dvc plots`), and
# its picture.
DECISION_CURVES = PLOTS / "decision_curve"
DECISION_FIGURE = PLOTS / "decision_curve.png"

# External test sets (the `external` stages): one folder per set, what aggregate reads.
EXTERNAL = Path("external")
# The subgroup and external-set bar charts: one CSV per set (the internal test split is `test`).
SUBGROUP_PLOTS = PLOTS / "subgroups"

# DVC's record of every stage's deps and outs: the headline's metadata.json quotes its training stages' deps.
DVC_LOCK = Path("dvc.lock")
# What a `dvc repro` writes into git-tracked or DVC-tracked folders (a clean copy of the sources leaves them out).
GENERATED = (DVC_LOCK, HEADLINE_METRICS.parent, PLOTS, REPORT.parent, HEADLINE_MODEL.parent, RUNS, EXTERNAL)
# Source files kept in git inside those folders: what an output folder is for, and what git ignores in it.
SOURCES_IN_GENERATED = ("README.md", ".gitignore")


def is_generated(rel: str | Path, generated: tuple[Path, ...] = GENERATED) -> bool:
    """Whether the repository path ``rel`` is written by `dvc repro` (a clean copy of the sources leaves it out).

    Args:
        rel: A path relative to the repository root, as `git ls-files` prints it.
        generated: The output files and folders (``GENERATED``, or more, e.g. with ``data/``).
    """
    rel = Path(rel)
    inside = any(rel == g or g in rel.parents for g in generated)
    return inside and rel.name not in SOURCES_IN_GENERATED


MODEL_FILE = "model.keras"
LABELS_FILE = "labels.json"
# A model folder's description (skinlesion.deploy.description), not the archive's own metadata.json inside model.keras.
METADATA_FILE = "metadata.json"
# predictions.csv holds one probability column per class: the prefix plus the class name.
PROBABILITY_PREFIX = "p_"


def split_csv(name: str, splits_dir: str | Path = SPLITS) -> Path:
    """``<splits_dir>/<name>.csv``: one of :class:`~skinlesion.core.modes.Split`, columns path,label,sha256,group."""
    return Path(splits_dir) / f"{name}.csv"


def staging_dir(folder: str | Path) -> Path:
    """Where fetch fills a new raw folder before renaming it (``data/.raw.partial``): a failed fetch leaves the old."""
    return Path(folder).with_name(f".{Path(folder).name}.partial")


def previous_dir(folder: str | Path) -> Path:
    """Where the previous raw folder waits while the new one is renamed into place (``data/.raw.previous``)."""
    return Path(folder).with_name(f".{Path(folder).name}.previous")


def split_journal(splits_dir: str | Path = SPLITS) -> Path:
    """The journal of split's outputs while they are being replaced (``data/.splits.journal.json``).

    The split stage replaces its files as one unit (:func:`skinlesion.core.io.write_together`); while
    this file exists they may be a mix of two runs, and nothing reads them.
    """
    splits_dir = Path(splits_dir)
    return splits_dir.with_name(f".{splits_dir.name}.journal.json")


def probability_column(class_name: str) -> str:
    """The predictions column holding the probability of ``class_name``."""
    return PROBABILITY_PREFIX + class_name


def probability_classes(columns: list[str] | pd.Index) -> list[str]:
    """The classes of a predictions table, in column order, from its probability columns."""
    return [c.removeprefix(PROBABILITY_PREFIX) for c in columns if c.startswith(PROBABILITY_PREFIX)]


def fold_csv(fold: str, part: FoldPart) -> Path:
    """``data/folds/<fold>/<part>.csv``: one of a fold's image lists (a split file's columns)."""
    return FOLDS / fold / f"{part}.csv"


@dataclass(frozen=True)
class CvPaths:
    """One backbone's pooled cross-validation (``cv-pool``): ``runs/cv/<backbone>/``, outside the runs it reads."""

    backbone: str

    @property
    def root(self) -> Path:
        """``runs/cv/<backbone>``."""
        return RUNS / CV / self.backbone

    @property
    def predictions(self) -> Path:
        """Out-of-fold predictions: seed, fold, path, label, group, ``p_<class>``; a row per training image and seed."""
        return self.root / "oof_predictions.csv"

    @property
    def estimate(self) -> Path:
        """The estimate with its interval, the per-fold scores and the folds' table (what the report shows)."""
        return self.root / "estimate.json"

    @property
    def metrics(self) -> Path:
        """Its scores with intervals, small: a DVC metrics file (``dvc metrics diff``)."""
        return self.root / "metrics.json"

    @property
    def confusion(self) -> Path:
        """Each out-of-fold prediction's actual and predicted class: ``dvc plots``' confusion matrix."""
        return PLOTS / "cv_confusion" / f"{self.backbone}.csv"


@dataclass(frozen=True)
class RunPaths:
    """The files of one training run (one backbone, one seed; a fold run also one cv fold)."""

    backbone: str
    seed: int
    fold: str | None = None

    @property
    def root(self) -> Path:
        """``runs/<backbone>/seed<k>``, or for a fold run ``runs/<backbone>/cv/seed<k>/<fold>`` (one folder of them)."""
        if self.fold:
            return RUNS / self.backbone / CV / f"seed{self.seed}" / self.fold
        return RUNS / self.backbone / f"seed{self.seed}"

    @property
    def model_dir(self) -> Path:
        """The run's model folder (model.keras + labels.json + metadata.json)."""
        return self.root / "model"

    @property
    def model(self) -> Path:
        """The run's saved classifier."""
        return self.model_dir / MODEL_FILE

    @property
    def config(self) -> Path:
        """The resolved config the run was trained with."""
        return self.root / "config.json"

    @property
    def train_log(self) -> Path:
        """The dvclive folder of training."""
        return self.root / "train"

    @property
    def train_summary(self) -> Path:
        """Dvclive summary of training: validation scores of the kept weights."""
        return self.train_log / "metrics.json"

    @property
    def eval_summary(self) -> Path:
        """Dvclive summary of evaluation: test metrics with bootstrap CIs."""
        return self.eval_dir / "metrics.json"

    @property
    def calibration(self) -> Path:
        """Reliability table: bin, mean confidence, accuracy, count."""
        return self.eval_dir / "calibration.csv"

    @property
    def eval_dir(self) -> Path:
        """The dvclive folder of evaluation and the per-run evaluation files."""
        return self.root / "eval"

    @property
    def predictions(self) -> Path:
        """Per-image test predictions: path, group, actual, predicted, one ``p_<class>`` column per class."""
        return self.eval_dir / "predictions.csv"

    @property
    def val_predictions(self) -> Path:
        """The same for the validation split: what temperatures and decision thresholds are fixed on."""
        return self.eval_dir / "val_predictions.csv"

    @property
    def held_out_predictions(self) -> Path:
        """A fold run's predictions of its held-out fold (:attr:`predictions`' columns)."""
        return self.eval_dir / "held_out_predictions.csv"

    @property
    def roc(self) -> Path:
        """One-vs-rest ROC curves on a common FPR grid, with their macro mean."""
        return self.eval_dir / "roc.csv"

    @property
    def report_json(self) -> Path:
        """scikit-learn's per-class classification report, as JSON."""
        return self.eval_dir / "classification_report.json"

    @property
    def report_txt(self) -> Path:
        """The same report as text."""
        return self.eval_dir / "classification_report.txt"

    def state_dir(self, key: str) -> Path:
        """Resumable checkpoints of this run under resume key ``key`` (outside DVC's outputs)."""
        return TRAIN_STATE / self.root.relative_to(RUNS) / key

    @property
    def name(self) -> str:
        """``<backbone>-<seed>`` (stage ``train@<name>``), or ``<backbone>-<seed>-<fold>`` (``cv@train-<name>``)."""
        return "-".join(str(p) for p in (self.backbone, self.seed, self.fold) if p is not None)

    @classmethod
    def parse(cls, name: str) -> RunPaths:
        """The run of a :attr:`name` (backbone names may contain ``-``; seeds are integers, folds ``f<j>``)."""
        rest, _, last = name.rpartition("-")
        if last.startswith("f"):
            backbone, _, seed = rest.rpartition("-")
            return cls(backbone, int(seed), last)
        return cls(rest, int(last))


@dataclass(frozen=True)
class Checkpoints:
    """The files of one phase's resumable state in a run's state folder.

    ``state`` names the newest per-epoch weights and holds the schedule and history; it is replaced
    last, atomically, so a kill at any moment leaves a consistent checkpoint.
    """

    folder: Path
    phase: str

    @property
    def state(self) -> Path:
        """The phase's state (JSON)."""
        return self.folder / f"{self.phase}.json"

    @property
    def best(self) -> Path:
        """The weights of the best validation epoch so far."""
        return self.folder / f"{self.phase}.best.weights.h5"

    def epoch(self, epoch: int) -> str:
        """File name (inside :attr:`folder`) of the weights after ``epoch`` epochs."""
        return f"{self.phase}.epoch{epoch}.weights.h5"


# The key of a .keras archive's metadata.json under which a model carries its own label map.
MODEL_ENTRY = "skinlesion"


@dataclass(frozen=True)
class ExternalPaths:
    """The files of one external test set (``external/<name>/``), all written by its ``external`` stage.

    ``raw/`` holds the set's files in the raw layout (as fetch lays out the training data); the CSVs say
    which were scored and why the others were not.
    """

    name: str

    @property
    def root(self) -> Path:
        """``external/<name>``."""
        return EXTERNAL / self.name

    @property
    def raw(self) -> Path:
        """The set's files, ``raw/<split>/<class>/<file>``."""
        return self.root / "raw"

    @property
    def images(self) -> Path:
        """The images scored: path,label,sha256,group (a split file's columns)."""
        return self.root / "images.csv"

    @property
    def skipped(self) -> Path:
        """The files not scored: path,reason,detail."""
        return self.root / "skipped.csv"

    @property
    def summary(self) -> Path:
        """Counts: files seen, scored, skipped by reason, labels the model does not know."""
        return self.root / "data.json"

    @property
    def metadata(self) -> Path:
        """The set's metadata CSV, when it has one (for subgroups)."""
        return self.root / RAW_METADATA

    def predictions(self, run: RunPaths) -> Path:
        """One run's predictions on the set (the columns of a run's ``predictions.csv``)."""
        return self.root / "predictions" / f"{run.name}.csv"


def run_arguments(argv: list[str] | None, description: str, fold: bool = False) -> argparse.Namespace:
    """Parse ``--backbone NAME --seed K`` (and ``--fold f<j>``), the arguments of the per-run matrix stages."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--backbone", required=True)
    parser.add_argument("--seed", type=int, required=True)
    if fold:
        parser.add_argument("--fold", required=True)
    return parser.parse_args(argv)


def read_split(name: str, splits_dir: str | Path = SPLITS) -> pd.DataFrame:
    """Read ``<splits_dir>/<name>.csv`` (columns path,label,sha256,group).

    Raises:
        DataError: If the file is missing, the split is empty, or split was interrupted replacing the files.

    """
    path = split_csv(name, splits_dir)
    if split_journal(splits_dir).exists():
        raise DataError(
            f"{splits_dir}: the split stage was interrupted while replacing its files; rerun `dvc repro split`"
        )
    try:
        frame = read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise DataError(f"{path} not found: run `dvc repro split` first") from None
    if frame.empty:
        raise DataError(f"{path} is empty: the {name} split has no images; check {DATA_SUMMARY}")
    return frame
