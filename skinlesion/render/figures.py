"""The report's pictures across runs: the comparison panel of every backbone and seed, and per-class recall."""

from __future__ import annotations

from typing import Any

import pandas as pd

from skinlesion.core.layout import RunPaths
from skinlesion.stats.metrics import KEY_METRICS


def comparison_figure(
    per_run: dict[str, dict[int, dict]],
    curves: pd.DataFrame,
    roc: pd.DataFrame,
    calibration: pd.DataFrame,
    confusion: pd.DataFrame,
    headline: str,
):
    """The comparison picture of the report: every backbone, seed and curve on shared axes.

    Top row: each key test metric, one dot per seed. Bottom row: validation loss and accuracy of every
    run over the steps of both phases (dotted: fine-tuning), macro ROC and reliability per backbone,
    and the headline run's row-normalised confusion matrix.
    """
    from skinlesion.core.io import pyplot

    plt = pyplot()
    backbones = list(per_run)
    colours = dict(zip(backbones, plt.rcParams["axes.prop_cycle"].by_key()["color"], strict=False))
    fig, axes = plt.subplots(2, 5, figsize=(22, 9), layout="constrained")
    for ax, metric in zip(axes[0], KEY_METRICS, strict=True):
        for i, b in enumerate(backbones):
            values = [r[metric] for r in per_run[b].values() if r.get(metric) is not None]
            ax.scatter([i] * len(values), values, color=colours[b], s=40)
        ax.set_xticks(range(len(backbones)), backbones, rotation=20)
        ax.set_title(f"test {metric.replace('_', ' ')}")
        if metric == "calibration_error":  # signed, never clipped: at or below 0 is below the noise
            ax.axhline(0, color="grey", lw=0.8)
            ax.yaxis.set_major_formatter("{x:+.2f}")
            ax.set_title("test calibration error (signed;\n≤ 0: too small to measure)", fontsize=10)
    for ax, column in zip(axes[1][:2], ("val_loss", "val_accuracy"), strict=True):
        for run, h in curves.groupby("run", sort=True):
            colour = colours[RunPaths.parse(run).backbone]
            # From scratch (no head phase) the whole curve is one solid line.
            last_head = h.loc[h["phase"] == 0, "step"].max() if (h["phase"] == 0).any() else h["step"].max()
            ax.plot(h["step"].where(h["step"] <= last_head), h[column], "-", color=colour, lw=1.2)
            ax.plot(h["step"].where(h["step"] >= last_head), h[column], ":", color=colour, lw=1.2)
        ax.set(xlabel="step (epochs of both phases; dotted: fine-tuning)", title=column.replace("_", " "))
    for b in backbones:
        r = roc[roc["backbone"] == b]
        axes[1][2].plot(r["fpr"], r["tpr"], color=colours[b], label=b)
        c = calibration[calibration["backbone"] == b]
        axes[1][3].plot(c["confidence"], c["accuracy"], "o-", color=colours[b], label=b, ms=3)
    for ax, title, xlabel, ylabel in (
        (axes[1][2], "macro ROC (mean over seeds)", "false positive rate", "true positive rate"),
        (axes[1][3], "reliability (seeds pooled)", "confidence", "accuracy"),
    ):
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8)
        ax.set(xlim=(0, 1), ylim=(0, 1), title=title, xlabel=xlabel, ylabel=ylabel)
        ax.legend(fontsize=8, loc="lower right")
    _confusion_panel(axes[1][4], confusion, headline)
    fig.suptitle("Backbones compared on the test split", fontsize=13)
    return fig


def _confusion_panel(ax: Any, confusion: pd.DataFrame, headline: str) -> None:
    """The headline run's confusion matrix: counts, coloured by the share of each actual class (row)."""
    import seaborn as sns

    classes = sorted(set(confusion["actual"]) | set(confusion["predicted"]))
    matrix = pd.crosstab(confusion["actual"], confusion["predicted"]).reindex(
        index=classes, columns=classes, fill_value=0
    )
    shares = matrix.div(matrix.sum(axis=1).replace(0, 1), axis=0)
    short = [c[:12] for c in classes]
    sns.heatmap(
        shares,
        annot=matrix,
        fmt="d",
        cmap="Blues",
        vmin=0,
        vmax=1,
        cbar=False,
        square=True,
        xticklabels=short,
        yticklabels=short,
        annot_kws={"fontsize": 7},
        ax=ax,
    )
    ax.tick_params(labelsize=7)
    ax.set_xticklabels(ax.get_xticklabels(), rotation=45, ha="right")
    ax.set(xlabel="predicted", ylabel="actual", title=f"{headline}: confusion (colour: row share)")


