"""Typed, validated configuration read once from params.yaml.

Every stage calls :func:`load_config` in its ``main()`` and passes plain values on to library
functions, which never open params.yaml themselves. Unknown keys, wrong types and out-of-range values
raise :class:`~skinlesion.core.errors.ConfigError` naming the key, before any work starts.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from skinlesion.core.backbones import BACKBONES
from skinlesion.core.errors import ConfigError

SOURCES = ("synthetic", "folder", "zip", "kaggle", "dermamnist", "dermamnist_c")
DERMAMNIST_SIZES = (28, 64, 128, 224)
DERMAMNIST_C_SIZES = (28, 224)  # the resolutions DermaMNIST-C is published at


@dataclass(frozen=True)
class SyntheticConfig:
    """Settings of the built-in synthetic dermoscopy generator."""

    seed: int = 0
    n_images: int = 900
    image_size: int = 64

    def validate(self, key: str) -> None:  # noqa: D102
        _check(self.n_images >= 50, f"{key}.n_images", "must be at least 50", self.n_images)
        _check(32 <= self.image_size <= 1024, f"{key}.image_size", "must be in [32, 1024]", self.image_size)


@dataclass(frozen=True)
class DataConfig:
    """Where the images come from (the fetch stage)."""

    source: str = "synthetic"
    path: str = "data/external"
    kaggle_dataset: str = "vinayjayanti/skin-lesion-image-classification"
    dermamnist_size: int = 28
    metadata: str = "data/no-metadata.csv"
    metadata_id_column: str = "image_id"
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)

    def validate(self, key: str) -> None:  # noqa: D102
        _check(self.source in SOURCES, f"{key}.source", f"must be one of {', '.join(SOURCES)}", self.source)
        _check(
            self.dermamnist_size in DERMAMNIST_SIZES,
            f"{key}.dermamnist_size",
            f"must be one of {DERMAMNIST_SIZES}",
            self.dermamnist_size,
        )
        _check(
            bool(self.metadata),
            f"{key}.metadata",
            "must name a CSV (DVC tracks its content); use data/no-metadata.csv for none",
            self.metadata,
        )
        if self.source == "dermamnist_c":
            _check(
                self.dermamnist_size in DERMAMNIST_C_SIZES,
                f"{key}.dermamnist_size",
                f"must be one of {DERMAMNIST_C_SIZES} for source=dermamnist_c",
                self.dermamnist_size,
            )
        if self.source in ("folder", "zip"):
            _check(bool(self.path), f"{key}.path", f"must name a folder or archive for source={self.source}", "")
        if self.source == "kaggle":
            _check(
                self.kaggle_dataset.count("/") in (1, 3),
                f"{key}.kaggle_dataset",
                "must look like owner/dataset or owner/dataset/versions/N",
                self.kaggle_dataset,
            )
        self.synthetic.validate(f"{key}.synthetic")


@dataclass(frozen=True)
class SplitConfig:
    """How images are validated and divided into train/val/test."""

    seed: int = 0
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    group_by: str = ""
    allow_missing_groups: bool = False
    drop_label_conflicts: bool = True

    def validate(self, key: str) -> None:  # noqa: D102
        for name in ("val_fraction", "test_fraction"):
            value = getattr(self, name)
            _check(0.0 < value < 0.5, f"{key}.{name}", "must be in (0, 0.5)", value)


@dataclass(frozen=True)
class AugmentConfig:
    """Random augmentation used in training and drawn by augment-preview (one implementation)."""

    horizontal_flip: bool = True
    vertical_flip: bool = True
    rotation: float = 0.5
    zoom: float = 0.1
    translation: float = 0.05
    brightness: float = 0.1
    contrast: float = 0.1

    def validate(self, key: str) -> None:  # noqa: D102
        _check(
            0.0 <= self.rotation <= 1.0,
            f"{key}.rotation",
            "must be in [0, 1] (fraction of 360°)",
            self.rotation,
        )
        for name in ("zoom", "translation", "brightness", "contrast"):
            value = getattr(self, name)
            _check(0.0 <= value < 1.0, f"{key}.{name}", "must be in [0, 1)", value)

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

    per_class: int = 2
    views: int = 5

    def validate(self, key: str) -> None:  # noqa: D102
        _check(self.per_class >= 1, f"{key}.per_class", "must be >= 1", self.per_class)
        _check(self.views >= 1, f"{key}.views", "must be >= 1", self.views)


# Keras dtype policies a run may train under (bfloat16 variants would suit TPUs; not offered yet).
PRECISIONS = ("float32", "mixed_float16")
# XLA compilation of the train step -> Keras' compile(jit_compile=...): auto lets Keras decide (XLA on
# GPUs when every layer supports it, none on CPUs; without jit the JAX backend even runs eagerly).
JIT_COMPILE = {"auto": "auto", "always": True, "never": False}
# none: default device; auto: MirroredStrategy over the local GPUs when there are several;
# multiworker: MultiWorkerMirroredStrategy over the machines that TF_CONFIG lists.
DISTRIBUTE = ("auto", "none", "multiworker")


@dataclass(frozen=True)
class RuntimeConfig:
    """Speed-only settings: they change how fast results come, never the results, so no stage depends on them."""

    workers: int = 0
    in_memory_mb: int = 1024
    distribute: str = "auto"

    def validate(self, key: str) -> None:  # noqa: D102
        _check(self.workers >= 0, f"{key}.workers", "must be >= 0 (0 = all cores)", self.workers)
        _check(self.in_memory_mb >= 0, f"{key}.in_memory_mb", "must be >= 0 (0 = always stream)", self.in_memory_mb)
        _check(
            self.distribute in DISTRIBUTE,
            f"{key}.distribute",
            f"must be one of {', '.join(DISTRIBUTE)}",
            self.distribute,
        )


# train.weights besides a weights-file path: pretrained, frozen random backbone (fast offline demo),
# and random init with every layer trained (the honest offline baseline).
WEIGHTS = ("imagenet", "none", "scratch")


@dataclass(frozen=True)
class TrainConfig:
    """Training settings shared by every backbone."""

    batch_size: int = 32
    epochs_head: int = 10
    epochs_finetune: int = 3
    lr_head: float = 1e-3
    lr_finetune: float = 1e-4
    patience: int = 3
    lr_patience: int = 2
    lr_factor: float = 0.5
    class_weight: str = "balanced"
    label_smoothing: float = 0.0
    weights: str = "imagenet"
    epochs_scratch: int = 40
    lr_scratch: float = 1e-3
    augment_head: bool = False
    precision: str = "float32"
    jit_compile: str = "auto"

    def validate(self, key: str) -> None:  # noqa: D102
        _check(self.batch_size >= 1, f"{key}.batch_size", "must be >= 1", self.batch_size)
        _check(self.epochs_head >= 1, f"{key}.epochs_head", "must be >= 1", self.epochs_head)
        _check(self.epochs_finetune >= 0, f"{key}.epochs_finetune", "must be >= 0", self.epochs_finetune)
        _check(self.epochs_scratch >= 1, f"{key}.epochs_scratch", "must be >= 1", self.epochs_scratch)
        for name in ("lr_head", "lr_finetune", "lr_scratch"):
            value = getattr(self, name)
            _check(0.0 < value < 1.0, f"{key}.{name}", "must be in (0, 1)", value)
        _check(self.patience >= 1, f"{key}.patience", "must be >= 1", self.patience)
        _check(self.lr_patience >= 1, f"{key}.lr_patience", "must be >= 1", self.lr_patience)
        _check(0.0 < self.lr_factor < 1.0, f"{key}.lr_factor", "must be in (0, 1)", self.lr_factor)
        _check(
            self.class_weight in ("balanced", "none"),
            f"{key}.class_weight",
            "must be balanced or none",
            self.class_weight,
        )
        _check(
            0.0 <= self.label_smoothing < 0.5,
            f"{key}.label_smoothing",
            "must be in [0, 0.5)",
            self.label_smoothing,
        )
        _check(
            self.precision in PRECISIONS, f"{key}.precision", f"must be one of {', '.join(PRECISIONS)}", self.precision
        )
        _check(
            self.jit_compile in JIT_COMPILE,
            f"{key}.jit_compile",
            f"must be one of {', '.join(JIT_COMPILE)}",
            self.jit_compile,
        )

    def validate_weights(self, key: str, backbones: list[str]) -> None:
        """Check a weights-file path exists for every trained backbone (not for every registered one)."""
        if self.weights in WEIGHTS:
            return
        for name in backbones:
            path = Path(self.weights.format(backbone=name))
            _check(
                path.is_file(),
                f"{key}.weights",
                f"is neither {', '.join(WEIGHTS)} nor an existing weights file ({path} not found)",
                self.weights,
            )


@dataclass(frozen=True)
class BackboneConfig:
    """Settings of one backbone's section (mobilenet:, vgg19:, ...)."""

    image_size: int
    unfreeze: int = 10
    dropout: float = 0.2

    def validate(self, key: str) -> None:  # noqa: D102
        spec = BACKBONES[key]
        _check(
            self.image_size >= spec.min_size,
            f"{key}.image_size",
            f"must be >= {spec.min_size} px for {key}",
            self.image_size,
        )
        _check(self.unfreeze >= 0, f"{key}.unfreeze", "must be >= 0", self.unfreeze)
        _check(0.0 <= self.dropout < 1.0, f"{key}.dropout", "must be in [0, 1)", self.dropout)


