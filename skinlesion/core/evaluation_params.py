"""The evaluation sections of params.yaml: scoring (``evaluate``), external test sets (``external``), export."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from skinlesion.core.modes import ExternalSource, PrimaryMetric, Quantization
from skinlesion.core.typed import check


@dataclass(frozen=True)
class OperatingPointsConfig:
    """The malignant-vs-benign (and melanoma-vs-rest) operating points the report fixes on validation."""

    specificity: list[float]
    sensitivity: list[float]

    def validate(self, key: str) -> None:  # noqa: D102
        for name in ("specificity", "sensitivity"):
            targets = getattr(self, name)
            rule = "must be distinct targets in (0, 1)"
            check(all(0 < t < 1 for t in targets) and len(set(targets)) == len(targets), f"{key}.{name}", rule, targets)


@dataclass(frozen=True)
class EvaluateConfig:
    """Scoring settings: intervals, tests, clinical views, subgroups."""

    tta: int
    bootstrap: int
    confidence: float
    seed: int
    alpha: float
    malignant: list[str]
    operating_points: OperatingPointsConfig
    target_specificity: float
    subgroups: list[str]
    subgroup_bins: list[float]
    min_subgroup: int
    primary_subgroup: str
    primary_metric: PrimaryMetric
    table1: list[str]
    conformal_alpha: list[float]
    referral_error: float
    shift_severities: list[int]

    def validate(self, key: str) -> None:  # noqa: D102
        check(all(self.malignant), f"{key}.malignant", "must not hold empty class names", self.malignant)
        check(0 <= self.tta <= 7, f"{key}.tta", "must be in [0, 7] (the square's other symmetries)", self.tta)
        check(self.bootstrap >= 1000, f"{key}.bootstrap", "must be >= 1000 resamples", self.bootstrap)
        check(0.5 < self.confidence < 1.0, f"{key}.confidence", "must be in (0.5, 1)", self.confidence)
        check(self.seed >= 0, f"{key}.seed", "must be >= 0 (it seeds NumPy's generator)", self.seed)
        check(0 < self.alpha < 0.5, f"{key}.alpha", "must be in (0, 0.5) (the tests' family-wise level)", self.alpha)
        self.operating_points.validate(f"{key}.operating_points")
        rule = "must be in (0.5, 1) (the specificity the operating threshold is fixed for on validation)"
        check(0.5 < self.target_specificity < 1.0, f"{key}.target_specificity", rule, self.target_specificity)
        check(all(self.subgroups), f"{key}.subgroups", "must not hold empty column names", self.subgroups)
        rule = "names a column twice: keep one"
        check(len(set(self.subgroups)) == len(self.subgroups), f"{key}.subgroups", rule, self.subgroups)
        edges = self.subgroup_bins
        rule = "must be finite numbers (.nan and .inf make no age band)"
        check(all(math.isfinite(e) for e in edges), f"{key}.subgroup_bins", rule, edges)
        check(edges == sorted(set(edges)), f"{key}.subgroup_bins", "must be increasing bin edges", edges)
        check(self.min_subgroup >= 1, f"{key}.min_subgroup", "must be >= 1", self.min_subgroup)
        rule = f"must be '' or one of {key}.subgroups ({', '.join(self.subgroups) or 'none'})"
        primary = self.primary_subgroup
        check(not primary or primary in self.subgroups, f"{key}.primary_subgroup", rule, primary)
        check(all(self.table1), f"{key}.table1", "must not hold empty column names", self.table1)
        levels = self.conformal_alpha
        rule = "must be distinct miscoverage levels in (0, 0.5)"
        check(
            all(0 < a < 0.5 for a in levels) and len(set(levels)) == len(levels), f"{key}.conformal_alpha", rule, levels
        )
        rule = "must be in (0, 1) (the error rate among accepted validation images)"
        check(0 < self.referral_error < 1, f"{key}.referral_error", rule, self.referral_error)
        shifts = self.shift_severities
        rule = "must be distinct severities from 1 to 5 (empty: no shift test)"
        check(
            all(1 <= v <= 5 for v in shifts) and len(set(shifts)) == len(shifts),
            f"{key}.shift_severities",
            rule,
            shifts,
        )


@dataclass(frozen=True)
class ExternalConfig:
    """One external test set (an entry of ``external:``): images from another source, never trained on.

    The map is empty in params.yaml; its entries are the user's, so ``classes`` and ``metadata`` may be
    left out (none).

    Attributes:
        source: How the set is given.
        path: The folder, archive or ``.npz``.
        classes: The set's labels mapped onto training classes (``MEL: mel``); unmapped labels are kept.
        metadata: A metadata CSV inside the source (a folder or archive), for subgroups; '' for none.
    """

    source: ExternalSource
    path: str
    classes: dict[str, str] = field(default_factory=dict)
    metadata: str = ""

    def validate(self, key: str) -> None:  # noqa: D102
        check(bool(self.path), f"{key}.path", f"must name the {self.source} of the external set", self.path)
        check(
            not self.metadata or self.source != ExternalSource.NPZ,
            f"{key}.metadata",
            "must be '' for an npz source (no file travels with it)",
            self.metadata,
        )
        check(all(self.classes.values()), f"{key}.classes", "must map labels to class names", self.classes)


@dataclass(frozen=True)
class ExportConfig:
    """Deployment export settings."""

    quantization: Quantization
