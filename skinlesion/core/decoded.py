"""Decode once, read many times: an on-disk cache of decoded, resized images, shared by every run.

Decoding a JPEG, applying its EXIF orientation and resizing it costs far more than the training step
of a small backbone on a 2-core machine, and every backbone x seed run of one image size needs the
same pixels. So each (image list, size) is decoded once, with :func:`skinlesion.core.images.load_array`
(the one loader every stage uses, so the pixels are exactly those of a direct decode), into one
uint8 ``.npy`` file under ``.cache/decoded/<size>px/``. Training and evaluation then read batches from
it with ``os.preadv`` straight into a batch buffer: the file's pages live in the operating system's page
cache, not in the process, so resident memory does not grow with the data set.

The cache is a pure function of the image *contents* (the split files' ``sha256`` column), their order
and the size: its key hashes exactly those, so a changed split or size is a new key and is decoded
afresh, while an unchanged one is reused by every run and every stage. It lives outside DVC's outputs,
like the training checkpoints, and can be deleted at any time (``rm -rf .cache/decoded``). Several
copies of the project (queued experiments) can share one cache: see :func:`decoded_root`.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from skinlesion.core.images import load_array
from skinlesion.core.io import atomic_path
from skinlesion.core.layout import DECODED

# Environment variable naming another cache folder, for several copies of the project on one machine.
DECODED_DIR_VARIABLE = "SKINLESION_DECODED_DIR"
# Part of every key: bump it when the decoding (load_array) changes, so old caches are not reused.
DECODER_VERSION = 1
# Images decoded per chunk while building: bounds the building process's memory, whatever the set size.
CHUNK = 256


def cache_key(digests: Sequence[str], image_size: int) -> str:
    """The cache key of an ordered list of image contents at one size.

    Args:
        digests: SHA-256 of each image file, in the order the cache stores them.
        image_size: Side length of the decoded square images.

    Returns:
        A 20-hex-digit key.

    """
    blob = json.dumps([DECODER_VERSION, int(image_size), list(digests)]).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


class DecodedImages:
    """Read access to one decoded-image file: a ``(n, size, size, 3)`` uint8 array on disk.

    Batches are read with ``os.preadv`` into a fresh buffer, so nothing but the requested batch is
    resident. :meth:`load` reads the whole array into memory once, after which :meth:`take` indexes it.
    """

    def __init__(self, path: str | Path):
        """Open ``path`` (a ``.npy`` file written by :func:`decoded_images`)."""
        self.path = Path(path)
        with open(self.path, "rb") as f:
            major, _ = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(f)
            self.offset = f.tell()
        if fortran or dtype != np.uint8 or len(shape) != 4 or shape[3] != 3:
            raise ValueError(f"{self.path}: not a decoded-image cache file (shape {shape}, dtype {dtype})")
        self.shape: tuple[int, int, int, int] = shape
        self.dtype = np.dtype(np.uint8)
        self.item_bytes = int(np.prod(shape[1:]))
        self._array: np.ndarray | None = None

    def __len__(self) -> int:
        """Number of images."""
        return self.shape[0]

    @property
    def nbytes(self) -> int:
        """Size of the decoded pixels in bytes."""
        return len(self) * self.item_bytes

    @property
    def in_memory(self) -> bool:
        """Whether :meth:`load` has read the array into memory."""
        return self._array is not None

    def load(self) -> np.ndarray:
        """Read the whole array into memory (once; later calls return the same array)."""
        if self._array is None:
            self._array = self.take(np.arange(len(self)))
        return self._array

    def take(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """The images at ``indices``, in that order, as a new ``(len(indices), size, size, 3)`` array."""
        indices = np.asarray(indices, dtype=np.int64)
        if self._array is not None:
            return self._array[indices]
        out = np.empty((len(indices), *self.shape[1:]), dtype=np.uint8)
        flat = out.reshape(len(indices), self.item_bytes)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            for row, index in enumerate(indices):
                if not 0 <= index < len(self):
                    raise IndexError(f"image {index} out of range for {len(self)} images in {self.path}")
                # Straight into the batch buffer: no intermediate copy, no mapping that would count as resident.
                os.preadv(fd, [memoryview(flat[row])], self.offset + int(index) * self.item_bytes)
        finally:
            os.close(fd)
        return out


@contextmanager
def _locked(path: Path):
    """Hold an exclusive lock on ``path`` (concurrent runs of one size wait for one builder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build(
    paths: Sequence[str | Path],
    image_size: int,
    target: Path,
    workers: int,
    progress: Callable[[int], None],
) -> None:
    """Decode ``paths`` into ``target`` chunk by chunk, through a temporary file replaced atomically."""
    shape = (len(paths), image_size, image_size, 3)
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False, "shape": shape}
    # Plain writes, not a writable memory map: written pages stay in the page cache, never in the
    # process, so building a set larger than memory works and leaves the process small.
    with atomic_path(target) as tmp, open(tmp, "wb") as f:
        np.lib.format.write_array_header_2_0(f, header)
        with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
            for start in range(0, len(paths), CHUNK):
                chunk = paths[start : start + CHUNK]
                f.write(np.stack(list(pool.map(lambda p: load_array(p, image_size), chunk))).tobytes())
                progress(len(chunk))


