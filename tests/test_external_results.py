"""External test sets (what is scored, what is left out and why) and subgroups (levels, gaps, operating points)."""

import numpy as np
import pytest

from .test_subgroups import _scored as scored


def test_the_drop_compares_the_same_classes_and_its_interval_covers_it():
    from skinlesion.evaluation.external_results import balanced_accuracy_drop
    from skinlesion.stats.clinical import Scored
    from skinlesion.stats.intervals import Resampling

    rng = np.random.default_rng(1)
    classes = ["mel", "nv", "vasc"]
    internal = scored(rng, 300, classes, 0.85)
    external = scored(rng, 200, classes, 0.6)
    external = Scored(classes, external.y % 2, external.probs, external.groups)  # no vasc in the external set
    drop = balanced_accuracy_drop(internal, external, Resampling(1000, 0.95, 0))
    assert drop["classes"] == ["mel", "nv"]
    assert drop["value"] == pytest.approx(drop["internal"] - drop["external"])
    assert drop["low"] < drop["value"] < drop["high"] and drop["low"] > 0
