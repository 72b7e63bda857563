import numpy as np
import pytest
from scipy import special

from skinlesion.stats.calibration import calibration_error
from skinlesion.stats.metrics import expected_calibration_error
from skinlesion.stats.temperature import apply_temperature, fit_temperature, temperature_nll


def _model(rng, n, temperature=1.0, classes=6, scale=2.0):
    """Labels drawn from softmax(z) and a model that reports softmax(z * temperature).

    ``temperature`` 1: perfectly calibrated; > 1: over-confident (fixed by scaling with T = temperature);
    < 1: under-confident. Also returns the true probability that the model's top class is right.
    """
    z = rng.normal(size=(n, classes)) * scale
    z[:, 0] += 1.0
    truth = special.softmax(z, axis=1)
    y = np.minimum((rng.random(n)[:, None] > np.cumsum(truth, axis=1)).sum(axis=1), classes - 1)
    probs = special.softmax(z * temperature, axis=1)
    return y, probs, truth[np.arange(n), probs.argmax(axis=1)]


def _population_squared_ce(temperature, n_bins=10, n=200_000):
    """The binned squared calibration error a huge sample gives (equal-mass bins): the estimand's truth."""
    y, probs, right = _model(np.random.default_rng(123), n, temperature)
    conf = probs.max(axis=1)
    bins = np.array_split(np.argsort(conf), n_bins)
    return float(sum(len(b) / n * (right[b].mean() - conf[b].mean()) ** 2 for b in bins))


def test_apply_temperature_keeps_the_ranking_and_softens_or_sharpens():
    probs = np.array([[0.7, 0.2, 0.1], [0.0, 1.0, 0.0], [0.25, 0.25, 0.5]])
    assert apply_temperature(probs, 1.0) == pytest.approx(probs, abs=1e-11)
    soft, sharp = apply_temperature(probs, 2.0), apply_temperature(probs, 0.5)
    for out in (soft, sharp):
        assert np.isfinite(out).all() and out.sum(axis=1) == pytest.approx(np.ones(3))
        assert (out.argmax(axis=1) == probs.argmax(axis=1)).all()
    assert soft[0, 0] < 0.7 < sharp[0, 0]
    # T = 2 on probabilities is the square root, renormalised.
    assert soft[0] == pytest.approx(np.sqrt(probs[0]) / np.sqrt(probs[0]).sum())
    with pytest.raises(ValueError):
        apply_temperature(probs, 0.0)


@pytest.mark.parametrize("temperature", [2.0, 0.6])
def test_fit_temperature_recovers_a_known_temperature(temperature):
    rng = np.random.default_rng(0)
    y, probs, _ = _model(rng, 4000, temperature)
    fitted = fit_temperature(y, probs)
    assert fitted == pytest.approx(temperature, rel=0.1)
    assert temperature_nll(y, probs, fitted) <= min(temperature_nll(y, probs, t) for t in (1.0, temperature))
    # Fitted on validation, applied to test: the test NLL improves too.
    y_test, probs_test, _ = _model(rng, 4000, temperature)
    assert temperature_nll(y_test, probs_test, fitted) < temperature_nll(y_test, probs_test, 1.0)


def test_a_perfectly_calibrated_model_has_a_plain_ece_near_0_08_at_n_135():
    # Why the plain ECE is not the estimate to read at this n: noise alone makes it about 0.08.
    rng = np.random.default_rng(1)
    plain = [expected_calibration_error(*_model(rng, 135)[:2]) for _ in range(300)]
    assert np.mean(plain) == pytest.approx(0.08, abs=0.015)


def test_a_perfectly_calibrated_model_gets_an_interval_that_covers_zero_at_the_nominal_rate():
    rng = np.random.default_rng(3)
    results = [calibration_error(*_model(rng, 135)[:2], draws=1000, seed=s, confidence=0.95) for s in range(300)]
    covered = np.mean([r["squared_low"] <= 0 <= r["squared_high"] for r in results])
    assert 0.91 <= covered <= 0.99
    assert all(r["low"] == 0 for r in results if r["squared_low"] <= 0)  # RMS scale: covers 0 just the same
    assert all(r["low"] <= r["rms"] <= r["high"] for r in results)  # the estimate sits inside its interval
    # The debiased estimate is unbiased for 0; the plug-in is not.
    squared = np.array([r["squared"] for r in results])
    assert abs(squared.mean()) < 3 * squared.std() / np.sqrt(len(squared))
    assert np.mean([r["plugin_rms"] for r in results]) > 0.08


@pytest.mark.parametrize("temperature", [1.5, 0.7])
def test_calibration_error_interval_covers_a_miscalibrated_models_truth(temperature):
    truth = _population_squared_ce(temperature)
    rng = np.random.default_rng(4)
    results = [
        calibration_error(*_model(rng, 135, temperature)[:2], draws=1000, seed=s, confidence=0.95) for s in range(200)
    ]
    covered = np.mean([r["squared_low"] <= truth <= r["squared_high"] for r in results])
    assert 0.9 <= covered <= 0.99
    assert np.mean([r["squared"] for r in results]) == pytest.approx(truth, rel=0.15)
    assert all(r["low"] <= r["rms"] <= r["high"] for r in results)


def test_confidence_level_sets_the_calibration_interval_width():
    y, probs, _ = _model(np.random.default_rng(5), 135, temperature=1.5)
    wide = calibration_error(y, probs, confidence=0.95, seed=0)
    narrow = calibration_error(y, probs, confidence=0.8, seed=0)
    assert wide["squared"] == narrow["squared"]
    assert wide["squared_low"] < narrow["squared_low"] < narrow["squared"] < narrow["squared_high"]
    assert narrow["squared_high"] < wide["squared_high"]


