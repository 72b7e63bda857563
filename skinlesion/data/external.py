"""An external test set: its files brought into the raw layout, validated, and kept apart from the training data.

Every file goes through the checks of the split stage (unreadable, corrupt, too large and oddly named
files are skipped and counted; copies within the set are kept once). On top of that, an image that is
also in train, validation or test (identical bytes, or a re-encoded or resized copy by perceptual hash)
is excluded and counted: scoring it would measure memory, not generalisation. Labels are mapped onto the
training classes (``classes``); a label the model does not know is reported and left out.
"""

from __future__ import annotations

import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from skinlesion.core.config import Config
from skinlesion.core.data_params import SplitConfig
from skinlesion.core.errors import DataError
from skinlesion.core.evaluation_params import ExternalConfig
from skinlesion.core.io import write_csv, write_json
from skinlesion.core.layout import ExternalPaths, read_split
from skinlesion.core.modes import ExternalSource, Split
from skinlesion.data.archives import Limits, extract_archive
from skinlesion.data.dermamnist import write_dermamnist
from skinlesion.data.duplicates import Record, copies_in, deduplicate, skip_entry
from skinlesion.data.fetch import import_tree, source_metadata
from skinlesion.data.grouping import load_metadata
from skinlesion.data.split import named_files, scan_raw, usable_records


@dataclass
class ExternalSet:
    """What an external set holds after validation.

    Attributes:
        records: The images to score (labels are training classes).
        skipped: One ``skipped.csv`` row per file not scored.
        files_seen: Files found in the set.
        unknown: Labels the model does not know, and their image counts (left out).
        metadata: Whether the set came with a metadata CSV.
    """

    records: list[Record]
    skipped: list[dict]
    files_seen: int
    unknown: dict[str, int]
    metadata: bool

    def summary(self) -> dict:
        """``data.json`` of the set: counts per class, skips by reason, the labels left out."""
        reasons = Counter(s["reason"] for s in self.skipped)
        return {
            "files_seen": self.files_seen,
            "scored": len(self.records),
            "per_class": dict(sorted(Counter(r.label for r in self.records).items())),
            "skipped": dict(sorted(reasons.items())),
            "skipped_total": len(self.skipped),
            "unknown_classes": self.unknown,
            "metadata": self.metadata,
        }

    def skipped_frame(self) -> pd.DataFrame:
        """``skipped.csv``: path,reason,detail."""
        return pd.DataFrame(self.skipped, columns=["path", "reason", "detail"])

    def frame(self) -> pd.DataFrame:
        """The scored images as a split file (path,label,sha256,group)."""
        rows = [(r.path, r.label, r.sha256, r.group) for r in self.records]
        return pd.DataFrame(rows, columns=["path", "label", "sha256", "group"])


def import_external(name: str, cfg: ExternalConfig, limits: Limits, progress: bool = True) -> tuple[bool, list[dict]]:
    """Bring external set ``name`` into ``external/<name>/raw`` (emptied first), its metadata beside it.

    Args:
        name: The set's key in ``external:``.
        cfg: Its params.
        limits: Archive limits (``data.max_archive_mb``, ``data.max_compression_ratio``).
        progress: Show progress bars.

    Returns:
        Whether a metadata CSV came with it, and one skip entry per file left out (links, files outside
        class folders, unreadable files), as fetch counts them.

    Raises:
        DataError: One line naming ``external.<name>.path`` when the source is missing or unusable, or
            ``external.<name>.metadata`` when its metadata CSV is not in it.
    """
    paths = ExternalPaths(name)
    source = Path(cfg.path)
    key = f"external.{name}.path={cfg.path}"
    if cfg.source == ExternalSource.FOLDER and not source.is_dir():
        raise DataError(f"{key} is not a folder; point it at a class-per-folder image tree")
    if cfg.source != ExternalSource.FOLDER and not source.is_file():
        raise DataError(f"{key} is not a file; point it at the {cfg.source} of the external set")
    _check_apart(key, source, paths.root)
    metadata_key = f"external.{name}.metadata"
    if cfg.source == ExternalSource.FOLDER:  # checked before the previous outputs are removed
        source_metadata(source, cfg.metadata, metadata_key)
    if paths.root.exists():
        shutil.rmtree(paths.root)
    paths.raw.mkdir(parents=True)
    if cfg.source == ExternalSource.NPZ:
        try:
            write_dermamnist(source, paths.raw, progress)
        except DataError as exc:
            raise DataError(f"external.{name}.path: {exc}") from None
        return False, []
    if cfg.source == ExternalSource.ZIP:
        staging = paths.root / ".extract"
        extract_archive(source, staging, limits)
        source = staging
    metadata = source_metadata(source, cfg.metadata, metadata_key)
    left_out: list[dict] = []
    import_tree(source, paths.raw, progress, exclude=metadata, left_out=left_out)
    if metadata is not None:
        shutil.copyfile(metadata, paths.metadata)
    shutil.rmtree(paths.root / ".extract", ignore_errors=True)
    return metadata is not None, left_out


def _check_apart(key: str, source: Path, output: Path) -> None:
    """Refuse a source inside the set's output folder (emptied before import), or one that holds it."""
    source, output = source.resolve(), output.resolve()
    if source == output or output in source.parents:
        raise DataError(
            f"{key} lies inside {output}, the folder this stage empties and fills: move the set out of it "
            "(e.g. into data/) and point the path there"
        )
    if source in output.parents:
        raise DataError(f"{key} holds {output}, the folder this stage writes: point it at the set's own folder")


