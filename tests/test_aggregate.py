from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from skinlesion.aggregate import mcnemar_test, pairwise_tests, render_report, select_run, summarise


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
    tests = {(t["a"], t["b"]): t for t in pairwise_tests({"strong": strong, "weak": weak, "close": close})}
    assert tests[("strong", "weak")]["significant"] and tests[("strong", "weak")]["better"] == "strong"
    assert not tests[("close", "strong")]["significant"]


def test_selection_uses_validation_not_test():
    val = {0: 0.61, 1: 0.70, 2: 0.65}
    test = {0: 0.90, 1: 0.50, 2: 0.60}  # the best test run must not be picked
    assert select_run(val) == 1 and max(test, key=test.get) != select_run(val)
    assert select_run({3: 0.5, 1: 0.5}) == 1


def _metrics(ba: float) -> dict:
    return {
        "accuracy": ba + 0.05,
        "balanced_accuracy": ba,
        "macro_f1": ba - 0.02,
        "weighted_f1": ba,
        "roc_auc_macro": 0.8,
        "top2_accuracy": 0.9,
        "log_loss": 1.0,
        "ece": 0.1,
        "ci": {k: {"low": ba - 0.1, "high": ba + 0.1} for k in ("accuracy", "balanced_accuracy", "macro_f1")},
    }


def test_report_renders_from_fixture_metrics(tmp_path: Path):
    per_run = {
        "mobilenet": {0: _metrics(0.5), 1: _metrics(0.6)},
        "vgg19": {0: _metrics(0.4), 1: _metrics(0.45)},
    }
    summary = summarise(per_run)
    assert summary["mobilenet"]["balanced_accuracy"]["mean"] == pytest.approx(0.55)
    assert summary["mobilenet"]["balanced_accuracy"]["std"] == pytest.approx(np.std([0.5, 0.6], ddof=1))
    tests = [
        {
            "a": "mobilenet",
            "b": "vgg19",
            "seeds": {0: {"p": 0.01}, 1: {"p": 0.02}},
            "significant": True,
            "better": "mobilenet",
        }
    ]
    data = {
        "images": {"train": 10, "val": 3, "test": 3, "total": 16},
        "classes": 4,
        "files_seen": 18,
        "skipped": {"corrupt": 1, "duplicate": 1, "empty": 0},
        "skipped_total": 2,
    }
    text = render_report(
        data=data,
        model="mobilenet",
        selected_seed=1,
        summary=summary,
        tests=tests,
        headline=per_run["mobilenet"][1],
        backbones=["mobilenet", "vgg19"],
        seeds=[0, 1],
        synthetic=True,
    )
    assert "say nothing" in text and "**mobilenet** better" in text
    assert "corrupt: 1" in text and "0.550 ± 0.071" in text
    assert "../plots/mobilenet/seed0/confusion.png" in text and "seed 1" in text
