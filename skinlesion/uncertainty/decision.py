"""The decision rules a model folder ships (``metadata.json``'s ``decision``), and how an image is decided.

Everything here was fixed on validation by the aggregate stage: the conformal thresholds of each level
(:mod:`skinlesion.uncertainty.conformal`), the referral threshold (:mod:`skinlesion.uncertainty.referral`)
and the malignant-vs-benign threshold at ``evaluate.target_specificity``. ``skinlesion-predict`` applies
them with :func:`decide`, the same function the aggregate stage's tests compare against, so a folder is
self-contained: nothing is re-derived at prediction time.

A folder written before this block existed has none: :func:`decide` then says so in every row
(:data:`UNAVAILABLE`) instead of guessing.

Pure numpy (no crepes, no scipy: ``skinlesion-predict`` loads this alone): no TensorFlow, no files.
"""

from __future__ import annotations

import math

import numpy as np

# The note of every row of a model folder without a decision block.
UNAVAILABLE = (
    "no prediction sets, referral or malignant threshold: this model folder's metadata.json has no decision block "
    "(written before they were shipped); re-run `dvc repro aggregate` to write one"
)
# Separates the classes of a prediction set in a row (as top_k's entries).
SEPARATOR = ";"


def sets_from_quantiles(probs: np.ndarray, quantiles: list[float | None]) -> np.ndarray:
    """The prediction sets ``(n, classes)`` (True: in the set) of shipped thresholds: ``1 - p_c <= q_c``.

    Args:
        probs: Probabilities, ``(n, classes)``.
        quantiles: :func:`~skinlesion.uncertainty.conformal.class_quantiles` (None: the class is always in the set).
    """
    q = np.array([np.inf if v is None else v for v in quantiles], dtype=float)
    return (1.0 - np.asarray(probs, dtype=float)) <= q[None, :]


def confidence(probs: np.ndarray) -> np.ndarray:
    """The referral score of each image: its largest probability (:mod:`skinlesion.uncertainty.referral`)."""
    return np.asarray(probs, dtype=float).max(axis=1)


def set_column(alpha: float) -> str:
    """The row's key of the prediction set at miscoverage ``alpha``: ``set_90`` for 90 % coverage."""
    return f"set_{100 * (1 - alpha):g}"


def decision_columns(decision: dict | None) -> list[str]:
    """The keys :func:`decide` adds to a row, in order (the CSV's columns after ``top_k``)."""
    if decision is None:
        return ["malignant", "refer", "note"]
    return ["malignant", "refer", *(set_column(level["alpha"]) for level in decision["conformal"]["levels"])]


def decision_block(conformal: dict, referral: dict, malignant: dict | None) -> dict:
    """The ``decision`` block of ``metadata.json``.

    Args:
        conformal: ``score``, ``calibration`` (which images, in words) and ``levels``: per level ``alpha``,
            ``quantiles`` ({class: threshold, None: always in the set}) and ``calibration_images`` ({class: n}).
        referral: ``score``, ``threshold``, ``target_error``.
        malignant: ``classes``, ``threshold``, ``target_specificity`` of the malignant-vs-benign call, or None
            (the model has no malignant class, or validation lacks positives or negatives).
    """
    return {"conformal": conformal, "referral": referral, "malignant": malignant}


def decision_problem(decision: object, classes: list[str]) -> str | None:
    """What keeps :func:`decide` from applying a ``decision`` block to a model of these classes (None: nothing).

    The block is read from a file a user can edit or mix up with another model's: every field :func:`decide`
    reads is checked, so a broken one is refused in one line before any image instead of failing mid-batch.
    """
    if not isinstance(decision, dict):
        return "decision is not an object"
    conformal, referral, malignant = (decision.get(key) for key in ("conformal", "referral", "malignant"))
    levels = conformal.get("levels") if isinstance(conformal, dict) else None
    if not isinstance(levels, list) or not all(isinstance(level, dict) for level in levels):
        return "decision.conformal.levels is not a list of levels"
    alphas = [level.get("alpha") for level in levels]
    if not all(_number(a) and 0 < a < 1 for a in alphas) or len(set(alphas)) != len(alphas):
        return f"decision.conformal.levels need distinct alpha in (0, 1), not {alphas}"
    for level in levels:
        quantiles = level.get("quantiles")
        if not isinstance(quantiles, dict) or sorted(quantiles) != sorted(classes):
            return f"the quantiles of alpha {level['alpha']} do not name exactly the model's classes {classes}"
        if not all(v is None or _number(v) for v in quantiles.values()):
            return f"the quantiles of alpha {level['alpha']} are not all numbers or null"
    if not isinstance(referral, dict) or not _number(referral.get("threshold")):
        return "decision.referral.threshold is not a number"
    if malignant is None:
        return None
    named = malignant.get("classes") if isinstance(malignant, dict) else None
    if not isinstance(named, list) or not named or not set(named) <= set(classes):
        return f"decision.malignant.classes are not classes of the model ({classes})"
    return None if _number(malignant.get("threshold")) else "decision.malignant.threshold is not a number"


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def decide(decision: dict | None, probs: np.ndarray, classes: list[str]) -> list[dict]:
    """Each image's ``malignant`` and ``refer`` flags and its prediction set at every level.

    Args:
        decision: The folder's ``decision`` block, or None (an older folder).
        probs: ``(n, classes)`` calibrated probabilities.
        classes: Class names in output order.

    Returns:
        One dict per image with the keys of :func:`decision_columns`; a set is its classes, most probable
        first, joined by ``;`` (empty: no class passed).
    """
    probs = np.asarray(probs, dtype=float)
    if decision is None:
        return [{"malignant": None, "refer": None, "note": UNAVAILABLE} for _ in probs]
    refer = confidence(probs) < decision["referral"]["threshold"]
    malignant = _malignant(decision["malignant"], probs, classes)
    rows = [{"malignant": m, "refer": bool(r)} for m, r in zip(malignant, refer, strict=True)]
    order = np.argsort(-probs, axis=1, kind="stable")
    for level in decision["conformal"]["levels"]:
        quantiles = [level["quantiles"][c] for c in classes]
        sets = sets_from_quantiles(probs, quantiles)
        for row, members, ranked in zip(rows, sets, order, strict=True):
            row[set_column(level["alpha"])] = SEPARATOR.join(classes[i] for i in ranked if members[i])
    return rows


def _malignant(rule: dict | None, probs: np.ndarray, classes: list[str]) -> list[bool | None]:
    if rule is None:
        return [None] * len(probs)
    index = [classes.index(c) for c in rule["classes"]]
    return [bool(v) for v in probs[:, index].sum(axis=1) >= rule["threshold"]]
