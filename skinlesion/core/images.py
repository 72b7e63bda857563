"""The one image loader: decode any supported file to 8-bit RGB, and check files without keeping pixels.

Used by split (validation), train and evaluate (batches), augment-preview and predict, so every stage
sees exactly the same pixels for the same file.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Files whose names mark them as operating-system clutter rather than data.
IGNORED_NAMES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})
# An image over Image.MAX_IMAGE_PIXELS is refused as too_large (load_rgb), so Pillow's warning about it
# says nothing more and would only clutter the stages' logs.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


def set_max_pixels(limit: int) -> None:
    """Refuse images over ``limit`` pixels in this process, from their header, before decoding them.

    The limit is Pillow's ``Image.MAX_IMAGE_PIXELS``, one setting per process: split sets it from
    ``split.max_pixels`` in each validation process (and, for its duration, in itself: :func:`pixel_limit`);
    other processes keep Pillow's own.
    """
    Image.MAX_IMAGE_PIXELS = limit


@contextlib.contextmanager
def pixel_limit(limit: int) -> Iterator[None]:
    """:func:`set_max_pixels` for the duration of a ``with`` block, then the previous limit again."""
    previous = Image.MAX_IMAGE_PIXELS
    set_max_pixels(limit)
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = previous


class ImageLoadError(Exception):
    """A file that cannot be used as an image; ``reason`` is a short machine-readable category."""

    def __init__(self, path: str | Path, reason: str, detail: str):
        super().__init__(f"{path}: {reason} ({detail})")
        self.path = str(path)
        self.reason = reason
        self.detail = detail


def to_rgb(image: Image.Image) -> Image.Image:
    """Normalise any PIL image to 8-bit RGB, applying the EXIF orientation.

    Handles grayscale, palette, CMYK, RGBA/LA (composited on white, as viewers show them) and 16-bit or
    32-bit integer modes (rescaled from their full range to 0–255).

    Args:
        image: A decoded PIL image.

    Returns:
        An RGB image.

    """
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        image = Image.fromarray(arr, mode="L")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB") if image.mode != "RGB" else image


def load_rgb(path: str | Path, min_side: int = 1) -> Image.Image:
    """Decode a file fully to RGB.

    Args:
        path: Image file.
        min_side: The shortest side accepted, in pixels (``split.min_side``; 1: any image).

    Returns:
        The RGB image.

    Raises:
        ImageLoadError: With reason ``empty``, ``not_an_image``, ``too_large``, ``too_small``, ``unreadable``,
            ``truncated`` or ``corrupt``.

    """
    path = Path(path)
    with _reasons(path):
        if path.stat().st_size == 0:
            raise ImageLoadError(path, "empty", "zero-byte file")
        return _decode(path, path, min_side)


def decode_rgb(data: bytes, min_side: int = 1, name: str = "upload") -> Image.Image:
    """:func:`load_rgb` of bytes held in memory (an upload): the same checks, the same pixels, no file.

    Args:
        data: The encoded image.
        min_side: The shortest side accepted, in pixels.
        name: What error messages call it (never a client's file name: those can name a patient).

    Raises:
        ImageLoadError: As :func:`load_rgb`.
    """
    with _reasons(name):
        if not data:
            raise ImageLoadError(name, "empty", "zero bytes")
        return _decode(io.BytesIO(data), name, min_side)


def _decode(source: Path | io.BytesIO, label: str | Path, min_side: int) -> Image.Image:
    with Image.open(source) as image:
        _check_pixels(label, image.size)  # from the header: nothing is decoded yet
        _check_side(label, image.size, min_side)
        image.load()
        return to_rgb(image)


@contextlib.contextmanager
def _reasons(path: str | Path) -> Iterator[None]:
    """Turn what decoding raises into an :class:`ImageLoadError` with its reason."""
    try:
        yield
    except ImageLoadError:
        raise
    except Image.DecompressionBombError:  # Pillow's own check, at twice the limit, in Image.open
        limit = Image.MAX_IMAGE_PIXELS
        raise ImageLoadError(path, "too_large", f"over {2 * limit:,} pixels, twice the limit of {limit:,}") from None
    except PermissionError:
        raise ImageLoadError(path, "unreadable", "permission denied") from None
    except UnidentifiedImageError:
        raise ImageLoadError(path, "not_an_image", "not a recognised image format") from None
    except FileNotFoundError:
        raise ImageLoadError(path, "missing", "no such file") from None
    except IsADirectoryError:
        raise ImageLoadError(path, "not_an_image", "is a directory") from None
    except (OSError, SyntaxError, ValueError) as exc:
        reason = "truncated" if "truncated" in str(exc).lower() else "corrupt"
        raise ImageLoadError(path, reason, str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None


def _check_pixels(path: str | Path, size: tuple[int, int]) -> None:
    limit = Image.MAX_IMAGE_PIXELS
    if limit and size[0] * size[1] > limit:
        raise ImageLoadError(
            path, "too_large", f"{size[0]} x {size[1]} = {size[0] * size[1]:,} pixels, over the limit of {limit:,}"
        )


def _check_side(path: str | Path, size: tuple[int, int], min_side: int) -> None:
    if min(size) < min_side:
        raise ImageLoadError(path, "too_small", f"{size[0]} x {size[1]} pixels, a side under {min_side} px")


def check_side(path: str | Path, min_side: int) -> None:
    """Refuse an image with a side under ``min_side`` pixels, from its header (as :func:`load_rgb` does).

    A file that cannot be opened as an image passes: the loader reports it, with the reason.

    Raises:
        ImageLoadError: With reason ``too_small``.
    """
    try:
        with Image.open(path) as image:
            size = image.size
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return
    _check_side(Path(path), size, min_side)


def load_array(path: str | Path, image_size: int) -> np.ndarray:
    """Load one image as a ``(image_size, image_size, 3)`` uint8 array (bilinear, antialiased)."""
    return fit(load_rgb(path), image_size)


def fit(image: Image.Image, image_size: int) -> np.ndarray:
    """An RGB image as the ``(image_size, image_size, 3)`` uint8 array every loader gives (bilinear, antialiased)."""
    if image.size != (image_size, image_size):
        image = image.resize((image_size, image_size), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def load_batch(paths: list[str] | list[Path], image_size: int, workers: int = 0) -> np.ndarray:
    """Decode and resize many images in parallel threads (PIL releases the GIL while decoding).

    Args:
        paths: Image files.
        image_size: Output side length in pixels.
        workers: Threads; 0 means one per core.

    Returns:
        A ``(len(paths), image_size, image_size, 3)`` uint8 array, in the order of ``paths``.

    Raises:
        ImageLoadError: For the first file that cannot be decoded.

    """
    out = np.empty((len(paths), image_size, image_size, 3), dtype=np.uint8)
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        for i, arr in enumerate(pool.map(lambda p: load_array(p, image_size), paths)):
            out[i] = arr
    return out


@dataclass(frozen=True)
class FileCheck:
    """The outcome of checking one file: its content hash and either its size or why it was skipped."""

    path: str
    sha256: str
    width: int = 0
    height: int = 0
    reason: str = ""
    detail: str = ""
    # 64-bit perceptual (DCT) and difference hashes (hex) of the decoded image, and the perceptual hash
    # of its centre (:func:`centre_square`): find re-encoded or resized copies that identical-bytes
    # checks miss.
    phash: str = ""
    dhash: str = ""
    chash: str = ""

    @property
    def ok(self) -> bool:
        """Whether the file decoded as an image."""
        return not self.reason


def check_file(path: str, min_side: int = 1) -> FileCheck:
    """Hash a file and decode it fully, keeping no pixels (the unit of parallel validation).

    Args:
        path: The file.
        min_side: The shortest side accepted, in pixels (``split.min_side``).

    Returns:
        A :class:`FileCheck` with the content and perceptual hashes; ``reason`` is empty for a usable image.

    """
    import imagehash

    try:
        with open(path, "rb") as handle:  # streamed in blocks: memory does not grow with the file
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError as exc:
        return FileCheck(path, "", reason="unreadable", detail=exc.strerror or type(exc).__name__)
    if Path(path).name in IGNORED_NAMES:
        return FileCheck(path, digest, reason="not_an_image", detail="operating-system metadata file")
    try:
        image = load_rgb(path, min_side)
    except ImageLoadError as exc:
        return FileCheck(path, digest, reason=exc.reason, detail=exc.detail)
    return FileCheck(
        path,
        digest,
        width=image.width,
        height=image.height,
        phash=str(imagehash.phash(image)),
        dhash=str(imagehash.dhash(image)),
        chash=str(imagehash.phash(centre_square(image))),
    )


def centre_square(image: Image.Image) -> Image.Image:
    """The central square of an image, half its shorter side: where a dermoscopic lesion is.

    Its perceptual hash tells distinct lesions apart that whole-image hashes see as one because their
    layout is alike (a dark circular rim, a central blob).
    """
    side = max(1, min(image.size) // 2)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    return image.crop((left, top, left + side, top + side))
