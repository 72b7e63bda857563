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
ISIC = REPO.parent / "shared" / "data" / "isic2018-600x450"


# pytest-xdist hands out whole modules (`--dist loadfile`) in collection order. The longest go first,
# longest first, so that no long module starts last while the other worker has nothing left to do: the
# end-to-end module (one `dvc repro` that its tests share), then the modules that train or start
# TensorFlow processes. A scheduling hint only: a module missing from this list still runs, after these.
FIRST_MODULES = (
    "test_pipeline.py",
    "test_notebook.py",
    "test_train.py",
    "test_stages.py",
    "test_model.py",
    "test_export.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the longest modules first (a stable sort: every other test keeps its order)."""
    rank = {name: i for i, name in enumerate(FIRST_MODULES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(FIRST_MODULES)))


@pytest.fixture(autouse=True)
def _pinned_environment_restored():
    """Put back what a stage's ``cli`` wrapper sets in ``os.environ`` when a test calls a stage in-process.

    The wrapper pins TensorFlow's numerics for the process it runs in; a test that calls a stage's ``main``
    must not pin them for the tests after it (the suite runs with ``TF_ENABLE_ONEDNN_OPTS`` 0 and 1).
    """
    from skinlesion.core.errors import PINNED_ENVIRONMENT

    keys = [*PINNED_ENVIRONMENT, "TF_CPP_MIN_LOG_LEVEL"]
    before = {key: os.environ.get(key) for key in keys}
    yield
    for key, value in before.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def copy_sources(dest: Path, generated: tuple[Path, ...]) -> None:
    """Copy the checkout's sources (tracked and new files, as `git ls-files` lists them) into ``dest``.

    Args:
        dest: The folder to copy into.
        generated: Output files and folders to leave out (``layout.GENERATED``, or more).
    """
    import shutil
    import subprocess

    from skinlesion.core import layout

    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout.splitlines()
    for rel in listed:
        if layout.is_generated(rel, generated) or not (REPO / rel).is_file():
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, dest / rel)


def default_config():
    """The repository's params.yaml as a validated Config: the only home of the defaults.

    Tests derive the settings they need with ``dataclasses.replace(default_config().train, ...)``.
    """
    from skinlesion.core.config import load_config

    return load_config(REPO / "params.yaml")


# Every augmentation switched on (the old ``AugmentConfig()`` defaults): what the tests that build a
# classifier with its augmentation block rely on, whatever params.yaml holds.
AUGMENT_ON = dict(
    horizontal_flip=True, vertical_flip=True, rotation=0.5, zoom=0.1, translation=0.05, brightness=0.1, contrast=0.1
)


def augment_on():
    """``augment:`` params with every augmentation on (:data:`AUGMENT_ON`)."""
    from dataclasses import replace

    return replace(default_config().augment, **AUGMENT_ON)


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
    """The shared HAM10000 sample, for the tests that need real dermoscopy: required under CI."""
    if not (HAM / "manifest.csv").exists():
        reason = f"shared HAM10000 sample not found at {HAM} (it lives beside the checkout, as ../shared)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must provide it")
        pytest.skip(reason)
    return HAM


@pytest.fixture
def isic_dir() -> Path:
    """The shared full-size (600x450) ISIC 2018 sample: required under CI, else the test skips."""
    if not any(ISIC.glob("*/*.jpg")):
        reason = f"shared ISIC 2018 sample not found at {ISIC} (it lives beside the checkout, as ../shared)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must provide it")
        pytest.skip(reason)
    return ISIC


@pytest.fixture(scope="session")
def lesion_jpegs(tmp_path_factory) -> Path:
    """Synthetic dermoscopy-like lesions saved as 224 px JPEGs in class folders (6 classes x 6 images)."""
    from skinlesion.data.synthetic import generate

    png, out = tmp_path_factory.mktemp("syn_png"), tmp_path_factory.mktemp("syn_jpeg")
    generate(png, 36, 224, seed=3, workers=1, progress=False)
    for path in sorted(png.rglob("*.png")):
        target = out / path.parent.name / f"{path.stem}.jpg"
        target.parent.mkdir(exist_ok=True)
        Image.open(path).convert("RGB").save(target, quality=90)
    return out


def corrupt_jpeg(data: bytes) -> bytes:
    """A JPEG with a valid header and a broken entropy-coded segment: identifiable, fails to decode."""
    return data[: len(data) // 2] + b"\xff\xc4\x00\x03\x00" + data[len(data) // 2 :]
