"""What the prediction sets and the referral rule take from params.yaml (``evaluate``), read once."""

from __future__ import annotations

from dataclasses import dataclass

from skinlesion.stats.intervals import Resampling


@dataclass(frozen=True)
class UncertaintyRule:
    """The params the sets and referral read (``evaluate``).

    Attributes:
        alphas: Miscoverage levels of the prediction sets (``conformal_alpha``).
        referral_error: Target error among accepted validation images (``referral_error``).
        malignant: Class names counted as malignant (``malignant``).
        target_specificity: The malignant threshold's validation specificity (``target_specificity``).
        resampling: Intervals, and the seed of the one-image-per-lesion draw and of the shift test's noise.
        shift_severities: Severities of the corrupted copies of the test split (``shift_severities``; empty: off).
    """

    alphas: tuple[float, ...]
    referral_error: float
    malignant: list[str]
    target_specificity: float
    resampling: Resampling
    shift_severities: tuple[int, ...]
