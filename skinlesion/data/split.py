"""Validate every raw file once, drop duplicates and label conflicts, and split without leakage.

The split is stratified by class, grouped by a metadata column (e.g. ``lesion_id``) when asked, seeded,
and respects train/val/test folders the source already had. Identical bytes never land in two splits.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from skinlesion.core.errors import DataError
from skinlesion.core.images import FileCheck, check_file
from skinlesion.data.fetch import SPLIT_ALIASES, UNSPLIT

SPLITS = ("train", "val", "test")
SKIP_REASONS = ("empty", "not_an_image", "truncated", "corrupt", "duplicate", "label_conflict")
# When the same bytes sit in several given splits, the copy in the first of these is kept.
_KEEP_PRIORITY = {"test": 0, "val": 1, "train": 2, UNSPLIT: 3}


@dataclass(frozen=True)
class Record:
    """One usable image."""

    path: str
    label: str
    sha256: str
    given_split: str
    group: str


@dataclass
class SplitResult:
    """What :func:`split_dataset` produced."""

    splits: dict[str, list[Record]]
    skipped: list[dict] = field(default_factory=list)
    files_seen: int = 0
    missing_metadata: int = 0


def scan_raw(raw: Path) -> list[tuple[str, str, str]]:
    """List ``(path, given_split, label)`` for every file in the raw layout, sorted by path.

    Args:
        raw: The raw folder written by fetch (``<split>/<class>/<file>``).

    Returns:
        One tuple per file inside a class folder.

    """
    out = []
    for split_dir in sorted(p for p in raw.iterdir() if p.is_dir() and not p.name.startswith(".")):
        given = SPLIT_ALIASES.get(split_dir.name.lower(), UNSPLIT if split_dir.name == UNSPLIT else None)
        if given is None:
            raise DataError(f"{split_dir}: not a split folder of the raw layout; rerun the fetch stage")
        for class_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
            for f in sorted(class_dir.rglob("*")):
                if f.is_file():
                    out.append((f.as_posix(), given, class_dir.name))
    return out


def check_files(paths: list[str], workers: int = 0, progress: bool = True) -> list[FileCheck]:
    """Hash and fully decode files in parallel processes, streaming results back in order.

    Only small :class:`FileCheck` records come back, never pixels, so memory stays flat however many
    images there are.

    Args:
        paths: Files to check.
        workers: Processes; 0 means one per core.
        progress: Show a progress bar.

    Returns:
        One check per path, in order.

    """
    from tqdm import tqdm

    workers = workers or os.cpu_count() or 1
    serial = workers == 1 or len(paths) < 64  # starting a pool costs more than checking a few files
    with contextlib.ExitStack() as stack:
        pool = None if serial else stack.enter_context(multiprocessing.get_context("spawn").Pool(workers))
        results = pool.imap(check_file, paths, chunksize=32) if pool else map(check_file, paths)
        return list(tqdm(results, total=len(paths), desc="validate", unit="img", disable=not progress))


def load_metadata(csv_path: str, id_column: str) -> pd.DataFrame:
    """Read a metadata CSV indexed by image id (the file name without extension).

    Args:
        csv_path: The CSV (e.g. HAM10000_metadata.csv).
        id_column: Column holding the image id.

    Returns:
        The metadata, one row per id (the first row wins for a repeated id).

    Raises:
        DataError: If the file or the id column is missing.

    """
    try:
        frame = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise DataError(
            f"data.metadata={csv_path} does not exist; fix the path, or use data/no-metadata.csv for none"
        ) from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"data.metadata={csv_path} is not a readable CSV ({exc})") from None
    if id_column not in frame.columns:
        raise DataError(
            f"data.metadata={csv_path} has no column {id_column!r} (data.metadata_id_column); "
            f"columns: {', '.join(frame.columns)}"
        )
    return frame.drop_duplicates(id_column).set_index(id_column)


def deduplicate(records: list[Record], drop_label_conflicts: bool = True) -> tuple[list[Record], list[dict]]:
    """Keep each distinct content once.

    Same bytes with the same label: one copy is kept (a given test/val copy first, then by path).
    Same bytes under different labels: a label conflict; every copy is excluded (the default) or only
    the first one by path is kept.

    Args:
        records: Valid images.
        drop_label_conflicts: Exclude every copy of conflicting content.

    Returns:
        The kept records and one skip entry (path, reason, detail) per dropped copy.

    """
    by_hash: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        by_hash[r.sha256].append(r)
    kept, skipped = [], []
    for copies in by_hash.values():
        copies = sorted(copies, key=lambda r: (_KEEP_PRIORITY[r.given_split], r.path))
        labels = sorted({r.label for r in copies})
        if len(labels) > 1:
            others = "; ".join(f"{r.path} [{r.label}]" for r in copies)
            if drop_label_conflicts:
                skipped += [
                    _skip(r.path, "label_conflict", f"same bytes under labels {labels}: {others}") for r in copies
                ]
                continue
            first = min(copies, key=lambda r: r.path)
            kept.append(first)
            skipped += [
                _skip(r.path, "label_conflict", f"kept {first.path} [{first.label}]; {others}")
                for r in copies
                if r is not first
            ]
            continue
        kept.append(copies[0])
        skipped += [_skip(r.path, "duplicate", f"same bytes as {copies[0].path}") for r in copies[1:]]
    return sorted(kept, key=lambda r: r.path), skipped


def _skip(path: str, reason: str, detail: str) -> dict:
    return {"path": path, "reason": reason, "detail": detail}


def carve(records: list[Record], fraction: float, seed: int, grouped: bool, name: str) -> tuple[list, list]:
    """Split ``fraction`` of ``records`` off, stratified by label and (optionally) grouped.

    Args:
        records: The pool.
        fraction: Share to carve out, in (0, 1).
        seed: Random state.
        grouped: Keep every ``group`` whole (StratifiedGroupKFold) instead of per-image stratification.
        name: The split being carved (for messages).

    Returns:
        ``(rest, carved)``.

    Raises:
        DataError: When a class is too small to appear on both sides.

    """
    import numpy as np
    from sklearn.model_selection import StratifiedGroupKFold, train_test_split

    labels = [r.label for r in records]
    counts = Counter(labels)
    small = sorted((n, c) for c, n in counts.items() if n < 2)
    if small:
        n, cls = small[0]
        raise DataError(
            f"split: class {cls!r} has {n} image(s) left for the {name} split — too few to stratify. "
            "Add images, remove its folder, or give it explicit train/val/test folders"
        )
    index = np.arange(len(records))
    try:
        if grouped:
            n_splits = max(2, round(1 / fraction))
            groups = [r.group for r in records]
            folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
            rest_idx, carved_idx = next(folds.split(index, labels, groups))
        else:
            rest_idx, carved_idx = train_test_split(index, test_size=fraction, stratify=labels, random_state=seed)
    except ValueError as exc:
        raise DataError(
            f"split: cannot stratify {len(records)} images of {len(counts)} classes into a {name} split of "
            f"{fraction:.0%} ({exc}). Add images or raise split.{name}_fraction"
        ) from None
    return [records[i] for i in sorted(rest_idx)], [records[i] for i in sorted(carved_idx)]


def split_dataset(
    raw: Path,
    *,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    group_by: str = "",
    metadata: str = "",
    metadata_id_column: str = "image_id",
    drop_label_conflicts: bool = True,
    workers: int = 0,
    progress: bool = True,
) -> SplitResult:
    """Validate, deduplicate and split the raw images.

    Args:
        raw: The raw folder.
        val_fraction: Share of the pool (images without a given split) for validation.
        test_fraction: Share of the pool for test.
        seed: Random state of the split.
        group_by: Metadata column whose values must not straddle splits; empty for none.
        metadata: CSV whose id column matches file names without extension (empty or header-only: none).
        metadata_id_column: The id column of ``metadata``.
        drop_label_conflicts: Exclude every copy of content found under two labels.
        workers: Validation processes; 0 means one per core.
        progress: Show progress bars.

    Returns:
        The splits, the skipped files with reasons, and counters.

    """
    # Metadata problems are found before the slow part (decoding every file).
    meta = load_metadata(metadata, metadata_id_column) if metadata else pd.DataFrame()
    if group_by and group_by not in meta.columns:
        raise DataError(
            f"split.group_by={group_by} is not a column of data.metadata={metadata}: point data.metadata at a CSV "
            f"with a {group_by!r} column"
        )
    files = scan_raw(raw)
    if not files:
        raise DataError(f"{raw}: no files; run the fetch stage first")
    checks = check_files([f[0] for f in files], workers, progress)

    skipped, records, missing = [], [], 0
    for (path, given, label), check in zip(files, checks, strict=True):
        if not check.ok:
            skipped.append(_skip(path, check.reason, check.detail))
            continue
        stem = Path(path).stem
        group = stem
        if group_by:
            if stem in meta.index and meta.at[stem, group_by]:
                group = str(meta.at[stem, group_by])
            else:
                missing += 1
        records.append(Record(path, label, check.sha256, given, group))

    records, dup_skips = deduplicate(records, drop_label_conflicts)
    skipped += dup_skips
    if not records:
        raise DataError(f"{raw}: no usable images ({len(skipped)} files skipped; see data/splits/skipped.csv)")

    splits: dict[str, list[Record]] = {s: [r for r in records if r.given_split == s] for s in ("val", "test")}
    pool = [r for r in records if r.given_split in ("train", UNSPLIT)]
    if group_by:  # pool images of a lesion already in a given val/test split follow it there
        for s in ("test", "val"):
            taken = {r.group for r in splits[s]}
            splits[s] += [r for r in pool if r.group in taken]
            pool = [r for r in pool if r.group not in taken]
    carve_test, carve_val = not splits["test"], not splits["val"]
    if carve_test:
        pool, splits["test"] = carve(pool, test_fraction, seed, bool(group_by), "test")
    if carve_val:
        share = val_fraction / (1 - test_fraction) if carve_test else val_fraction
        pool, splits["val"] = carve(pool, share, seed + 1, bool(group_by), "val")
    splits["train"] = pool
    splits = {s: sorted(splits[s], key=lambda r: r.path) for s in SPLITS}
    return SplitResult(splits, sorted(skipped, key=lambda s: s["path"]), len(files), missing)


def split_frames(result: SplitResult) -> dict[str, pd.DataFrame]:
    """Return one DataFrame per split with columns ``path,label,sha256,group``."""
    return {
        s: pd.DataFrame(
            [(r.path, r.label, r.sha256, r.group) for r in recs], columns=["path", "label", "sha256", "group"]
        )
        for s, recs in result.splits.items()
    }


def data_summary(result: SplitResult) -> dict:
    """Summarise a split for ``reports/data.json``: counts per split and class, skips by reason."""
    reasons = Counter(s["reason"] for s in result.skipped)
    classes = sorted({r.label for recs in result.splits.values() for r in recs})
    return {
        "files_seen": result.files_seen,
        "images": {s: len(recs) for s, recs in result.splits.items()}
        | {"total": sum(len(r) for r in result.splits.values())},
        "classes": len(classes),
        "per_class": {s: dict(sorted(Counter(r.label for r in recs).items())) for s, recs in result.splits.items()},
        "skipped": {reason: reasons.get(reason, 0) for reason in SKIP_REASONS},
        "skipped_total": len(result.skipped),
        "missing_metadata": result.missing_metadata,
    }


def class_counts(per_class: dict[str, dict[str, int]]) -> pd.DataFrame:
    """Images per class and split, one row per class with a ``total`` column (the class-count plot's data)."""
    frame = pd.DataFrame(per_class).fillna(0).astype(int).reindex(columns=list(SPLITS), fill_value=0)
    frame["total"] = frame.sum(axis=1)
    return frame.rename_axis("class").reset_index().sort_values("class", ignore_index=True)
