import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as skm

from skinlesion.stats.architecture import (
    architecture_difference,
    balanced_accuracy,
    balanced_accuracy_weights,
    compare_architectures,
    compare_networks,
    holm,
    paired_balanced_accuracy,
    resampled_balanced_accuracy,
    sampling_covariance,
    seeds_sufficient,
)
from skinlesion.stats.intervals import Resampling
from skinlesion.stats.resampling import resample_counts, stratified_resample, stratum_units

RESAMPLING = Resampling(resamples=1000, confidence=0.95, seed=0)

# A HAM10000-like test split: 135 images over 7 classes, one class dominant.
COUNTS = (45, 25, 20, 15, 12, 10, 8)


def _world(rng, k_a, k_b, shift=0.0, seed_sd=0.35, interaction_sd=0.8):
    """One simulated test set and the per-run correctness of two architectures on it.

    P(run s of architecture X gets image i right) = logistic(0.4 + shift_X + class_c - difficulty_i +
    affinity_Xi + skill_s): the image difficulty is shared by every model, the affinity is what one
    architecture finds easier than the other (independent draws: equal on average over images), the skill
    varies with the seed (sd 0.35 on the logit scale: 0.05-0.07 in balanced accuracy). ``shift`` makes A
    better (0 = equal architectures).
    """
    y = np.repeat(np.arange(len(COUNTS)), COUNTS)
    n = len(y)
    base = 0.4 + rng.normal(0, 0.6, len(COUNTS))[y] - rng.normal(0, 1.5, n)

    def runs(k, mu):
        logit = base + mu + rng.normal(0, interaction_sd, n) + rng.normal(0, seed_sd, (k, 1))
        return rng.random((k, n)) < 1 / (1 + np.exp(-logit))

    return y, runs(k_a, shift), runs(k_b, 0.0)


def _answers(y, correct):
    """Predictions that are right exactly where ``correct`` says (wrong: the next class)."""
    return np.where(correct, y, (y + 1) % (y.max() + 1))


def test_balanced_accuracy_is_sklearns():
    rng = np.random.default_rng(0)
    y, a, _ = _world(rng, 3, 1)
    rng.shuffle(y)
    for run in a:
        assert balanced_accuracy(y, run) == pytest.approx(skm.balanced_accuracy_score(y, _answers(y, run)))
    assert balanced_accuracy_weights(y).sum() == pytest.approx(1.0)


def test_resampled_balanced_accuracy_uses_the_rows_it_picked():
    rng = np.random.default_rng(1)
    y, a, _ = _world(rng, 2, 1)
    order = rng.permutation(len(y))
    y, a = y[order], a[:, order]
    idx = np.stack([stratified_resample(y, rng) for _ in range(20)])
    counts = np.stack([np.bincount(i, minlength=len(y)) for i in idx])
    got = resampled_balanced_accuracy(y, a, counts)
    want = [[skm.balanced_accuracy_score(y[i], _answers(y, run)[i]) for run in a] for i in idx]
    assert got == pytest.approx(np.array(want))


def test_sampling_covariance_is_the_bootstrap_covariance_without_monte_carlo_noise():
    rng = np.random.default_rng(2)
    y, a, b = _world(rng, 2, 2)
    runs = np.vstack([a, b])
    cov = sampling_covariance(y, runs)
    # Balanced accuracy is a stratified mean: its covariance is sum_c cov_c / (C^2 n_c), unbiased cov_c.
    by_class = sum(np.cov(runs[:, y == c].astype(float)) / len(COUNTS) ** 2 / n for c, n in enumerate(COUNTS))
    assert cov == pytest.approx(by_class, rel=1e-9)
    # ... and the bootstrap's, but for its (n_c - 1) / n_c shrinkage (plug-in class covariances).
    plug_in = sum(np.cov(runs[:, y == c].astype(float), ddof=0) / len(COUNTS) ** 2 / n for c, n in enumerate(COUNTS))
    boot = np.cov(resampled_balanced_accuracy(y, runs, resample_counts(y, rng, 20000)).T)
    assert np.diag(boot) == pytest.approx(np.diag(plug_in), rel=0.04)
    assert boot == pytest.approx(plug_in, abs=4e-5)
    # Lesions of 3 identical images: the clustered covariance is ~3 times the naive one on the copies.
    copies = np.repeat(runs, 3, axis=1)
    y3, groups = np.repeat(y, 3), np.repeat(np.arange(len(y)), 3)
    clustered = sampling_covariance(y3, copies, groups)
    assert clustered == pytest.approx(sampling_covariance(y, runs), rel=1e-9)
    # (up to the (n_c - 1) / n_c factors, which differ between 3 n_c copies and n_c lesions)
    assert np.diag(clustered) == pytest.approx(3 * np.diag(sampling_covariance(y3, copies)), rel=0.1)


