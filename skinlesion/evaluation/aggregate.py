"""Across-seed summaries, run selection by validation, comparison plots, the report.

The statistics that need every run's predictions (paired tests, ensembles, operating points) are in
:mod:`skinlesion.evaluation.compare`; McNemar per seed stays here as a secondary check.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import pandas as pd

from skinlesion.core.io import read_json
from skinlesion.core.layout import RunPaths
from skinlesion.evaluation.evaluate import HEADLINE, KEY_METRICS
from skinlesion.modeling.train import read_training_log


@dataclass
class RunResults:
    """Everything the runs of a sweep produced, keyed ``[backbone][seed]``."""

    metrics: dict[str, dict[int, dict]] = field(default_factory=dict)
    val_scores: dict[str, dict[int, float]] = field(default_factory=dict)
    predictions: dict[str, dict[int, pd.DataFrame]] = field(default_factory=dict)
    curves: dict[str, dict[int, pd.DataFrame]] = field(default_factory=dict)
    roc: dict[str, dict[int, pd.DataFrame]] = field(default_factory=dict)
    calibration: dict[str, dict[int, pd.DataFrame]] = field(default_factory=dict)


def collect_runs(backbones: list[str], seeds: list[int]) -> RunResults:
    """Read every run's training log, evaluation summary and per-image outputs from ``runs/``."""
    out = RunResults()
    for b in backbones:
        for part in (out.metrics, out.val_scores, out.predictions, out.curves, out.roc, out.calibration):
            part[b] = {}
        for s in seeds:
            run = RunPaths(b, s)
            out.metrics[b][s] = read_json(run.eval_summary)
            out.val_scores[b][s] = read_json(run.train_summary)["val_balanced_accuracy"]
            out.predictions[b][s] = pd.read_csv(run.predictions, keep_default_na=False)
            out.curves[b][s] = read_training_log(run.train_log)
            out.roc[b][s] = pd.read_csv(run.roc)
            out.calibration[b][s] = pd.read_csv(run.calibration)
    return out


def prediction_arrays(
    predictions: dict[str, dict[int, pd.DataFrame]],
) -> tuple[list[str], np.ndarray, dict[str, dict[int, np.ndarray]]]:
    """Every run's test probabilities as arrays on one row order and one class order.

    Args:
        predictions: ``{backbone: {seed: predictions frame}}`` (path, actual, predicted, ``p_<class>``).

    Returns:
        The classes (the ``p_`` columns of the first run), the labels as indices, and
        ``{backbone: {seed: (n, classes) probabilities}}`` with rows in the first run's path order.
    """
    first = next(iter(next(iter(predictions.values())).values()))
    classes = [c[2:] for c in first.columns if c.startswith("p_")]
    index = {c: i for i, c in enumerate(classes)}
    paths = first["path"]
    y_true = first["actual"].map(index).to_numpy()
    columns = [f"p_{c}" for c in classes]
    probs = {
        b: {s: _renormalised(frame.set_index("path").loc[paths, columns]) for s, frame in runs.items()}
        for b, runs in predictions.items()
    }
    return classes, y_true, probs


def _renormalised(frame: pd.DataFrame) -> np.ndarray:
    # The CSV holds probabilities rounded to 6 decimals: rows sum to 1 within 1e-5, not exactly.
    values = frame.to_numpy(dtype=float)
    return values / values.sum(axis=1, keepdims=True)


def headline_metrics(model: str, run: dict, summary: dict) -> dict:
    """``metrics/metrics.json``: the selected run's key test metrics and CIs first, then the seed spread.

    Insertion order is the column order of ``dvc exp show``: the headline balanced accuracy comes first.
    The spread over seeds covers the two class-balanced metrics only (the rest, and which seed was
    selected, are in ``reports/summary.json``): every number here is a column of the experiment table.
    """
    return {
        "test": {m: run.get(m) for m in KEY_METRICS},
        "ci": {m: run["ci"][m] for m in KEY_METRICS if m in run.get("ci", {})},
        "seeds": {m: {k: summary[model][m][k] for k in ("mean", "std")} for m in SPREAD_METRICS},
    }


def backbone_metrics(summary: dict) -> dict:
    """``metrics/backbones.json``: balanced accuracy mean and std over seeds per backbone (diffable, small)."""
    return {b: {k: v["balanced_accuracy"][k] for k in ("mean", "std")} for b, v in summary.items()}


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


ALPHA = 0.05  # significance level of the pairwise tests
SPREAD_METRICS = ("balanced_accuracy", "macro_f1")  # mean ± std over seeds in the headline metrics


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
    """Markdown table of the pairwise McNemar tests (plain accuracy, per seed: a secondary check)."""
    lines = ["| pair | p per seed | verdict |", "|---|---|---|"]
    for t in tests:
        ps = ", ".join(f"seed {s}: {r['p']:.3g}" for s, r in t["seeds"].items())
        verdict = (
            f"**{t['better']}** better (p < {ALPHA} on every seed)" if t["significant"] else "no significant difference"
        )
        lines.append(f"| {t['a']} vs {t['b']} | {ps} | {verdict} |")
    return "\n".join(lines)


