from itertools import product

import numpy as np
import pytest

from skinlesion.stats.resampling import (
    class_members,
    format_p,
    group_strata,
    grouped_resample,
    resample_counts,
    sign_flip_test,
    stratified_resample,
)


def test_class_members_lists_each_present_class_in_sorted_order():
    y = np.array([2, 0, 2, 5, 0])
    assert [m.tolist() for m in class_members(y)] == [[1, 4], [0, 2], [3]]


def test_stratified_resample_keeps_every_class_count_and_draws_within_class():
    y = np.array([0] * 50 + [1] * 3 + [2] * 7)
    rng = np.random.default_rng(0)
    rng.shuffle(y)
    for _ in range(200):
        idx = stratified_resample(y, rng)
        assert np.bincount(y[idx], minlength=3).tolist() == [50, 3, 7]
    # Class blocks come in sorted class order: position j is not row j's class (the old weighting bug).
    assert (y[idx] == np.sort(y)).all() and not (y[idx] == y).all()


def test_group_strata_assigns_each_group_its_majority_class_ties_to_the_smallest():
    y = np.array([0, 1, 1, 2, 2, 0, 3])
    groups = np.array(["a", "a", "a", "b", "b", "c", "d"])  # a: 1,1 vs 0 -> 1 ; c: 0 ; d: 3
    codes, stratum = group_strata(y, groups)
    assert codes.tolist() == [0, 0, 0, 1, 1, 2, 3] and stratum.tolist() == [1, 2, 0, 3]
    _, tie = group_strata(np.array([2, 1]), np.array([7, 7]))
    assert tie.tolist() == [1]


def _lesions(rng, per_class=(12, 5, 4)):
    """Labels and lesion ids: each lesion 1-3 images of one class, rows shuffled."""
    y, groups, g = [], [], 0
    for c, lesions in enumerate(per_class):
        for _ in range(lesions):
            size = rng.integers(1, 4)
            y += [c] * size
            groups += [g] * size
            g += 1
    order = rng.permutation(len(y))
    return np.array(y)[order], np.array(groups)[order]


def test_grouped_resample_draws_whole_lesions_and_keeps_each_class_lesion_count():
    rng = np.random.default_rng(1)
    y, groups = _lesions(rng)
    size = np.bincount(groups)
    for _ in range(100):
        idx = grouped_resample(y, groups, rng)
        drawn = groups[idx]
        # Every lesion appears with all of its images, as many times over: its image count is a multiple.
        times = np.bincount(drawn, minlength=len(size))
        assert np.all(times % size == 0)
        lesions_per_class = [int((times // size)[np.unique(groups[y == c])].sum()) for c in range(3)]
        assert lesions_per_class == [12, 5, 4]


def test_resample_counts_match_the_index_resamples():
    rng = np.random.default_rng(2)
    y, groups = _lesions(rng)
    counts = resample_counts(y, rng, 3000)
    for c in range(3):  # image level: every class keeps its count in every resample
        assert (counts[:, y == c].sum(axis=1) == (y == c).sum()).all()
    assert counts.mean() == pytest.approx(1.0) and counts.mean(axis=0) == pytest.approx(np.ones(len(y)), abs=0.1)
    grouped = resample_counts(y, rng, 3000, groups)
    for g in np.unique(groups):  # a lesion's images share their multiplicity
        assert (grouped[:, groups == g] == grouped[:, groups == g][:, :1]).all()
    # Same distribution as grouped_resample: the mean number of images per resample agrees.
    from_index = np.mean([len(grouped_resample(y, groups, rng)) for _ in range(1000)])
    assert grouped.sum(axis=1).mean() == pytest.approx(from_index, rel=0.03)


def _enumerated_p(values):
    observed = abs(values.sum())
    stats = [abs(np.dot(s, values)) for s in product((-1.0, 1.0), repeat=len(values))]
    return np.mean(np.array(stats) >= observed - 1e-12)


def test_sign_flip_p_is_exact_by_enumeration_when_small():
    rng = np.random.default_rng(3)
    values = rng.normal(0.3, 1.0, 11)
    result = sign_flip_test(values, resamples=9999, seed=0)
    assert result["method"] == "exact" and result["patterns"] == 2**11
    assert result["p"] == pytest.approx(_enumerated_p(values), abs=1e-15)
    assert result["floor"] == pytest.approx(2 / 2**11)
    # Zero contributions change nothing (they are not counted as units).
    assert sign_flip_test(np.r_[values, np.zeros(40)], resamples=9999, seed=0)["p"] == result["p"]


def test_sign_flip_with_groups_flips_whole_groups():
    rng = np.random.default_rng(4)
    values = rng.normal(0.2, 1.0, 30)
    groups = np.repeat(np.arange(10), 3)
    result = sign_flip_test(values, resamples=9999, seed=0, groups=groups)
    sums = values.reshape(10, 3).sum(axis=1)
    assert result["units"] == 10 and result["p"] == pytest.approx(_enumerated_p(sums), abs=1e-15)
    assert result["p"] != pytest.approx(sign_flip_test(values, resamples=9999, seed=0)["p"])


def test_sign_flip_monte_carlo_agrees_with_exact_and_uses_the_plus_one_convention():
    rng = np.random.default_rng(5)
    values = rng.normal(0.25, 1.0, 14)
    exact = sign_flip_test(values, resamples=9999, seed=0)
    mc = sign_flip_test(values, resamples=20000, seed=1, exact_limit=0)
    assert mc["method"] == "monte_carlo" and mc["floor"] == pytest.approx(1 / 20001)
    assert mc["p"] == pytest.approx(exact["p"], abs=0.01)
    assert mc["p"] * 20001 == pytest.approx(round(mc["p"] * 20001))
    extreme = sign_flip_test(np.full(200, 1.0), resamples=999, seed=0)
    assert extreme["p"] == pytest.approx(1 / 1000)  # never 0


def test_exact_sign_flip_keeps_its_level_under_the_null():
    rng = np.random.default_rng(6)
    p = np.array([sign_flip_test(rng.normal(0, 1, 10), resamples=9999, seed=0)["p"] for _ in range(600)])
    assert np.mean(p <= 0.05) <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / 600)
    assert np.mean(p <= 0.5) == pytest.approx(0.5, abs=0.07)


@pytest.mark.parametrize(
    ("p", "floor", "text"),
    [
        (1 / 1001, 1 / 1001, "< 0.001"),
        (1 / 1000, 1 / 1000, "≤ 0.001"),
        (1 / 201, 1 / 201, "< 0.005"),
        (1 / 10001, 1 / 10001, "< 0.0001"),
        (0.14785, 1 / 1001, "0.148"),
        (1.0, 1 / 1001, "1.00"),
        (0.0196, None, "0.0196"),
        (2 / 2**12, None, "0.000488"),
        (float("nan"), None, "n/a"),
    ],
)
def test_format_p(p, floor, text):
    assert format_p(p, floor) == text
