"""Typed, validated configuration read once from params.yaml.

Every stage calls :func:`load_config` in its ``main()`` and passes plain values on to library
functions, which never open params.yaml themselves. params.yaml is the only home of the defaults: the
dataclasses below have none, so a missing key is an error naming it, as are unknown keys, wrong types
and out-of-range values, before any work starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import yaml

from skinlesion.core.backbones import BACKBONES
from skinlesion.core.errors import ConfigError
from skinlesion.core.modes import (
    ClassWeight,
    Distribute,
    JitCompile,
    Precision,
    Quantization,
    Source,
    Weights,
)
from skinlesion.core.typed import UniqueKeyLoader, check, coerce

DERMAMNIST_SIZES = (28, 64, 128, 224)
DERMAMNIST_C_SIZES = (28, 224)  # the resolutions DermaMNIST-C is published at
# Sources that are a tree of files, where a metadata CSV can travel with the images (data.metadata).
METADATA_SOURCES = (Source.FOLDER, Source.ZIP, Source.KAGGLE)
# Pillow's decompression-bomb warning limit as shipped: what train, evaluate and predict decode with,
# so split.max_pixels may not exceed it (an image split accepts must load everywhere).
PILLOW_MAX_PIXELS = 89_478_485


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

    def validate(self, key: str) -> None:  # noqa: D102
        check(self.seed >= 0, f"{key}.seed", "must be >= 0 (it seeds scikit-learn's splitters)", self.seed)
        rule = f"must be in [1, {PILLOW_MAX_PIXELS}] (Pillow's own limit, with which the later stages decode)"
        check(1 <= self.max_pixels <= PILLOW_MAX_PIXELS, f"{key}.max_pixels", rule, self.max_pixels)
        for name in ("val_fraction", "test_fraction"):
            value = getattr(self, name)
            check(0.0 < value < 0.5, f"{key}.{name}", "must be in (0, 0.5)", value)


@dataclass(frozen=True)
class AugmentConfig:
    """Random augmentation used in training and drawn by augment-preview (one implementation)."""

    horizontal_flip: bool
    vertical_flip: bool
    rotation: float
    zoom: float
    translation: float
    brightness: float
    contrast: float

    def validate(self, key: str) -> None:  # noqa: D102
        check(0.0 <= self.rotation <= 1.0, f"{key}.rotation", "must be in [0, 1] (fraction of 360°)", self.rotation)
        for name in ("zoom", "translation", "brightness", "contrast"):
            value = getattr(self, name)
            check(0.0 <= value < 1.0, f"{key}.{name}", "must be in [0, 1)", value)

    @property
    def enabled(self) -> bool:
        """Whether any augmentation is switched on."""
        return any(
            (
                self.horizontal_flip,
                self.vertical_flip,
                self.rotation,
                self.zoom,
                self.translation,
                self.brightness,
                self.contrast,
            )
        )


@dataclass(frozen=True)
class PreviewConfig:
    """What augment-preview draws (nothing that trains depends on these)."""

    per_class: int
    views: int

    def validate(self, key: str) -> None:  # noqa: D102
        check(self.per_class >= 1, f"{key}.per_class", "must be >= 1", self.per_class)
        check(self.views >= 1, f"{key}.views", "must be >= 1", self.views)


@dataclass(frozen=True)
class RuntimeConfig:
    """Speed-only settings: they change how fast results come, never the results, so no stage depends on them."""

    workers: int
    in_memory_mb: int
    distribute: Distribute

    def validate(self, key: str) -> None:  # noqa: D102
        check(self.workers >= 0, f"{key}.workers", "must be >= 0 (0 = all cores)", self.workers)
        check(self.in_memory_mb >= 0, f"{key}.in_memory_mb", "must be >= 0 (0 = always stream)", self.in_memory_mb)


@dataclass(frozen=True)
class TrainConfig:
    """Training settings shared by every backbone."""

    batch_size: int
    epochs_head: int
    epochs_finetune: int
    lr_head: float
    lr_finetune: float
    patience: int
    lr_patience: int
    lr_factor: float
    class_weight: ClassWeight
    label_smoothing: float
    weights: str  # a Weights mode, or a weights-file path
    epochs_scratch: int
    lr_scratch: float
    augment_head: bool
    precision: Precision
    jit_compile: JitCompile

    def validate(self, key: str) -> None:  # noqa: D102
        check(self.batch_size >= 1, f"{key}.batch_size", "must be >= 1", self.batch_size)
        check(self.epochs_head >= 1, f"{key}.epochs_head", "must be >= 1", self.epochs_head)
        check(self.epochs_finetune >= 0, f"{key}.epochs_finetune", "must be >= 0", self.epochs_finetune)
        check(self.epochs_scratch >= 1, f"{key}.epochs_scratch", "must be >= 1", self.epochs_scratch)
        for name in ("lr_head", "lr_finetune", "lr_scratch"):
            value = getattr(self, name)
            check(0.0 < value < 1.0, f"{key}.{name}", "must be in (0, 1)", value)
        check(self.patience >= 1, f"{key}.patience", "must be >= 1", self.patience)
        check(self.lr_patience >= 1, f"{key}.lr_patience", "must be >= 1", self.lr_patience)
        check(0.0 < self.lr_factor < 1.0, f"{key}.lr_factor", "must be in (0, 1)", self.lr_factor)
        check(0.0 <= self.label_smoothing < 0.5, f"{key}.label_smoothing", "must be in [0, 0.5)", self.label_smoothing)

    @property
    def weights_mode(self) -> Weights | None:
        """``train.weights`` as a :class:`Weights` mode, or ``None`` for a weights-file path."""
        return Weights(self.weights) if self.weights in tuple(Weights) else None

    def validate_weights(self, key: str, backbones: list[str]) -> None:
        """Check a weights-file path exists for every trained backbone (not for every registered one)."""
        if self.weights_mode is not None:
            return
        for name in backbones:
            path = Path(self.weights.format(backbone=name))
            check(
                path.is_file(),
                f"{key}.weights",
                f"is neither {', '.join(Weights)} nor an existing weights file ({path} not found)",
                self.weights,
            )


@dataclass(frozen=True)
class BackboneConfig:
    """Settings of one backbone's section (mobilenet:, vgg19:, ...)."""

    image_size: int
    unfreeze: int
    dropout: float

    def validate(self, key: str) -> None:  # noqa: D102
        spec = BACKBONES[key]
        check(
            self.image_size >= spec.min_size,
            f"{key}.image_size",
            f"must be >= {spec.min_size} px for {key}",
            self.image_size,
        )
        check(self.unfreeze >= 0, f"{key}.unfreeze", "must be >= 0", self.unfreeze)
        check(0.0 <= self.dropout < 1.0, f"{key}.dropout", "must be in [0, 1)", self.dropout)