def test_lesion_groups_count_lesions_not_photos_in_the_calibration_interval():
    y, probs, _ = _model(np.random.default_rng(6), 135, temperature=1.5)
    y3, probs3 = np.repeat(y, 3), np.repeat(probs, 3, axis=0)  # three identical photos per lesion
    plain = calibration_error(y, probs, draws=2000, confidence=0.95, seed=0)
    naive = calibration_error(y3, probs3, draws=2000, confidence=0.95, seed=0)
    grouped = calibration_error(y3, probs3, groups=np.repeat(np.arange(135), 3), draws=2000, confidence=0.95, seed=0)
    assert grouped["lesions"] == 135 and naive["lesions"] is None
    width = {
        k: r["squared_high"] - r["squared_low"] for k, r in {"plain": plain, "naive": naive, "grouped": grouped}.items()
    }
    # Grouped, 405 photos of 135 lesions carry the information of 135 images, not of 405.
    assert width["grouped"] == pytest.approx(width["plain"], rel=0.15)
    assert width["naive"] < 0.75 * width["plain"]
    assert grouped["squared"] == pytest.approx(plain["squared"], abs=0.002)
    # Every image its own lesion: the same as no groups.
    singletons, ungrouped = (
        calibration_error(y, probs, groups=np.arange(135), confidence=0.95, seed=0),
        calibration_error(y, probs, confidence=0.95, seed=0),
    )
    for key in ("squared", "squared_low", "squared_high", "rms", "low", "high"):
        assert singletons[key] == pytest.approx(ungrouped[key], rel=1e-9, abs=1e-15)


def test_a_perfectly_calibrated_model_with_lesion_level_answers_is_covered_when_grouped():
    # Lesions of 1-4 photos sharing their confidence and their answer: ignoring the groups, the debiasing
    # under-corrects and the interval misses 0 far too often.
    rng = np.random.default_rng(8)
    grouped, naive = [], []
    for s in range(150):
        groups = np.repeat(np.arange(70), rng.integers(1, 5, 70))
        conf = rng.uniform(0.3, 1.0, 70)
        right = rng.random(70) < conf
        probs, y = np.c_[conf, 1 - conf][groups], np.where(right, 0, 1)[groups]
        grouped.append(
            calibration_error(y, probs, groups=groups, draws=500, seed=s, confidence=0.95)["squared_low"] <= 0
        )
        naive.append(calibration_error(y, probs, draws=500, seed=s, confidence=0.95)["squared_low"] <= 0)
    assert np.mean(grouped) >= 0.92 and np.mean(naive) < 0.8


def test_calibration_error_keeps_two_images_a_bin():
    y, probs, _ = _model(np.random.default_rng(7), 9)
    assert calibration_error(y, probs, n_bins=10, confidence=0.95, seed=0)["n_bins"] == 4
    with pytest.raises(ValueError):
        calibration_error(y[:3], probs[:3], confidence=0.95, seed=0)


def test_malignant_score_calibration_intercept_and_slope_cover_their_truth():
    """Logistic recalibration of a binary score, 135 images, 20 % positive, 1,000 sets a scenario.

    Measured (2,000 sets): perfectly calibrated, intercept 96.0 % and slope 94.8 % coverage; true slope 0.7
    (over-confident), slope 95.9 %; lesions of 3 images (sandwich), intercept 96.0 %, slope 93.5 %.
    """
    from skinlesion.stats.calibration import logistic_calibration

    rng = np.random.default_rng(0)
    calibrated = slope_07 = 0
    for _ in range(1000):
        p = rng.beta(1, 4, 135)
        fit = logistic_calibration(rng.random(135) < p, p, confidence=0.95)
        calibrated += (
            fit["intercept"]["low"] <= 0 <= fit["intercept"]["high"]
            and fit["slope"]["low"] <= 1 <= fit["slope"]["high"]
        )
        logit = np.log(p / (1 - p))
        fit = logistic_calibration(rng.random(135) < 1 / (1 + np.exp(-(-0.3 + 0.7 * logit))), p, confidence=0.95)
        slope_07 += fit["slope"]["low"] <= 0.7 <= fit["slope"]["high"]
    assert calibrated / 1000 >= 0.88  # both at once: about 0.95 x 0.95 if they were independent
    assert slope_07 / 1000 == pytest.approx(0.95, abs=0.025)


def test_an_over_confident_score_has_a_slope_below_one_and_bins_show_it():
    from skinlesion.stats.calibration import logistic_calibration, reliability_bins

    rng = np.random.default_rng(1)
    truth = rng.beta(1, 4, 2000)
    positive = rng.random(2000) < truth
    logit = np.log(truth / (1 - truth))
    extreme = 1 / (1 + np.exp(-2 * logit))  # twice the true logit: too sure both ways
    fit = logistic_calibration(positive, extreme, confidence=0.95)
    assert fit["slope"]["high"] < 0.6 and fit["slope"]["value"] == pytest.approx(0.5, abs=0.06)
    bins = reliability_bins(positive, extreme)
    assert len(bins) == 10 and sum(b["n"] for b in bins) == 2000
    assert bins[0]["observed"] > bins[0]["predicted"] and bins[-1]["observed"] < bins[-1]["predicted"]
    assert logistic_calibration(np.zeros(10, bool), np.full(10, 0.3), confidence=0.95) is None
