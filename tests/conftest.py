"""Shared fixtures: tiny synthetic images written into tmp_path, and the shared HAM10000 sample."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parents[1]
HAM = REPO.parent / "shared" / "data" / "ham10000-224"


def write_image(path: Path, seed: int, size: int = 16, mode: str = "RGB", fmt: str = "PNG") -> Path:
    """Write a small random image; different seeds give different bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(arr).convert(mode).save(path, format=fmt)
    return path


def make_class_tree(root: Path, classes: dict[str, int], start: int = 0) -> Path:
    """``root/<class>/img_<n>.png`` with the given number of images per class."""
    seed = start
    for name, count in classes.items():
        for _ in range(count):
            write_image(root / name / f"img_{seed:04d}.png", seed)
            seed += 1
    return root


@pytest.fixture
def ham_dir() -> Path:
    if not (HAM / "manifest.csv").exists():
        pytest.skip(f"shared HAM10000 sample not found at {HAM} (it lives beside the checkout)")
    return HAM


def corrupt_jpeg(data: bytes) -> bytes:
    """A JPEG with a valid header and a broken entropy-coded segment: identifiable, fails to decode."""
    return data[: len(data) // 2] + b"\xff\xc4\x00\x03\x00" + data[len(data) // 2 :]
