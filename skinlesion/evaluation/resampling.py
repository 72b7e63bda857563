"""Resampling primitives: stratified and lesion-grouped bootstraps, a paired sign-flip test, printing p.

The paired sign-flip (permutation) test and the p-value format of the report live here too.

Pure numpy: nothing here imports the rest of the package.

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


def sign_flip_test(
    contributions: np.ndarray,
    *,
    groups: np.ndarray | None = None,
    resamples: int = 9999,
    seed: int = 0,
    exact_limit: int = EXACT_LIMIT,
) -> dict[str, float | int | str]:
    """Two-sided paired permutation test of ``sum(contributions) = 0`` by flipping signs.

    Under the null hypothesis that the two members of each pair are exchangeable (model A's and model B's
    answers on an image), swapping a pair flips the sign of its contribution. With groups, the unit that is
    swapped is the whole group (a lesion's images together), so the contributions are summed per group
    first. Units whose contribution is zero do not change the statistic and are left out of the count.

    The p-value is the share of sign patterns whose statistic is at least as extreme, ``|T| >= |T_obs|``:

    * **exact** when there are at most ``exact_limit`` patterns (``2**m`` for ``m`` non-zero units): every
      pattern is enumerated (the smallest attainable p is then ``2 / 2**m``);
    * **Monte Carlo** otherwise: ``resamples`` random patterns and ``p = (1 + count) / (1 + resamples)``,
      the observed pattern counted as one of them, so p is never 0 and the test keeps its level; the
      smallest attainable p (the *floor*) is ``1 / (1 + resamples)``.

    Args:
        contributions: Per-image contributions to the statistic, ``(n,)``; e.g. ``w_i * (a_i - b_i)`` with
            balanced-accuracy weights ``w``.
        groups: Optional group id of each image; signs are then flipped per group.
        resamples: Random sign patterns of the Monte Carlo test.
        seed: Random seed of the Monte Carlo test.
        exact_limit: Largest number of sign patterns enumerated exactly.

    Returns:
        ``statistic`` (observed sum), ``p``, ``method`` (``"exact"`` or ``"monte_carlo"``), ``floor`` (the
        smallest p the method can return: ``2 / 2**m`` exact, ``1 / (1 + resamples)`` Monte Carlo),
        ``units`` (non-zero units) and ``patterns`` (enumerated or drawn).
    """
    values = np.asarray(contributions, dtype=float)
    if groups is not None:
        _, codes = np.unique(np.asarray(groups), return_inverse=True)
        values = np.bincount(codes.ravel(), weights=values)
    scale = float(np.abs(values).sum())
    # Sorted: the statistic's distribution does not depend on the units' order, and sorting makes the Monte
    # Carlo p-value independent of the order of the test rows too.
    units = np.sort(values[np.abs(values) > 1e-12 * max(scale, 1.0)])
    observed = float(values.sum())
    m = len(units)
    if m == 0:
        return {"statistic": observed, "p": 1.0, "method": "exact", "floor": 1.0, "units": 0, "patterns": 1}
    threshold = abs(observed) - 1e-9 * scale  # ties within rounding count as "as extreme"
    if m < 63 and 2**m <= exact_limit:
        extreme = 0
        bits = np.arange(m, dtype=np.int64)
        for start in range(0, 2**m, _CHUNK):
            patterns = np.arange(start, min(start + _CHUNK, 2**m), dtype=np.int64)
            signs = ((patterns[:, None] >> bits) & 1) * 2.0 - 1.0
            extreme += int(np.sum(np.abs(signs @ units) >= threshold))
        return {
            "statistic": observed,
            "p": extreme / 2**m,
            "method": "exact",
            "floor": min(1.0, 2.0 / 2**m),
            "units": m,
            "patterns": 2**m,
        }
    rng = np.random.default_rng(seed)
    extreme = 0
    for start in range(0, resamples, _CHUNK):
        size = min(_CHUNK, resamples - start)
        signs = rng.integers(0, 2, size=(size, m)) * 2.0 - 1.0
        extreme += int(np.sum(np.abs(signs @ units) >= threshold))
    return {
        "statistic": observed,
        "p": (1 + extreme) / (1 + resamples),
        "method": "monte_carlo",
        "floor": 1.0 / (1 + resamples),
        "units": m,
        "patterns": resamples,
    }


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