def recall_heatmap(recall: pd.DataFrame, support: pd.Series, malignant: list[str]):
    """Backbone x class recall (mean over seeds): which backbone misses which diagnosis, malignant ones marked.

    Args:
        recall: One row per backbone, one column per class (:func:`~skinlesion.render.plotdata.recall_frame`).
        support: Test images per class (shown under each class: a recall of few images is coarse).
        malignant: ``evaluate.malignant``; matching classes are marked with an asterisk.
    """
    import seaborn as sns

    from skinlesion.core.io import pyplot

    plt = pyplot()
    wanted = {name.lower() for name in malignant}
    labels = [f"{c}{' *' if c.lower() in wanted else ''}\n(n={support[c]})" for c in recall.columns]
    fig, ax = plt.subplots(figsize=(2.5 + 1.15 * recall.shape[1], 1.9 + 0.55 * recall.shape[0]), layout="constrained")
    sns.heatmap(
        recall,
        annot=True,
        fmt=".2f",
        cmap="RdYlGn",
        vmin=0,
        vmax=1,
        linewidths=0.5,
        xticklabels=labels,
        cbar_kws={"label": "recall (sensitivity)"},
        ax=ax,
    )
    ax.set_xticklabels(ax.get_xticklabels(), rotation=30, ha="right")
    ax.set_yticklabels(ax.get_yticklabels(), rotation=0)
    ax.set(xlabel="actual class (* malignant)", ylabel="backbone")
    ax.set_title("Recall per class, test split (mean over seeds)")
    return fig


def malignant_calibration_figure(views: dict, headline: str):
    """Reliability of the headline's binary scores (malignant vs benign, melanoma vs rest) on the test split.

    One panel per view: the observed share of positives against the mean score in equal-mass bins (dot
    size: images), the diagonal of perfect calibration, and the logistic recalibration line with its
    intercept and slope; beside the multiclass reliability panel of the comparison picture.
    """
    import numpy as np

    from skinlesion.core.io import pyplot

    plt = pyplot()
    fig, axes = plt.subplots(1, max(1, len(views)), figsize=(5.5 * max(1, len(views)), 5), layout="constrained")
    for ax, (name, view) in zip(np.atleast_1d(axes), views.items(), strict=False):
        bins = view["reliability"]
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8, label="perfect calibration")
        ax.scatter([b["predicted"] for b in bins], [b["observed"] for b in bins], s=[8 + 2 * b["n"] for b in bins])
        ax.plot([b["predicted"] for b in bins], [b["observed"] for b in bins], "-", lw=1, label="equal-mass bins")
        fit = view.get("calibration")
        if fit:
            grid = np.linspace(0.005, 0.995, 199)
            a, b = fit["line"]
            line = 1 / (1 + np.exp(-(a + b * np.log(grid / (1 - grid)))))
            i, k = fit["intercept"], fit["slope"]
            text = f"intercept {i['value']:+.2f} ({i['low']:+.2f} to {i['high']:+.2f}), ideal 0\n"
            text += f"slope {k['value']:.2f} ({k['low']:.2f} to {k['high']:.2f}), ideal 1"
            ax.plot(grid, line, ":", color="black", lw=1, label="logistic recalibration")
            ax.text(0.03, 0.97, text, transform=ax.transAxes, va="top", fontsize=9)
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="mean score in bin", ylabel="observed share positive")
        ax.set_title(f"{name.replace('_', ' ')} ({', '.join(view['classes'])})", fontsize=10)
        ax.legend(fontsize=8, loc="lower right")
    fig.suptitle(f"Calibration of the binary scores on the test split: {headline}", fontsize=12)
    return fig