# Malignant classes under the names of HAM10000/ISIC (dx codes) and of common class-folder data sets.
DEFAULT_MALIGNANT = (
    "mel",
    "bcc",
    "akiec",
    "scc",
    "melanoma",
    "basal cell carcinoma",
    "squamous cell carcinoma",
    "actinic keratosis",
)


@dataclass(frozen=True)
class EvaluateConfig:
    """Test-set evaluation settings."""

    tta: int = 0
    bootstrap: int = 1000
    confidence: float = 0.95
    seed: int = 0
    malignant: list[str] = field(default_factory=lambda: list(DEFAULT_MALIGNANT))

    def validate(self, key: str) -> None:  # noqa: D102
        _check(all(self.malignant), f"{key}.malignant", "must not hold empty class names", self.malignant)
        _check(0 <= self.tta <= 7, f"{key}.tta", "must be in [0, 7] (the square's other symmetries)", self.tta)
        _check(self.bootstrap >= 1000, f"{key}.bootstrap", "must be >= 1000 resamples", self.bootstrap)
        _check(0.5 < self.confidence < 1.0, f"{key}.confidence", "must be in (0.5, 1)", self.confidence)


@dataclass(frozen=True)
class ExportConfig:
    """Deployment export settings."""

    quantization: str = "float16"

    def validate(self, key: str) -> None:  # noqa: D102
        _check(
            self.quantization in ("none", "float16", "dynamic_range"),
            f"{key}.quantization",
            "must be none, float16 or dynamic_range",
            self.quantization,
        )


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
        """Check cross-section constraints; raise ConfigError naming the key."""
        self.data.validate("data")
        self.split.validate("split")
        self.augment.validate("augment")
        self.preview.validate("preview")
        self.train.validate("train")
        self.runtime.validate("runtime")
        self.evaluate.validate("evaluate")
        self.export.validate("export")
        _check(bool(self.backbones), "backbones", "must list at least one backbone", self.backbones)
        for name in self.backbones:
            _check(
                name in BACKBONES,
                "backbones",
                f"lists unknown backbone {name!r}; known: {', '.join(BACKBONES)}",
                self.backbones,
            )
            _check(name in self.backbone, name, f"section missing: add `{name}: {{image_size: ...}}`", None)
            self.backbone[name].validate(name)
        _check(len(set(self.backbones)) == len(self.backbones), "backbones", "has duplicates", self.backbones)
        _check(self.model in self.backbones, "model", f"must be one of backbones {self.backbones}", self.model)
        _check(bool(self.seeds), "seeds", "must list at least one seed", self.seeds)
        _check(len(set(self.seeds)) == len(self.seeds), "seeds", "has duplicates", self.seeds)
        self.train.validate_weights("train", self.backbones)