def decoded_root() -> Path:
    """The cache folder: ``$SKINLESION_DECODED_DIR`` when set, else ``.cache/decoded`` in the project.

    Queued experiments (``dvc queue start``) run in temporary copies of the project, each with its own
    ``.cache/``; pointing the variable at one folder (``~/.cache/skinlesion/decoded``) lets them share
    one decode per size. Sharing is safe: a file's name is the key of its contents and size, it is
    built under a file lock and appears atomically, and nothing in it depends on the project.
    """
    return Path(os.environ.get(DECODED_DIR_VARIABLE) or DECODED).expanduser()


def decoded_images(
    paths: Sequence[str | Path],
    digests: Sequence[str],
    image_size: int,
    *,
    root: Path | None = None,
    workers: int = 0,
    label: str = "images",
    log: Callable[[str], None] = print,
) -> DecodedImages:
    """Return the decoded images of ``paths`` at ``image_size``, decoding them only if no cache has them.

    Args:
        paths: Image files, in the order batches index them.
        digests: Their SHA-256 (the split files' ``sha256`` column): the cache key, with the size.
        image_size: Side length of the square images.
        root: Cache folder; ``None`` for :func:`decoded_root`.
        workers: Decoding threads; 0 means one per core.
        label: What the images are (``train``, ``test``...), for the progress line.
        log: Progress printer.

    Returns:
        A :class:`DecodedImages` over the cached file.

    Raises:
        skinlesion.core.images.ImageLoadError: For a file that cannot be decoded (nothing is cached then).

    """
    if len(paths) != len(digests):
        raise ValueError(f"{len(paths)} paths but {len(digests)} digests")
    key = cache_key(digests, image_size)
    target = (root or decoded_root()) / f"{image_size}px" / f"{key}.npy"
    with _locked(target.with_suffix(".lock")):
        if not target.exists():
            _build_with_progress(paths, image_size, target, workers, label, log)
    return DecodedImages(target)


def _build_with_progress(
    paths: Sequence[str | Path], image_size: int, target: Path, workers: int, label: str, log: Callable[[str], None]
) -> None:
    """Build one cache file behind a tqdm bar (images/s), then log one summary line."""
    from tqdm import tqdm

    start = time.perf_counter()
    # disable=None: a bar on a terminal, none in a log file (its redraws would fill the log); the line below stays.
    bar = tqdm(total=len(paths), desc=f"decode {label} {image_size}px", unit="img", mininterval=2.0, disable=None)
    with bar:
        _build(paths, image_size, target, workers, bar.update)
    seconds = time.perf_counter() - start
    log(
        f"  decoded {len(paths)} {label} images at {image_size}px once into {target} "
        f"({len(paths) / max(seconds, 1e-9):.0f} images/s)"
    )
