"""Fetch images from one of five sources into the canonical raw layout.

The raw layout is ``<out>/<split>/<class>/<file>``, where ``split`` is ``train``, ``val`` or ``test`` when
the source had such folders (the Kaggle layouts) and ``unsplit`` otherwise; the split stage respects
given splits and carves out the missing ones. ``<out>/SOURCE.json`` records where the data came from.
"""

from __future__ import annotations

import shutil
import stat
import tarfile
import zipfile
from collections import Counter
from pathlib import Path, PurePosixPath

import numpy as np

from skinlesion.core.errors import DataError
from skinlesion.core.io import atomic_path, write_json

SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}
UNSPLIT = "unsplit"

# Official MedMNIST v2+ DermaMNIST files (Zenodo record 10519652) and their published MD5 sums.
DERMAMNIST_URL = "https://zenodo.org/records/10519652/files/{name}?download=1"
DERMAMNIST_FILES = {
    28: ("dermamnist.npz", "0744692d530f8e62ec473284d019b0c7"),
    64: ("dermamnist_64.npz", "b70a2f5635c6199aeaa28c31d7202e1f"),
    128: ("dermamnist_128.npz", "2defd784463fa5243564e855ed717de1"),
    224: ("dermamnist_224.npz", "8974907d8e169bef5f5b96bc506ae45d"),
}
# DermaMNIST-C (Abhishek et al., Sci Data 2025): the same images re-split so that no lesion straddles
# train/val/test (8,215/573/1,227), at 28 and 224 px, in Zenodo record 11101337; MD5 sums as published
# in the authors' medmnist_corrected/info.py.
DERMAMNIST_C_URL = "https://zenodo.org/records/11101337/files/{name}?download=1"
DERMAMNIST_C_FILES = {
    28: ("dermamnist_corrected_28.npz", "96e2862980877d45d9cacb5c25de6950"),
    224: ("dermamnist_corrected_224.npz", "84920fb70c83b234c295b6f0d4ae2bc0"),
}
# DermaMNIST label index → HAM10000 diagnosis code (the order of MedMNIST's INFO["dermamnist"]["label"]).
DERMAMNIST_CLASSES = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")


def _visible(path: Path) -> bool:
    return not path.name.startswith(".") and path.name != "__MACOSX"


def find_dataset_root(root: Path) -> Path:
    """Descend through wrapper folders (a lone sub-folder and no files, e.g. Kaggle's ``my_data/``).

    Args:
        root: Top of the downloaded or extracted tree.

    Returns:
        The folder whose sub-folders are either split folders or class folders.

    """
    while True:
        entries = [p for p in root.iterdir() if _visible(p)]
        dirs = [p for p in entries if p.is_dir()]
        if len(dirs) == 1 and len(entries) == 1 and dirs[0].name.lower() not in SPLIT_ALIASES:
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


def import_tree(src: Path, out: Path, progress: bool = True) -> dict[str, int]:
    """Copy a class-per-folder tree (with or without split folders) into the canonical raw layout.

    Files inside class folders are copied byte for byte, whatever their type: the split stage decides
    which are images and counts the rest. Files directly in a split or root folder have no class and
    are counted as ``unlabelled``.

    Args:
        src: Folder as downloaded or extracted.
        out: Destination (the raw folder).
        progress: Show a progress bar.

    Returns:
        Counts: ``files`` copied and ``unlabelled`` files left out.

    """
    from tqdm import tqdm

    root = find_dataset_root(src)
    jobs, unlabelled = [], 0
    for split, split_dir in layout(root).items():
        for entry in sorted(split_dir.iterdir()):
            if entry.is_dir() and _visible(entry):
                for f in sorted(entry.rglob("*")):
                    if f.is_file() and not f.is_symlink():
                        jobs.append((f, out / split / entry.name / f.relative_to(entry)))
            elif entry.is_file() and _visible(entry):
                unlabelled += 1
    for source, dest in tqdm(jobs, desc="copy", unit="file", disable=not progress):
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, dest)
    return {"files": len(jobs), "unlabelled": unlabelled}


