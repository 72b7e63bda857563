"""The comparison plots' data and the pictures drawn from it."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from skinlesion.render.figures import comparison_figure
from skinlesion.render.plotdata import calibration_frame, curves_frame, roc_frame

from .test_select import run_metrics


def test_comparison_data_overlays_runs_and_pools_seeds(tmp_path: Path):
    def history(losses, phases):
        return pd.DataFrame(
            {
                "step": range(len(losses)),
                "phase": phases,
                "val_loss": losses,
                "val_accuracy": 0.5,
                "loss": 1.0,
                "accuracy": 0.5,
                "lr": 0.001,
            }
        )

    curves = curves_frame({"mobilenet": {0: history([3, 2, 1], [0, 0, 1]), 1: history([4, 3], [0, 1])}})
    assert curves.groupby("run")["step"].apply(list).to_dict() == {"mobilenet-0": [0, 1, 2], "mobilenet-1": [0, 1]}
    grid = np.linspace(0, 1, 3)
    roc = roc_frame(
        {
            "vgg19": {
                0: pd.DataFrame({"fpr": grid, "macro": [0, 0.5, 1]}),
                1: pd.DataFrame({"fpr": grid, "macro": [0, 0.9, 1]}),
            }
        }
    )
    assert roc["tpr"].tolist() == pytest.approx([0, 0.7, 1])
    cal = calibration_frame(
        {
            "vgg19": {
                0: pd.DataFrame({"bin": [8], "confidence": [0.85], "accuracy": [1.0], "count": [1]}),
                1: pd.DataFrame({"bin": [8], "confidence": [0.81], "accuracy": [0.0], "count": [3]}),
            }
        }
    )
    # Pooled by count: (0.85 + 3 * 0.81) / 4 and (1 + 0) / 4.
    assert cal[["confidence", "accuracy", "count"]].iloc[0].tolist() == pytest.approx([0.82, 0.25, 4])
    confusion = pd.DataFrame({"actual": ["a", "b", "b"], "predicted": ["a", "a", "b"]})
    per_run = {"vgg19": {0: run_metrics(0.5), 1: run_metrics(0.6)}}
    curves = curves_frame({"vgg19": {0: history([3, 2, 1], [0, 0, 1]), 1: history([4, 3], [0, 1])}})
    figure = comparison_figure(per_run, curves, roc, cal, confusion, "vgg19 seed 1")
    assert len(figure.axes) >= 10


def test_recall_per_class_is_the_mean_over_seeds_and_the_heatmap_marks_malignant_classes():
    from skinlesion.render.figures import recall_heatmap
    from skinlesion.render.plotdata import recall_frame

    actual = ["mel", "mel", "nv", "nv"]

    def run(predicted):
        return pd.DataFrame({"path": list("abcd"), "actual": actual, "predicted": predicted})

    predictions = {
        "vgg19": {0: run(["mel", "nv", "nv", "nv"]), 1: run(["mel", "mel", "mel", "nv"])},
        "mobilenet": {0: run(["nv", "nv", "nv", "nv"])},
    }
    recall = recall_frame(predictions)
    assert list(recall.index) == ["vgg19", "mobilenet"] and list(recall.columns) == ["mel", "nv"]
    # vgg19: mel recall 1/2 (seed 0) and 2/2 (seed 1) -> 0.75; nv 2/2 and 1/2 -> 0.75.
    assert recall.loc["vgg19"].tolist() == pytest.approx([0.75, 0.75])
    assert recall.loc["mobilenet"].tolist() == pytest.approx([0.0, 1.0])
    figure = recall_heatmap(recall, pd.Series({"mel": 2, "nv": 2}), ["MEL"])
    labels = [t.get_text() for t in figure.axes[0].get_xticklabels()]
    assert labels == ["mel *\n(n=2)", "nv\n(n=2)"]
    cells = [t.get_text() for t in figure.axes[0].texts]
    assert cells == ["0.75", "0.75", "0.00", "1.00"]
