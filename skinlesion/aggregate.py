"""Across-seed summaries, pairwise McNemar tests, run selection by validation, and the report."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd

from skinlesion.evaluate import HEADLINE

ALPHA = 0.05  # significance level of the pairwise tests


def summarise(per_run: dict[str, dict[int, dict]]) -> dict[str, dict[str, dict[str, float]]]:
    """Mean and standard deviation over seeds of each headline metric, per backbone.

    Args:
        per_run: ``{backbone: {seed: evaluate metrics}}``.

    Returns:
        ``{backbone: {metric: {"mean", "std", "n"}}}`` (sample std, 0 for a single seed).

    """
    out = {}
    for backbone, runs in per_run.items():
        out[backbone] = {}
        for metric in HEADLINE:
            values = np.array([r[metric] for r in runs.values() if r.get(metric) is not None], dtype=float)
            if values.size:
                out[backbone][metric] = {
                    "mean": float(values.mean()),
                    "std": float(values.std(ddof=1)) if values.size > 1 else 0.0,
                    "n": int(values.size),
                }
    return out


def select_run(val_scores: dict[int, float]) -> int:
    """The seed with the best validation balanced accuracy (ties: the lowest seed). Never uses test."""
    return min(val_scores, key=lambda seed: (-val_scores[seed], seed))


def mcnemar_test(y_true: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray) -> dict[str, float]:
    """McNemar's test on two classifiers' test predictions (mlxtend).

    Uses the exact binomial test when fewer than 25 discordant pairs, else chi² with continuity correction.

    Returns:
        ``b`` (A right, B wrong), ``c`` (A wrong, B right), ``chi2`` (``None`` when exact) and ``p``.

    """
    from mlxtend.evaluate import mcnemar, mcnemar_table

    table = mcnemar_table(y_target=y_true, y_model1=pred_a, y_model2=pred_b)
    b, c = int(table[0, 1]), int(table[1, 0])
    if b + c == 0:
        return {"a_only_correct": 0, "b_only_correct": 0, "chi2": None, "p": 1.0}
    exact = b + c < 25
    chi2, p = mcnemar(ary=table, exact=exact, corrected=True)
    return {"a_only_correct": b, "b_only_correct": c, "chi2": None if exact else float(chi2), "p": float(p)}


def pairwise_tests(predictions: dict[str, dict[int, pd.DataFrame]]) -> list[dict]:
    """McNemar tests between every pair of backbones on each seed both have.

    A pair's difference is called significant only when every shared seed gives p < ALPHA and the
    same backbone is more often right alone in each.

    Args:
        predictions: ``{backbone: {seed: predictions frame with path, actual, predicted}}``.

    Returns:
        One entry per pair: per-seed results, and the verdict.

    """
    out = []
    for a, b in combinations(sorted(predictions), 2):
        seeds = sorted(set(predictions[a]) & set(predictions[b]))
        per_seed = {}
        for seed in seeds:
            pa = predictions[a][seed].set_index("path")
            pb = predictions[b][seed].set_index("path").loc[pa.index]
            per_seed[seed] = mcnemar_test(
                pa["actual"].to_numpy(), pa["predicted"].to_numpy(), pb["predicted"].to_numpy()
            )
        winners = {("a" if r["a_only_correct"] > r["b_only_correct"] else "b") for r in per_seed.values()}
        significant = bool(per_seed) and all(r["p"] < ALPHA for r in per_seed.values()) and len(winners) == 1
        better = (a if winners == {"a"} else b) if significant else None
        out.append({"a": a, "b": b, "seeds": per_seed, "significant": significant, "better": better})
    return out


def summary_table(summary: dict, metrics: tuple[str, ...] = HEADLINE) -> str:
    """Markdown table of mean ± std per backbone."""
    header = "| backbone | " + " | ".join(m.replace("_", " ") for m in metrics) + " |"
    lines = [header, "|" + "---|" * (len(metrics) + 1)]
    for backbone, values in summary.items():
        cells = [f"{values[m]['mean']:.3f} ± {values[m]['std']:.3f}" if m in values else "–" for m in metrics]
        lines.append(f"| {backbone} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def tests_table(tests: list[dict]) -> str:
    """Markdown table of the pairwise McNemar tests."""
    lines = ["| pair | p per seed | verdict |", "|---|---|---|"]
    for t in tests:
        ps = ", ".join(f"seed {s}: {r['p']:.3g}" for s, r in t["seeds"].items())
        verdict = (
            f"**{t['better']}** better (p < {ALPHA} on every seed)" if t["significant"] else "no significant difference"
        )
        lines.append(f"| {t['a']} vs {t['b']} | {ps} | {verdict} |")
    return "\n".join(lines)


def comparison_figure(per_run: dict[str, dict[int, dict]], metrics: tuple[str, ...] = HEADLINE):
    """Seaborn strip plots, one panel per metric, one colour per backbone, one dot per seed."""
    import seaborn as sns

    from skinlesion.io import pyplot

    pyplot()
    rows = [
        {"backbone": b, "seed": s, "metric": m, "value": r[m]}
        for b, runs in per_run.items()
        for s, r in runs.items()
        for m in metrics
        if r.get(m) is not None
    ]
    frame = pd.DataFrame(rows)
    grid = sns.catplot(
        frame,
        x="backbone",
        y="value",
        hue="backbone",
        col="metric",
        col_wrap=4,
        kind="strip",
        jitter=False,  # seaborn's jitter draws from NumPy's global RNG: the PNG would change every run
        sharey=False,
        height=2.4,
        aspect=1.0,
        s=60,
        legend=False,
    )
    grid.set_titles("{col_name}")
    grid.set_axis_labels("", "value")
    for ax in grid.axes.flat:
        ax.tick_params(axis="x", labelbottom=True, labelrotation=30)
    grid.figure.suptitle("Test metrics per backbone (one dot per seed)", y=1.02)
    return grid.figure


def render_report(
    *,
    data: dict,
    model: str,
    selected_seed: int,
    summary: dict,
    tests: list[dict],
    headline: dict,
    backbones: list[str],
    seeds: list[int],
    synthetic: bool,
) -> str:
    """The self-contained Markdown report (images linked relative to ``reports/``).

    Args:
        data: ``metrics/data.json``.
        model: Headline backbone.
        selected_seed: Its run chosen by validation balanced accuracy.
        summary: Output of :func:`summarise`.
        tests: Output of :func:`pairwise_tests`.
        headline: The selected run's test metrics.
        backbones: Backbones compared.
        seeds: Seeds run.
        synthetic: Whether the data were the built-in synthetic images.

    Returns:
        Markdown text.

    """
    images = data["images"]
    skipped = ", ".join(f"{k}: {v}" for k, v in data["skipped"].items() if v) or "none"
    lines = [
        "# skinlesion report",
        "",
    ]
    if synthetic:
        lines += [
            "> **These results come from synthetic images generated by the pipeline itself. They say nothing",
            "> about clinical performance; they show that the pipeline works.**",
            "",
        ]
    lines += [
        "Not a diagnostic device: research use only.",
        "",
        "## Data",
        "",
        f"- Images: {images['train']} train, {images['val']} validation, {images['test']} test "
        f"({data['classes']} classes; {data['files_seen']} files seen).",
        f"- Skipped by validation: {data['skipped_total']} ({skipped}).",
        "",
        "![class distribution](../plots/class_distribution.png)",
        "",
        "## Headline",
        "",
        f"`{model}`, seed {selected_seed} (chosen by validation balanced accuracy, never by test):",
        "",
        _with_ci("balanced accuracy", headline, "balanced_accuracy"),
        _with_ci("accuracy", headline, "accuracy"),
        _with_ci("macro-F1", headline, "macro_f1"),
        f"- chance level (balanced accuracy): {1 / data['classes']:.3f}",
        "",
        "## Backbones compared (test split, mean ± std over seeds " + ", ".join(map(str, seeds)) + ")",
        "",
        summary_table(summary),
        "",
        "![comparison](../plots/comparison.png)",
        "",
        f"## Pairwise McNemar tests (α = {ALPHA})",
        "",
        tests_table(tests),
        "",
        "A difference is claimed only when every seed's test agrees.",
        "",
        "## Confusion matrices, ROC and calibration (seed " + str(seeds[0]) + ")",
        "",
    ]
    for b in backbones:
        base = f"../plots/{b}/seed{seeds[0]}"
        lines += [
            f"### {b}",
            "",
            f"![confusion]({base}/confusion.png) ![roc]({base}/roc.png) ![reliability]({base}/reliability.png)",
            "",
        ]
    lines += [
        "## Grad-CAM (headline model, predicted class)",
        "",
        "![Grad-CAM](../plots/gradcam.png)",
        "",
        "## Augmentation",
        "",
        "![augmentation](../plots/augment_preview.png)",
        "",
        "## Training curves",
        "",
        "![training curves](../plots/training_curves.png)",
        "",
    ]
    return "\n".join(lines)


def _with_ci(name: str, metrics: dict, key: str) -> str:
    ci = metrics["ci"][key]
    return f"- {name} {metrics[key]:.3f} (95 % CI {ci['low']:.3f}–{ci['high']:.3f})"


def training_curves_figure(histories: dict[str, dict[int, pd.DataFrame]]):
    """Validation loss and accuracy per epoch, one line per backbone and seed."""
    from skinlesion.io import pyplot

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (backbone, runs) in enumerate(sorted(histories.items())):
        for seed, h in sorted(runs.items()):
            step = np.arange(1, len(h) + 1)
            kw = dict(color=colours[i % len(colours)], alpha=0.8, label=backbone if seed == min(runs) else None)
            axes[0].plot(step, h["val_loss"], **kw)
            axes[1].plot(step, h["val_accuracy"], **kw)
    axes[0].set(xlabel="epoch (head, then fine-tuning)", ylabel="validation loss")
    axes[1].set(xlabel="epoch (head, then fine-tuning)", ylabel="validation accuracy")
    axes[1].legend(fontsize=8)
    return fig
