"""Throughput of fetch + split on a generated tree of synthetic images, and their peak memory.

The tree is generated first (the synthetic source, timed on its own), then fetched as a ``folder``
source (copied into the raw layout) and split (parallel decode, hashing, dedup, stratified split).

Usage: python benchmarks/bench_data.py [--images 20000] [--image-size 64] [--workdir /tmp/skinlesion-bench]
Prints images/s of each step and the peak resident memory of the parent and of the largest worker.
"""

import argparse
import os
import resource
import shutil
import time
from pathlib import Path

from skinlesion.data.fetch import fetch
from skinlesion.data.split import split_dataset


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--workdir", default="/tmp/skinlesion-bench")
    parser.add_argument("--folder", help="measure on this class-per-folder tree instead of a generated one")
    args = parser.parse_args()
    tree, raw = Path(args.workdir) / "tree", Path(args.workdir) / "raw"
    shutil.rmtree(args.workdir, ignore_errors=True)

    start = time.perf_counter()
    if args.folder:
        tree = Path(args.folder)
    else:
        fetch("synthetic", tree, synthetic_images=args.images, synthetic_image_size=args.image_size, progress=False)
    generate_s = time.perf_counter() - start
    start = time.perf_counter()
    args.images = fetch("folder", raw, path=str(tree), progress=False)["files"]
    fetch_s = time.perf_counter() - start
    start = time.perf_counter()
    result = split_dataset(raw, val_fraction=0.15, test_fraction=0.15, seed=0, progress=False)
    split_s = time.perf_counter() - start
    kept = sum(len(r) for r in result.splits.values())
    self_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    n = args.images
    print(
        f"cores: {os.cpu_count()}, images: {n} from {args.folder or f'a generated tree at {args.image_size}px'}, "
        f"kept after split: {kept}"
    )
    if not args.folder:
        print(f"generate tree (synthetic source): {generate_s:.1f} s = {n / generate_s:.0f} images/s")
    print(f"fetch (folder source, copy into data/raw): {fetch_s:.1f} s = {n / fetch_s:.0f} images/s")
    print(f"split (decode + hash + dedup + split): {split_s:.1f} s = {n / split_s:.0f} images/s")
    print(f"fetch + split: {fetch_s + split_s:.1f} s = {n / (fetch_s + split_s):.0f} images/s")
    print(f"peak RSS: parent {self_mb:.0f} MB, largest worker {child_mb:.0f} MB")
    shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
