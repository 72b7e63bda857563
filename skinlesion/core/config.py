"""Typed, validated configuration read once from params.yaml.

Every stage calls :func:`load_config` in its ``main()`` and passes plain values on to library
functions, which never open params.yaml themselves. params.yaml is the only home of the defaults: the
dataclasses below have none, so a missing key is an error naming it, as are unknown keys, wrong types
and out-of-range values, before any work starts.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from skinlesion.core.backbones import BACKBONES
from skinlesion.core.data_params import NUMPY_MAX_SEED, CvConfig, DataConfig, SplitConfig
from skinlesion.core.errors import ConfigError
from skinlesion.core.evaluation_params import EvaluateConfig, ExportConfig, ExternalConfig
from skinlesion.core.modes import (
    ENSEMBLE_PREFIX,
    Auto,
    ClassWeight,
    Distribute,
    JitCompile,
    Pick,
    Precision,
    Split,
    Weights,
)
from skinlesion.core.typed import UniqueKeyLoader, check, coerce


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
    lr_finetune: float | Auto
    lr_finetune_random: float
    lr_finetune_pretrained: float
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
        for name in ("lr_head", "lr_finetune", "lr_finetune_random", "lr_finetune_pretrained", "lr_scratch"):
            value = getattr(self, name)
            if value != Auto.AUTO:
                check(0.0 < value < 1.0, f"{key}.{name}", "must be in (0, 1) or auto", value)
        check(self.patience >= 1, f"{key}.patience", "must be >= 1", self.patience)
        check(self.lr_patience >= 1, f"{key}.lr_patience", "must be >= 1", self.lr_patience)
        check(0.0 < self.lr_factor < 1.0, f"{key}.lr_factor", "must be in (0, 1)", self.lr_factor)
        check(0.0 <= self.label_smoothing < 0.5, f"{key}.label_smoothing", "must be in [0, 0.5)", self.label_smoothing)

    def resolved(self) -> TrainConfig:
        """The section with ``lr_finetune: auto`` resolved from ``weights`` (random init or pretrained).

        A step of Adam moves every unfrozen weight by about the learning rate, whatever the gradient: a rate
        tuned for a random backbone's nearly constant features is far too timid for pretrained ones, and the
        pretrained rate wrecks a random backbone (params.yaml gives both reasons).
        """
        if self.lr_finetune != Auto.AUTO:
            return self
        random = self.weights_mode in (Weights.NONE, Weights.SCRATCH)
        return replace(self, lr_finetune=self.lr_finetune_random if random else self.lr_finetune_pretrained)

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


# The sections of params.yaml besides the backbones' own, in file order, with their types.
SECTIONS = {
    "model": str,
    "backbones": list[str],
    "seeds": list[int],
    "data": DataConfig,
    "split": SplitConfig,
    "cv": CvConfig,
    "augment": AugmentConfig,
    "preview": PreviewConfig,
    "train": TrainConfig,
    "runtime": RuntimeConfig,
    "evaluate": EvaluateConfig,
    "external": dict[str, ExternalConfig],
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
    cv: CvConfig
    augment: AugmentConfig
    preview: PreviewConfig
    train: TrainConfig
    runtime: RuntimeConfig
    evaluate: EvaluateConfig
    external: dict[str, ExternalConfig]
    export: ExportConfig
    backbone: dict[str, BackboneConfig]

    def model_choices(self) -> list[str]:
        """What ``model`` may be: auto, a backbone, its ensemble (2+ seeds or cv), ``ensemble-all`` (2+ backbones)."""
        several = len(self.seeds) > 1 or self.cv.enabled
        ensembles = [ENSEMBLE_PREFIX + b for b in self.backbones] if several else []
        return [Pick.AUTO, *self.backbones, *ensembles, *([Pick.ALL_BACKBONES] if len(self.backbones) > 1 else [])]

    def validate(self) -> None:
        """Check every section and the cross-section constraints; raise ConfigError naming the key."""
        for key, hint in SECTIONS.items():
            if hasattr(hint, "validate"):
                getattr(self, key).validate(key)
        self._validate_external()
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
        check(self.model in self.model_choices(), "model", f"must be one of {self.model_choices()}", self.model)
        check(bool(self.seeds), "seeds", "must list at least one seed", self.seeds)
        check(len(set(self.seeds)) == len(self.seeds), "seeds", "has duplicates", self.seeds)
        check(min(self.seeds) >= 0, "seeds", "must be >= 0 (they seed NumPy and TensorFlow generators)", self.seeds)
        rule = (
            f"must be <= {NUMPY_MAX_SEED}: each seeds NumPy's legacy generator (keras.utils.set_random_seed), "
            "which takes at most 2**32 - 1"
        )
        check(max(self.seeds) <= NUMPY_MAX_SEED, "seeds", rule, self.seeds)
        self.train.validate_weights("train", self.backbones)

    def _validate_external(self) -> None:
        """Each external set's entry, and its name: one the project's own sets do not use."""
        for name, external in self.external.items():
            check(name.isidentifier(), "external", f"names a set {name!r}: use letters, digits and _", name)
            rule = (
                f"names a set {name!r}, a name of the project's own sets ({', '.join(Split)}): its results "
                "(subgroup chart, report rows) would overwrite theirs; rename the entry"
            )
            check(name.lower() not in tuple(Split), f"external.{name}", rule, name)
            external.validate(f"external.{name}")


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
    # Every stage sees the resolved rate, and a run's config.json records it.
    config = replace(config, train=config.train.resolved())
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