@dataclass(frozen=True)
class EvaluateConfig:
    """Test-set evaluation settings."""

    tta: int
    bootstrap: int
    confidence: float
    seed: int
    malignant: list[str]

    def validate(self, key: str) -> None:  # noqa: D102
        check(all(self.malignant), f"{key}.malignant", "must not hold empty class names", self.malignant)
        check(0 <= self.tta <= 7, f"{key}.tta", "must be in [0, 7] (the square's other symmetries)", self.tta)
        check(self.bootstrap >= 1000, f"{key}.bootstrap", "must be >= 1000 resamples", self.bootstrap)
        check(0.5 < self.confidence < 1.0, f"{key}.confidence", "must be in (0.5, 1)", self.confidence)
        check(self.seed >= 0, f"{key}.seed", "must be >= 0 (it seeds NumPy's generator)", self.seed)


@dataclass(frozen=True)
class ExportConfig:
    """Deployment export settings."""

    quantization: Quantization


# The sections of params.yaml besides the backbones' own, in file order, with their types.
SECTIONS = {
    "model": str,
    "backbones": list[str],
    "seeds": list[int],
    "data": DataConfig,
    "split": SplitConfig,
    "augment": AugmentConfig,
    "preview": PreviewConfig,
    "train": TrainConfig,
    "runtime": RuntimeConfig,
    "evaluate": EvaluateConfig,
    "export": ExportConfig,
}


@dataclass(frozen=True)
class Config:
    """The whole of params.yaml."""

    model: str
    backbones: list[str]
    seeds: list[int]
    data: DataConfig
    split: SplitConfig
    augment: AugmentConfig
    preview: PreviewConfig
    train: TrainConfig
    runtime: RuntimeConfig
    evaluate: EvaluateConfig
    export: ExportConfig
    backbone: dict[str, BackboneConfig]

    def validate(self) -> None:
        """Check every section and the cross-section constraints; raise ConfigError naming the key."""
        for key, hint in SECTIONS.items():
            if hasattr(hint, "validate"):
                getattr(self, key).validate(key)
        check(bool(self.backbones), "backbones", "must list at least one backbone", self.backbones)
        for name in self.backbones:
            check(
                name in BACKBONES,
                "backbones",
                f"lists unknown backbone {name!r}; known: {', '.join(BACKBONES)}",
                self.backbones,
            )
            check(name in self.backbone, name, f"section missing: add `{name}: {{image_size: ...}}`", None)
            self.backbone[name].validate(name)
        check(len(set(self.backbones)) == len(self.backbones), "backbones", "has duplicates", self.backbones)
        check(self.model in self.backbones, "model", f"must be one of backbones {self.backbones}", self.model)
        check(bool(self.seeds), "seeds", "must list at least one seed", self.seeds)
        check(len(set(self.seeds)) == len(self.seeds), "seeds", "has duplicates", self.seeds)
        check(min(self.seeds) >= 0, "seeds", "must be >= 0 (they seed NumPy and TensorFlow generators)", self.seeds)
        self.train.validate_weights("train", self.backbones)


def parse_config(raw: dict) -> Config:
    """Build and validate a :class:`Config` from the parsed params.yaml mapping.

    Args:
        raw: The mapping loaded from params.yaml.

    Returns:
        The validated configuration.

    Raises:
        ConfigError: On a missing or unknown key, a wrong type or an invalid value; the message names the key.

    """
    if not isinstance(raw, dict):
        raise ConfigError("params.yaml must be a mapping of sections")
    raw = dict(raw)
    values = {}
    for key, hint in SECTIONS.items():
        if key not in raw:
            raise ConfigError(f"params.yaml: {key} is required (params.yaml holds every default)")
        values[key] = coerce(raw.pop(key), hint, key)
    sections = {}
    for key, value in raw.items():
        if key not in BACKBONES:
            raise ConfigError(
                f"params.yaml: unknown top-level key {key!r} (sections: {', '.join(SECTIONS)}, or a backbone: "
                f"{', '.join(BACKBONES)})"
            )
        sections[key] = coerce(value, BackboneConfig, key)
    config = Config(backbone=sections, **values)
    config.validate()
    return config


def load_config(path: str | Path = "params.yaml") -> Config:
    """Read, type-check and validate params.yaml.

    Args:
        path: The params file.

    Returns:
        The validated configuration.

    Raises:
        ConfigError: If the file is missing, not YAML, or invalid; the message names the key.

    """
    path = Path(path)
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=UniqueKeyLoader)  # noqa: S506 (a safe loader)
    except FileNotFoundError:
        raise ConfigError(f"{path} not found: run from the repository root") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} cannot be read ({exc})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    return parse_config(raw)
