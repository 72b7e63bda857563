"""Throughput of fetch + split on a generated class-per-folder tree of synthetic images, and their peak memory.

The tree (``<class>/<image>.png``, the synthetic generator's classes) is generated first and timed on
its own. Fetch (``folder`` source: copy into the raw layout) and split (parallel decode, hashing,
dedup, stratified split) then run in a fresh child process, so the memory figures are those of fetch
and split alone, not of the generator's processes.

Usage: python benchmarks/bench_data.py [--images 20000] [--image-size 64] [--workdir /tmp/skinlesion-bench]
       python benchmarks/bench_data.py --folder ../shared/data/ham10000-224
Prints the machine, the number of images and classes split, images/s of each step, and the peak
resident memory of the measuring process and of its largest decoding worker.
"""

import argparse
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path


def measure(tree: Path, workdir: Path) -> None:
    """Fetch ``tree`` as a folder source and split it; print figures (runs in its own process)."""
    from dataclasses import replace

    from skinlesion.core.config import load_config
    from skinlesion.core.modes import Source
    from skinlesion.data.fetch import fetch
    from skinlesion.data.split import split_dataset

    config = load_config()
    raw = workdir / "raw"
    start = time.perf_counter()
    n = fetch(replace(config.data, source=Source.FOLDER, path=str(tree)), raw, progress=False)["files"]
    fetch_s = time.perf_counter() - start
    start = time.perf_counter()
    result = split_dataset(raw, replace(config.split, group_by=""), "", "image_id", progress=False)
    split_s = time.perf_counter() - start
    kept = sum(len(r) for r in result.splits.values())
    classes = len({r.label for recs in result.splits.values() for r in recs})
    self_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"images: {n} from {tree}; split into {classes} classes, {kept} kept")
    print(f"fetch (folder source, copy into the raw folder): {fetch_s:.1f} s = {n / fetch_s:.0f} images/s")
    print(f"split (decode + hash + dedup + split): {split_s:.1f} s = {n / split_s:.0f} images/s")
    print(f"fetch + split: {fetch_s + split_s:.1f} s = {n / (fetch_s + split_s):.0f} images/s")
    print(f"peak RSS: fetch/split process {self_mb:.0f} MB, largest decoding worker {child_mb:.0f} MB")


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--workdir", default="/tmp/skinlesion-bench")
    parser.add_argument("--folder", help="measure on this class-per-folder tree instead of a generated one")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # internal: the child process's tree
    args = parser.parse_args()
    workdir = Path(args.workdir)
    if args.measure:
        measure(Path(args.measure), workdir)
        return
    shutil.rmtree(workdir, ignore_errors=True)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    tree = Path(args.folder) if args.folder else workdir / "tree"
    if not args.folder:
        from skinlesion.data.synthetic import generate

        start = time.perf_counter()
        generate(tree, args.images, args.image_size, seed=0, progress=False)
        seconds = time.perf_counter() - start
        print(
            f"generate {args.images} {args.image_size}px images: {seconds:.1f} s = {args.images / seconds:.0f} images/s"
        )
    script = [sys.executable, __file__, "--measure", str(tree), "--workdir", str(workdir)]
    subprocess.run(script, check=True)
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