def _archive_members(archive: Path) -> list[tuple[str, str]]:
    """List ``(name, kind)`` of every entry; kind is ``file``, ``dir`` or ``link`` (also devices etc.)."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            out = []
            for info in zf.infolist():
                mode = info.external_attr >> 16
                kind = "link" if stat.S_ISLNK(mode) else ("dir" if info.is_dir() else "file")
                out.append((info.filename, kind))
            return out
    try:
        with tarfile.open(archive) as tf:
            return [(m.name, "file" if m.isfile() else "dir" if m.isdir() else "link") for m in tf.getmembers()]
    except tarfile.TarError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__  # tarfile lists every method tried
        raise DataError(f"data.path={archive}: not a readable .zip or .tar archive ({first.rstrip(':')})") from None


def check_archive(archive: Path) -> None:
    """Refuse an archive with an absolute path, a ``..`` component, or a link/device entry.

    Args:
        archive: ``.zip`` or ``.tar[.gz|.bz2|.xz]`` file.

    Raises:
        DataError: Naming the first unsafe entry; nothing has been extracted.

    """
    for name, kind in _archive_members(archive):
        posix = PurePosixPath(name.replace("\\", "/"))
        if posix.is_absolute() or (len(name) > 1 and name[1] == ":"):
            raise DataError(f"{archive}: unsafe entry {name!r} has an absolute path; refusing to extract")
        if ".." in posix.parts:
            raise DataError(f"{archive}: unsafe entry {name!r} points outside the archive; refusing to extract")
        if kind == "link":
            raise DataError(f"{archive}: entry {name!r} is a link or special file; refusing to extract")


def extract_archive(archive: Path, dest: Path) -> None:
    """Check ``archive`` with :func:`check_archive`, then extract it into ``dest``."""
    if not archive.is_file():
        raise DataError(f"data.path={archive} does not exist; set data.path to a .zip or .tar.* file")
    check_archive(archive)
    dest.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(dest)
    else:
        with tarfile.open(archive) as tf:
            tf.extractall(dest, filter="data")  # the stdlib's own guard, in addition to ours


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


def dermamnist_download(image_size: int, cache_dir: str | None = None, corrected: bool = False) -> Path:
    """Download the official DermaMNIST (or DermaMNIST-C) ``.npz`` with ``keras.utils.get_file``, MD5-checked.

    Args:
        image_size: 28, 64, 128 or 224 (DermaMNIST-C: 28 or 224).
        cache_dir: Keras cache folder (default ``~/.keras``); a file already there is not downloaded.
        corrected: DermaMNIST-C, the lesion-grouped re-split, instead of MedMNIST's image-level split.

    Returns:
        Path to the verified ``.npz``.

    Raises:
        DataError: When the download fails or the hash does not match.

    """
    import keras

    name, md5 = (DERMAMNIST_C_FILES if corrected else DERMAMNIST_FILES)[image_size]
    try:
        return Path(
            keras.utils.get_file(
                fname=name,
                origin=(DERMAMNIST_C_URL if corrected else DERMAMNIST_URL).format(name=name),
                file_hash=md5,
                hash_algorithm="md5",
                cache_subdir="datasets",
                cache_dir=cache_dir,
            )
        )
    except Exception as exc:  # get_file raises URLError, HTTPError or ValueError (hash mismatch)
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(
            f"data.dermamnist_size={image_size}: could not get {name} ({first}). Check the network, or "
            f"place the file (MD5 {md5}) in ~/.keras/datasets/"
            + (" or give its path as data.path" if corrected else "")
        ) from None


def local_dermamnist_c(path: Path, image_size: int) -> Path:
    """A DermaMNIST-C ``.npz`` downloaded by hand, checked against the published MD5.

    Raises:
        DataError: When the file's MD5 is not the published one for ``image_size``.
    """
    import hashlib

    name, md5 = DERMAMNIST_C_FILES[image_size]
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != md5:
        raise DataError(
            f"data.path={path}: MD5 {digest.hexdigest()} is not that of {name} ({md5}); download it from "
            "Zenodo (doi 10.5281/zenodo.11101337) or fix data.dermamnist_size"
        )
    return path


def write_dermamnist(npz_path: Path, out: Path, progress: bool = True) -> dict[str, int]:
    """Write a MedMNIST-format ``.npz`` as PNG files in the raw layout, keeping its official split.

    Args:
        npz_path: File with ``{train,val,test}_images`` (N, H, W, 3) uint8 and ``*_labels`` (N, 1).
        out: Destination raw folder.
        progress: Show a progress bar.

    Returns:
        Images written per split.

    Raises:
        DataError: If the file lacks the expected arrays or labels are out of range.

    """
    from PIL import Image
    from tqdm import tqdm

    counts = {}
    with np.load(npz_path) as data:
        for split in ("train", "val", "test"):
            try:
                images, labels = data[f"{split}_images"], data[f"{split}_labels"].reshape(-1)
            except KeyError as exc:
                raise DataError(f"{npz_path}: not a MedMNIST file (missing array {exc})") from None
            if labels.size and (labels.min() < 0 or labels.max() >= len(DERMAMNIST_CLASSES)):
                raise DataError(f"{npz_path}: {split}_labels outside 0..{len(DERMAMNIST_CLASSES) - 1}")
            for i, (image, label) in enumerate(
                tqdm(zip(images, labels, strict=True), total=len(labels), desc=split, disable=not progress)
            ):
                dest = out / split / DERMAMNIST_CLASSES[int(label)] / f"dermamnist_{split}_{i:05d}.png"
                dest.parent.mkdir(parents=True, exist_ok=True)
                with atomic_path(dest) as tmp:
                    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(tmp, format="PNG")
            counts[split] = int(len(labels))
    return counts


def fetch(
    source: str,
    out: Path,
    *,
    path: str = "",
    kaggle_dataset: str = "",
    dermamnist_size: int = 28,
    synthetic_seed: int = 0,
    synthetic_images: int = 900,
    synthetic_image_size: int = 64,
    progress: bool = True,
) -> dict:
    """Fill ``out`` (emptied first) with the images of ``source`` in the raw layout.

    Args:
        source: ``synthetic``, ``folder``, ``zip``, ``kaggle``, ``dermamnist`` or ``dermamnist_c``.
        out: The raw folder; everything written stays inside it.
        path: Folder (``folder``), archive (``zip``) or a local ``.npz`` (``dermamnist_c``; otherwise
            it is downloaded).
        kaggle_dataset: Kaggle handle (``kaggle``).
        dermamnist_size: DermaMNIST resolution (``dermamnist``).
        synthetic_seed: Generator seed (``synthetic``).
        synthetic_images: Number of images (``synthetic``).
        synthetic_image_size: Side length in pixels (``synthetic``).
        progress: Show progress bars.

    Returns:
        Provenance and counts, also written to ``out/SOURCE.json``.

    """
    from skinlesion.data import synthetic

    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    info: dict = {"source": source}
    if source == "synthetic":
        counts = synthetic.generate(
            out / UNSPLIT, synthetic_images, synthetic_image_size, synthetic_seed, progress=progress
        )
        info.update(seed=synthetic_seed, files=sum(counts.values()), unlabelled=0)
    elif source == "folder":
        folder = Path(path)
        if not folder.is_dir():
            raise DataError(f"data.path={path} is not a folder; point it at a class-per-folder image tree")
        info.update(path=path, **import_tree(folder, out, progress))
    elif source == "zip":
        # Extract inside `out` so nothing is ever written outside the raw folder, then normalise.
        staging = out / ".extract"
        try:
            extract_archive(Path(path), staging)
            info.update(path=path, **import_tree(staging, out, progress))
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    elif source == "kaggle":
        info.update(dataset=kaggle_dataset, **import_tree(kaggle_download(kaggle_dataset), out, progress))
    elif source == "dermamnist":
        npz = dermamnist_download(dermamnist_size)
        counts = write_dermamnist(npz, out, progress)
        info.update(dermamnist_size=dermamnist_size, files=sum(counts.values()), unlabelled=0)
    elif source == "dermamnist_c":
        local = Path(path)
        npz = local_dermamnist_c(local, dermamnist_size) if local.is_file() else None
        npz = npz or dermamnist_download(dermamnist_size, corrected=True)
        counts = write_dermamnist(npz, out, progress)
        md5 = DERMAMNIST_C_FILES[dermamnist_size][1]
        info.update(dermamnist_size=dermamnist_size, md5=md5, files=sum(counts.values()), unlabelled=0)
    else:  # config validation rejects this first
        raise DataError(f"data.source={source} is not a known source")
    per_split = Counter(p.relative_to(out).parts[0] for p in out.rglob("*") if p.is_file())
    info["per_split"] = dict(sorted(per_split.items()))
    if info["files"] == 0:
        raise DataError(f"data.source={source}: no files found inside class folders; nothing to train on")
    write_json(out / "SOURCE.json", info)
    return info
