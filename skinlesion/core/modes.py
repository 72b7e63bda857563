"""The closed sets of values a params key or a training log may take, each spelt once.

String enums compare equal to their values, so ``config.train.precision == "float32"`` and JSON files
(which hold the plain value) keep working; params validation lists the members when a value is unknown.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class Source(StrEnum):
    """``data.source``: where the images come from (the fetch stage)."""

    SYNTHETIC = "synthetic"  # the built-in generator: no network
    FOLDER = "folder"  # a class-per-folder tree
    ZIP = "zip"  # a .zip or .tar.* archive of such a tree
    KAGGLE = "kaggle"  # a Kaggle data set through kagglehub
    DERMAMNIST = "dermamnist"  # MedMNIST's official (image-level) split
    DERMAMNIST_C = "dermamnist_c"  # DermaMNIST-C (corrected, Abhishek et al.): the same images re-split by lesion


class ExternalSource(StrEnum):
    """``external.<name>.source``: how an external test set is given."""

    FOLDER = "folder"  # a class-per-folder tree (split folders, if any, are merged)
    ZIP = "zip"  # a .zip or .tar.* archive of such a tree
    NPZ = "npz"  # a MedMNIST-format .npz (DermaMNIST's classes); every split in it is used


class Auto(StrEnum):
    """A param whose value follows another (``train.lr_finetune: auto`` follows ``train.weights``)."""

    AUTO = "auto"


class PrimaryMetric(StrEnum):
    """``evaluate.primary_metric``: the pre-specified primary endpoint (a proportion, so its precision is planned)."""

    BALANCED_ACCURACY = "balanced_accuracy"  # the mean recall over classes: each diagnosis counts the same
    ACCURACY = "accuracy"  # the share of images right: dominated by the commonest class (nevi)


class Weights(StrEnum):
    """``train.weights`` besides a weights-file path."""

    IMAGENET = "imagenet"  # pretrained: transfer learning
    NONE = "none"  # random init, frozen backbone: the fast offline demo
    SCRATCH = "scratch"  # random init, every layer trained: the honest offline baseline


class ClassWeight(StrEnum):
    """``train.class_weight``."""

    BALANCED = "balanced"  # inversely proportional to class frequency in the training split
    NONE = "none"


class Precision(StrEnum):
    """``train.precision``: Keras dtype policies a run may train under."""

    FLOAT32 = "float32"
    MIXED_FLOAT16 = "mixed_float16"


class JitCompile(StrEnum):
    """``train.jit_compile``: XLA compilation of the train step."""

    AUTO = "auto"  # Keras decides: XLA on GPUs when every layer supports it, none on CPUs
    ALWAYS = "always"
    NEVER = "never"

    @property
    def keras(self) -> str | bool:
        """The value of Keras' ``compile(jit_compile=...)``."""
        return {JitCompile.AUTO: "auto", JitCompile.ALWAYS: True, JitCompile.NEVER: False}[self]


class Distribute(StrEnum):
    """``runtime.distribute``: the ``tf.distribute`` strategy of training."""

    AUTO = "auto"  # MirroredStrategy over the local GPUs when there are several
    NONE = "none"  # the default device
    MULTIWORKER = "multiworker"  # MultiWorkerMirroredStrategy over the machines TF_CONFIG lists


class Quantization(StrEnum):
    """``export.quantization``: TFLite weight quantisation."""

    NONE = "none"  # float32
    FLOAT16 = "float16"  # half-size weights, float compute
    DYNAMIC_RANGE = "dynamic_range"  # int8 weights, quarter size


class Split(StrEnum):
    """The three splits, in the order the split stage writes them: train, validation (every choice), test."""

    TRAIN = "train"
    VAL = "val"  # the headline run, temperature and thresholds are chosen here
    TEST = "test"  # locked: it only reports


class FoldPart(StrEnum):
    """The three image lists of a cross-validation fold (``data/folds/<fold>/<part>.csv``)."""

    TRAIN = "train"  # what the fold's model trains on: the other folds, less its inner validation
    VAL = "val"  # its inner validation (early stopping, temperature), carved, grouped, from the other folds
    HELD_OUT = "held_out"  # the fold itself, which its model predicts


class Pick(StrEnum):
    """``model``'s rules besides a backbone's name (its best run) and ``ensemble-<backbone>`` (its seeds averaged)."""

    AUTO = "auto"  # the candidate with the best validation balanced accuracy
    ALL_BACKBONES = "ensemble-all"  # every run of every backbone averaged


# ``ensemble-<backbone>``: the ``model`` value of a backbone's seed ensemble.
ENSEMBLE_PREFIX = "ensemble-"


class Phase(IntEnum):
    """A training phase; its value is what the training log records and part of every derived seed."""

    HEAD = 0  # backbone frozen, head trained
    FINETUNE = 1  # top layers unfrozen, BatchNorm frozen, lower learning rate
    SCRATCH = 2  # weights=scratch: every layer and BatchNorm trained from random init, one phase

    @property
    def label(self) -> str:
        """The phase's name in checkpoints, history rows and timings."""
        return self.name.lower()
