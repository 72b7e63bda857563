"""Validate every raw file once, drop duplicates and label conflicts, and split without leakage.

The split is stratified by class, grouped by a metadata column (e.g. ``lesion_id``) when asked, seeded,
and respects train/val/test folders the source already had. Identical bytes, and near-duplicates
(re-encoded or resized copies, by perceptual hash), never land in two splits. Without ``group_by`` a real
data set's split is image-level, and :func:`grouping_warning` says what can leak; the grouping is
recorded in ``reports/data.json``, the report and the model card.
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
SKIP_REASONS = ("empty", "not_an_image", "truncated", "corrupt", "duplicate", "near_duplicate", "label_conflict")
# Two images are one when their 64-bit perceptual (DCT) hashes differ in at most PHASH_BITS bits and
# their difference hashes in at most DHASH_BITS. Measured on the shared real samples (tests/test_split.py
# checks it): JPEG re-encodes (quality 70) and half-size copies of 1,123 HAM10000 and 302 ISIC 2018
# images are within 4 and 4 bits of their original, and no two distinct lesions are within 4 pHash bits
# (closest: 6). pHash alone is fooled by images alike in layout only: 12 pairs of distinct synthetic
# lesions (a dark circular frame around a central blob) are within 4 pHash bits, but 6-23 dHash bits.
PHASH_BITS = 4
DHASH_BITS = 5
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
    phash: str = ""
    dhash: str = ""


@dataclass
class SplitResult:
    """What :func:`split_dataset` produced."""

    splits: dict[str, list[Record]]
    skipped: list[dict] = field(default_factory=list)
    files_seen: int = 0
    group_by: str = ""
    images_without_group: int = 0
    given_splits: tuple[str, ...] = ()


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


def image_groups(
    paths: list[str], meta: pd.DataFrame, group_by: str, allow_missing: bool, metadata: str
) -> tuple[dict[str, str], int]:
    """The group of each image: its ``group_by`` value in the metadata (by file name without extension).

    Args:
        paths: Image paths.
        meta: Metadata indexed by image id.
        group_by: The grouping column; empty means every image is its own group.
        allow_missing: Let an image without a value form its own group instead of failing.
        metadata: The metadata file (for messages).

    Returns:
        ``{path: group}`` and how many images had no value.

    Raises:
        DataError: When images have no value and ``allow_missing`` is false: such an image would be its
            own group, and a lesion photographed twice would leak across splits unnoticed.
    """
    groups, missing = {}, []
    for path in paths:
        stem = Path(path).stem
        value = str(meta.at[stem, group_by]) if group_by and stem in meta.index else ""
        groups[path] = value or stem
        if group_by and not value:
            missing.append(stem)
    if missing and not allow_missing:
        shown = ", ".join(sorted(missing)[:5]) + (", ..." if len(missing) > 5 else "")
        raise DataError(
            f"split.group_by={group_by}: {len(missing)} of {len(paths)} images have no {group_by} in "
            f"data.metadata={metadata} ({shown}); add them to the metadata, or set split.allow_missing_groups: "
            "true to let each form its own group (they may then leak across splits)"
        )
    return groups, len(missing)


def grouping_warning(source: str, group_by: str, given_splits: tuple[str, ...]) -> str | None:
    """What leaks when a real data set is split without grouping by lesion, and how to fix it (or None).

    Args:
        source: ``data.source``.
        group_by: ``split.group_by``.
        given_splits: The splits the source itself provided (``val``, ``test``).
    """
    if source in ("synthetic", "dermamnist_c") or group_by:
        # Synthetic images are independent draws; DermaMNIST-C's own split and a grouped one keep
        # each lesion in one split.
        return None
    if source == "dermamnist":
        return (
            "data.source=dermamnist keeps MedMNIST's official split, which is image-level: images of one lesion "
            "sit in train and test (Abhishek et al., Sci Data 2025), inflating test metrics. Use data.source: "
            "dermamnist_c (the lesion-grouped DermaMNIST-C split, doi 10.5281/zenodo.11101337), or the HAM10000 "
            "images with data.metadata and split.group_by: lesion_id"
        )
    carved = [s for s in ("val", "test") if s not in given_splits]
    where = f"{' and '.join(carved)} carved out image by image" if carved else "the source's own split kept"
    return (
        f"split.group_by is empty ({where}): images of one lesion can sit in train and test, inflating test "
        "metrics. Set data.metadata to a CSV with a lesion column (e.g. HAM10000_metadata.csv) and "
        "split.group_by: lesion_id"
    )


def near_duplicate_clusters(phashes: list[str], dhashes: list[str]) -> list[int]:
    """A cluster id per image: images within :data:`PHASH_BITS` and :data:`DHASH_BITS` share one (transitively).

    Identical files have identical hashes, so a cluster holds exact copies too.

    Args:
        phashes: 64-bit perceptual hashes as 16 hex digits.
        dhashes: 64-bit difference hashes as 16 hex digits, in the same order.

    Returns:
        One id per input (the index of a representative member).
    """
    import numpy as np

    p = np.array([int(h, 16) for h in phashes], dtype=np.uint64)
    d = np.array([int(h, 16) for h in dhashes], dtype=np.uint64)
    parent = list(range(len(p)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    block = 256  # rows compared at once: memory stays ~block x n bytes however many images there are
    for start in range(0, len(p), block):
        rows = slice(start, start + block)
        near = (np.bitwise_count(p[rows, None] ^ p[None, :]) <= PHASH_BITS) & (
            np.bitwise_count(d[rows, None] ^ d[None, :]) <= DHASH_BITS
        )
        for i, j in zip(*np.nonzero(near), strict=True):
            a, b = root(int(i) + start), root(int(j))
            if a != b:
                parent[max(a, b)] = min(a, b)
    return [root(i) for i in range(len(p))]


def deduplicate(records: list[Record], drop_label_conflicts: bool = True) -> tuple[list[Record], list[dict]]:
    """Keep each distinct image once: identical bytes, and near-duplicates (re-encoded or resized copies).

    Copies of one image with the same label: one is kept (a given test/val copy first, then by path),
    so no image is ever in two splits. Copies under different labels: a label conflict; every copy is
    excluded (the default) or only the first one by path is kept.

    Args:
        records: Valid images (with their perceptual hashes).
        drop_label_conflicts: Exclude every copy of conflicting content.

    Returns:
        The kept records and one skip entry (path, reason, detail) per dropped copy.

    """
    clusters: dict[int, list[Record]] = defaultdict(list)
    clusters_of = near_duplicate_clusters([r.phash for r in records], [r.dhash for r in records])
    for r, cluster in zip(records, clusters_of, strict=True):
        clusters[cluster].append(r)
    kept, skipped = [], []
    for copies in clusters.values():
        copies = sorted(copies, key=lambda r: (_KEEP_PRIORITY[r.given_split], r.path))
        labels = sorted({r.label for r in copies})
        if len(labels) > 1:
            others = "; ".join(f"{r.path} [{r.label}]" for r in copies)
            if drop_label_conflicts:
                skipped += [
                    _skip(r.path, "label_conflict", f"same image under labels {labels}: {others}") for r in copies
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
        skipped += [_copy_skip(r, copies[0]) for r in copies[1:]]
    return sorted(kept, key=lambda r: r.path), skipped


def _copy_skip(copy: Record, original: Record) -> dict:
    if copy.sha256 == original.sha256:
        return _skip(copy.path, "duplicate", f"same bytes as {original.path}")
    return _skip(
        copy.path,
        "near_duplicate",
        f"perceptual hashes within {PHASH_BITS}/{DHASH_BITS} bits of {original.path} (a re-encoded or resized copy)",
    )


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
    allow_missing_groups: bool = False,
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
        allow_missing_groups: With ``group_by``, let an image missing from the metadata form its own
            group (counted) instead of failing.
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
    groups, missing = image_groups([f[0] for f in files], meta, group_by, allow_missing_groups, metadata)
    checks = check_files([f[0] for f in files], workers, progress)

    skipped, records = [], []
    for (path, given, label), check in zip(files, checks, strict=True):
        if not check.ok:
            skipped.append(_skip(path, check.reason, check.detail))
            continue
        records.append(Record(path, label, check.sha256, given, groups[path], check.phash, check.dhash))

    records, dup_skips = deduplicate(records, drop_label_conflicts)
    skipped += dup_skips
    if not records:
        raise DataError(f"{raw}: no usable images ({len(skipped)} files skipped; see data/splits/skipped.csv)")

    splits: dict[str, list[Record]] = {s: [r for r in records if r.given_split == s] for s in ("val", "test")}
    given = tuple(s for s in ("val", "test") if splits[s])
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
    return SplitResult(splits, sorted(skipped, key=lambda s: s["path"]), len(files), group_by, missing, given)


def split_frames(result: SplitResult) -> dict[str, pd.DataFrame]:
    """Return one DataFrame per split with columns ``path,label,sha256,group``."""
    return {
        s: pd.DataFrame(
            [(r.path, r.label, r.sha256, r.group) for r in recs], columns=["path", "label", "sha256", "group"]
        )
        for s, recs in result.splits.items()
    }


def data_summary(result: SplitResult, source: str) -> dict:
    """Summarise a split for ``reports/data.json``: counts per split and class, skips by reason, grouping.

    Args:
        result: The split.
        source: ``data.source`` (whether an ungrouped split is a leak worth a warning).
    """
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
        "grouping": {
            "group_by": result.group_by or None,
            "images_without_group": result.images_without_group,
            "given_split": "+".join(result.given_splits) or None,
            "warning": grouping_warning(source, result.group_by, result.given_splits),
        },
    }


def class_counts(per_class: dict[str, dict[str, int]]) -> pd.DataFrame:
    """Images per class and split, one row per class with a ``total`` column (the class-count plot's data)."""
    frame = pd.DataFrame(per_class).fillna(0).astype(int).reindex(columns=list(SPLITS), fill_value=0)
    frame["total"] = frame.sum(axis=1)
    return frame.rename_axis("class").reset_index().sort_values("class", ignore_index=True)