def test_rescaled_bootstrap_matches_the_unbiased_variance_with_small_classes():
    # Eight classes of five images: the plain bootstrap variance is (5 - 1) / 5 of the unbiased one.
    rng = np.random.default_rng(10)
    y = np.repeat(np.arange(8), 5)
    d = rng.random(40) < 0.6
    exact = sampling_covariance(y, d[None])[0, 0]
    counts = resample_counts(y, rng, 40000)
    plain = resampled_balanced_accuracy(y, d, counts).var()
    rescaled = resampled_balanced_accuracy(y, d, counts, stratum_units(y)).var()
    assert plain == pytest.approx(0.8 * exact, rel=0.04) and rescaled == pytest.approx(exact, rel=0.04)
    # Lesions: the units are the lesions of each class.
    assert stratum_units(np.array([0, 0, 0, 1, 1]), np.array([7, 7, 8, 9, 9])).tolist() == [2, 1]


# --- question (a): these trained networks on this test set ------------------------------------------


def _sorted_and_interleaved():
    """A test set sorted by class, and the same rows interleaved across classes (each class in its order)."""
    rng = np.random.default_rng(3)
    y, a, b = _world(rng, 2, 2)
    interleave = np.argsort(rng.random(len(y)))
    # Keep each class's rows in their original relative order, but scatter the classes.
    slots = np.empty(len(y), dtype=int)
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        positions = np.sort(interleave[members])
        slots[positions] = members
    return (y, a, b), (y[slots], a[:, slots], b[:, slots])


def test_paired_interval_is_the_same_for_sorted_and_shuffled_rows():
    (y, a, b), (ys, as_, bs) = _sorted_and_interleaved()
    assert not (ys == np.sort(ys)).all()
    sorted_result = paired_balanced_accuracy(y, a, b, Resampling(2000, 0.95, 0))
    interleaved = paired_balanced_accuracy(ys, as_, bs, Resampling(2000, 0.95, 0))
    # Same within-class order: the same resamples, so exactly the same interval (and p).
    assert interleaved["difference"] == pytest.approx(sorted_result["difference"])
    assert {k: v for k, v in interleaved.items() if k != "difference"} == {
        k: v for k, v in sorted_result.items() if k != "difference"
    }
    # Any shuffle: the same interval up to Monte Carlo noise.
    order = np.random.default_rng(9).permutation(len(y))
    shuffled = paired_balanced_accuracy(y[order], a[:, order], b[:, order], Resampling(4000, 0.95, 1))
    assert shuffled["difference"] == pytest.approx(sorted_result["difference"])
    assert shuffled["low"] == pytest.approx(sorted_result["low"], abs=0.012)
    assert shuffled["high"] == pytest.approx(sorted_result["high"], abs=0.012)


def test_the_former_weights_at_resampled_rows_bug_is_fixed():
    # 10 rare-class images listed first, then 90 common ones. A is right on every rare image and half the
    # common ones, B on every common image: Δ balanced accuracy = 0.75 - 0.5 = +0.25.
    y = np.r_[np.ones(10, int), np.zeros(90, int)]
    a = np.r_[np.ones(10, bool), np.arange(90) % 2 == 0]
    b = np.r_[np.zeros(10, bool), np.ones(90, bool)]
    result = paired_balanced_accuracy(y, a, b, Resampling(2000, 0.95, 0))
    assert result["difference"] == pytest.approx(0.25)
    assert result["low"] < 0.25 < result["high"] and 0.15 < result["low"] and result["high"] < 0.35
    # The old formula: w @ d[idx] gives the first 10 drawn *common* images the rare class's weight.
    w, d = balanced_accuracy_weights(y), a.astype(float) - b
    rng = np.random.default_rng(0)
    old = np.array([w @ d[stratified_resample(y, rng)] for _ in range(2000)])
    assert np.quantile(old, 0.975) < 0  # the old interval excluded its own point estimate, +0.25
    # Sorted by class, the old formula happened to be right, and agrees with the new one.
    order = np.argsort(y, kind="stable")
    fixed = paired_balanced_accuracy(y[order], a[order], b[order], Resampling(2000, 0.95, 0))
    old_sorted = np.array([w[order] @ d[order][stratified_resample(y[order], rng)] for _ in range(2000)])
    assert np.quantile(old_sorted, [0.025, 0.975]) == pytest.approx([fixed["low"], fixed["high"]], abs=0.015)


