"""Scoring one run: test-time augmentation views and classes only the test split has."""

import numpy as np
import pytest

from skinlesion.evaluation.evaluate import tta_views
from skinlesion.stats.metrics import (
    classification_metrics,
)

from .test_metrics import onehot_probs


def test_tta_views_are_the_distinct_symmetries_of_the_square():
    images = np.random.default_rng(0).integers(0, 256, (2, 5, 5, 3))
    views = tta_views(images, 7)
    assert len(views) == 8 and views[0] is images
    flat = {v.tobytes() for v in views}
    assert len(flat) == 8  # no view repeats another (nor the original)
    for v in views:  # each is a rearrangement of the same pixels
        np.testing.assert_array_equal(np.sort(v.reshape(2, -1, 3), axis=1), np.sort(images.reshape(2, -1, 3), axis=1))
    with pytest.raises(ValueError, match="at most 7"):
        tta_views(images, 8)


def test_a_class_only_in_test_counts_as_never_predicted():
    from skinlesion.evaluation.evaluate import align_labels

    classes, y = align_labels(["b", "zz", "a", "zz"], ["a", "b"])
    assert classes == ["a", "b", "zz"] and y.tolist() == [1, 2, 0, 2]
    probs = np.pad(onehot_probs([1, 0, 0, 1], 2), ((0, 0), (0, 1)))  # the model has no column for zz
    m = classification_metrics(y, probs, 10)
    # Recall: a 1/1, b 1/1, zz 0/2 -> balanced accuracy 2/3 (zz is not dropped).
    assert m["balanced_accuracy"] == pytest.approx(2 / 3)
