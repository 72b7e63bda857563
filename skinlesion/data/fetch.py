"""Fetch images from one of the six sources (:class:`~skinlesion.core.modes.Source`) into the raw layout.

The raw layout is ``<out>/<split>/<class>/<file>``, where ``split`` is ``train``, ``val`` or ``test`` when
the source had such folders (the Kaggle layouts) and ``unsplit`` otherwise; the split stage respects
given splits and carves out the missing ones. ``<out>/metadata.csv`` is the source's metadata CSV
(``data.metadata``), and ``<out>/SOURCE.json`` records where the data came from and what was left out.
The new folder is filled beside ``out`` and renamed into place last, ``SOURCE.json`` written just before:
a failed or killed fetch leaves the previous raw folder as it was.
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from skinlesion.core.config import DataConfig
from skinlesion.core.errors import DataError
from skinlesion.core.io import printable, write_json
from skinlesion.core.layout import RAW_METADATA, SOURCE_FILE, previous_dir, staging_dir
from skinlesion.core.modes import Source, Split
from skinlesion.data import dermamnist, synthetic
from skinlesion.data.archives import Limits, extract_archive

SPLIT_ALIASES = {
    "train": Split.TRAIN,
    "training": Split.TRAIN,
    "val": Split.VAL,
    "valid": Split.VAL,
    "validation": Split.VAL,
    "test": Split.TEST,
    "testing": Split.TEST,
}
UNSPLIT = "unsplit"


def _visible(path: Path) -> bool:
    return not path.name.startswith(".") and path.name != "__MACOSX"


def find_dataset_root(root: Path) -> Path:
    """Descend through wrapper folders (a lone sub-folder and no files, e.g. Kaggle's ``my_data/``).

    A lone sub-folder that holds no folders of its own is a class folder, not a wrapper: a data set of
    one class is then found as such (and refused by split, naming the class) instead of as no classes.

    Args:
        root: Top of the downloaded or extracted tree.

    Returns:
        The folder whose sub-folders are either split folders or class folders.

    """
    while True:
        entries = [p for p in root.iterdir() if _visible(p)]
        dirs = [p for p in entries if p.is_dir()]
        lone = len(dirs) == 1 and len(entries) == 1 and dirs[0].name.lower() not in SPLIT_ALIASES
        if lone and any(p.is_dir() and _visible(p) for p in dirs[0].iterdir()):
            root = dirs[0]
        else:
            return root


def layout(root: Path) -> dict[str, Path]:
    """Map canonical split names to folders of class folders.

    Args:
        root: The dataset root (see :func:`find_dataset_root`).

    Returns:
        ``{"train": path, "test": path}`` for a split tree, ``{"unsplit": root}`` for a class tree.

    Raises:
        DataError: If split folders and class folders are mixed, or there are no folders at all.

    """
    dirs = sorted(p for p in root.iterdir() if p.is_dir() and _visible(p))
    if not dirs:
        raise DataError(f"{root}: no class folders found; expected <class>/<image> or train|val|test/<class>/")
    split_dirs = [d for d in dirs if d.name.lower() in SPLIT_ALIASES]
    if not split_dirs:
        return {UNSPLIT: root}
    if len(split_dirs) != len(dirs):
        other = ", ".join(d.name for d in dirs if d not in split_dirs)
        raise DataError(
            f"{root}: mixes split folders ({', '.join(d.name for d in split_dirs)}) "
            f"with other folders ({other}); "
            "move every class folder under train/, val/ or test/, or remove the split folders"
        )
    out: dict[str, Path] = {}
    for d in split_dirs:
        name = SPLIT_ALIASES[d.name.lower()]
        if name in out:
            raise DataError(f"{root}: both {out[name].name}/ and {d.name}/ mean the {name} split; keep one")
        out[name] = d
    return out


def import_tree(
    src: Path, out: Path, progress: bool = True, exclude: Path | None = None, left_out: list | None = None
) -> dict:
    """Copy a class-per-folder tree (with or without split folders) into the canonical raw layout.

    Files inside class folders are copied byte for byte, whatever their type: the split stage decides
    which are images and counts the rest. Files directly in a split or root folder have no class and
    are counted as ``unlabelled``; symbolic links (which may point anywhere, e.g. outside the data
    folder) and files without read permission are left out and counted under ``skipped``.

    Args:
        src: Folder as downloaded or extracted.
        out: Destination (the raw folder).
        progress: Show a progress bar.
        exclude: A file that is not an image (the metadata CSV): neither copied nor counted here.
        left_out: When given, one ``path,reason,detail`` entry is appended to it per file left out.

    Returns:
        Counts: ``files`` copied, ``unlabelled`` files left out, ``skipped`` by reason (``link``,
        ``unreadable``).

    """
    from tqdm import tqdm

    root = find_dataset_root(src)
    jobs, entries = [], []
    for split, split_dir in layout(root).items():
        for entry in sorted(split_dir.iterdir()):
            if entry == exclude or not _visible(entry):
                continue
            if entry.is_symlink():
                entries.append(_left_out(entry, "link"))
            elif entry.is_dir():
                jobs += _class_files(entry, out / split / entry.name, exclude, entries)
            elif entry.is_file():
                entries.append(_left_out(entry, "unlabelled"))
    for source, dest in tqdm(jobs, desc="copy", unit="file", disable=None if progress else True):
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copyfile(source, dest)
        except PermissionError:
            entries.append(_left_out(source, "unreadable"))
        except OSError as exc:
            raise DataError(f"cannot copy {source} to {dest} ({exc.strerror or exc}); check the disk") from None
    if left_out is not None:
        left_out += entries
    reasons = Counter(e["reason"] for e in entries)
    unlabelled = reasons.pop("unlabelled", 0)
    return {
        "files": len(jobs) - reasons["unreadable"],
        "unlabelled": unlabelled,
        "skipped": dict(sorted(reasons.items())),
    }


# Why import_tree leaves a file out, as a skip entry says it.
LEFT_OUT = {
    "link": "a symbolic link, which may point anywhere (outside the data too); copy the file itself in",
    "unlabelled": "not inside a class folder, so it has no label; move it into one",
    "unreadable": "permission denied",
}


def _left_out(path: Path, reason: str) -> dict:
    return {"path": printable(str(path)), "reason": reason, "detail": LEFT_OUT[reason]}


def _class_files(folder: Path, dest: Path, exclude: Path | None, entries: list[dict]) -> list[tuple[Path, Path]]:
    """The (source, destination) pairs of one class folder's files; links are left out (``entries``)."""
    jobs = []
    for f in sorted(folder.rglob("*")):  # rglob does not descend into linked folders: they are counted here
        if f.is_symlink():
            entries.append(_left_out(f, "link"))
        elif f.is_file() and f != exclude:
            jobs.append((f, dest / f.relative_to(folder)))
    return jobs


def files_per_split(raw: Path) -> dict[str, int]:
    """Files under each split folder of a raw folder (what ``SOURCE.json`` records as ``per_split``)."""
    counts = Counter(p.relative_to(raw).parts[0] for p in raw.rglob("*") if p.is_file() and p.parent != raw)
    return dict(sorted(counts.items()))


def source_metadata(src: Path, name: str, key: str) -> Path | None:
    """The metadata CSV ``name`` inside a data source (None when it names none).

    Args:
        src: The source folder (or extracted archive).
        name: The CSV's path inside it (``data.metadata``, or an external set's ``metadata``).
        key: The params key that gives ``name``, for messages.

    Raises:
        DataError: If there is no such file in the source.
    """
    if not name:
        return None
    path = src.joinpath(*Path(name.replace("\\", "/")).parts)
    if path.is_dir():
        raise DataError(f"{key}={name} is a folder in the data source ({src}), not a CSV")
    if not path.is_file():
        raise DataError(
            f"{key}={name}: no such file in the data source ({src}); give the CSV's path inside it "
            "(e.g. HAM10000_metadata.csv), or '' for none"
        )
    return path


def import_source(src: Path, data: DataConfig, out: Path, progress: bool) -> dict:
    """Import a class-per-folder tree with its metadata CSV (copied to ``<out>/metadata.csv``)."""
    metadata = source_metadata(src, data.metadata, "data.metadata")  # checked before anything is copied
    counts = import_tree(src, out, progress, exclude=metadata)
    if metadata is not None:
        shutil.copyfile(metadata, out / RAW_METADATA)
    return counts


def kaggle_download(handle: str) -> Path:
    """Download (or reuse from kagglehub's cache) a Kaggle dataset.

    Public datasets need no credentials. A handle with ``/versions/N`` resolves from the cache without
    network access.

    Args:
        handle: ``owner/dataset`` or ``owner/dataset/versions/N``.

    Returns:
        The local folder holding the dataset files.

    Raises:
        DataError: When the download fails (offline, unknown dataset, no permission).

    """
    import kagglehub

    try:
        return Path(kagglehub.dataset_download(handle))
    except Exception as exc:  # kagglehub raises requests/HTTP/auth errors of many types
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(
            f"data.kaggle_dataset={handle}: download failed ({first}). Check the network and the handle, "
            "pin a cached version as owner/dataset/versions/N, or download it yourself and use "
            "data.source=zip with data.path=<archive>"
        ) from None


def _synthetic(data: DataConfig, out: Path, progress: bool) -> dict:
    cfg = data.synthetic
    counts = synthetic.generate(out / UNSPLIT, cfg.n_images, cfg.image_size, cfg.seed, progress=progress)
    return {"seed": cfg.seed, "files": sum(counts.values()), "unlabelled": 0}


def _folder(data: DataConfig, out: Path, progress: bool) -> dict:
    folder = Path(data.path)
    if not folder.is_dir():
        raise DataError(f"data.path={data.path} is not a folder; point it at a class-per-folder image tree")
    return {"path": data.path} | import_source(folder, data, out, progress)


def _zip(data: DataConfig, out: Path, progress: bool) -> dict:
    # Extract inside `out` so nothing is ever written outside the raw folder, then normalise.
    staging = out / ".extract"
    try:
        extract_archive(Path(data.path), staging, Limits(data.max_archive_mb, data.max_compression_ratio))
        return {"path": data.path} | import_source(staging, data, out, progress)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _kaggle(data: DataConfig, out: Path, progress: bool) -> dict:
    return {"dataset": data.kaggle_dataset} | import_source(kaggle_download(data.kaggle_dataset), data, out, progress)


def _dermamnist(data: DataConfig, out: Path, progress: bool) -> dict:
    counts = dermamnist.write_dermamnist(dermamnist.dermamnist_download(data.dermamnist_size), out, progress)
    return {"dermamnist_size": data.dermamnist_size, "files": sum(counts.values()), "unlabelled": 0}


def _dermamnist_c(data: DataConfig, out: Path, progress: bool) -> dict:
    local = Path(data.path)
    size = data.dermamnist_size
    npz = dermamnist.local_dermamnist_c(local, size) if local.is_file() else None
    counts = dermamnist.write_dermamnist(npz or dermamnist.dermamnist_download(size, corrected=True), out, progress)
    md5 = dermamnist.DERMAMNIST_C_FILES[size][1]
    return {"dermamnist_size": size, "md5": md5, "files": sum(counts.values()), "unlabelled": 0}


# How each source fills the raw folder: (data params, raw folder, progress) -> provenance and counts.
SOURCES: dict[Source, Callable[[DataConfig, Path, bool], dict]] = {
    Source.SYNTHETIC: _synthetic,
    Source.FOLDER: _folder,
    Source.ZIP: _zip,
    Source.KAGGLE: _kaggle,
    Source.DERMAMNIST: _dermamnist,
    Source.DERMAMNIST_C: _dermamnist_c,
}


def fetch(data: DataConfig, out: Path, progress: bool = True) -> dict:
    """Fill ``out`` with the images of ``data.source`` in the raw layout, replacing it only on success.

    Args:
        data: ``data:`` params (the source and its settings).
        out: The raw folder. The new one is filled in :func:`~skinlesion.core.layout.staging_dir` beside it
            (everything written stays there) and renamed to ``out`` last.
        progress: Show progress bars.

    Returns:
        Provenance and counts, also written to ``out/SOURCE.json``.

    Raises:
        DataError: When the source cannot be used; ``out`` is then as it was.

    """
    staging, previous = staging_dir(out), previous_dir(out)
    if previous.exists() and not out.exists():  # a fetch killed between its two renames: keep the old folder
        previous.rename(out)
    shutil.rmtree(previous, ignore_errors=True)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        info = {"source": str(data.source), "skipped": {}} | SOURCES[data.source](data, staging, progress)
        info["per_split"] = files_per_split(staging)
        if info["files"] == 0:
            raise DataError(f"data.source={data.source}: no files found inside class folders; nothing to train on")
        write_json(staging / SOURCE_FILE, info)  # last: a raw folder without it is unfinished
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if out.exists():
        out.rename(previous)
    staging.rename(out)
    shutil.rmtree(previous, ignore_errors=True)
    return info
