"""The three documents the pipeline writes, rendered from Jinja2 templates: the report, the summary, the model card.

The text lives in ``skinlesion/render/templates/`` (``report.md.j2``, ``summary.md.j2``, ``model_card.md.j2``,
and ``tables.md.j2``: one macro per table), so that a reader can edit a document without reading Python.
The numbers come from ``reports/summary.json`` (:func:`skinlesion.evaluation.aggregate.aggregate_runs`),
which holds no Markdown. This module only builds the environment, the few number formats the templates
share (its filters), and the links, which depend on where a document lies.

What the templates read from ``summary`` (a missing key fails, :class:`jinja2.StrictUndefined`):

- ``settings``: ``{"seeds": [...], "confidence": 0.95, "alpha": 0.05, "source": "synthetic",
  "subgroups": [columns asked for]}`` (``seeds``, ``evaluate.confidence``, the significance level,
  ``data.source``, ``evaluate.subgroups``).
- ``headline``: ``model``, ``seed``, ``val`` and ``test`` metrics, ``ci`` per metric, ``seeds`` (the
  balanced accuracy's and macro-F1's mean and std over seeds).
- ``backbones`` and ``backbones_val``: ``{backbone: {metric: {"mean", "std"}}}`` (test and validation).
- ``architectures``, ``networks``: the comparisons' lists; ``seeds_message``: the verdict's caveat ("" without one).
- ``ensembles``: ``{name: {"runs", "balanced_accuracy", "accuracy", "macro_f1", "roc_auc_macro", "ci"}}``.
- ``operating_points``: the headline's clinical views (``{}`` without a malignant class).
- ``calibration``: the headline's test calibration block (``temperature``, ``before``, ``after``);
  ``calibration_runs``: the same block of every run, ``{backbone: {seed: block}}``.
- ``pairwise_mcnemar``: the McNemar tests' list.
- ``subgroups``: ``{"headline": analysis or None, "ensembles": {name: analysis}, "missing": [columns of
  settings.subgroups the metadata lacks]}``.
- ``external``: ``{set: {"data", "classes", "ensembles", "headline", "operating_points", "drop"}}`` (``{}`` without).
- ``primary``, ``cohort``, ``per_class``, ``utility``, ``hyperparameters``, ``baselines``, ``scope`` and
  ``algorithm``: what a reviewer expects beside the headline (:mod:`skinlesion.evaluation.review`; templates
  ``cohort``, ``primary``, ``utility``, ``version``, ``scope``).

Rows and columns come in the order of these dicts (backbones as in ``backbones:``, ensembles, views,
subgroup columns, external sets): ``summary.json`` must keep that order (``write_json(...,
sort_keys=False)``), or a document rendered from the file (the model card, in the export stage) would list
them alphabetically.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from skinlesion.core import layout
from skinlesion.stats.metrics import KEY_METRICS

# The templates' folder, beside this module: pyproject.toml ships it as package data, and PACKAGE_DATA
# names it to tests/test_dvc_yaml.py, so that a stage rendering a document depends on its wording.
PACKAGE_DATA = TEMPLATES = "templates"
DASH = "–"  # a number the data do not have (no ROC-AUC without both classes, a metric a run lacks)

# The files the documents link to, by the name the templates use; each link is made relative to the
# document's own folder (the report lies in reports/, the card in models/), so it works on GitHub and offline.
LINKED = {
    "comparison": layout.COMPARISON,
    "recall": layout.RECALL,
    "malignant_calibration": layout.MALIGNANT_CALIBRATION,
    "gradcam": layout.GRADCAM,
    "decision_curve": layout.DECISION_FIGURE,
    "augmentation": layout.AUGMENT_PREVIEW,
    "model": layout.HEADLINE_MODEL / layout.MODEL_FILE,
    "labels": layout.HEADLINE_MODEL / layout.LABELS_FILE,
    "tflite": layout.EXPORT_TFLITE,
    "export_labels": layout.EXPORT_TFLITE.parent / layout.LABELS_FILE,
}


def fmt(value: float | None, spec: str = ".3f") -> str:
    """``value`` in the format ``spec`` (``.3f`` by default; ``.3g``, ``+.3f``, ``.1%``...), or ``–`` for None."""
    return DASH if value is None else format(value, spec)


def interval(value: float, ci: dict) -> str:
    """``0.512 (0.431–0.590)``: a value and its interval (``ci``'s ``low`` and ``high``)."""
    return f"{value:.3f} ({ci['low']:.3f}–{ci['high']:.3f})"


def signed(value: float, ci: dict) -> str:
    """``+0.051 (-0.020 to +0.121)``: a difference and its interval, every number with its sign."""
    return f"{value:+.3f} ({ci['low']:+.3f} to {ci['high']:+.3f})"


def calibration(value: float, ci: dict) -> str:
    """A debiased calibration error: ``0.048 (0.021–0.080)``; never a clipped ``0.000``.

    An estimate at or below 0 (below what the test set can resolve) prints as the interval's upper bound,
    ``≤ 0.145 (estimate -0.007)``; an interval reaching 0 prints as ``0.048 (up to 0.145)``.
    """
    if value < 0.0005:  # prints as 0.000 or below: the error is too small to measure here
        return f"≤ {ci['high']:.3f} (estimate {value:+.3f})"
    if ci["low"] < 0.0005:
        return f"{value:.3f} (up to {ci['high']:.3f})"
    return interval(value, ci)


def bounded(value: float, ci: dict) -> str:
    """A score in [0, 1] and its interval, a bound clipped at 0 or 1 said so: ``0.930 (0.750 to the bound 1)``.

    A plain ``1.000`` would read as a perfect score where the interval only ran past what a score can be.
    """
    low = "the bound 0" if ci["low"] <= 0.0 else f"{ci['low']:.3f}"
    high = "the bound 1" if ci["high"] >= 1.0 else f"{ci['high']:.3f}"
    return f"{value:.3f} ({low} to {high})" if "bound" in low + high else interval(value, ci)


def estimate(entry: dict | None) -> str:
    """An ``{"value", "low", "high"}`` entry as :func:`interval`, or ``–`` where there is none."""
    return DASH if entry is None else interval(entry["value"], entry)


def spread(entry: dict | None) -> str:
    """``0.551 ± 0.087``: an ``{"mean", "std"}`` entry over seeds, or ``–`` where there is none."""
    return DASH if entry is None else f"{entry['mean']:.3f} ± {entry['std']:.3f}"


def ci_label(confidence: float) -> str:
    """``95 % CI`` for ``confidence`` 0.95: the interval label of every text, from ``evaluate.confidence``."""
    return f"{confidence * 100:g} % CI"


def target(key: str) -> str:
    """An operating point's target: ``sensitivity_at_specificity_0.9`` -> ``specificity ≥ 90%``."""
    _, _, level = key.partition("_at_")
    measure, _, value = level.rpartition("_")
    return f"{measure} ≥ {float(value):.0%}"


def measured(key: str) -> str:
    """What an operating point measures: ``sensitivity_at_specificity_0.9`` -> ``sensitivity``."""
    return key.partition("_at_")[0]


def _environment() -> Environment:
    """The templates' environment: Markdown (no escaping), strict about missing keys, tags on their own lines."""
    env = Environment(
        loader=FileSystemLoader(Path(__file__).parent / TEMPLATES),
        autoescape=False,  # Markdown, not HTML: a `<` or `&` in a class name is text
        undefined=StrictUndefined,  # a key the summary lacks is an error, not an empty cell
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        # A macro's text ends with its last line's newline; dropped where it is printed, so that a template
        # shows the blank lines the document gets (a table, an empty line, the next paragraph).
        finalize=lambda value: value.rstrip("\n") if isinstance(value, str) else value,
    )
    env.filters |= {
        "fmt": fmt,
        "interval": interval,
        "bounded": bounded,
        "calibration": calibration,
        "signed": signed,
        "estimate": estimate,
        "spread": spread,
        "ci_label": ci_label,
        "target": target,
        "measured": measured,
    }
    env.globals["key_metrics"] = KEY_METRICS
    return env


ENV = _environment()


def links(document: Path) -> dict[str, str]:
    """Every linked file (:data:`LINKED`) relative to the folder of ``document`` (both relative to the repository)."""
    return {name: Path(os.path.relpath(path, document.parent)).as_posix() for name, path in LINKED.items()}


def render_report(summary: dict, data: dict) -> str:
    """The self-contained Markdown report, ``reports/report.md`` (pictures linked relative to it).

    Args:
        summary: ``reports/summary.json`` (its keys: this module's docstring).
        data: ``reports/data.json``: image counts, files skipped, how the split was grouped.

    Returns:
        Markdown text.
    """
    return ENV.get_template("report.md.j2").render(summary=summary, data=data, links=links(layout.REPORT))


def render_summary(summary: dict) -> str:
    """The compact summary, ``reports/summary.md``: backbones, architectures, networks, ensembles, operating points.

    Args:
        summary: ``reports/summary.json``.

    Returns:
        Markdown text.
    """
    return ENV.get_template("summary.md.j2").render(summary=summary)


def render_card(summary: dict, data: dict, card: dict[str, Any]) -> str:
    """The model card, ``models/MODEL_CARD.md``: the model, its data, its performance with uncertainty, its limits.

    Args:
        summary: ``reports/summary.json``.
        data: ``reports/data.json``.
        card: What only the export stage knows:

            - ``labels``: the headline's :class:`~skinlesion.core.labels.LabelMap` (or a dict with the same
              keys): ``backbone``, ``seed``, ``image_size``, ``temperature``, ``classes``.
            - ``weights``: ``train.weights`` (``none``, ``scratch``, ``imagenet`` or a weights file's path).
            - ``quantization``: ``export.quantization`` (``none``, ``float16``, ``dynamic_range``).
            - ``source``: ``data.source``.
            - ``agreement``: TFLite vs Keras on test images (:func:`~skinlesion.deploy.export.measure_agreement`):
              ``images``, ``max_abs_diff``, ``label_agreement`` (a fraction); other keys are not read.

    Returns:
        Markdown text.
    """
    return ENV.get_template("model_card.md.j2").render(
        summary=summary,
        data=data,
        card=card,
        links=links(layout.MODEL_CARD),
        headline_model=(layout.HEADLINE_MODEL / layout.MODEL_FILE).as_posix(),
    )
