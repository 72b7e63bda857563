"""The aggregate stage's side of "when not to answer": conformal sets, referral and the rules the model ships.

The headline's validation predictions calibrate everything (:mod:`skinlesion.uncertainty`): one image per
lesion calibrates the class-conditional conformal sets of each ``evaluate.conformal_alpha``; all of them
fix the referral threshold (``evaluate.referral_error``) and the malignant-vs-benign threshold
(``evaluate.target_specificity``). The same validation images chose each run's epoch and temperature, the
headline among the candidates and the report's operating points: the sets' guarantee assumes calibration
images the model never saw, so the locked test split is where it is checked, per class, and each external
set is where a shift shows (coverage under nominal by more than its interval).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from skinlesion.core.layout import RunPaths
from skinlesion.core.modes import Split
from skinlesion.evaluation.external_results import read_external
from skinlesion.evaluation.headline import Headline
from skinlesion.evaluation.runs import Predictions, member_predictions
from skinlesion.stats.clinical import Scored, view_classes
from skinlesion.stats.intervals import Resampling
from skinlesion.stats.resampling import balanced_accuracy
from skinlesion.stats.subgroups import operating_threshold
from skinlesion.uncertainty import conformal, referral
from skinlesion.uncertainty.corruptions import KINDS, corrupt
from skinlesion.uncertainty.decision import decision_block, set_column
from skinlesion.uncertainty.rule import UncertaintyRule

# Points per set of the risk-coverage curve's plot file.
CURVE_POINTS = 101
# Images per forward pass of the shift test.
BATCH = 32


@dataclass(frozen=True)
class Uncertainty:
    """What the headline's sets and referral add up to.

    Attributes:
        summary: ``summary.json``'s ``uncertainty``: calibration, levels, thresholds, each set's results and
            the ``decision`` block the model folder ships.
        metrics: ``metrics.json``'s ``uncertainty``: per set, coverage and set size per level, referral, AURC.
        curve: The risk-coverage curves (``run`` = set, ``coverage``, ``risk``) for ``dvc plots``.
        shift: The shift test's rows (``run`` = corruption, ``severity``, coverage at the first level, referral
            rate, balanced accuracy; severity 0 is the clean test split), empty when it is off.
    """

    summary: dict
    metrics: dict
    curve: pd.DataFrame
    shift: pd.DataFrame


def uncertainty_results(chosen: Headline, val: Predictions, sets: dict[str, Predictions], rule: UncertaintyRule):
    """Calibrate on validation, then score the locked test and every external set.

    Args:
        chosen: The headline.
        val: Every run's validation predictions.
        sets: ``{"test": ..., <external name>: ...}``: every run's predictions on each set.
        rule: The params.

    Returns:
        :class:`Uncertainty`.
    """
    head = chosen.scored(val)
    keep = conformal.one_per_lesion(head.groups, rule.resampling.seed)
    cal = Scored(head.classes, head.y[keep], head.probs[keep], head.groups[keep])
    levels = [_level(cal, alpha) for alpha in rule.alphas]
    correct = head.probs.argmax(axis=1) == head.y
    refer = referral.referral_threshold(correct, referral.confidence(head.probs), rule.referral_error)
    malignant = _malignant(head, rule)
    decision = decision_block(
        {"score": conformal.SCORE, "calibration": "one validation image per lesion", "levels": levels},
        {"score": referral.SCORE, "threshold": refer["threshold"], "target_error": rule.referral_error},
        malignant,
    )
    scored = {name: chosen.scored(p) for name, p in sets.items()}
    results = {name: _set_results(name, s, cal, decision, rule.resampling) for name, s in scored.items()}
    summary = {
        "calibration": {"images": len(head.y), "lesions": len(keep)},
        "levels": levels,
        "referral": refer,
        "malignant": malignant,
        "sets": results,
        "decision": decision,
    }
    curve = pd.concat([_curve(name, s) for name, s in scored.items()], ignore_index=True)
    summary["shift_test"] = _shift_test(chosen, sets[Split.TEST], cal, decision, rule, results[Split.TEST])
    # Off: the clean split alone (severity 0), so the charts dvc.yaml declares draw a point, not an empty spec.
    clean = [_shift_row("clean-0", results[Split.TEST], chosen.scored(sets[Split.TEST]))]
    frame = pd.DataFrame(summary["shift_test"] or clean, columns=SHIFT_COLUMNS)
    return Uncertainty(summary, {name: _metrics(r) for name, r in results.items()}, curve, frame.round(6))


def _shift_test(chosen: Headline, test: Predictions, cal: Scored, decision: dict, rule: UncertaintyRule, clean: dict):
    """The shift test's rows, each corruption's line starting from the clean split (severity 0); [] when off."""
    shifted = shift_sets(chosen, test, rule.shift_severities, rule.resampling.seed)
    if not shifted:
        return []
    rows = []
    for kind in KINDS:
        rows.append(_shift_row(f"{kind}-0", clean, chosen.scored(test)))
        for severity in rule.shift_severities:
            scored = chosen.scored(shifted[f"{kind}-{severity}"])
            result = _set_results(f"{kind}-{severity}", scored, cal, decision, rule.resampling)
            rows.append(_shift_row(f"{kind}-{severity}", result, scored))
    return rows


def shift_sets(chosen: Headline, test: Predictions, severities: tuple[int, ...], seed: int) -> dict[str, Predictions]:
    """The headline's runs on corrupted copies of the test split, ``{"<kind>-<severity>": predictions}``.

    Each run loads the test images at its own input size, corrupts them
    (:func:`~skinlesion.uncertainty.corruptions.corrupt`) and predicts; the headline averages them as on the
    clean split (:meth:`~skinlesion.evaluation.headline.Headline.probs`). No severities: none (off).
    """
    if not severities:
        return {}
    from skinlesion.core.images import load_batch
    from skinlesion.core.labels import LabelMap
    from skinlesion.modeling.model import load_classifier

    probs: dict[str, dict[RunPaths, np.ndarray]] = {}
    for run in chosen.candidate.members:
        model = load_classifier(run.model)
        images = load_batch(list(test.paths), LabelMap.read(run.model_dir).image_size)
        for kind in KINDS:
            for severity in severities:
                batch = corrupt(images, kind, severity, seed).astype(np.float32)
                out = [model.predict_on_batch(batch[i : i + BATCH]) for i in range(0, len(batch), BATCH)]
                probs.setdefault(f"{kind}-{severity}", {})[run] = np.concatenate(out)
    return {name: member_predictions(test, p) for name, p in probs.items()}


SHIFT_COLUMNS = ["run", "severity", "coverage", "referred", "balanced_accuracy", "shift_warning"]


def _shift_row(name: str, result: dict, scored: Scored) -> dict:
    """One corrupted set in the shift test's table: coverage at the first level, referral, balanced accuracy."""
    kind, _, severity = name.rpartition("-")
    correct = scored.probs.argmax(axis=1) == scored.y
    return {
        "run": kind,
        "severity": int(severity),
        "coverage": result["levels"][0]["coverage"]["value"],
        "referred": result["referral"]["referred"]["value"],
        "balanced_accuracy": balanced_accuracy(scored.y, correct),
        "shift_warning": any(level["below_nominal"] for level in result["levels"]),
    }


