"""The aggregate stage's prediction sets and referral: calibrated on validation, a warning on a shifted set."""

import numpy as np
import pandas as pd
import pytest

from skinlesion.core.layout import RunPaths
from skinlesion.evaluation.headline import SINGLE_RUN, Candidate, Headline
from skinlesion.evaluation.runs import Predictions
from skinlesion.evaluation.uncertainty import uncertainty_results
from skinlesion.stats.intervals import Resampling
from skinlesion.uncertainty import conformal
from skinlesion.uncertainty.rule import UncertaintyRule

from .test_uncertainty import CLASSES, simulate

RUN = RunPaths("mobilenet", 0)


def _predictions(y: np.ndarray, probs: np.ndarray, groups: np.ndarray) -> Predictions:
    paths = pd.Series([f"img{i}.png" for i in range(len(y))])
    return Predictions(CLASSES, y, groups, {RUN.backbone: {RUN.seed: probs}}, paths)


def test_sets_and_referral_are_calibrated_on_one_validation_image_per_lesion_and_warn_on_a_shifted_set():
    rng = np.random.default_rng(0)
    y_val, p_val = simulate(rng, [120, 120, 120])
    groups = np.array([f"lesion{i // 2}" for i in range(len(y_val))])  # two photos per lesion
    p_val[1::2] = p_val[::2]  # the two photos score alike
    val = _predictions(y_val, p_val, groups)
    test = _predictions(*simulate(rng, [100, 100, 100]), np.arange(300).astype(str))
    shifted = _predictions(*simulate(rng, [100, 100, 100], shift=0.6), np.arange(300).astype(str))
    headline = Headline(Candidate(RUN.backbone, SINGLE_RUN, (RUN,), 0.5), 1.0)
    rule = UncertaintyRule((0.1, 0.2), 0.1, ["bcc", "mel"], 0.9, Resampling(1000, 0.95, 0), ())
    out = uncertainty_results(headline, val, {"test": test, "other": shifted}, rule)
    summary = out.summary
    assert summary["calibration"] == {"images": 360, "lesions": 180}
    keep = conformal.one_per_lesion(groups, 0)
    expected = conformal.class_quantiles(y_val[keep], p_val[keep], 0.1)
    assert list(summary["decision"]["conformal"]["levels"][0]["quantiles"].values()) == expected
    assert summary["levels"][0]["calibration_images"] == {"bcc": 60, "mel": 60, "nv": 60}
    assert not summary["sets"]["test"]["shift_warning"] and summary["sets"]["other"]["shift_warning"]
    test_90 = summary["sets"]["test"]["levels"][0]["coverage"]
    # Coverage given one calibration draw varies around 0.9 (Beta, sd ~0.04 at 60 lesions): at its floor or above.
    assert test_90["high"] >= summary["sets"]["test"]["levels"][0]["floor"] and test_90["value"] > 0.8
    assert summary["decision"]["malignant"]["classes"] == ["bcc", "mel"]
    assert summary["referral"]["error"] <= 0.1 and summary["decision"]["referral"]["threshold"] > 0.5
    assert set(out.metrics) == {"test", "other"} and {"coverage_90", "coverage_80", "aurc"} <= set(out.metrics["test"])
    assert set(out.curve["run"]) == {"test", "other"} and out.curve["coverage"].max() == 1
    # The shifted set's model errs more among the confident: its risk-coverage area is larger.
    assert out.metrics["other"]["aurc"] > out.metrics["test"]["aurc"]
    # Off: no shift test in the report; its CSV holds the clean split's point alone (a chart, never an empty spec).
    assert summary["shift_test"] == [] and out.shift[["run", "severity"]].values.tolist() == [["clean", 0]]


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (lambda e: e.update(conformal_alpha=[0.1, 0.1]), "evaluate.conformal_alpha"),
        (lambda e: e.update(conformal_alpha=[0.6]), "evaluate.conformal_alpha"),
        (lambda e: e.update(referral_error=0), "evaluate.referral_error"),
        (lambda e: e.update(shift_severities=[0, 3]), "evaluate.shift_severities"),
        (lambda e: e.update(shift_severities=[3, 3]), "evaluate.shift_severities"),
    ],
)
def test_invalid_uncertainty_params_name_the_key(edit, key):
    from skinlesion.core.config import parse_config
    from skinlesion.core.errors import ConfigError

    from .test_config import raw_params

    params = raw_params()
    edit(params["evaluate"])
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        parse_config(params)
