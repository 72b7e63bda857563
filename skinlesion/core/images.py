"""The one image loader: decode any supported file to 8-bit RGB, and check files without keeping pixels.

Used by split (validation), train and evaluate (batches), augment-preview and predict, so every stage
sees exactly the same pixels for the same file.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Files whose names mark them as operating-system clutter rather than data.
IGNORED_NAMES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})


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


def load_rgb(path: str | Path) -> Image.Image:
    """Decode a file fully to RGB.

    Args:
        path: Image file.

    Returns:
        The RGB image.

    Raises:
        ImageLoadError: With reason ``empty``, ``not_an_image``, ``truncated`` or ``corrupt``.

    """
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise ImageLoadError(path, "empty", "zero-byte file")
        with Image.open(path) as image:
            image.load()
            return to_rgb(image)
    except ImageLoadError:
        raise
    except UnidentifiedImageError:
        raise ImageLoadError(path, "not_an_image", "not a recognised image format") from None
    except FileNotFoundError:
        raise ImageLoadError(path, "missing", "no such file") from None
    except IsADirectoryError:
        raise ImageLoadError(path, "not_an_image", "is a directory") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        reason = "truncated" if "truncated" in str(exc).lower() else "corrupt"
        raise ImageLoadError(path, reason, str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None


def load_array(path: str | Path, image_size: int) -> np.ndarray:
    """Load one image as a ``(image_size, image_size, 3)`` uint8 array (bilinear, antialiased)."""
    image = load_rgb(path)
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
    # 64-bit perceptual (DCT) and difference hashes (hex) of the decoded image: find re-encoded or
    # resized copies that identical-bytes checks miss.
    phash: str = ""
    dhash: str = ""

    @property
    def ok(self) -> bool:
        """Whether the file decoded as an image."""
        return not self.reason


def check_file(path: str) -> FileCheck:
    """Hash a file and decode it fully, keeping no pixels (the unit of parallel validation).

    Args:
        path: The file.

    Returns:
        A :class:`FileCheck` with the content and perceptual hashes; ``reason`` is empty for a usable image.

    """
    import imagehash

    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    if Path(path).name in IGNORED_NAMES:
        return FileCheck(path, digest, reason="not_an_image", detail="operating-system metadata file")
    try:
        image = load_rgb(path)
    except ImageLoadError as exc:
        return FileCheck(path, digest, reason=exc.reason, detail=exc.detail)
    return FileCheck(
        path,
        digest,
        width=image.width,
        height=image.height,
        phash=str(imagehash.phash(image)),
        dhash=str(imagehash.dhash(image)),
    )