def _check(ok: bool, key: str, rule: str, value: Any) -> None:
    if not ok:
        raise ConfigError(f"params.yaml: {key} {rule} (got {value!r})")


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Convert a YAML value to the annotated type, or raise ConfigError naming the key."""
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"params.yaml: {key} must be a mapping (got {value!r})")
        return _build(hint, value, key)
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise ConfigError(f"params.yaml: {key} must be a list (got {value!r})")
        return [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"params.yaml: {key} must be true or false (got {value!r})")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"params.yaml: {key} must be an integer (got {value!r})")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"params.yaml: {key} must be a number (got {value!r})")
        return float(value)
    if hint is str:
        if value is None:
            return ""
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"params.yaml: {key} must be a string (got {value!r})")
        return str(value)
    raise TypeError(f"unsupported config type {hint} for {key}")  # a bug in this module, not user input


def _build(cls: type, raw: dict, key: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ConfigError(f"params.yaml: unknown key {key}.{unknown[0]} (known: {', '.join(sorted(names))})")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in raw:
            kwargs[f.name] = _coerce(raw[f.name], hints[f.name], f"{key}.{f.name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"params.yaml: {key}.{f.name} is required")
    return cls(**kwargs)


def parse_config(raw: dict) -> Config:
    """Build and validate a :class:`Config` from the parsed params.yaml mapping.

    Args:
        raw: The mapping loaded from params.yaml.

    Returns:
        The validated configuration.

    Raises:
        ConfigError: On an unknown key, a wrong type or an invalid value; the message names the key.

    """
    if not isinstance(raw, dict):
        raise ConfigError("params.yaml must be a mapping of sections")
    raw = dict(raw)
    top = {
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
    values = {}
    for key, hint in top.items():
        if key in raw:
            values[key] = _coerce(raw.pop(key), hint, key)
        elif key in ("model", "backbones", "seeds"):
            raise ConfigError(f"params.yaml: {key} is required")
        else:
            values[key] = hint()
    sections = {}
    for key, value in raw.items():
        if key not in BACKBONES:
            raise ConfigError(
                f"params.yaml: unknown top-level key {key!r} (sections: {', '.join(top)}, or a backbone: "
                f"{', '.join(BACKBONES)})"
            )
        sections[key] = _coerce(value, BackboneConfig, key)
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
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path} not found: run from the repository root") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    return parse_config(raw)


def as_dict(obj: Any) -> Any:
    """Return a JSON-ready copy of a config object (for saving the resolved config beside outputs)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: as_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {k: as_dict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [as_dict(v) for v in obj]
    return obj
