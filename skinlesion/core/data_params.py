"""The data sections of params.yaml: the images' source (``data``), their split (``split``), their folds (``cv``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from skinlesion.core.modes import Source, Split
from skinlesion.core.typed import check

DERMAMNIST_SIZES = (28, 64, 128, 224)
DERMAMNIST_C_SIZES = (28, 224)  # the resolutions DermaMNIST-C (corrected, Abhishek et al.) is published at
# Sources that are a tree of files, where a metadata CSV can travel with the images (data.metadata).
METADATA_SOURCES = (Source.FOLDER, Source.ZIP, Source.KAGGLE)
# Pillow's decompression-bomb warning limit as shipped: what train, evaluate and predict decode with,
# so split.max_pixels may not exceed it (an image split accepts must load everywhere).
PILLOW_MAX_PIXELS = 89_478_485
# The largest seed NumPy's legacy generator takes (``RandomState``: 0 to 2**32 - 1), which seeds scikit-learn's
# splitters (split.seed, and split.seed + 1 for validation) and, through ``keras.utils.set_random_seed``, every
# training run (``seeds``; TensorFlow's own seeds take 64 bits: NumPy's limit is the one that bites).
NUMPY_MAX_SEED = 2**32 - 1


@dataclass(frozen=True)
class SyntheticConfig:
    """Settings of the built-in synthetic dermoscopy generator."""

    seed: int
    n_images: int
    image_size: int

    def validate(self, key: str) -> None:  # noqa: D102
        check(self.seed >= 0, f"{key}.seed", "must be >= 0 (it seeds NumPy's generator)", self.seed)
        check(self.n_images >= 50, f"{key}.n_images", "must be at least 50", self.n_images)
        check(32 <= self.image_size <= 1024, f"{key}.image_size", "must be in [32, 1024]", self.image_size)


@dataclass(frozen=True)
class DataConfig:
    """Where the images come from (the fetch stage)."""

    source: Source
    path: str
    kaggle_dataset: str
    dermamnist_size: int
    metadata: str
    metadata_id_column: str
    max_archive_mb: int
    max_compression_ratio: int
    synthetic: SyntheticConfig

    def validate(self, key: str) -> None:  # noqa: D102
        check(
            self.dermamnist_size in DERMAMNIST_SIZES,
            f"{key}.dermamnist_size",
            f"must be one of {DERMAMNIST_SIZES}",
            self.dermamnist_size,
        )
        self._validate_metadata(key)
        check(self.max_archive_mb >= 1, f"{key}.max_archive_mb", "must be >= 1 (MiB)", self.max_archive_mb)
        ratio = self.max_compression_ratio
        check(ratio >= 2, f"{key}.max_compression_ratio", "must be >= 2 (images barely compress: ~1 is normal)", ratio)
        if self.source == Source.DERMAMNIST_C:
            check(
                self.dermamnist_size in DERMAMNIST_C_SIZES,
                f"{key}.dermamnist_size",
                f"must be one of {DERMAMNIST_C_SIZES} for source=dermamnist_c",
                self.dermamnist_size,
            )
        if self.source in (Source.FOLDER, Source.ZIP):
            check(bool(self.path), f"{key}.path", f"must name a folder or archive for source={self.source}", "")
        rule = "must not be empty: DVC cannot load dvc.yaml then; keep data/external where no source reads it"
        check(bool(self.path), f"{key}.path", rule, "")
        if self.source == Source.KAGGLE:
            check(
                self.kaggle_dataset.count("/") in (1, 3),
                f"{key}.kaggle_dataset",
                "must look like owner/dataset or owner/dataset/versions/N",
                self.kaggle_dataset,
            )
        self.synthetic.validate(f"{key}.synthetic")

    def _validate_metadata(self, key: str) -> None:
        if not self.metadata:
            return
        where = "/".join(METADATA_SOURCES)
        rule = f"must be empty for source={self.source}: a metadata CSV travels with a {where} source, inside it"
        check(self.source in METADATA_SOURCES, f"{key}.metadata", rule, self.metadata)
        name = PurePosixPath(self.metadata.replace("\\", "/"))
        inside = bool(name.parts) and not name.is_absolute() and ".." not in name.parts
        rule = "must be a path inside the data source (folder or archive), e.g. HAM10000_metadata.csv, or ''"
        check(inside, f"{key}.metadata", rule, self.metadata)


@dataclass(frozen=True)
class SplitConfig:
    """How images are validated and divided into train/val/test."""

    seed: int
    val_fraction: float
    test_fraction: float
    group_by: str
    allow_missing_groups: bool
    drop_label_conflicts: bool
    max_pixels: int
    min_side: int

    def validate(self, key: str) -> None:  # noqa: D102
        check(self.seed >= 0, f"{key}.seed", "must be >= 0 (it seeds scikit-learn's splitters)", self.seed)
        rule = (
            f"must be <= {NUMPY_MAX_SEED - 1}: it and seed + 1 (for validation) seed scikit-learn's splitters "
            "through NumPy's RandomState, which takes at most 2**32 - 1"
        )
        check(self.seed < NUMPY_MAX_SEED, f"{key}.seed", rule, self.seed)
        check(self.min_side >= 1, f"{key}.min_side", "must be >= 1 (pixels)", self.min_side)
        rule = f"must be in [1, {PILLOW_MAX_PIXELS}] (Pillow's own limit, with which the later stages decode)"
        check(1 <= self.max_pixels <= PILLOW_MAX_PIXELS, f"{key}.max_pixels", rule, self.max_pixels)
        for name in ("val_fraction", "test_fraction"):
            value = getattr(self, name)
            check(0.0 < value < 0.5, f"{key}.{name}", "must be in (0, 0.5)", value)


# A fold's name: ``f<j>``. DVC's matrix joins the values into the fold run's stage name (``cv@train-mobilenet-0-f2``).
FOLD_PREFIX = "f"


def fold_names(k: int) -> list[str]:
    """``cv.folds`` for ``k`` folds: ``[f0, ..., f<k-1>]``."""
    return [f"{FOLD_PREFIX}{j}" for j in range(k)]


@dataclass(frozen=True)
class CvConfig:
    """Lesion-grouped k-fold cross-validation of the training split (the ``cv`` stages; off when ``pool`` is [])."""

    # A string or a number (what `-S cv.pool=train` writes) is refused by validate() with the list to write instead.
    pool: list[str] | str
    folds: list[str] | int | float | str
    seed: int
    inner_val_parts: int

    @property
    def enabled(self) -> bool:
        """Whether the cv stages exist (``cv.pool: [train]``)."""
        return bool(self.pool)

    def validate(self, key: str) -> None:  # noqa: D102
        rule = f"must be the list [] (off) or [{Split.TRAIN}] (cross-validate the training split), brackets included"
        check(self.pool in ([], [Split.TRAIN.value]), f"{key}.pool", rule, self.pool)
        if not isinstance(self.folds, list):
            whole = isinstance(self.folds, (int, float)) and float(self.folds).is_integer() and self.folds >= 2
            k = int(self.folds) if whole else 5
            rule = f"must list the folds by name, e.g. {_yaml(fold_names(k))} for {k} folds (DVC's matrix needs a list)"
            check(False, f"{key}.folds", rule, self.folds)
        k = len(self.folds)
        rule = (
            "must list at least 2 folds, named f0 to f<k-1>: e.g. [f0, f1, f2, f3, f4] for 5 folds "
            "(one fold leaves nothing to train on)"
        )
        check(k >= 2, f"{key}.folds", rule, self.folds)
        rule = (
            f"must name the folds f0 to f{k - 1} in order, {_yaml(fold_names(k))} for {k} folds "
            "(the fold count is the list's length; DVC's matrix needs the list)"
        )
        check(self.folds == fold_names(k), f"{key}.folds", rule, self.folds)
        check(0 <= self.seed < NUMPY_MAX_SEED, f"{key}.seed", f"must be in [0, {NUMPY_MAX_SEED})", self.seed)
        rule = "must be in [2, 20]: the other folds are cut in this many parts, one of them the inner validation"
        check(2 <= self.inner_val_parts <= 20, f"{key}.inner_val_parts", rule, self.inner_val_parts)


def _yaml(names: list[str]) -> str:
    return f"[{', '.join(names)}]"
