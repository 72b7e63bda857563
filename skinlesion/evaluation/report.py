"""Every Markdown text the pipeline writes: the report's tables and body, and the model card."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from skinlesion.core import layout
from skinlesion.core.modes import Quantization, Source, Weights
from skinlesion.evaluation.compare import ALPHA
from skinlesion.evaluation.metrics import HEADLINE, KEY_METRICS


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


def comparison_table(tests: list[dict], confidence: float) -> str:
    """Markdown table of :func:`compare_backbones`."""
    lines = [
        f"| pair | Δ balanced accuracy (A − B), {confidence:.0%} CI | p (permutation) | p (Holm) | verdict |",
        "|---|---|---|---|---|",
    ]
    for t in tests:
        verdict = f"**{t['better']}** better" if t["significant"] else "no significant difference"
        lines.append(
            f"| {t['a']} vs {t['b']} | {t['difference']:+.3f} ({t['low']:+.3f} to {t['high']:+.3f}) | "
            f"{t['p']:.3g} | {t['p_holm']:.3g} | {verdict} |"
        )
    return "\n".join(lines)


def ensemble_table(ensembles: dict[str, dict], summary: dict, confidence: float) -> str:
    """Markdown rows of :func:`ensemble_results` beside each backbone's single-run mean."""
    lines = [
        f"| ensemble | runs | balanced accuracy ({confidence:.0%} CI) | single runs (mean) | accuracy | macro-F1 "
        "| ROC-AUC |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, e in ensembles.items():
        ci = e["ci"]["balanced_accuracy"]
        single = summary.get(name, {}).get("balanced_accuracy", {}).get("mean")
        auc = "–" if e["roc_auc_macro"] is None else f"{e['roc_auc_macro']:.3f}"
        lines.append(
            f"| {name} | {e['runs']} | {e['balanced_accuracy']:.3f} ({ci['low']:.3f}–{ci['high']:.3f}) | "
            f"{'–' if single is None else f'{single:.3f}'} | {e['accuracy']:.3f} | {e['macro_f1']:.3f} | {auc} |"
        )
    return "\n".join(lines)


def operating_points_table(views: dict[str, dict]) -> str:
    """Markdown table of :func:`clinical_views`: one row per view, value and CI per operating point."""
    if not views:
        return "No malignant class (`evaluate.malignant`) among the classes of this data set."
    names = list(next(iter(views.values()))["points"])
    header = "| view | " + " | ".join(_point_label(n) for n in names) + " |"
    lines = [header, "|" + "---|" * (len(names) + 1)]
    for view, entry in views.items():
        cells = [f"{p['value']:.3f} ({p['low']:.3f}–{p['high']:.3f})" for p in entry["points"].values()]
        lines.append(f"| {view.replace('_', ' ')} ({', '.join(entry['classes'])}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _point_label(name: str) -> str:
    if name == "roc_auc":
        return "ROC-AUC"
    measure, _, level = name.partition("_at_")
    target, _, value = level.rpartition("_")
    return f"{measure} at {float(value):.0%} {target}"


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
    tables: dict[str, str],
    confidence: float,
) -> str:
    """The self-contained Markdown report (images linked relative to ``reports/``).

    A template: its keyword arguments are the report's parts, which is why it takes more than eight.

    Args:
        data: ``reports/data.json``.
        model: Headline backbone.
        selected_seed: Its run chosen by validation balanced accuracy.
        summary: Output of :func:`summarise`.
        tests: Output of :func:`pairwise_tests`.
        headline: The selected run's test metrics.
        seeds: Seeds run.
        synthetic: Whether the data were the built-in synthetic images.
        tables: Markdown tables: ``comparison`` (paired balanced-accuracy tests), ``ensembles`` (seed and
            all-backbone ensembles), ``operating_points`` (the headline run's clinical operating points).
        confidence: Interval coverage (``evaluate.confidence``), for the interval labels.

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
        *(_with_ci(m.replace("_", " "), headline, m, confidence) for m in KEY_METRICS if headline.get(m) is not None),
        f"- chance level (balanced accuracy): {1 / data['classes']:.3f}",
        "",
        "## Backbones compared (test split, mean ± std over seeds " + ", ".join(map(str, seeds)) + ")",
        "",
        summary_table(summary),
        "",
        f"![comparison]({_from(layout.REPORT, layout.COMPARISON)})",
        "",
        "Interactive versions of these curves and matrices: `dvc plots show`.",
        "",
        "### Recall per class",
        "",
        f"![recall per class]({_from(layout.REPORT, layout.RECALL)})",
        "",
        "Each backbone's recall of every test class, averaged over its seeds (* malignant, `evaluate.malignant`):",
        "the diagnoses a backbone misses stand out at a glance.",
        "",
        f"## Backbones compared on balanced accuracy (paired, Holm-corrected, α = {ALPHA})",
        "",
        tables["comparison"],
        "",
        "Δ is the difference of mean-over-seeds balanced accuracy on the same test images; the interval is a",
        "class-stratified paired bootstrap, p a paired permutation test (each image's answers swapped at random),",
        "adjusted across pairs with Holm's method.",
        "",
        "## Ensembles (test split)",
        "",
        tables["ensembles"],
        "",
        "Each backbone's seeds averaged (probabilities), and every run of every backbone averaged.",
        "",
        f"## Clinical operating points (`{model}`, seed {selected_seed})",
        "",
        tables["operating_points"],
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
        f"![Grad-CAM]({_from(layout.REPORT, layout.GRADCAM)})",
        "",
        "## Augmentation",
        "",
        f"![augmentation]({_from(layout.REPORT, layout.AUGMENT_PREVIEW)})",
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


def _from(document: Path, target: Path) -> str:
    """``target`` as a link relative to the folder of ``document`` (both relative to the repository)."""
    return Path(os.path.relpath(target, document.parent)).as_posix()


def ci_label(confidence: float) -> str:
    """``95 % CI`` for ``confidence`` 0.95: the interval label of every text, from ``evaluate.confidence``."""
    return f"{confidence * 100:g} % CI"


def _with_ci(name: str, metrics: dict, key: str, confidence: float) -> str:
    ci = metrics.get("ci", {}).get(key)
    interval = f" ({ci_label(confidence)} {ci['low']:.3f}–{ci['high']:.3f})" if ci else ""
    return f"- {name} {metrics[key]:.3f}{interval}"


def training_sentence(weights: str) -> str:
    """How the model was trained, from ``train.weights``, for the model card."""
    if weights == Weights.SCRATCH:
        return "trained from random initialisation, every layer and BatchNorm, with `train.weights: scratch`"
    if weights == Weights.NONE:
        return (
            "a random frozen backbone with `train.weights: none` (the offline demo): head trained, then top "
            "layers fine-tuned, far below what pretrained weights give"
        )
    origin = "ImageNet weights" if weights == Weights.IMAGENET else f"the weights file `{weights}`"
    return f"transfer learning from {origin}: frozen backbone + head, then top layers fine-tuned"


def model_card(
    *,
    labels: Any,
    summary: dict,
    data: dict,
    source: Source,
    weights: str,
    quantization: Quantization,
    agreement: dict,
    confidence: float,
) -> str:
    """Markdown model card: classes, data and grouping, metrics with uncertainty, comparisons, use and limits.

    Args:
        labels: The headline model's :class:`~skinlesion.core.layout.LabelMap`.
        summary: ``reports/summary.json`` (the headline metrics, and the report's comparison tables).
        data: ``reports/data.json``.
        source: ``data.source``.
        weights: ``train.weights`` (how the model was trained).
        quantization: ``export.quantization``.
        agreement: TFLite-vs-Keras agreement (``metrics/export.json``).
        confidence: Interval coverage (``evaluate.confidence``), for the interval labels.

    Returns:
        Markdown text.
    """
    headline, tables = summary["headline"], summary["tables"]
    test, ci, seeds = headline["test"], headline["ci"], headline["seeds"]
    card = layout.MODEL_CARD
    model = _from(card, layout.HEADLINE_MODEL / layout.MODEL_FILE)
    headline_labels = layout.HEADLINE_MODEL / layout.LABELS_FILE
    export_labels = layout.EXPORT_TFLITE.parent / layout.LABELS_FILE
    classes = ", ".join(f"`{c}`" for c in labels.classes)
    lines = [
        f"# Model card: skinlesion `{labels.backbone}` (seed {labels.seed})",
        "",
        "**Not a diagnostic device.** For research and education only; it must not be used to diagnose,",
        "triage or treat any patient.",
        "",
        "## Model",
        "",
        f"- Backbone: {labels.backbone}; {training_sentence(weights)}. Input: RGB 0–255 resized to "
        f"{labels.image_size}×{labels.image_size}; output: one probability per class.",
        f"- Classes ({len(labels.classes)}): {classes}.",
        f"- Files: `{model}` (Keras 3) with `{_from(card, headline_labels)}`, `{_from(card, layout.EXPORT_TFLITE)}` "
        f"({'float32' if quantization == Quantization.NONE else quantization + ' quantised'}), "
        f"`{_from(card, export_labels)}` (class order); a TensorFlow SavedModel (`serve` endpoint) on demand: "
        f"`python -m skinlesion.deploy.export {layout.HEADLINE_MODEL / layout.MODEL_FILE} DIR`.",
        f"- TFLite vs Keras on {agreement['images']} test images: max |Δp| {agreement['max_abs_diff']:.4f}, "
        f"top-1 agreement {agreement['label_agreement']:.1%}.",
        "",
        "## Training data",
        "",
        f"- Source: `{source}`"
        + (
            " — synthetic images generated by the pipeline; **results say nothing clinical**."
            if source == Source.SYNTHETIC
            else "."
        ),
        f"- Split: {data['images']['train']} train / {data['images']['val']} validation / {data['images']['test']} "
        f"test images, stratified by class; {data['skipped_total']} files skipped by validation.",
        f"- {grouping_sentence(data)}",
        "",
        "## Performance (test split)",
        "",
        f"- Selected run (by validation balanced accuracy): balanced accuracy {test['balanced_accuracy']:.3f} "
        f"({ci_label(confidence)} {ci['balanced_accuracy']['low']:.3f}–{ci['balanced_accuracy']['high']:.3f}), "
        f"accuracy {test['accuracy']:.3f} ({ci_label(confidence)} {ci['accuracy']['low']:.3f}–"
        f"{ci['accuracy']['high']:.3f}), macro-F1 "
        f"{test['macro_f1']:.3f}, ECE {test['ece']:.3f}.",
        f"- Across seeds: balanced accuracy {seeds['balanced_accuracy']['mean']:.3f} ± "
        f"{seeds['balanced_accuracy']['std']:.3f}, macro-F1 {seeds['macro_f1']['mean']:.3f} ± "
        f"{seeds['macro_f1']['std']:.3f}.",
        "",
        "### Clinical operating points (this model, test split)",
        "",
        tables["operating_points"],
        "",
        "Read off the test ROC curve; a threshold for use would have to be fixed on independent data.",
        "",
        "### Ensembles",
        "",
        tables["ensembles"],
        "",
        "### Backbones compared (paired balanced accuracy, Holm-corrected)",
        "",
        tables["comparison"],
        "",
        "## Intended use and limits",
        "",
        "- Intended use: benchmarking and teaching transfer learning on dermoscopic images.",
        "- Not validated on any clinical population; performance depends on the device, skin type, body site",
        "  and image quality, and may be much lower on images unlike the training data.",
        "- Probabilities are not calibrated risks; see the reliability curves (`dvc plots show`).",
        "- Known biases of public dermoscopy data (few dark skin types, referral-centre case mix) carry over.",
        "",
    ]
    return "\n".join(lines)
