"""Peak memory of fetch and split on hostile files, at the limits of params.yaml and without them.

Each measurement runs a stage script (``stages/fetch.py`` or ``stages/split.py``) as a child process in
its own project folder (the repository's params.yaml, one decoding process) and reads that child's peak
resident memory from ``wait4``:

1. fetch of a zip bomb (``--bomb-mb`` MiB of zeros in one deflated entry, about 1,000 times smaller) at
   the default ``data.max_archive_mb`` / ``data.max_compression_ratio``: refused from the member list;
2. the same bomb with both limits lifted: extracted (streamed, block by block), then split, which
   hashes the expanded file (streamed) and skips it as not an image;
3. split of a 144-megapixel bilevel PNG of ~20 KB at the default ``split.max_pixels``: skipped as
   ``too_large`` from its header;
4. for comparison, the same PNG decoded as split's check did before the limit (no pixel limit).

Usage: python benchmarks/bench_limits.py [--bomb-mb 1024] [--workdir /tmp/skinlesion-bench-limits]
Prints one line per measurement: outcome, peak RSS (MB) and wall time.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
# Decoding the PNG with Pillow's limit switched off: what one validation process did before split.max_pixels.
UNLIMITED_DECODE = (
    "import sys; from PIL import Image; Image.MAX_IMAGE_PIXELS = None; "
    "from skinlesion.core.images import check_file; print(check_file(sys.argv[1]).width)"
)


def child(argv: list[str], cwd: Path) -> tuple[int, str, float, float]:
    """Run ``argv`` in ``cwd``; return its exit status, standard output+error, peak RSS (MB) and seconds."""
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, output, usage.ru_maxrss / 1024, time.perf_counter() - start


def project(root: Path, **data) -> Path:
    """A project folder whose params.yaml is the repository's with ``data`` updated and one decoding process."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"].update(data)
    params["runtime"]["workers"] = 1
    root.mkdir(parents=True)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return root


def images(folder: Path) -> None:
    """Two small classes, so that split has something to split besides the hostile file."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (folder / label).mkdir(parents=True, exist_ok=True)
        for i in range(10):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / label / f"{i}.png")


def zip_bomb(path: Path, megabytes: int) -> Path:
    """``megabytes`` MiB of zeros in one deflated entry among the images of :func:`images`."""
    tree = path.parent / "tree"
    images(tree)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(tree.rglob("*.png")):
            zf.write(f, f"data/{f.relative_to(tree).as_posix()}")
        with zf.open("data/a/zeros.png", "w", force_zip64=True) as entry:
            block = bytes(1 << 20)
            for _ in range(megabytes):
                entry.write(block)
    return path


def stage(root: Path, name: str) -> tuple[int, str, float, float]:
    """Run ``stages/<name>.py`` in ``root``."""
    return child([sys.executable, str(REPO / "stages" / f"{name}.py")], root)


def report(what: str, result: tuple[int, str, float, float]) -> None:
    """Print one measurement: the stage's last line (or error), its exit status, peak RSS and time."""
    rc, output, rss, seconds = result
    lines = [line for line in output.splitlines() if line.startswith(("error:", "fetch:", "split:"))] or [""]
    print(f"{what}: exit {rc}, peak RSS {rss:.0f} MB, {seconds:.1f} s | {lines[-1][:150]}")


def main() -> None:
    """Run the measurements and print their figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bomb-mb", type=int, default=1024)
    parser.add_argument("--workdir", default="/tmp/skinlesion-bench-limits")
    args = parser.parse_args()
    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    limits = {k: params["data"][k] for k in ("max_archive_mb", "max_compression_ratio")}
    print(f"limits: {limits}, split.max_pixels={params['split']['max_pixels']}; {os.cpu_count()} cores")

    bomb = zip_bomb(work / "bomb" / "bomb.zip", args.bomb_mb)
    print(f"zip bomb: {bomb.stat().st_size / 1e6:.2f} MB expanding to {args.bomb_mb} MiB")
    report("fetch, zip bomb, default limits", stage(project(work / "refused", source="zip", path=str(bomb)), "fetch"))
    lifted = project(work / "lifted", source="zip", path=str(bomb), max_archive_mb=10**6, max_compression_ratio=10**6)
    report("fetch, zip bomb, limits lifted (streamed extraction)", stage(lifted, "fetch"))
    report("split of that raw folder (streamed hashing of the expanded file)", stage(lifted, "split"))
    shutil.rmtree(lifted)

    from PIL import Image

    png_root = project(work / "png", source="folder", path=str(work / "png" / "src"))
    images(png_root / "src")
    Image.new("1", (12_000, 12_000)).save(png_root / "src" / "a" / "huge.png")
    print(f"144-megapixel PNG: {(png_root / 'src' / 'a' / 'huge.png').stat().st_size / 1e3:.0f} KB")
    assert stage(png_root, "fetch")[0] == 0
    report("split, 144-megapixel PNG, default split.max_pixels", stage(png_root, "split"))
    from skinlesion.core.layout import DATA_SUMMARY

    skipped = json.loads((png_root / DATA_SUMMARY).read_text())["skipped"]
    print(f"  {DATA_SUMMARY} skipped: { {k: v for k, v in skipped.items() if v} }")
    unlimited = child([sys.executable, "-c", UNLIMITED_DECODE, str(png_root / "src" / "a" / "huge.png")], work)
    report("the same PNG decoded without a pixel limit (split before #19)", unlimited)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
