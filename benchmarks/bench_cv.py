"""What k-fold cross-validation costs against the single split: one backbone, one seed, the same data, one run.

Usage: python benchmarks/bench_cv.py [--backbone mobilenet] [--seed 0] [--folds 5] [--repeats 1]

Run from the repository root after `dvc repro split` (it reads data/raw and data/splits). In a scratch copy
of the repository's tracked files (with those two folders linked in), it runs each stage's script as DVC
would, one fresh process each:

- CV off: ``train`` then ``evaluate`` for the backbone and seed (what the default pipeline pays per run);
- k folds: ``cv-folds``, the k fold runs (``cv``: train on the fold, predict its held-out fold, validation
  and test) and ``cv-pool``.

The two alternate ``--repeats`` times, so drift on the machine hits both alike, and each stage's wall time
is printed with the ratio of the totals (the target: at most 4x for 5 folds; naive, 5 train + evaluate
processes, would be about 5x). Nothing in the repository's own workspace is written but ``.cache/decoded``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from skinlesion.core import layout
from skinlesion.core.layout import TRAIN_STATE

REPO = Path(__file__).resolve().parent.parent


def scratch_copy(root: Path, backbone: str, seed: int, folds: int) -> Path:
    """The repository's tracked files in ``root``, data/raw, data/splits and .cache linked, params set for the run."""
    listed = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    for name in listed.splitlines():
        source = REPO / name
        if source.is_file() and not layout.is_generated(name, (*layout.GENERATED, layout.RAW.parent)):
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)
    (REPO / layout.DECODED).mkdir(parents=True, exist_ok=True)
    for link in (layout.RAW, layout.SPLITS, layout.DATA_SUMMARY, layout.DECODED):
        (root / link).parent.mkdir(parents=True, exist_ok=True)
        (root / link).symlink_to(REPO / link)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params |= {"backbones": [backbone], "seeds": [seed], "model": "auto"}
    params["cv"] |= {"pool": ["train"], "folds": [f"f{j}" for j in range(folds)]}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return root


def timed(root: Path, command: list[str]) -> float:
    """Wall seconds of one stage script, run as DVC runs it (a fresh Python process in the repository root)."""
    env = os.environ | {"PYTHONPATH": str(root), "TF_CPP_MIN_LOG_LEVEL": "3"}
    start = time.perf_counter()
    subprocess.run([sys.executable, *command], cwd=root, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def plans(backbone: str, seed: int, folds: int) -> dict[str, list[list[str]]]:
    """The stage commands of each side."""
    run = ["--backbone", backbone, "--seed", str(seed)]
    return {
        "cv off": [["stages/train.py", *run], ["stages/evaluate.py", *run]],
        f"{folds} folds": [
            ["stages/cv_folds.py"],
            *[["stages/cv_train.py", *run, "--fold", f"f{j}"] for j in range(folds)],
            ["stages/cv_pool.py", "--backbone", backbone],
        ],
    }


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="mobilenet")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    totals: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = scratch_copy(Path(tmp), args.backbone, args.seed, args.folds)
        for repeat in range(args.repeats):
            for side, commands in plans(args.backbone, args.seed, args.folds).items():
                shutil.rmtree(root / TRAIN_STATE, ignore_errors=True)  # no resuming: every run from scratch
                times = [timed(root, command) for command in commands]
                totals.setdefault(side, []).append(sum(times))
                steps = ", ".join(f"{Path(c[0]).stem} {t:.1f}s" for c, t in zip(commands, times, strict=True))
                print(f"repeat {repeat + 1}, {side}: {sum(times):.1f}s ({steps})")
    (off, off_times), (cv, cv_times) = totals.items()
    ratio = min(cv_times) / min(off_times)
    print(f"best of {args.repeats}: {off} {min(off_times):.1f}s, {cv} {min(cv_times):.1f}s, ratio {ratio:.2f}x")


if __name__ == "__main__":
    main()
