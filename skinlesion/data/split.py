"""Validate every raw file once, drop duplicates and label conflicts, and split without leakage.

The split is stratified by class, grouped by a metadata column (e.g. ``lesion_id``) when asked, seeded,
and respects train/val/test folders the source already had. Identical bytes, and near-duplicates
(re-encoded or resized copies, by perceptual hash), never land in two splits. Without ``group_by`` a real
data set's split is image-level, and :func:`grouping_warning` says what can leak; the grouping is
recorded in ``reports/data.json``, the report and the model card.
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from skinlesion.core.config import SplitConfig
from skinlesion.core.errors import DataError, workers_ignore_interrupt
from skinlesion.core.images import FileCheck, check_file, pixel_limit, set_max_pixels
from skinlesion.core.io import is_printable, printable, read_json
from skinlesion.core.layout import SKIPPED, SOURCE_FILE
from skinlesion.core.modes import Split
from skinlesion.data.duplicates import Record, deduplicate, skip_entry
from skinlesion.data.fetch import SPLIT_ALIASES, UNSPLIT, files_per_split
from skinlesion.data.grouping import grouping_warning, image_groups, load_metadata

# Why a file is left out, each counted in reports/data.json and listed in data/splits/skipped.csv.
SKIP_REASONS = (
    "empty",
    "not_an_image",
    "truncated",
    "corrupt",
    "unreadable",  # no permission to read it, or an I/O error
    "too_large",  # over split.max_pixels, by its header
    "too_small",  # a side under split.min_side, by its header
    "bad_file_name",  # not valid UTF-8, or control characters: no CSV or report can name it
    "duplicate",
    "near_duplicate",
    "label_conflict",
)


@dataclass
class SplitResult:
    """What :func:`split_dataset` produced."""

    splits: dict[str, list[Record]]
    skipped: list[dict] = field(default_factory=list)
    files_seen: int = 0
    group_by: str = ""
    images_without_group: int = 0
    given_splits: tuple[str, ...] = ()


def check_raw(raw: Path) -> None:
    """Refuse a raw folder that fetch did not finish, or that changed since.

    Raises:
        DataError: If ``raw`` is missing, lacks ``SOURCE.json`` (written last by fetch), or holds other
            files than ``SOURCE.json`` counts.
    """
    rerun = "rerun `dvc repro fetch`"
    if not raw.is_dir():
        raise DataError(f"{raw} not found: run `dvc repro fetch` first")
    try:
        listed = read_json(raw / SOURCE_FILE)["per_split"]
    except FileNotFoundError:
        raise DataError(f"{raw} is incomplete (no {SOURCE_FILE}: an interrupted fetch?); {rerun}") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{raw / SOURCE_FILE} is unreadable ({type(exc).__name__}: {exc}); {rerun}") from None
    found = files_per_split(raw)
    if found != listed:
        raise DataError(
            f"{raw} holds {sum(found.values())} files {found} but {SOURCE_FILE} lists {sum(listed.values())} "
            f"{listed}: it changed after fetch (or fetch was interrupted); {rerun}"
        )


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


def check_files(paths: list[str], split: SplitConfig, workers: int = 0, progress: bool = True) -> list[FileCheck]:
    """Hash and fully decode files in parallel processes, streaming results back in order.

    Only small :class:`FileCheck` records come back, never pixels, so memory stays flat however many
    images there are; an image over ``split.max_pixels``, or with a side under ``split.min_side``, is
    refused from its header, before decoding. The processes ignore Ctrl-C: this one stops them.

    Args:
        paths: Files to check.
        split: ``split:`` params: ``max_pixels`` (set in this process and in every validation process) and
            ``min_side``.
        workers: Processes; 0 means one per core.
        progress: Show a progress bar.

    Returns:
        One check per path, in order.

    """
    from tqdm import tqdm

    workers = workers or os.cpu_count() or 1
    serial = workers == 1 or len(paths) < 64  # starting a pool costs more than checking a few files
    check = functools.partial(check_file, min_side=split.min_side)
    with contextlib.ExitStack() as stack:
        stack.enter_context(pixel_limit(split.max_pixels))
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: Pillow's limit is set again
        if not serial:
            with workers_ignore_interrupt():
                pool = stack.enter_context(context.Pool(workers, set_max_pixels, (split.max_pixels,)))
        results = map(check, paths) if serial else pool.imap(check, paths, chunksize=32)
        return list(tqdm(results, total=len(paths), desc="validate", unit="img", disable=None if progress else True))


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
    raw: Path, split: SplitConfig, metadata: str, metadata_id_column: str, workers: int = 0, progress: bool = True
) -> SplitResult:
    """Validate, deduplicate and split the raw images.

    Args:
        raw: The raw folder.
        split: ``split:`` params (fractions, seed, grouping column, label-conflict and missing-group rules).
        metadata: CSV whose id column matches file names without extension (empty: none).
        metadata_id_column: The id column of ``metadata``.
        workers: Validation processes; 0 means one per core.
        progress: Show progress bars.

    Returns:
        The splits, the skipped files with reasons, and counters.

    """
    group_by = split.group_by
    # Metadata problems are found before the slow part (decoding every file).
    meta = load_metadata(metadata, metadata_id_column, group_by) if metadata else pd.DataFrame()
    if group_by and group_by not in meta.columns:
        raise DataError(
            f"split.group_by={group_by} is not a column of data.metadata ({metadata or 'empty: no metadata'}): set "
            f"data.metadata to a CSV with a {group_by!r} column inside the data source (e.g. HAM10000_metadata.csv)"
        )
    files = scan_raw(raw)
    if not files:
        raise DataError(f"{raw}: no files; run the fetch stage first")
    named, skipped = named_files(files)
    groups, missing = image_groups([f[0] for f in named], meta, group_by, split.allow_missing_groups, metadata)
    records, unusable = usable_records(named, groups, split, workers, progress)
    records, dup_skips = deduplicate(records, split.drop_label_conflicts)
    skipped += unusable + dup_skips
    if not records:
        raise DataError(f"{raw}: no usable images ({len(skipped)} files skipped; see {SKIPPED})")
    require_classes(records, "usable images", raw)
    splits, given = assign_splits(records, split)
    require_classes(splits[Split.TRAIN], "the train split", raw)
    return SplitResult(splits, sorted(skipped, key=lambda s: s["path"]), len(files), group_by, missing, given)


BAD_NAME = "its name is not valid UTF-8 or holds control characters, so no CSV or report can name it; rename it"


def named_files(files: list[tuple[str, str, str]]) -> tuple[list[tuple[str, str, str]], list[dict]]:
    """The files whose names a CSV or report can hold, and a ``bad_file_name`` skip entry for each other one."""
    named = [f for f in files if is_printable(f[0])]
    return named, [skip_entry(printable(f[0]), "bad_file_name", BAD_NAME) for f in files if not is_printable(f[0])]


def missing_classes(splits: dict[str, list[Record]]) -> dict[str, list[str]]:
    """The training classes each of validation and test has no image of (``reports/data.json``'s ``missing_classes``).

    Balanced accuracy there averages the recall of the classes present only, so it is measured over fewer
    classes than the model predicts, and a class-stratified interval cannot see the missing ones.
    """
    trained = {r.label for r in splits[Split.TRAIN]}
    return {s: sorted(trained - {r.label for r in splits[s]}) for s in (Split.VAL, Split.TEST)}


def require_classes(records: list[Record], what: str, raw: Path) -> None:
    """Refuse fewer than two classes: there is nothing to classify (and training would crash).

    Raises:
        DataError: Naming the classes found.
    """
    classes = sorted({r.label for r in records})
    if len(classes) < 2:
        raise DataError(
            f"{raw}: {what} have {len(classes)} class ({', '.join(classes) or 'none'}); a classifier needs at "
            "least two: add a class folder of images of another diagnosis"
        )


def usable_records(
    files: list[tuple[str, str, str]], groups: dict[str, str], split: SplitConfig, workers: int, progress: bool
) -> tuple[list[Record], list[dict]]:
    """Check every file (:func:`check_files`): the usable images as records, the others as skip entries."""
    checks = check_files([f[0] for f in files], split, workers, progress)
    skipped, records = [], []
    for (path, given, label), check in zip(files, checks, strict=True):
        if not check.ok:
            skipped.append(skip_entry(path, check.reason, check.detail))
            continue
        records.append(Record(path, label, check.sha256, given, groups[path], check.phash, check.dhash, check.chash))
    return records, skipped


def assign_splits(records: list[Record], split: SplitConfig) -> tuple[dict[str, list[Record]], tuple[str, ...]]:
    """Keep the source's own val/test splits and carve the missing ones out of the rest.

    Returns:
        The records of each split (sorted by path), and the splits the source gave.
    """
    group_by = split.group_by
    splits: dict[str, list[Record]] = {s: [r for r in records if r.given_split == s] for s in (Split.VAL, Split.TEST)}
    given = tuple(s for s in (Split.VAL, Split.TEST) if splits[s])
    pool = [r for r in records if r.given_split in (Split.TRAIN, UNSPLIT)]
    if group_by:  # pool images of a lesion already in a given val/test split follow it there
        for s in (Split.TEST, Split.VAL):
            taken = {r.group for r in splits[s]}
            splits[s] += [r for r in pool if r.group in taken]
            pool = [r for r in pool if r.group not in taken]
    carve_test, carve_val = not splits[Split.TEST], not splits[Split.VAL]
    if carve_test:
        pool, splits[Split.TEST] = carve(pool, split.test_fraction, split.seed, bool(group_by), Split.TEST)
    if carve_val:
        share = split.val_fraction / (1 - split.test_fraction) if carve_test else split.val_fraction
        pool, splits[Split.VAL] = carve(pool, share, split.seed + 1, bool(group_by), Split.VAL)
    splits[Split.TRAIN] = pool
    return {s: sorted(splits[s], key=lambda r: r.path) for s in Split}, given


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
        "missing_classes": missing_classes(result.splits),
        "grouping": {
            "group_by": result.group_by or None,
            "images_without_group": result.images_without_group,
            "given_split": "+".join(result.given_splits) or None,
            "warning": grouping_warning(source, result.group_by, result.given_splits),
        },
    }


def class_counts(per_class: dict[str, dict[str, int]]) -> pd.DataFrame:
    """Images per class and split, one row per class with a ``total`` column (the class-count plot's data)."""
    frame = pd.DataFrame(per_class).fillna(0).astype(int).reindex(columns=list(Split), fill_value=0)
    frame["total"] = frame.sum(axis=1)
    return frame.rename_axis("class").reset_index().sort_values("class", ignore_index=True)