def comparison_figure(
    per_run: dict[str, dict[int, dict]],
    curves: pd.DataFrame,
    roc: pd.DataFrame,
    calibration: pd.DataFrame,
    confusion: pd.DataFrame,
    headline: str,
):
    """The one comparison picture of the report: every backbone, seed and curve on shared axes.

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
    for ax, column in zip(axes[1][:2], ("val_loss", "val_accuracy"), strict=True):
        for run, h in curves.groupby("run", sort=True):
            colour = colours[run.rsplit("-", 1)[0]]
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
    classes = sorted(set(confusion["actual"]) | set(confusion["predicted"]))
    matrix = pd.crosstab(confusion["actual"], confusion["predicted"]).reindex(
        index=classes, columns=classes, fill_value=0
    )
    shares = matrix.div(matrix.sum(axis=1).replace(0, 1), axis=0)
    ax = axes[1][4]
    ax.imshow(shares.to_numpy(), cmap="Blues", vmin=0, vmax=1)
    for (i, j), n in np.ndenumerate(matrix.to_numpy()):
        ax.text(
            j, i, str(n), ha="center", va="center", fontsize=7, color="white" if shares.iat[i, j] > 0.5 else "black"
        )
    short = [c[:12] for c in classes]
    ax.set_xticks(range(len(classes)), short, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(len(classes)), short, fontsize=7)
    ax.set(xlabel="predicted", ylabel="actual", title=f"{headline}: confusion (colour: row share)")
    fig.suptitle("Backbones compared on the test split", fontsize=13)
    return fig


def render_report(
    *,
    data: dict,
    model: str,
    selected_seed: int,
    summary: dict,
    tests: list[dict],
    headline: dict,
    seeds: list[int],
    synthetic: bool,
    comparison: str,
    ensembles: str,
    operating_points: str,
) -> str:
    """The self-contained Markdown report (images linked relative to ``reports/``).

    Args:
        data: ``reports/data.json``.
        model: Headline backbone.
        selected_seed: Its run chosen by validation balanced accuracy.
        summary: Output of :func:`summarise`.
        tests: Output of :func:`pairwise_tests`.
        headline: The selected run's test metrics.
        seeds: Seeds run.
        synthetic: Whether the data were the built-in synthetic images.
        comparison: Markdown table of the paired balanced-accuracy tests.
        ensembles: Markdown table of the seed and all-backbone ensembles.
        operating_points: Markdown table of the headline run's clinical operating points.

    Returns:
        Markdown text.

    """
    images = data["images"]
    skipped = ", ".join(f"{k}: {v}" for k, v in data["skipped"].items() if v) or "none"
    lines = ["# skinlesion report", ""]
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
        f"- {grouping_sentence(data)}",
        "",
        "## Headline",
        "",
        f"`{model}`, seed {selected_seed} (chosen by validation balanced accuracy, never by test):",
        "",
        *(_with_ci(m.replace("_", " "), headline, m) for m in KEY_METRICS if headline.get(m) is not None),
        f"- chance level (balanced accuracy): {1 / data['classes']:.3f}",
        "",
        "## Backbones compared (test split, mean ± std over seeds " + ", ".join(map(str, seeds)) + ")",
        "",
        summary_table(summary),
        "",
        "![comparison](../plots/comparison.png)",
        "",
        "Interactive versions of these curves and matrices: `dvc plots show`.",
        "",
        f"## Backbones compared on balanced accuracy (paired, Holm-corrected, α = {ALPHA})",
        "",
        comparison,
        "",
        "Δ is the difference of mean-over-seeds balanced accuracy on the same test images; the interval is a",
        "class-stratified paired bootstrap, p a paired permutation test (each image's answers swapped at random),",
        "adjusted across pairs with Holm's method.",
        "",
        "## Ensembles (test split)",
        "",
        ensembles,
        "",
        "Each backbone's seeds averaged (probabilities), and every run of every backbone averaged.",
        "",
        f"## Clinical operating points (`{model}`, seed {selected_seed})",
        "",
        operating_points,
        "",
        "Read off the test ROC curve of the summed malignant probability (melanoma: its own probability);",
        "intervals: class-stratified bootstrap. A threshold for use would have to be fixed on validation data.",
        "",
        "## Secondary check: McNemar tests on plain accuracy, per seed",
        "",
        tests_table(tests),
        "",
        "A difference is claimed only when every seed's test agrees.",
        "",
        "## Grad-CAM (headline model, predicted class)",
        "",
        "![Grad-CAM](../plots/gradcam.png)",
        "",
        "## Augmentation",
        "",
        "![augmentation](../plots/augment_preview.png)",
        "",
    ]
    return "\n".join(lines)


def grouping_sentence(data: dict) -> str:
    """One sentence on how the split was grouped, and what that means for leakage."""
    grouping = data.get("grouping", {})
    column = grouping.get("group_by")
    if column:
        missing = grouping.get("images_without_group", 0)
        extra = f"; {missing} images without a `{column}` each formed their own group" if missing else ""
        return f"Grouping: by `{column}` — no `{column}` straddles train/val/test{extra}."
    if grouping.get("given_split"):
        kept = f"Grouping: the source's own split ({grouping['given_split']}), kept as it is"
        return kept + (f"; {grouping['warning']}" if grouping.get("warning") else ", grouped by lesion at the source.")
    return "Grouping: none, image-level split" + (f"; {grouping['warning']}" if grouping.get("warning") else ".")


def _with_ci(name: str, metrics: dict, key: str) -> str:
    ci = metrics.get("ci", {}).get(key)
    interval = f" (95 % CI {ci['low']:.3f}–{ci['high']:.3f})" if ci else ""
    return f"- {name} {metrics[key]:.3f}{interval}"
