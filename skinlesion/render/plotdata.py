"""The data of the comparison plots (``dvc plots`` CSVs): every run's curves, ROC and reliability per backbone."""

from __future__ import annotations

import numpy as np
import pandas as pd

from skinlesion.core.layout import RunPaths


def curves_frame(curves: dict[str, dict[int, pd.DataFrame]]) -> pd.DataFrame:
    """Every run's per-epoch curves in one long table (``run`` = ``<backbone>-<seed>``), for one overlay plot."""
    parts = [h.assign(run=RunPaths(b, s).name) for b, runs in curves.items() for s, h in runs.items()]
    frame = pd.concat(parts, ignore_index=True)
    columns = ["run", "step", "phase", "val_loss", "val_accuracy", "loss", "accuracy", "lr"]
    return frame[columns].round(6)


def roc_frame(roc: dict[str, dict[int, pd.DataFrame]]) -> pd.DataFrame:
    """One macro one-vs-rest ROC per backbone: the mean over its seeds on the common FPR grid."""
    parts = []
    for b, runs in roc.items():
        tpr = np.mean([r["macro"].to_numpy() for r in runs.values()], axis=0)
        parts.append(pd.DataFrame({"backbone": b, "fpr": next(iter(runs.values()))["fpr"], "tpr": tpr}))
    return pd.concat(parts, ignore_index=True).round(6)


def calibration_frame(tables: dict[str, dict[int, pd.DataFrame]]) -> pd.DataFrame:
    """One reliability curve per backbone: each bin's confidence and accuracy pooled over the seeds."""
    parts = []
    for b, runs in tables.items():
        t = pd.concat(runs.values(), ignore_index=True)
        t = t.assign(conf_n=t["confidence"] * t["count"], acc_n=t["accuracy"] * t["count"])
        g = t.groupby("bin", sort=True)[["conf_n", "acc_n", "count"]].sum()
        parts.append(
            pd.DataFrame(
                {
                    "backbone": b,
                    "confidence": g["conf_n"] / g["count"],
                    "accuracy": g["acc_n"] / g["count"],
                    "count": g["count"],
                }
            )
        )
    return pd.concat(parts, ignore_index=True).round(6)


def recall_frame(predictions: dict[str, dict[int, pd.DataFrame]]) -> pd.DataFrame:
    """Recall of each test class per backbone, the mean over its seeds.

    Args:
        predictions: ``{backbone: {seed: predictions frame with actual, predicted}}``.

    Returns:
        One row per backbone (in the given order), one column per class present in the test split (sorted).
    """
    rows = {}
    for backbone, runs in predictions.items():
        per_seed = [f.assign(hit=f["actual"] == f["predicted"]).groupby("actual")["hit"].mean() for f in runs.values()]
        rows[backbone] = pd.concat(per_seed, axis=1).mean(axis=1)
    return pd.DataFrame(rows).T.sort_index(axis=1).rename_axis(index="backbone", columns="class")
