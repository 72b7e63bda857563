"""The decision curve's picture: net benefit of the malignant call against treating all and none, per set."""

from __future__ import annotations

import pandas as pd

# How each strategy is drawn and named in the legend.
STYLES = {
    "model": ("C0", "-", "refer if malignant score ≥ threshold"),
    "treat_all": ("0.4", "--", "refer every lesion"),
    "treat_none": ("0.1", ":", "refer none"),
}


def decision_figure(curves: pd.DataFrame, utility: dict):
    """One panel per set (test, then each external set): net benefit over the threshold probability.

    Args:
        curves: ``set``, ``threshold``, ``strategy``, ``net_benefit`` rows (:mod:`skinlesion.evaluation.review`).
        utility: Its summary: ``target_specificity`` and per set the ``threshold`` fixed on validation and the
            model's net benefit there (``model``), marked by a dot.
    """
    from skinlesion.core.io import pyplot

    plt = pyplot()
    sets = list(dict.fromkeys(curves["set"])) if len(curves) else []
    fig, axes = plt.subplots(
        1, max(1, len(sets)), figsize=(5.5 * max(1, len(sets)), 4.2), layout="constrained", squeeze=False
    )
    for ax, name in zip(axes[0], sets, strict=False):
        part = curves[curves["set"] == name]
        mark = utility["sets"][name]
        for strategy, (colour, line, label) in STYLES.items():
            rows = part[part["strategy"] == strategy]
            ax.plot(rows["threshold"], rows["net_benefit"], color=colour, linestyle=line, label=label)
        if mark["threshold"] is not None and mark["model"] is not None:
            target = f"{utility['target_specificity']:.0%}"
            ax.scatter(
                [mark["threshold"]],
                [mark["model"]],
                color="C3",
                zorder=3,
                label=f"threshold fixed on validation (specificity {target})",
            )
        prevalence = mark["prevalence"]
        # Treat-all soon falls below 0; the dot stays in view even where the model does harm.
        low = min(-0.15 * max(prevalence, 0.1), (mark["model"] or 0) - 0.03)
        ax.set_ylim(low, max(prevalence, 0.01) * 1.1)
        ax.set_xlabel("threshold probability (risk at which one would refer)")
        ax.set_ylabel("net benefit (true positives per image)")
        ax.set_title(f"{name}: {mark['images']} images, {prevalence:.0%} malignant")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper right")
    if not sets:
        axes[0][0].text(0.5, 0.5, "no malignant class: no decision curve", ha="center")
        axes[0][0].set_axis_off()
    return fig
