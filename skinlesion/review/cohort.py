"""Who and what the evaluation rests on: class counts per split, the flow of files, and Table 1.

All three come from what the split and external stages recorded (``reports/data.json``, each external
set's ``data.json``) and from the metadata CSVs; nothing here reads an image.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from skinlesion.core.modes import Split
from skinlesion.stats.subgroups import UNKNOWN, subgroup_levels

SPLITS = (Split.TRAIN, Split.VAL, Split.TEST)
# The skip reasons the flow always shows, even at 0: a reviewer asks about exactly these.
DEDUPLICATION = ("duplicate", "near_duplicate", "label_conflict")


def class_table(data: dict) -> list[dict]:
    """Images per class and split (``data.json``'s ``per_class``), a ``total`` row last.

    Returns:
        One row per class: ``class``, ``train``, ``val``, ``test``, ``total``.
    """
    per_class = data["per_class"]
    classes = sorted({c for split in per_class.values() for c in split})
    rows = [{"class": c} | {s: per_class.get(s, {}).get(c, 0) for s in SPLITS} for c in classes]
    rows.append({"class": "total"} | {s: sum(r[s] for r in rows) for s in SPLITS})
    return [r | {"total": sum(r[s] for s in SPLITS)} for r in rows]


def flow(data: dict, scored: int, external: dict[str, dict]) -> list[dict]:
    """The flow from files seen to what was scored, as rows ``{"step", "images", "level"}``.

    ``level`` 0 is a running total, 1 a part of the step above it (a reason, a split).

    Args:
        data: ``reports/data.json``.
        scored: Test images the headline scored (classes training lacks are left out).
        external: ``{set: its data.json}`` (its ``skipped`` counts every reason, labels the model does not
            know, ``unknown_class``, among them).
    """
    skipped = data["skipped"]
    rows = [{"step": "files seen", "images": data["files_seen"], "level": 0}]
    rows.append({"step": "left out by the split stage", "images": data["skipped_total"], "level": 0})
    other = {r: n for r, n in skipped.items() if r not in DEDUPLICATION and n}
    rows += [{"step": f"unusable file: {reason}", "images": n, "level": 1} for reason, n in other.items()]
    if not other:
        rows.append({"step": "unusable file (empty, corrupt, too small...)", "images": 0, "level": 1})
    rows += [
        {"step": reason.replace("_", " "), "images": skipped.get(reason, 0), "level": 1} for reason in DEDUPLICATION
    ]
    rows.append({"step": "images kept", "images": data["images"]["total"], "level": 0})
    rows += [{"step": str(s), "images": data["images"].get(s, 0), "level": 1} for s in SPLITS]
    rows.append({"step": "test images scored", "images": scored, "level": 0})
    for name, d in external.items():
        rows.append({"step": f"external `{name}`: files seen", "images": d["files_seen"], "level": 0})
        rows += [{"step": f"left out: {r.replace('_', ' ')}", "images": n, "level": 1} for r, n in d["skipped"].items()]
        rows.append({"step": f"external `{name}`: images scored", "images": d["scored"], "level": 0})
    return rows


def table1(
    paths: dict[str, pd.Series], metadata: dict[str, pd.DataFrame | None], columns: list[str], bins: list[float]
) -> dict:
    """Table 1: the images of each set described by metadata columns (age, sex, body site, diagnosis method).

    Args:
        paths: ``{set: image paths}`` (the splits, then each external set).
        metadata: ``{set: its metadata indexed by image id, or None}`` (None: the set has none).
        columns: The columns to describe (``evaluate.table1``).
        bins: Edges that bin a numeric column (``evaluate.subgroup_bins``).

    Returns:
        ``sets`` (names), ``n`` per set, ``described`` (the sets with metadata), ``columns`` (one entry per
        column some set has: ``column``, ``median`` (numeric: ``{set: [median, q1, q3] or None}``),
        ``levels`` (``[{"level", "counts": {set: n}}]``, ``unknown`` last)), and ``missing`` (columns no set has).
    """
    sets = list(paths)
    found = [c for c in columns if any(m is not None and c in m.columns for m in metadata.values())]
    entries = [_column(c, paths, metadata, bins) for c in found]
    return {
        "sets": sets,
        "n": {s: len(paths[s]) for s in sets},
        "described": [s for s in sets if metadata[s] is not None],
        "columns": entries,
        "missing": [c for c in columns if c not in found],
    }


def _column(column: str, paths: dict, metadata: dict, bins: list[float]) -> dict:
    levels, median = {}, {}
    for name, frame in metadata.items():
        if frame is None or column not in frame.columns:
            continue
        levels[name] = subgroup_levels(paths[name], frame, column, bins).astype(str).value_counts()
        raw = frame[column].reindex([_stem(p) for p in paths[name]]).replace("", np.nan)
        numbers = pd.to_numeric(raw, errors="coerce").dropna()
        numeric = raw.notna().any() and len(numbers) == raw.notna().sum()
        median[name] = [float(np.median(numbers)), *map(float, np.quantile(numbers, [0.25, 0.75]))] if numeric else None
    order = [lv for lv in _order(levels) if lv != UNKNOWN] + (
        [UNKNOWN] if any(UNKNOWN in c for c in levels.values()) else []
    )
    rows = [{"level": lv, "counts": {s: int(c.get(lv, 0)) for s, c in levels.items()}} for lv in order]
    return {"column": column, "median": median if any(v for v in median.values()) else {}, "levels": rows}


def _order(levels: dict[str, pd.Series]) -> list[str]:
    """Levels in the order :func:`subgroup_levels` gives (bins low to high, names sorted), across sets."""
    seen: dict[str, None] = {}
    for counts in levels.values():
        seen |= dict.fromkeys(counts.index)
    known = [lv for lv in seen if lv != UNKNOWN]  # placed last by the caller; it must not make bins read as names
    if all(lv[:1] in "<≥" or lv[:1].isdigit() for lv in known):
        return sorted(known, key=_bin_key)
    return sorted(known)


def _bin_key(level: str) -> float:
    if level.startswith("<"):
        return -np.inf
    if level.startswith("≥"):
        return np.inf
    head = level.split("–")[0]
    return float(head) if head.replace(".", "").isdigit() else np.inf


def _stem(path: str) -> str:
    from pathlib import Path

    return Path(path).stem
