"""Test-set sampling primitives: stratified and lesion-grouped bootstraps, balanced accuracy, sign flips.

Here too: balanced accuracy as a weighted sum and its resampled and linearised (sampling-covariance) forms,
the paired sign-flip (permutation) test, and how the report prints a p-value.

Pure numpy: no files, and nothing from outside :mod:`skinlesion.stats`.

Two conventions hold throughout:

* **Stratified by class.** Every bootstrap resample draws within each class, so every class keeps its test
  count (image-level) or its number of lesions (grouped) and balanced accuracy always averages over the same
  classes as the point estimate.
* **Grouped by lesion when groups are given.** Several images of one lesion are not independent; the
  sampling unit is then the group (the split's ``group`` column), never the image. A group is assigned to the
  stratum of its *majority* class (ties: the smallest class label), so a group whose images span classes
  still travels whole. In dermoscopy a lesion has one diagnosis and mixed groups do not occur; when they do,
  a class that is never a group's majority can be missing from a resample (balanced accuracy then averages
  over the classes present, as scikit-learn does).
"""

from __future__ import annotations

import math

import numpy as np

# Sign-flip tests enumerate every sign pattern when there are at most this many (2**16 = 65,536): the
# p-value is then exact, not a Monte Carlo estimate.
EXACT_LIMIT = 2**16
_CHUNK = 2**14


def class_members(y: np.ndarray) -> list[np.ndarray]:
    """The indices of each class present in ``y``, classes in sorted order.

    Args:
        y: Integer (or boolean) labels, ``(n,)``.

    Returns:
        One index array per class present.
    """
    y = np.asarray(y)
    return [np.flatnonzero(y == c) for c in np.unique(y)]


