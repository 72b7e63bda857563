"""The leakage guard: which images form one group (a lesion), and what an ungrouped split leaks."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pandas as pd

from skinlesion.core.errors import DataError
from skinlesion.core.modes import Source, Split


def load_metadata(csv_path: str, id_column: str, group_by: str, key: str = "data.metadata") -> pd.DataFrame:
    """Read a metadata CSV indexed by image id (the file name without extension).

    Args:
        csv_path: The CSV (e.g. HAM10000_metadata.csv).
        id_column: Column holding the image id.
        group_by: The grouping column (``split.group_by``; empty for none): an id listed twice must
            have one value in it, or the image's group would depend on which row is read.
        key: The params key that names the CSV (``data.metadata``, ``external.<name>.metadata``), for messages.

    Returns:
        The metadata, one row per id.

    Raises:
        DataError: If the file cannot be read as a comma-separated UTF-8 CSV, names a column twice, lacks the
            id column, or a repeated id has two values of ``group_by``.

    """
    name = f"{key} ({csv_path})"
    try:
        frame = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
        with open(csv_path, encoding="utf-8-sig", newline="") as handle:  # the names as written, not as pandas renames
            header = next(csv.reader(handle), [])
    except FileNotFoundError:
        raise DataError(f"{name} does not exist; fix {key}, or set it to '' for none") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{name} is empty: give a CSV with a header row, or set {key}: '' for none") from None
    except (pd.errors.ParserError, csv.Error, UnicodeDecodeError, OSError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{name} is not a readable CSV ({first}); save it as UTF-8 CSV") from None
    twice = sorted(c for c, n in Counter(header).items() if c and n > 1)
    if twice:
        raise DataError(f"{name} has the column {twice[0]!r} twice: which one to read is unclear; keep one")
    if id_column not in frame.columns:
        separator = next((s for s in (";", "\t", "|") if len(frame.columns) == 1 and s in frame.columns[0]), None)
        fix = f"its columns look separated by {separator!r}: save it comma-separated" if separator else ""
        raise DataError(
            f"{name} has no column {id_column!r} (data.metadata_id_column); columns: {', '.join(frame.columns)}"
            + (f"; {fix}" if fix else "")
        )
    if group_by in frame.columns:
        values = frame.groupby(id_column)[group_by].nunique()
        torn = sorted(values[values > 1].index)
        if torn:
            shown = ", ".join(torn[:5]) + (", ..." if len(torn) > 5 else "")
            raise DataError(
                f"{name}: {len(torn)} image id(s) listed more than once with different {group_by} values ({shown}); "
                f"the image would change group with the row read: keep one row per id"
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
    if source in (Source.SYNTHETIC, Source.DERMAMNIST_C) or group_by:
        # Synthetic images are independent draws; the own split of DermaMNIST-C (corrected, Abhishek et al.)
        # and a grouped one keep each lesion in one split.
        return None
    if source == Source.DERMAMNIST:
        return (
            "data.source=dermamnist keeps MedMNIST's official split, which is image-level: images of one lesion "
            "sit in train and test (Abhishek et al., Sci Data 2025), inflating test metrics. Use data.source: "
            "dermamnist_c (the lesion-grouped DermaMNIST-C (corrected, Abhishek et al.) split, doi "
            "10.5281/zenodo.11101337), or the HAM10000 images with data.metadata and split.group_by: lesion_id"
        )
    carved = [s for s in (Split.VAL, Split.TEST) if s not in given_splits]
    where = f"{' and '.join(carved)} carved out image by image" if carved else "the source's own split kept"
    return (
        f"split.group_by is empty ({where}): images of one lesion can sit in train and test, inflating test "
        "metrics. Set data.metadata to a CSV with a lesion column (e.g. HAM10000_metadata.csv) and "
        "split.group_by: lesion_id"
    )
