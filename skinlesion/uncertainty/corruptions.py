"""Corrupted copies of images at graded severities: a built-in shift test without outside data.

The kinds follow MedMNIST-C (Di Salvo et al. 2024) and ImageNet-C (Hendrycks & Dietterich 2019), those a
dermoscopy photograph meets from another camera, clinic or pipeline: sensor noise, defocus blur, JPEG
compression, a brighter exposure and a flatter contrast. Severity runs from 1 (mild) to 5 (strong); a blur
scales with the image side, so the same severity means the same defocus at every backbone's input size.

Pure numpy/scipy/Pillow on arrays in memory: no TensorFlow, no files.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from scipy import ndimage

KINDS = ("noise", "blur", "jpeg", "brightness", "contrast")
SEVERITIES = (1, 2, 3, 4, 5)
# Per severity 1-5: noise standard deviation (share of 255), blur sigma (pixels per 64 pixels of side),
# JPEG quality, brightness added (share of 255), contrast kept (1 = unchanged).
NOISE = (0.02, 0.04, 0.06, 0.08, 0.10)
BLUR = (0.5, 0.75, 1.0, 1.5, 2.0)
JPEG_QUALITY = (80, 60, 40, 20, 10)
BRIGHTNESS = (0.1, 0.2, 0.3, 0.4, 0.5)
CONTRAST = (0.8, 0.6, 0.5, 0.4, 0.3)


def corrupt(images: np.ndarray, kind: str, severity: int, seed: int) -> np.ndarray:
    """A corrupted copy of a batch of RGB images.

    Args:
        images: ``(n, h, w, 3)`` uint8 pixels.
        kind: One of :data:`KINDS`.
        severity: 1 to 5.
        seed: Seed of the noise (the other kinds are deterministic).

    Returns:
        ``(n, h, w, 3)`` uint8 pixels.

    Raises:
        ValueError: For an unknown kind or severity.
    """
    if kind not in KINDS or severity not in SEVERITIES:
        raise ValueError(f"unknown corruption {kind!r} at severity {severity!r}: kinds {KINDS}, severities 1-5")
    x = np.asarray(images, dtype=np.float64)
    level = severity - 1
    if kind == "noise":
        x = x + np.random.default_rng(seed).normal(0, NOISE[level] * 255, x.shape)
    elif kind == "blur":
        sigma = BLUR[level] * x.shape[1] / 64
        x = ndimage.gaussian_filter(x, sigma=(0, sigma, sigma, 0))
    elif kind == "jpeg":
        return np.stack([_jpeg(image, JPEG_QUALITY[level]) for image in np.asarray(images, dtype=np.uint8)])
    elif kind == "brightness":
        x = x + BRIGHTNESS[level] * 255
    else:
        mean = x.mean(axis=(1, 2, 3), keepdims=True)
        x = mean + (x - mean) * CONTRAST[level]
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    return np.asarray(Image.open(buffer).convert("RGB"))