def test_paired_permutation_p_is_exact_on_a_small_case():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 2])
    a = np.array([[1, 1, 1, 0, 1, 1, 0, 1, 1, 1, 0, 1], [1, 1, 0, 1, 1, 1, 1, 1, 0, 1, 1, 1]], bool)
    b = np.array([[1, 0, 0, 0, 1, 0, 0, 1, 1, 0, 0, 1]], bool)
    result = paired_balanced_accuracy(y, a, b, Resampling(500, 0.95, 0))
    contributions = balanced_accuracy_weights(y) * (a.mean(axis=0) - b.mean(axis=0))
    units = contributions[contributions != 0]
    signs = np.array(np.meshgrid(*[[-1.0, 1.0]] * len(units))).reshape(len(units), -1).T
    exact = np.mean(np.abs(signs @ units) >= abs(units.sum()) - 1e-12)
    assert result["p_method"] == "exact" and result["p"] == pytest.approx(exact, abs=1e-15)
    assert result["seeds_a"] == 2 and result["seeds_b"] == 1
    assert result["difference"] == pytest.approx(balanced_accuracy(y, a).mean() - balanced_accuracy(y, b[0]))


def test_paired_interval_with_lesion_groups_counts_lesions_not_images():
    rng = np.random.default_rng(4)
    y, a, b = _world(rng, 2, 2)
    plain = paired_balanced_accuracy(y, a, b, Resampling(3000, 0.95, 0))
    # Every lesion photographed three times (identical answers): 405 images, still 135 lesions.
    y3, a3, b3 = np.repeat(y, 3), np.repeat(a, 3, axis=1), np.repeat(b, 3, axis=1)
    groups = np.repeat(np.arange(len(y)), 3)
    naive = paired_balanced_accuracy(y3, a3, b3, Resampling(3000, 0.95, 0))
    grouped = paired_balanced_accuracy(y3, a3, b3, Resampling(3000, 0.95, 0), groups=groups)
    width = {k: r["high"] - r["low"] for k, r in {"plain": plain, "naive": naive, "grouped": grouped}.items()}
    assert width["naive"] == pytest.approx(width["plain"] / np.sqrt(3), rel=0.15)  # too narrow
    assert width["grouped"] == pytest.approx(width["plain"], rel=0.1)
    assert grouped["p"] > naive["p"]


def test_paired_interval_is_not_too_short_with_classes_of_five_images():
    rng = np.random.default_rng(11)
    y = np.repeat(np.arange(8), 5)
    a, b = rng.random((2, 40)) < 0.7, rng.random((2, 40)) < 0.5
    result = paired_balanced_accuracy(y, a, b, Resampling(20000, 0.95, 0))
    se = np.sqrt(sampling_covariance(y, (a.mean(axis=0) - b.mean(axis=0))[None])[0, 0])
    # The unbiased standard error's normal interval, not the plain bootstrap's sqrt(4/5) = 0.89 of it.
    assert (result["high"] - result["low"]) / (2 * stats.norm.ppf(0.975) * se) == pytest.approx(1.0, abs=0.05)


def test_confidence_level_sets_the_width_of_the_paired_interval():
    rng = np.random.default_rng(5)
    y, a, b = _world(rng, 2, 2, shift=0.3)
    wide = paired_balanced_accuracy(y, a, b, Resampling(4000, 0.95, 0))
    narrow = paired_balanced_accuracy(y, a, b, Resampling(4000, 0.8, 0))
    ratio = (narrow["high"] - narrow["low"]) / (wide["high"] - wide["low"])
    assert ratio == pytest.approx(stats.norm.ppf(0.9) / stats.norm.ppf(0.975), abs=0.08)
    assert narrow["p"] == wide["p"]


