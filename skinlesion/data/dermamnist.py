"""DermaMNIST and DermaMNIST-C (corrected, Abhishek et al.): the official ``.npz`` files, MD5-checked, as PNG files.

The ``medmnist`` package needs PyTorch, so the files are fetched directly (``keras.utils.get_file``).
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np

from skinlesion.core.errors import DataError
from skinlesion.core.io import atomic_path
from skinlesion.core.modes import Split

# Official MedMNIST v2+ DermaMNIST files (Zenodo record 10519652) and their published MD5 sums.
DERMAMNIST_URL = "https://zenodo.org/records/10519652/files/{name}?download=1"
DERMAMNIST_FILES = {
    28: ("dermamnist.npz", "0744692d530f8e62ec473284d019b0c7"),
    64: ("dermamnist_64.npz", "b70a2f5635c6199aeaa28c31d7202e1f"),
    128: ("dermamnist_128.npz", "2defd784463fa5243564e855ed717de1"),
    224: ("dermamnist_224.npz", "8974907d8e169bef5f5b96bc506ae45d"),
}
# DermaMNIST-C (corrected, Abhishek et al., Sci Data 2025): the same images re-split so that no lesion straddles
# train/val/test (8,215/573/1,227), at 28 and 224 px, in Zenodo record 11101337; MD5 sums as published
# in the authors' medmnist_corrected/info.py.
DERMAMNIST_C_URL = "https://zenodo.org/records/11101337/files/{name}?download=1"
DERMAMNIST_C_FILES = {
    28: ("dermamnist_corrected_28.npz", "96e2862980877d45d9cacb5c25de6950"),
    224: ("dermamnist_corrected_224.npz", "84920fb70c83b234c295b6f0d4ae2bc0"),
}
# DermaMNIST label index → HAM10000 diagnosis code (the order of MedMNIST's INFO["dermamnist"]["label"]).
DERMAMNIST_CLASSES = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")


def dermamnist_download(image_size: int, cache_dir: str | None = None, corrected: bool = False) -> Path:
    """Download the DermaMNIST (or DermaMNIST-C, corrected, Abhishek et al.) ``.npz`` with Keras, MD5-checked.

    Args:
        image_size: 28, 64, 128 or 224 (DermaMNIST-C (corrected, Abhishek et al.): 28 or 224).
        cache_dir: Keras cache folder (default ``~/.keras``); a file already there is not downloaded.
        corrected: DermaMNIST-C (corrected, Abhishek et al.), the lesion-grouped re-split, instead of
            MedMNIST's image-level split.

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
    """A DermaMNIST-C (corrected, Abhishek et al.) ``.npz`` downloaded by hand, checked against the published MD5.

    Raises:
        DataError: When the file's MD5 is not the published one for ``image_size``.
    """
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
        DataError: If the file is not an ``.npz`` of such arrays (a pickle, object arrays, other shapes) or
            labels are out of range.

    """
    from PIL import Image
    from tqdm import tqdm

    counts = {}
    try:
        data = np.load(npz_path)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:  # numpy takes a non-npz file for a pickle
        raise DataError(f"{npz_path}: not a MedMNIST .npz file ({_first_line(exc)}); {MEDMNIST_FIX}") from None
    if not isinstance(data, np.lib.npyio.NpzFile):  # a single .npy array
        raise DataError(f"{npz_path}: not a MedMNIST .npz file (one array, not an archive of them); {MEDMNIST_FIX}")
    with data:
        for split in Split:
            images, labels = _split_arrays(data, split, npz_path)
            for i, (image, label) in enumerate(
                tqdm(
                    zip(images, labels, strict=True), total=len(labels), desc=split, disable=None if progress else True
                )
            ):
                dest = out / split / DERMAMNIST_CLASSES[int(label)] / f"dermamnist_{split}_{i:05d}.png"
                dest.parent.mkdir(parents=True, exist_ok=True)
                with atomic_path(dest) as tmp:
                    Image.fromarray(image).save(tmp, format="PNG")
            counts[split] = int(len(labels))
    return counts


MEDMNIST_FIX = "give a MedMNIST .npz: uint8 {train,val,test}_images (N, H, W, 3) and integer *_labels (N, 1)"


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _split_arrays(data: np.lib.npyio.NpzFile, split: str, npz_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One split's images and labels, checked: what a MedMNIST file holds, read without unpickling anything."""
    try:
        images, labels = data[f"{split}_images"], data[f"{split}_labels"].reshape(-1)
    except KeyError as exc:
        raise DataError(f"{npz_path}: not a MedMNIST file (missing array {exc}); {MEDMNIST_FIX}") from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:  # object arrays, a corrupt member
        raise DataError(f"{npz_path}: not a MedMNIST .npz file ({_first_line(exc)}); {MEDMNIST_FIX}") from None
    shape_ok = images.ndim == 3 or (images.ndim == 4 and images.shape[3] == 3)
    if images.dtype != np.uint8 or not shape_ok or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(
            f"{npz_path}: not a MedMNIST file ({split}_images {images.dtype} {images.shape}, {split}_labels "
            f"{labels.dtype}); {MEDMNIST_FIX}"
        )
    if len(images) != len(labels):
        raise DataError(f"{npz_path}: not a MedMNIST file ({len(images)} {split}_images, {len(labels)} labels)")
    if labels.size and (labels.min() < 0 or labels.max() >= len(DERMAMNIST_CLASSES)):
        raise DataError(f"{npz_path}: {split}_labels outside 0..{len(DERMAMNIST_CLASSES) - 1}")
    return images, labels