def headline_sets(test: Predictions, external: list[str]) -> dict[str, Predictions]:
    """``{"test": test, <name>: every run's predictions on it}`` for each external set (``external``)."""
    return {Split.TEST: test} | {name: read_external(name, test) for name in external}


def _level(cal: Scored, alpha: float) -> dict:
    """One level's class thresholds, calibration counts and the classes on the fallback (always in the set)."""
    quantiles = conformal.class_quantiles(cal.y, cal.probs, alpha)
    counts = np.bincount(cal.y, minlength=len(cal.classes))
    return {
        "alpha": alpha,
        "coverage": 1 - alpha,
        "minimum_images": conformal.minimum_images(alpha),
        "quantiles": dict(zip(cal.classes, quantiles, strict=True)),
        "calibration_images": dict(zip(cal.classes, counts.tolist(), strict=True)),
        "fallback": [c for c, q in zip(cal.classes, quantiles, strict=True) if q is None],
    }


def _malignant(val: Scored, rule: UncertaintyRule) -> dict | None:
    """The malignant-vs-benign call at the validation-fixed threshold (None without malignant classes)."""
    threshold = operating_threshold(val, rule.malignant, rule.target_specificity)
    if threshold is None:
        return None
    classes = view_classes(val.classes, rule.malignant)["malignant_vs_benign"]
    return {"classes": classes, "threshold": threshold, "target_specificity": rule.target_specificity}


def _set_results(name: str, scored: Scored, cal: Scored, decision: dict, resampling: Resampling) -> dict:
    """Coverage per level (crepes' sets; a shift warning off the internal test) and referral on one set."""
    levels = []
    for level in decision["conformal"]["levels"]:
        sets = conformal.crepes_sets(cal.y, cal.probs, scored.probs, level["alpha"])
        entry = conformal.coverage_summary(scored.y, sets, scored.groups, scored.classes, resampling.confidence)
        counts = [level["calibration_images"][c] for c in scored.classes]
        floor = conformal.coverage_floor(counts, level["alpha"], scored.y, resampling.confidence)
        below = conformal.below_nominal(entry["coverage"], floor)
        levels.append({"alpha": level["alpha"], "floor": floor, "below_nominal": below} | entry)
    rule = decision["malignant"]
    malignant = None if rule is None else ([scored.classes.index(c) for c in rule["classes"]], rule["threshold"])
    threshold = decision["referral"]["threshold"]
    return {
        "images": len(scored.y),
        "external": name != Split.TEST,
        "shift_warning": name != Split.TEST and any(level["below_nominal"] for level in levels),
        "levels": levels,
        "referral": referral.referral_summary(scored.y, scored.probs, scored.groups, threshold, malignant, resampling),
    }


def _metrics(result: dict) -> dict:
    """A set's numbers for ``metrics.json`` (``dvc metrics diff``): coverage and set size per level, referral."""
    out = {}
    for level in result["levels"]:
        name = set_column(level["alpha"]).removeprefix("set_")
        out |= {f"coverage_{name}": level["coverage"]["value"], f"mean_set_size_{name}": level["mean_size"]}
    refer = result["referral"]
    return out | {
        "referred": refer["referred"]["value"],
        "accepted_accuracy": (refer["accuracy"] or {}).get("value"),
        "aurc": refer["aurc"]["aurc"],
    }


def _curve(name: str, scored: Scored) -> pd.DataFrame:
    correct = scored.probs.argmax(axis=1) == scored.y
    coverage, risk = referral.curve_points(correct, referral.confidence(scored.probs), CURVE_POINTS)
    return pd.DataFrame({"run": name, "coverage": coverage, "risk": risk}).round(6)