def stratified_resample(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices of one bootstrap resample drawn with replacement within each class.

    Args:
        y: Integer (or boolean) labels, ``(n,)``.
        rng: Random generator.

    Returns:
        ``n`` indices, each class keeping its count; class blocks come in sorted class order, so position
        ``j`` of the result is generally *not* an image of the class of row ``j`` (weights must be taken
        from the rows picked, ``w[idx]``, never ``w``).
    """
    return np.concatenate([rng.choice(members, len(members)) for members in class_members(y)])


def group_strata(y: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each image's group number and each group's stratum (its majority class).

    Args:
        y: Integer labels, ``(n,)``.
        groups: Group ids (any hashable dtype numpy can sort), ``(n,)``.

    Returns:
        ``codes`` (``(n,)``, the group number of each image, ``0 .. g-1`` in sorted id order) and
        ``stratum`` (``(g,)``, the majority class of each group; ties go to the smallest class label).
    """
    y = np.asarray(y)
    _, codes = np.unique(np.asarray(groups), return_inverse=True)
    codes = codes.ravel()
    classes, y_codes = np.unique(y, return_inverse=True)
    counts = np.zeros((codes.max() + 1, len(classes)), dtype=np.int64)
    np.add.at(counts, (codes, y_codes.ravel()), 1)
    # argmax returns the first maximum: the smallest class label among tied majorities.
    return codes, classes[counts.argmax(axis=1)]


def grouped_resample(y: np.ndarray, groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices of one cluster-bootstrap resample: whole groups drawn with replacement within each stratum.

    Each stratum (the groups whose majority class is ``c``, see :func:`group_strata`) keeps its number of
    groups; a drawn group contributes all of its images, in their original order. The number of images per
    class therefore varies between resamples (groups differ in size).

    Args:
        y: Integer labels, ``(n,)``.
        groups: Group (lesion) id of each image, ``(n,)``.
        rng: Random generator.

    Returns:
        Image indices of the resample (its length varies).
    """
    codes, stratum = group_strata(y, groups)
    order = np.argsort(codes, kind="stable")
    starts = np.r_[0, np.cumsum(np.bincount(codes, minlength=len(stratum)))]
    parts = []
    for c in np.unique(stratum):
        in_stratum = np.flatnonzero(stratum == c)
        for g in rng.choice(in_stratum, len(in_stratum)):
            parts.append(order[starts[g] : starts[g + 1]])
    return np.concatenate(parts)


def resample_counts(
    y: np.ndarray, rng: np.random.Generator, resamples: int, groups: np.ndarray | None = None
) -> np.ndarray:
    """How often each image appears in each of ``resamples`` bootstrap resamples (vectorised form).

    Row ``b`` has the same distribution as the multiplicities of :func:`stratified_resample` (no groups) or
    :func:`grouped_resample` (groups): a multinomial draw of the stratum's units with equal probabilities.
    Any statistic that is a function of per-image sums (a count-weighted mean per class, a binned
    calibration table) is then a matrix product, thousands of resamples at once.

    Args:
        y: Integer labels, ``(n,)``.
        rng: Random generator.
        resamples: Number of resamples ``B``.
        groups: Optional group id of each image, ``(n,)``.

    Returns:
        ``(B, n)`` integer multiplicities.
    """
    y = np.asarray(y)
    n = len(y)
    if groups is None:
        codes, stratum = np.arange(n), y
    else:
        codes, stratum = group_strata(y, groups)
    unit_counts = np.zeros((resamples, len(stratum)), dtype=np.int64)
    for c in np.unique(stratum):
        units = np.flatnonzero(stratum == c)
        unit_counts[:, units] = rng.multinomial(len(units), np.full(len(units), 1.0 / len(units)), size=resamples)
    return unit_counts[:, codes]


def _count_extreme_exact(units: np.ndarray, threshold: float) -> int:
    """Sign patterns (all ``2**m``, enumerated in chunks) whose ``|statistic|`` reaches ``threshold``."""
    m = len(units)
    bits = np.arange(m, dtype=np.int64)
    extreme = 0
    for start in range(0, 2**m, _CHUNK):
        patterns = np.arange(start, min(start + _CHUNK, 2**m), dtype=np.int64)
        signs = ((patterns[:, None] >> bits) & 1) * 2.0 - 1.0
        extreme += int(np.sum(np.abs(signs @ units) >= threshold))
    return extreme


def _count_extreme_random(units: np.ndarray, threshold: float, resamples: int, seed: int) -> int:
    """Random sign patterns (``resamples`` of them) whose ``|statistic|`` reaches ``threshold``."""
    rng = np.random.default_rng(seed)
    extreme = 0
    for start in range(0, resamples, _CHUNK):
        signs = rng.integers(0, 2, size=(min(_CHUNK, resamples - start), len(units))) * 2.0 - 1.0
        extreme += int(np.sum(np.abs(signs @ units) >= threshold))
    return extreme


def sign_flip_test(
    contributions: np.ndarray,
    *,
    resamples: int,
    seed: int,
    groups: np.ndarray | None = None,
    exact_limit: int = EXACT_LIMIT,
) -> dict[str, float | int | str]:
    """Two-sided paired permutation test of ``sum(contributions) = 0`` by flipping signs.

    Under "no difference" the two members of each pair (model A's and B's answers on an image) are
    exchangeable, and swapping them flips the sign of the pair's contribution. With groups the whole group
    (a lesion's images) is swapped: contributions are summed per group first. Units contributing zero are
    left out. p is the share of sign patterns with ``|T| >= |T_obs|``: **exact** by enumeration when
    ``2**m <= exact_limit`` (``m`` non-zero units; smallest attainable p ``2 / 2**m``), else **Monte Carlo**,
    ``(1 + count) / (1 + resamples)`` with the observed pattern counted as one (never 0; floor
    ``1 / (1 + resamples)``).

    Args:
        contributions: Per-image contributions, ``(n,)``; e.g. ``w_i * (a_i - b_i)``, ``w`` the
            balanced-accuracy weights.
        resamples: Random sign patterns of the Monte Carlo test.
        seed: Random seed of the Monte Carlo test.
        groups: Optional group id of each image; signs are then flipped per group.
        exact_limit: Largest number of sign patterns enumerated exactly.

    Returns:
        ``statistic`` (observed sum), ``p``, ``method`` (``"exact"``/``"monte_carlo"``), ``floor`` (smallest
        p the method can return), ``units`` (non-zero units), ``patterns`` (enumerated or drawn).
    """
    values = np.asarray(contributions, dtype=float)
    if groups is not None:
        _, codes = np.unique(np.asarray(groups), return_inverse=True)
        values = np.bincount(codes.ravel(), weights=values)
    scale = float(np.abs(values).sum())
    # Sorted: the statistic's distribution does not depend on the units' order, and sorting makes the Monte
    # Carlo p-value independent of the order of the test rows too.
    units = np.sort(values[np.abs(values) > 1e-12 * max(scale, 1.0)])
    observed, m = float(values.sum()), len(units)
    out = {"statistic": observed, "units": m}
    if m == 0:
        return out | {"p": 1.0, "method": "exact", "floor": 1.0, "patterns": 1}
    threshold = abs(observed) - 1e-9 * scale  # ties within rounding count as "as extreme"
    if m < 63 and 2**m <= exact_limit:
        p = _count_extreme_exact(units, threshold) / 2**m
        return out | {"p": p, "method": "exact", "floor": min(1.0, 2.0 / 2**m), "patterns": 2**m}
    p = (1 + _count_extreme_random(units, threshold, resamples, seed)) / (1 + resamples)
    return out | {"p": p, "method": "monte_carlo", "floor": 1.0 / (1 + resamples), "patterns": resamples}


def format_p(p: float, floor: float | None = None) -> str:
    """A p-value as printed in the report: three significant digits, or a bound at a Monte Carlo floor.

    A Monte Carlo p at its floor ``1 / (B + 1)`` only says that no resample was as extreme as the data; it
    is printed as a bound, the floor rounded *up* to one significant digit: ``"< 0.001"`` for ``B = 1000``
    (floor 0.000999), ``"≤ 0.001"`` when the floor is exactly 0.001 (``B = 999``). An exact p (``floor``
    ``None``) is always printed as its value.

    Args:
        p: The p-value.
        floor: The smallest p the test can return (``1 / (B + 1)``), or ``None`` for an exact p.

    Returns:
        E.g. ``"0.148"``, ``"1.00"``, ``"0.0196"``, ``"< 0.001"``.
    """
    if not math.isfinite(p):
        return "n/a"
    if floor is not None and p <= floor * (1 + 1e-9):
        exponent = math.floor(math.log10(floor))
        digit = math.ceil(floor / 10.0**exponent * (1 - 1e-12))
        bound = digit / 10 ** (-exponent) if exponent < 0 else digit * 10**exponent
        text = np.format_float_positional(bound, trim="-")
        return f"< {text}" if bound > floor * (1 + 1e-9) else f"≤ {text}"
    return f"{p:#.3g}"


def balanced_accuracy_weights(y: np.ndarray) -> np.ndarray:
    """Per-image weights ``w`` with balanced accuracy ``= w @ correct``: ``1 / (classes x class count)``.

    Args:
        y: Integer labels, ``(n,)``.

    Returns:
        ``(n,)`` weights summing to 1.
    """
    y = np.asarray(y)
    classes, codes, counts = np.unique(y, return_inverse=True, return_counts=True)
    return 1.0 / (len(classes) * counts[codes.ravel()])


def balanced_accuracy(y: np.ndarray, correct: np.ndarray) -> float | np.ndarray:
    """Balanced accuracy (mean recall over the classes present in ``y``) from per-image correctness.

    Args:
        y: Integer labels, ``(n,)``.
        correct: ``(n,)`` or ``(runs, n)`` booleans (or fractions: a mean over runs).

    Returns:
        A float for ``(n,)``, else ``(runs,)``.
    """
    out = np.asarray(correct, dtype=float) @ balanced_accuracy_weights(y)
    return float(out) if np.ndim(out) == 0 else out


def stratum_units(y: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
    """Sampling units per class, classes in sorted order: images, or lesions whose majority class it is.

    Args:
        y: Integer labels, ``(n,)``.
        groups: Optional lesion id of each image.

    Returns:
        ``(classes,)`` counts (0 for a class that is no lesion's majority).
    """
    classes = np.unique(y)
    stratum = np.asarray(y) if groups is None else group_strata(y, groups)[1]
    return np.array([np.sum(stratum == c) for c in classes])


def resampled_balanced_accuracy(
    y: np.ndarray, correct: np.ndarray, counts: np.ndarray, units: np.ndarray | None = None
) -> np.ndarray:
    """Balanced accuracy of every resample given by image multiplicities (:func:`resample_counts`).

    Each class's recall is recomputed on the resample (its correct images over its images, both counted
    with multiplicity), so the result does not depend on the order of the rows; a class absent from a
    resample (possible only with groups spanning classes) is left out of that resample's mean.

    With ``units`` (:func:`stratum_units`), each class's resampled recall is moved away from the observed
    one by ``sqrt(m / (m - 1))``, ``m`` its sampling units: the with-replacement bootstrap shrinks a
    stratum's variance by ``(m - 1) / m`` (17 % for a class of 6 lesions), and this rescaling (as in Rao &
    Wu 1988) removes that, so small classes do not make the interval too short.

    Args:
        y: Integer labels, ``(n,)``.
        correct: ``(n,)`` or ``(runs, n)`` correctness.
        counts: ``(B, n)`` multiplicities.
        units: Optional sampling units per class, for the small-stratum rescaling.

    Returns:
        ``(B,)`` for ``(n,)`` correctness, else ``(B, runs)``.
    """
    y = np.asarray(y)
    r = np.atleast_2d(np.asarray(correct, dtype=float))
    counts = np.asarray(counts, dtype=float)
    recalls = []
    for j, c in enumerate(np.unique(y)):
        idx = np.flatnonzero(y == c)
        images = counts[:, idx].sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            recall = (counts[:, idx] @ r[:, idx].T) / images
        if units is not None and units[j] > 1:
            observed = r[:, idx].mean(axis=1)
            recall = observed + math.sqrt(units[j] / (units[j] - 1)) * (recall - observed)
        recalls.append(recall)
    out = np.nanmean(np.stack(recalls), axis=0)
    return out[:, 0] if np.ndim(correct) == 1 else out


def sampling_covariance(y: np.ndarray, correct: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
    """Test-set sampling covariance of the runs' balanced accuracies (stratified, optionally clustered).

    The classical linearisation (delta-method) variance of a stratified sample of units, with the
    ``n_h / (n_h - 1)`` small-sample factor: exact and unbiased for image-level stratified sampling, where
    balanced accuracy is linear in the per-image answers; the usual ratio-estimator approximation when whole
    lesions are the units (their class counts vary). It is the bootstrap covariance without Monte Carlo
    noise (and without the bootstrap's ``(n_h - 1) / n_h`` shrinkage).

    Args:
        y: Integer labels, ``(n,)``.
        correct: ``(runs, n)`` correctness of every run (any architecture) on the same images.
        groups: Optional lesion id of each image; the lesions are then the sampling units, stratified by
            their majority class.

    Returns:
        ``(runs, runs)`` covariance matrix.
    """
    y = np.asarray(y)
    r = np.atleast_2d(np.asarray(correct, dtype=float))
    classes, codes, counts = np.unique(y, return_inverse=True, return_counts=True)
    codes = codes.ravel()
    recall = np.stack([r[:, codes == j].mean(axis=1) for j in range(len(classes))], axis=1)  # (runs, C)
    influence = (r - recall[:, codes]) / (len(classes) * counts[codes])  # (runs, n)
    if groups is None:
        units, stratum = influence.T, y
    else:
        group_codes, stratum = group_strata(y, groups)
        units = np.zeros((len(stratum), r.shape[0]))
        np.add.at(units, group_codes, influence.T)
    cov = np.zeros((r.shape[0], r.shape[0]))
    for h in np.unique(stratum):
        z = units[stratum == h]
        if len(z) > 1:
            z = z - z.mean(axis=0)
            cov += len(z) / (len(z) - 1) * (z.T @ z)
    return cov