def validate_external(
    name: str, cfg: ExternalConfig, split: SplitConfig, classes: list[str], context: dict
) -> ExternalSet:
    """Check, deduplicate, map and keep apart the files of an imported external set.

    Args:
        name: The set's key in ``external:``.
        cfg: Its params (the label mapping).
        split: ``split:`` params (``max_pixels``, ``min_side``, ``group_by`` for lesion groups from the set's
            metadata).
        classes: The training classes (the model's).
        context: ``workers``, ``progress``, ``metadata_id_column``, ``metadata`` (whether a CSV came with the
            set) and ``left_out`` (the files import left out, as skip entries).

    Returns:
        The :class:`ExternalSet`.
    """
    paths = ExternalPaths(name)
    scanned = scan_raw(paths.raw)
    files, skipped = named_files([(path, given, cfg.classes.get(label, label)) for path, given, label in scanned])
    skipped += context["left_out"]
    groups = _groups(name, [f[0] for f in files], paths.metadata if context["metadata"] else None, split, context)
    records, unusable = usable_records(files, groups, split, context["workers"], context["progress"])
    skipped += unusable
    unknown = Counter(r.label for r in records if r.label not in classes)
    hint = f"map it in external.{name}.classes if it is one of them under another name"
    skipped += [
        skip_entry(r.path, "unknown_class", f"label {r.label!r} is not a class of the model; {hint}")
        for r in records
        if r.label not in classes
    ]
    records, duplicates = deduplicate([r for r in records if r.label in classes])
    skipped += duplicates
    records, overlaps = _apart(records, split, context)
    skipped += overlaps
    files_seen = len(scanned) + len(context["left_out"])
    return ExternalSet(
        records, sorted(skipped, key=lambda s: s["path"]), files_seen, dict(unknown), context["metadata"]
    )


def prepare_external(name: str, config: Config, progress: bool = True) -> ExternalSet:
    """Import, check and write external set ``name``: ``images.csv``, ``skipped.csv`` and ``data.json``.

    Args:
        name: The set's key in ``external:``.
        config: The params (the set's entry, ``split``, ``data``'s limits and id column, ``runtime.workers``).
        progress: Show progress bars.

    Raises:
        DataError: When ``classes`` maps a label onto a class the model does not have (before any work), the
            set cannot be imported, or no image is left to score (``skipped.csv`` says why).
    """
    cfg, paths = config.external[name], ExternalPaths(name)
    classes = sorted(read_split(Split.TRAIN)["label"].unique())
    for label, target in cfg.classes.items():  # a typo would leave every image of the label out
        if target not in classes:
            raise DataError(
                f"external.{name}.classes maps {label!r} to {target!r}, not a class of the model "
                f"({', '.join(classes)}); map it to one of them, or remove the entry"
            )
    limits = Limits(config.data.max_archive_mb, config.data.max_compression_ratio)
    metadata, left_out = import_external(name, cfg, limits, progress)
    context = {
        "workers": config.runtime.workers,
        "progress": progress,
        "metadata_id_column": config.data.metadata_id_column,
        "metadata": metadata,
        "left_out": left_out,
    }
    external = validate_external(name, cfg, config.split, classes, context)
    write_csv(paths.skipped, external.skipped_frame())
    if not external.records:
        raise DataError(
            f"external.{name}: no image left to score ({len(external.skipped)} files skipped; see {paths.skipped}): "
            f"check external.{name}.path and external.{name}.classes"
        )
    write_csv(paths.images, external.frame())
    write_json(paths.summary, external.summary())
    return external


def _groups(name: str, paths: list[str], metadata: Path | None, split: SplitConfig, context: dict) -> dict[str, str]:
    """Each image's lesion group: its ``split.group_by`` value in the set's metadata, else the image itself.

    The metadata is read (and checked) whenever the set has one: aggregate reads it for subgroups.
    """
    if metadata is None:
        return {p: Path(p).stem for p in paths}
    key = f"external.{name}.metadata"
    meta = load_metadata(str(metadata), context["metadata_id_column"], split.group_by, key)
    if not split.group_by or split.group_by not in meta.columns:
        return {p: Path(p).stem for p in paths}
    values = meta[split.group_by]
    return {p: (str(values.get(Path(p).stem, "")) or Path(p).stem) for p in paths}


def _apart(records: list[Record], split: SplitConfig, context: dict) -> tuple[list[Record], list[dict]]:
    """Leave out the images that are also in train, validation or test (same bytes or a near-duplicate)."""
    internal = pd.concat([read_split(s).assign(split=s) for s in Split], ignore_index=True)
    checked, _ = usable_records(
        list(zip(internal["path"], internal["split"], internal["label"], strict=True)),
        dict(zip(internal["path"], internal["group"], strict=True)),
        split,
        context["workers"],
        context["progress"],
    )
    kept, skipped = [], []
    for record, copy in zip(records, copies_in(checked, records), strict=True):
        if copy is None:
            kept.append(record)
            continue
        how = "the same bytes as" if copy.sha256 == record.sha256 else "a near-duplicate of"
        reason = "in_training_data" if copy.given_split in (Split.TRAIN, Split.VAL) else "in_test_split"
        skipped.append(skip_entry(record.path, reason, f"{how} {copy.path} ({copy.given_split} split)"))
    return kept, skipped
