"""External test sets (what is scored, what is left out and why) and subgroups (levels, gaps, operating points)."""

from pathlib import Path

import numpy as np
import pandas as pd


def test_subgroup_levels_bin_numbers_and_keep_names(tmp_path: Path):
    from skinlesion.stats.subgroups import subgroup_levels

    meta = pd.DataFrame(
        {"age": ["25", "30", "44", "45", "80", ""], "sex": ["male", "female", "male", "", "female", "male"]},
        index=pd.Index([f"img{i}" for i in range(6)], name="image_id"),
    )
    paths = pd.Series([f"data/raw/unsplit/nv/img{i}.jpg" for i in range(6)] + ["data/raw/unsplit/nv/other.jpg"])
    assert subgroup_levels(paths, meta, "age", [30, 45]).tolist() == [
        "<30",
        "30–44",
        "30–44",
        "≥45",
        "≥45",
        "unknown",
        "unknown",
    ]
    assert subgroup_levels(paths, meta, "sex", [30, 45]).tolist()[:5] == ["male", "female", "male", "unknown", "female"]


def test_a_column_that_says_unknown_itself_has_one_unknown_level():
    from skinlesion.stats.subgroups import subgroup_levels

    # HAM10000's sex and localization spell some missing values "unknown"; others are empty.
    meta = pd.DataFrame({"sex": ["male", "unknown", ""]}, index=pd.Index(["a", "b", "c"], name="image_id"))
    levels = subgroup_levels(pd.Series(["x/a.jpg", "x/b.jpg", "x/c.jpg", "x/d.jpg"]), meta, "sex", [30])
    assert levels.tolist() == ["male", "unknown", "unknown", "unknown"]
    assert list(levels.cat.categories) == ["male", "unknown"]


def _scored(rng, n, classes, accuracy):
    from skinlesion.stats.clinical import Scored

    y = rng.integers(0, len(classes), n)
    right = rng.random(n) < accuracy
    predicted = np.where(right, y, (y + 1) % len(classes))
    probs = np.full((n, len(classes)), 0.1 / (len(classes) - 1))
    probs[np.arange(n), predicted] = 0.9
    return Scored(classes, y, probs, np.array([f"g{i}" for i in range(n)]))


def test_subgroup_analysis_reports_each_level_flags_small_ones_and_tests_the_column():
    from skinlesion.stats.clinical import Scored
    from skinlesion.stats.intervals import Resampling
    from skinlesion.stats.subgroups import SubgroupRule, subgroup_analysis

    rng = np.random.default_rng(0)
    classes = ["mel", "nv", "bkl"]
    good, bad = _scored(rng, 150, classes, 0.9), _scored(rng, 150, classes, 0.4)
    test = Scored(classes, np.r_[good.y, bad.y], np.r_[good.probs, bad.probs], np.r_[good.groups, bad.groups + "b"])
    levels = pd.Series(["female"] * 150 + ["male"] * 144 + ["other"] * 6)
    rule = SubgroupRule(["mel"], 0.9, min_size=10, resampling=Resampling(1000, 0.9, 0), alpha=0.05, primary="")
    analysis = subgroup_analysis(test, _scored(rng, 200, classes, 0.7), {"sex": levels}, rule)
    rows = {r["level"]: r for r in analysis["columns"]["sex"]["levels"]}
    assert rows["other"]["too_small"] and "balanced_accuracy" not in rows["other"] and rows["other"]["n"] == 6
    female = rows["female"]["balanced_accuracy"]
    assert female["low"] < female["value"] < female["high"] and female["value"] > 0.8
    assert {"roc_auc", "sensitivity", "specificity"} <= set(rows["male"])
    test_ = analysis["columns"]["sex"]["heterogeneity"]
    assert test_["differs"] and test_["p"] < 0.01 and test_["levels"] == 3 and not test_["primary"]
    assert test_["p_adjusted_text"].startswith(("<", "≤"))  # a p at the shuffles' floor prints as a bound
    female_minus_rest = rows["female"]["contrast"]
    assert 0 < female_minus_rest["low"] < female_minus_rest["difference"] < female_minus_rest["high"]
    assert rows["male"]["contrast"]["high"] < 0 and rows["female"]["contrast"]["lacks"] == []
    assert analysis["threshold"] is not None  # fixed on the validation scores
