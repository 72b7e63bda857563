"""The near-duplicate thresholds of ``skinlesion/data/duplicates.py``, measured: copies against distinct images.

Usage: python benchmarks/bench_duplicates.py [--every 1] [--synthetic-seeds 0 1 2 3 4 5]

On the shared real images (../shared/data/ham10000-224 and isic2018-600x450, one image per lesion):
the hash distances between every image and two copies of it (a JPEG re-encode at quality 70 and a
half-size copy), and between distinct images; then, on 900 generated demo lesions per generator
seed, the pairs of distinct lesions that the two whole-image hashes would merge, and how far apart
their centres are. Prints the figures BENCHMARKS.md quotes under "Near-duplicates".
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = (REPO.parent / "shared" / "data" / "ham10000-224", REPO.parent / "shared" / "data" / "isic2018-600x450")


def hashes(image) -> tuple[int, int, int]:
    """pHash, dHash and the pHash of the centre, as integers."""
    import imagehash

    from skinlesion.core.images import centre_square

    def value(h) -> int:
        return int(str(h), 16)

    return value(imagehash.phash(image)), value(imagehash.dhash(image)), value(imagehash.phash(centre_square(image)))


def copies(image):
    """A JPEG re-encode (quality 70) and a half-size copy."""
    from PIL import Image

    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=70)
    half = image.resize((image.width // 2, image.height // 2), Image.Resampling.BILINEAR)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"), half


def pairwise(values: np.ndarray) -> np.ndarray:
    """Bit distances of every pair i < j of 64-bit hashes."""
    rows, cols = np.triu_indices(len(values), k=1)
    return np.bitwise_count(values[rows] ^ values[cols])


def distribution(distances: np.ndarray) -> str:
    """``value: count`` for each distance that occurs."""
    values, counts = np.unique(distances, return_counts=True)
    return ", ".join(f"{v}: {c}" for v, c in zip(values, counts, strict=True))


def real_images(every: int) -> None:
    """Copies vs distinct images on the shared real samples."""
    from skinlesion.core.images import load_rgb
    from skinlesion.data.duplicates import CHASH_BITS, DHASH_BITS, PHASH_BITS

    paths = [p for folder in SHARED for p in sorted(folder.glob("*/*.jpg"))]
    if not paths:
        raise SystemExit(f"no images under {SHARED[0]} or {SHARED[1]} (the shared samples beside the checkout)")
    images = [load_rgb(p) for p in paths]
    original = np.array([hashes(i) for i in images], dtype=np.uint64)
    counts = ", ".join(f"{len(list(folder.glob('*/*.jpg')))} in {folder.name}" for folder in SHARED)
    print(f"real images: {len(paths)} ({counts})")
    names = ("pHash", "dHash", "centre pHash")
    gaps = []
    for k, image in list(enumerate(images))[::every]:
        for copy in copies(image):
            gaps.append(np.bitwise_count(original[k] ^ np.array(hashes(copy), dtype=np.uint64)))
    gaps = np.array(gaps)
    print(f"copies (re-encode q70 and half size of every {every}. image): {len(gaps)}")
    for i, name in enumerate(names):
        print(
            f"  {name:12s} copy to original: max {gaps[:, i].max()}, p99 {np.percentile(gaps[:, i], 99):.0f}; "
            f"distances {distribution(gaps[:, i])}"
        )
    caught = (gaps <= [PHASH_BITS, DHASH_BITS, CHASH_BITS]).all(axis=1).sum()
    print(f"  within all three thresholds ({PHASH_BITS}/{DHASH_BITS}/{CHASH_BITS} bits): {caught} of {len(gaps)}")
    distinct = [pairwise(original[:, i]) for i in range(3)]
    print(f"distinct pairs: {len(distinct[0])}")
    print(f"  closest pHash {distinct[0].min()}, pairs within {PHASH_BITS} bits: {(distinct[0] <= PHASH_BITS).sum()}")
    near = distinct[0] <= 10
    print(f"  pairs within 10 pHash bits: {near.sum()}, their centre pHash distance >= {distinct[2][near].min()}")
    merged = (distinct[0] <= PHASH_BITS) & (distinct[1] <= DHASH_BITS) & (distinct[2] <= CHASH_BITS)
    print(f"  pairs merged by the three thresholds: {merged.sum()}")


def synthetic(seeds: list[int], n_images: int = 900, size: int = 64) -> None:
    """Pairs of distinct generated lesions the whole-image hashes merge, per generator seed."""
    from skinlesion.core.images import load_rgb
    from skinlesion.data.duplicates import CHASH_BITS, DHASH_BITS, PHASH_BITS
    from skinlesion.data.synthetic import generate

    print(f"generated lesions: {n_images} at {size} px per seed")
    centres = []
    for seed in seeds:
        with tempfile.TemporaryDirectory() as folder:
            generate(folder, n_images, size, seed=seed, progress=False)
            paths = sorted(Path(folder).rglob("*.png"))
            values = np.array([hashes(load_rgb(p)) for p in paths], dtype=np.uint64)
            labels = np.array([p.parent.name for p in paths])
        distances = [pairwise(values[:, i]) for i in range(3)]
        rows, cols = np.triu_indices(len(paths), k=1)
        phash_only = distances[0] <= PHASH_BITS
        two = phash_only & (distances[1] <= DHASH_BITS)
        three = two & (distances[2] <= CHASH_BITS)
        across = (labels[rows] != labels[cols]) & two
        centres += distances[2][two].tolist()
        print(
            f"  seed {seed}: pairs within pHash alone {phash_only.sum()}, pHash + dHash {two.sum()} "
            f"({across.sum()} across classes), all three {three.sum()}"
        )
    if centres:
        print(f"  centre pHash distance of the pairs the two whole-image hashes merge: {min(centres)}-{max(centres)}")


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=int, default=1, help="copies of every k-th real image")
    parser.add_argument("--synthetic-seeds", type=int, nargs="*", default=[0, 1, 2, 3, 4, 5])
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    real_images(args.every)
    synthetic(args.synthetic_seeds)


if __name__ == "__main__":
    main()