# --- question (b): architectures, across training runs --------------------------------------------


def test_across_runs_test_keeps_its_level_with_equal_architectures_and_five_seeds():
    rng = np.random.default_rng(20)
    p = np.array([architecture_difference(*_world(rng, 5, 5), confidence=0.95)["p"] for _ in range(800)])
    assert np.mean(p < 0.05) <= 0.07
    assert np.mean(p < 0.5) == pytest.approx(0.5, abs=0.08)  # p roughly uniform, not just conservative


def test_pooled_permutation_test_is_not_a_test_of_architectures():
    # The reason for question (b): the same equal-architecture worlds, read through question (a).
    rng = np.random.default_rng(21)
    p = [paired_balanced_accuracy(*_world(rng, 5, 5), Resampling(199, 0.95, 0))["p"] for _ in range(100)]
    assert np.mean(np.array(p) < 0.05) > 0.15


def test_across_runs_test_detects_a_real_difference_with_five_seeds():
    rng = np.random.default_rng(22)
    results = [architecture_difference(*_world(rng, 5, 5, shift=1.0), confidence=0.95) for _ in range(200)]
    assert np.mean([r["difference"] for r in results]) == pytest.approx(0.15, abs=0.02)
    assert np.mean([r["p"] < 0.05 for r in results]) > 0.65
    assert np.mean([r["low"] <= 0.15 <= r["high"] for r in results]) > 0.9


def test_the_shared_test_set_enters_the_variance():
    # No seed variation at all (identical runs): only the test set is random, and the variance is the
    # test-set variance of the difference of the two networks.
    rng = np.random.default_rng(6)
    y, a, b = _world(rng, 1, 1, shift=0.2)
    result = architecture_difference(y, np.repeat(a, 3, axis=0), np.repeat(b, 4, axis=0), confidence=0.95)
    cov = sampling_covariance(y, np.vstack([a, b]))
    assert result["se"] ** 2 == pytest.approx(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    assert result["df"] == np.inf and result["seed_sd_a"] == 0 and result["test_set_sd"] > 0
    assert result["seeds_a"] == 3 and result["seeds_b"] == 4


def test_across_runs_interval_is_a_welch_t_interval_at_any_confidence():
    rng = np.random.default_rng(7)
    y, a, b = _world(rng, 5, 4, shift=0.5)
    wide = architecture_difference(y, a, b, confidence=0.95)
    narrow = architecture_difference(y, a, b, confidence=0.8)
    assert wide["p"] == narrow["p"] and wide["difference"] == narrow["difference"]
    ratio = (narrow["high"] - narrow["low"]) / (wide["high"] - wide["low"])
    assert ratio == pytest.approx(stats.t.ppf(0.9, wide["df"]) / stats.t.ppf(0.975, wide["df"]))
    ba_a, ba_b = balanced_accuracy(y, a), balanced_accuracy(y, b)
    assert wide["difference"] == pytest.approx(ba_a.mean() - ba_b.mean())
    welch = ba_a.var(ddof=1) / 5 + ba_b.var(ddof=1) / 4
    assert wide["se"] ** 2 == pytest.approx(welch + wide["test_set_sd"] ** 2)
    assert 4 <= wide["df"] <= 3 + 4  # Welch-Satterthwaite, raised a little by the known test-set term


def test_one_seed_gives_no_architecture_inference():
    rng = np.random.default_rng(8)
    y, a, b = _world(rng, 1, 3)
    result = architecture_difference(y, a, b, confidence=0.95)
    assert np.isnan(result["p"]) and np.isnan(result["low"]) and not result["sufficient"]


@pytest.mark.parametrize(
    ("k_a", "k_b", "comparisons", "min_p", "sufficient"),
    [
        (2, 2, 1, 1 / 3, False),
        (3, 3, 1, 0.1, False),
        (4, 4, 1, 2 / 70, True),
        (4, 4, 3, 2 / 70, False),
        (5, 5, 3, 2 / 252, True),
        (2, 8, 1, 2 / 45, True),
        (1, 9, 1, 0.2, False),
    ],
)
def test_seeds_sufficient(k_a, k_b, comparisons, min_p, sufficient):
    result = seeds_sufficient(k_a, k_b, alpha=0.05, comparisons=comparisons)
    assert result["min_attainable_p"] == pytest.approx(min_p) and result["sufficient"] is sufficient


def test_two_seeds_say_so_and_name_the_command():
    result = seeds_sufficient(2, 2, alpha=0.05, comparisons=3)
    assert result["seeds_needed"] == 5 and result["command"] == "dvc exp run -S 'seeds=[0,1,2,3,4]'"
    assert "Too few seeds" in result["message"] and result["command"] in result["message"]
    assert seeds_sufficient(2, 2, alpha=0.05, comparisons=1)["seeds_needed"] == 4


def test_compare_architectures_withholds_a_verdict_with_two_seeds_and_gives_one_with_five():
    rng = np.random.default_rng(9)
    y, a, b = _world(rng, 5, 5, shift=2.0)
    _, c, _ = _world(rng, 5, 1)
    two = compare_architectures(
        y, {"vgg19": a[:2], "mobilenet": b[:2], "inception": c[:2]}, confidence=0.95, alpha=0.05
    )
    assert [e["verdict"] for e in two] == ["too few seeds"] * 3 and not any(e["significant"] for e in two)
    five = compare_architectures(y, {"vgg19": a, "mobilenet": b}, confidence=0.95, alpha=0.05)
    (entry,) = five
    assert (entry["a"], entry["b"]) == ("mobilenet", "vgg19") and entry["difference"] < -0.2
    assert entry["verdict"] == "vgg19 better" and entry["significant"] and entry["p_holm"] == entry["p"]


def test_holm_adjusts_step_down_and_keeps_the_input_order():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    adjusted = holm([0.01, float("nan"), 0.04])
    assert adjusted[0] == pytest.approx(0.02) and np.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.04)


