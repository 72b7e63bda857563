"""Summaries across runs: the spread over seeds, McNemar per seed, seed and all-backbone ensembles."""

import numpy as np
import pandas as pd
import pytest

from skinlesion.stats.compare import ensemble_results, mcnemar_test, pairwise_tests
from skinlesion.stats.intervals import Resampling
from skinlesion.stats.metrics import classification_metrics

RESAMPLING = Resampling(resamples=1000, confidence=0.95, seed=0)


def test_ensembles_average_each_backbones_seeds_and_all_runs():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 90)
    probs = {b: {s: rng.dirichlet(np.ones(3), 90) for s in (0, 1)} for b in ("mobilenet", "vgg19")}
    out = ensemble_results(y, probs, RESAMPLING)
    assert list(out) == ["mobilenet", "vgg19", "all backbones"]
    assert out["mobilenet"]["runs"] == 2 and out["all backbones"]["runs"] == 4
    mean = (probs["vgg19"][0] + probs["vgg19"][1]) / 2
    assert out["vgg19"]["balanced_accuracy"] == pytest.approx(classification_metrics(y, mean)["balanced_accuracy"])
    assert "all backbones" not in ensemble_results(y, {"vgg19": probs["vgg19"]}, RESAMPLING)


def test_mcnemar_on_a_constructed_table():
    # 30 items: both right on 10, only A right on 15, only B right on 1, both wrong on 4.
    y = np.zeros(30, int)
    a = np.array([0] * 10 + [0] * 15 + [1] * 1 + [1] * 4)
    b = np.array([0] * 10 + [1] * 15 + [0] * 1 + [1] * 4)
    result = mcnemar_test(y, a, b)
    assert (result["a_only_correct"], result["b_only_correct"]) == (15, 1)
    # Exact binomial test (16 discordant pairs): p = 2 * P(X <= 1), X ~ Bin(16, 0.5).
    assert result["p"] == pytest.approx(2 * (1 + 16) / 2**16)
    assert mcnemar_test(y, a, a)["p"] == 1.0


def test_pairwise_verdict_requires_every_seed():
    paths = [f"img{i}" for i in range(40)]
    truth = ["x"] * 40

    def frame(correct: int) -> pd.DataFrame:
        return pd.DataFrame({"path": paths, "actual": truth, "predicted": ["x"] * correct + ["y"] * (40 - correct)})

    strong = {0: frame(38), 1: frame(39)}
    weak = {0: frame(10), 1: frame(12)}
    close = {0: frame(37), 1: frame(12)}
    tests = {(t["a"], t["b"]): t for t in pairwise_tests({"strong": strong, "weak": weak, "close": close}, alpha=0.05)}
    assert tests[("strong", "weak")]["significant"] and tests[("strong", "weak")]["better"] == "strong"
    assert not tests[("close", "strong")]["significant"]
