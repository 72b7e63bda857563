"""Throughput of fetch + split on a generated tree of synthetic images, and their peak memory.

Usage: python benchmarks/bench_data.py [--images 20000] [--image-size 64] [--workdir /tmp/skinlesion-bench]
Prints images/s for fetch (generation) and split (parallel validation, hashing, dedup, split), and the
peak resident memory of the parent process and of the largest worker.
"""

import argparse
import os
import resource
import shutil
import time
from pathlib import Path

from skinlesion.fetch import fetch
from skinlesion.split import split_dataset


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--workdir", default="/tmp/skinlesion-bench")
    args = parser.parse_args()
    raw = Path(args.workdir) / "raw"
    shutil.rmtree(args.workdir, ignore_errors=True)

    start = time.perf_counter()
    fetch("synthetic", raw, synthetic_images=args.images, synthetic_image_size=args.image_size, progress=False)
    fetch_s = time.perf_counter() - start
    start = time.perf_counter()
    result = split_dataset(raw, val_fraction=0.15, test_fraction=0.15, seed=0, progress=False)
    split_s = time.perf_counter() - start
    kept = sum(len(r) for r in result.splits.values())
    self_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"cores: {os.cpu_count()}, images: {args.images} at {args.image_size}px, kept after split: {kept}")
    print(f"fetch (synthetic generation): {fetch_s:.1f} s = {args.images / fetch_s:.0f} images/s")
    print(f"split (validate + hash + dedup + split): {split_s:.1f} s = {args.images / split_s:.0f} images/s")
    print(f"fetch + split: {fetch_s + split_s:.1f} s = {args.images / (fetch_s + split_s):.0f} images/s")
    print(f"peak RSS: parent {self_mb:.0f} MB, largest worker {child_mb:.0f} MB")
    shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