def _majority_vs_minority(n_major=180, n_minor=40):
    """A is right on every majority image, B on every minority image and half the majority ones."""
    y = np.array([0] * n_major + [1] * n_minor)
    a = np.r_[np.ones(n_major, bool), np.zeros(n_minor, bool)]
    b = np.r_[np.arange(n_major) % 2 == 0, np.ones(n_minor, bool)]
    return y, a, b


def test_paired_difference_is_balanced_accuracy_not_accuracy():
    y, a, b = _majority_vs_minority()
    assert a.mean() > b.mean()  # plain accuracy favours A (0.82 vs 0.59) ...
    result = paired_balanced_accuracy(y, a[None], b[None], RESAMPLING)
    ba_a = skm.balanced_accuracy_score(y, np.where(a, y, 1 - y))
    ba_b = skm.balanced_accuracy_score(y, np.where(b, y, 1 - y))
    assert result["difference"] == pytest.approx(ba_a - ba_b) == pytest.approx(0.5 - 0.75)  # ... BA favours B
    assert result["low"] < result["difference"] < result["high"] < 0 and result["p"] < 0.01


def test_networks_are_compared_pairwise_with_holm_and_architectures_withhold_a_verdict_on_two_seeds():
    y, a, b = _majority_vs_minority()
    correct = {"vgg19": np.stack([a, a]), "mobilenet": np.stack([b, b]), "inceptionv3": np.stack([b, b])}
    networks = {(t["a"], t["b"]): t for t in compare_networks(y, correct, RESAMPLING, alpha=0.05)}
    assert set(networks) == {("inceptionv3", "mobilenet"), ("inceptionv3", "vgg19"), ("mobilenet", "vgg19")}
    assert not networks[("inceptionv3", "mobilenet")]["significant"]
    assert networks[("mobilenet", "vgg19")]["significant"] and networks[("mobilenet", "vgg19")]["difference"] > 0
    assert all(t["p_holm"] >= t["p"] for t in networks.values())
    # The same networks, as a question about architectures: two seeds each cannot support a verdict.
    architectures = compare_architectures(y, correct, confidence=0.95, alpha=0.05)
    assert all(t["verdict"] == "too few seeds" and not t["significant"] for t in architectures)
