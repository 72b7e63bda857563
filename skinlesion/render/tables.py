"""The Markdown tables of the report and the model card: one function per table, numbers with their intervals."""

from __future__ import annotations

from skinlesion.stats.compare import ALPHA
from skinlesion.stats.metrics import KEY_METRICS


def ci_label(confidence: float) -> str:
    """``95 % CI`` for ``confidence`` 0.95: the interval label of every text, from ``evaluate.confidence``."""
    return f"{confidence * 100:g} % CI"


def interval(value: float, ci: dict, signed: bool = False) -> str:
    """``0.512 (0.431–0.590)``; signed differences as ``+0.051 (−0.020 to +0.121)``."""
    if signed:
        return f"{value:+.3f} ({ci['low']:+.3f} to {ci['high']:+.3f})"
    return f"{value:.3f} ({ci['low']:.3f}–{ci['high']:.3f})"


def summary_table(summary: dict, val: dict, metrics: tuple[str, ...] = KEY_METRICS) -> str:
    """Mean ± std over seeds per backbone: validation balanced accuracy, then the test metrics.

    Args:
        summary: :func:`~skinlesion.stats.compare.summarise` of the test metrics.
        val: The same of the validation metrics.
        metrics: Test metrics shown.
    """
    header = "| backbone | val balanced accuracy | " + " | ".join(f"test {m.replace('_', ' ')}" for m in metrics) + " |"
    lines = [header, "|" + "---|" * (len(metrics) + 2)]
    for backbone, values in summary.items():
        cells = [_spread(val[backbone].get("balanced_accuracy"))] + [_spread(values.get(m)) for m in metrics]
        lines.append(f"| {backbone} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _spread(entry: dict | None) -> str:
    return "–" if entry is None else f"{entry['mean']:.3f} ± {entry['std']:.3f}"


def networks_table(paired: list[dict], confidence: float) -> str:
    """Question (a): do these trained networks differ on this test set? (paired, pooled over seeds, Holm)."""
    lines = [
        f"| pair | Δ balanced accuracy (A − B), {ci_label(confidence)} | p (sign-flip) | p (Holm) | on this test set |",
        "|---|---|---|---|---|",
    ]
    for t in paired:
        if t["significant"]:
            verdict = f"the {t['a'] if t['difference'] > 0 else t['b']} runs score higher"
        else:
            verdict = "no difference detected"
        lines.append(
            f"| {t['a']} vs {t['b']} | {interval(t['difference'], t, signed=True)} | {t['p_text']} | "
            f"{t['p_holm_text']} | {verdict} |"
        )
    return "\n".join(lines)


def architectures_table(tests: list[dict], confidence: float) -> str:
    """Question (b): is architecture A better than B? (across training runs and test images, Holm)."""
    lines = [
        f"| pair | seeds | Δ balanced accuracy (A − B), {ci_label(confidence)} | seed sd (A, B) | p | p (Holm) | "
        "verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for t in tests:
        if t["seeds_a"] < 2 or t["seeds_b"] < 2:
            difference, p, p_holm = f"{t['difference']:+.3f}", "–", "–"
        else:
            difference, p, p_holm = interval(t["difference"], t, signed=True), t["p_text"], t["p_holm_text"]
        verdict = f"**{t['verdict']}**" if t["significant"] else t["verdict"]
        lines.append(
            f"| {t['a']} vs {t['b']} | {t['seeds_a']}, {t['seeds_b']} | {difference} | "
            f"{t['seed_sd_a']:.3f}, {t['seed_sd_b']:.3f} | {p} | {p_holm} | {verdict} |"
        )
    return "\n".join(lines)


def ensemble_table(ensembles: dict[str, dict], summary: dict, confidence: float) -> str:
    """Seed and all-backbone ensembles beside each backbone's single-run mean (test split)."""
    lines = [
        f"| ensemble | runs | balanced accuracy ({ci_label(confidence)}) | single runs (mean) | accuracy | macro-F1 "
        "| ROC-AUC |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, e in ensembles.items():
        single = summary.get(name, {}).get("balanced_accuracy", {}).get("mean")
        auc = "–" if e["roc_auc_macro"] is None else f"{e['roc_auc_macro']:.3f}"
        lines.append(
            f"| {name} | {e['runs']} | {interval(e['balanced_accuracy'], e['ci']['balanced_accuracy'])} | "
            f"{'–' if single is None else f'{single:.3f}'} | {e['accuracy']:.3f} | {e['macro_f1']:.3f} | {auc} |"
        )
    return "\n".join(lines)


def operating_points_table(views: dict[str, dict], confidence: float) -> str:
    """Operating points: threshold fixed on validation, what it achieves on test, and the optimistic readout.

    Args:
        views: :func:`~skinlesion.stats.clinical.clinical_views`.
        confidence: Interval coverage (Wilson intervals of the test proportions).
    """
    if not views:
        return "No malignant class (`evaluate.malignant`) among the classes of this data set."
    label = ci_label(confidence)
    lines = [
        f"| view | target (fixed on validation) | threshold | test sensitivity ({label}) | test specificity "
        f"({label}) | test-ROC readout (optimistic) |",
        "|---|---|---|---|---|---|",
    ]
    for view, entry in views.items():
        auc = entry["roc_auc"]
        name = f"{view.replace('_', ' ')} ({', '.join(entry['classes'])}); ROC-AUC {interval(auc['value'], auc)}"
        for key, point in entry["fixed"].items():
            test = point["test"]
            lines.append(
                f"| {name} | {_target(key)} | {point['threshold']:.3f} | "
                f"{interval(test['sensitivity']['value'], test['sensitivity'])} | "
                f"{interval(test['specificity']['value'], test['specificity'])} | "
                f"{_measure(key)} {entry['test_roc'][key]:.3f} |"
            )
            name = ""
    return "\n".join(lines)


def _target(key: str) -> str:
    """``sensitivity_at_specificity_0.9`` -> ``specificity ≥ 90%``."""
    _, _, level = key.partition("_at_")
    target, _, value = level.rpartition("_")
    return f"{target} ≥ {float(value):.0%}"


def _measure(key: str) -> str:
    return key.partition("_at_")[0]


def calibration_table(metrics: dict[str, dict[int, dict]], confidence: float) -> str:
    """Per run: the temperature fitted on validation, test calibration error before and after it.

    Args:
        metrics: ``{backbone: {seed: test metrics}}`` (each with its ``calibration`` block).
        confidence: Interval coverage.
    """
    label = ci_label(confidence)
    lines = [
        f"| run | temperature | calibration error before ({label}) | after ({label}) | ECE (10 bins) before → after "
        "| log loss before → after |",
        "|---|---|---|---|---|---|",
    ]
    for backbone, runs in metrics.items():
        for seed, run in runs.items():
            cal = run["calibration"]
            before, after = cal["before"], cal["after"]
            lines.append(
                f"| {backbone} seed {seed} | {cal['temperature']:.2f} | "
                f"{interval(before['calibration_error'], before)} | {interval(after['calibration_error'], after)} | "
                f"{before['ece']:.3f} → {after['ece']:.3f} | {before['log_loss']:.3f} → {after['log_loss']:.3f} |"
            )
    return "\n".join(lines)


def tests_table(tests: list[dict]) -> str:
    """The pairwise McNemar tests (plain accuracy, per seed: a secondary check on these networks)."""
    lines = ["| pair | p per seed | on this test set |", "|---|---|---|"]
    for t in tests:
        ps = ", ".join(f"seed {s}: {r['p']:.3g}" for s, r in t["seeds"].items())
        verdict = (
            f"the {t['better']} runs score higher (p < {ALPHA} on every seed)"
            if t["significant"]
            else "no difference detected"
        )
        lines.append(f"| {t['a']} vs {t['b']} | {ps} | {verdict} |")
    return "\n".join(lines)


def external_table(external: dict[str, dict], confidence: float) -> str:
    """Each external set: what was scored, the headline's balanced accuracy there, the drop from the internal test."""
    label = ci_label(confidence)
    lines = [
        f"| set | images scored (of files) | left out | classes | internal balanced accuracy | external ({label}) | "
        f"drop ({label}) | ensembles on it |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, e in external.items():
        data, drop, head = e["data"], e["drop"], e["headline"]
        left = ", ".join(f"{k}: {v}" for k, v in data["skipped"].items()) or "none"
        ensembles = ", ".join(f"{n} {x['balanced_accuracy']:.3f}" for n, x in e["ensembles"].items())
        lines.append(
            f"| {name} | {data['scored']} ({data['files_seen']}) | {left} | {', '.join(e['classes'])} | "
            f"{drop['internal']:.3f} | {interval(head['balanced_accuracy'], head['ci']['balanced_accuracy'])} | "
            f"{interval(drop['value'], drop, signed=True)} | {ensembles} |"
        )
    return "\n".join(lines)


def subgroup_ensembles_table(ensembles: dict[str, dict], confidence: float) -> str:
    """Each ensemble's balanced accuracy per subgroup (the headline's full table is the subgroups module's)."""
    names = list(ensembles)
    first = next(iter(ensembles.values()))
    lines = [
        "| subgroup | " + " | ".join(f"{n} ({ci_label(confidence)})" for n in names) + " |",
        "|" + "---|" * (len(names) + 1),
    ]
    for column, entry in first["columns"].items():
        for i, row in enumerate(entry["levels"]):
            cells = []
            for name in names:
                level = ensembles[name]["columns"][column]["levels"][i]
                ba = level.get("balanced_accuracy")
                cells.append("too small" if level["too_small"] else interval(ba["value"], ba))
            lines.append(f"| {column} = {row['level']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
