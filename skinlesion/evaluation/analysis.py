"""What the evaluation's statistics take from params.yaml, read once into the objects they use."""

from __future__ import annotations

from dataclasses import dataclass

from skinlesion.core.config import Config
from skinlesion.stats.intervals import Resampling
from skinlesion.stats.subgroups import SubgroupRule
from skinlesion.stats.thresholds import Targets
from skinlesion.uncertainty.rule import UncertaintyRule


@dataclass(frozen=True)
class MetadataColumns:
    """How images are looked up in a metadata CSV and broken down into subgroups.

    Attributes:
        id_column: The column that holds the image file name without extension (``data.metadata_id_column``).
        group_by: The lesion column (``split.group_by``; '' for none).
        subgroups: The columns broken down (``evaluate.subgroups``).
        bins: Edges that bin a numeric column (``evaluate.subgroup_bins``).
    """

    id_column: str
    group_by: str
    subgroups: list[str]
    bins: list[float]


@dataclass(frozen=True)
class Analysis:
    """Everything aggregate's statistics read from the params.

    Attributes:
        resampling: How every interval and resampling test is drawn.
        alpha: The tests' family-wise level (``evaluate.alpha``).
        malignant: Class names counted as malignant (``evaluate.malignant``).
        targets: The operating points (``evaluate.operating_points``).
        subgroup: How a subgroup is scored.
        metadata: How metadata is read and broken down.
        uncertainty: How the conformal sets and the referral rule are calibrated.
    """

    resampling: Resampling
    alpha: float
    malignant: list[str]
    targets: Targets
    subgroup: SubgroupRule
    metadata: MetadataColumns
    uncertainty: UncertaintyRule


def analysis_of(config: Config) -> Analysis:
    """Read the params the statistics use, once."""
    cfg = config.evaluate
    resampling = Resampling.from_params(cfg)
    points = cfg.operating_points
    return Analysis(
        resampling=resampling,
        alpha=cfg.alpha,
        malignant=cfg.malignant,
        targets=Targets(tuple(points.specificity), tuple(points.sensitivity)),
        subgroup=SubgroupRule(
            cfg.malignant, cfg.target_specificity, cfg.min_subgroup, resampling, cfg.alpha, cfg.primary_subgroup
        ),
        metadata=MetadataColumns(
            config.data.metadata_id_column, config.split.group_by, cfg.subgroups, cfg.subgroup_bins
        ),
        uncertainty=UncertaintyRule(
            tuple(cfg.conformal_alpha),
            cfg.referral_error,
            cfg.malignant,
            cfg.target_specificity,
            resampling,
            tuple(cfg.shift_severities),
        ),
    )
