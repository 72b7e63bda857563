"""Offline baselines on real dermoscopy: ``train.weights`` none vs scratch through the real pipeline.

Usage: python benchmarks/bench_weights.py [--data ../shared/data/ham10000-224] [--image-size 64]
       [--weights none scratch] [--workdir /tmp/skinlesion-weights]

For each ``train.weights`` value, copies this repository's sources into ``--workdir/<weights>``, points
it at the HAM10000 folder (its ``HAM10000_metadata.csv`` supplies ``split.group_by: lesion_id``), trains
one MobileNet run (seed 0) at ``--image-size`` with ``dvc repro``, and prints the test balanced accuracy,
accuracy, macro-F1, the share of test images given the most-predicted class (1.0 = collapsed to one
class), chance level, the epochs run and the wall time.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pipeline import REPO, copy_env, copy_sources  # noqa: E402


def configure(root: Path, data: Path, weights: str, image_size: int) -> None:
    """Point the copy's params at the real folder, grouped by lesion, one MobileNet run."""
    params = yaml.safe_load((root / "params.yaml").read_text())
    params.update(model="mobilenet", backbones=["mobilenet"], seeds=[0])
    params["data"].update(source="folder", path=str(data), metadata="HAM10000_metadata.csv")  # inside data
    params["split"]["group_by"] = "lesion_id"
    params["train"]["weights"] = weights
    params["mobilenet"]["image_size"] = image_size
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def main() -> None:
    """Run the comparison and print one line per ``train.weights`` value."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "ham10000-224")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--weights", nargs="+", default=["none", "scratch"])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/skinlesion-weights"))
    args = parser.parse_args()
    data = args.data.resolve()
    if not (data / "HAM10000_metadata.csv").exists():
        sys.exit(f"error: {data}/HAM10000_metadata.csv not found: pass --data the shared HAM10000 folder")
    for weights in args.weights:
        root = args.workdir / weights
        copy_sources(root)
        configure(root, data, weights, args.image_size)
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "dvc", "repro", "evaluate@mobilenet-0"],
            cwd=root,
            env=copy_env(root),
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - start
        if proc.returncode:
            sys.exit(f"error: dvc repro failed for weights={weights}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
        run = root / "runs" / "mobilenet" / "seed0"
        metrics = json.loads((run / "eval" / "metrics.json").read_text())
        summary = json.loads((run / "train" / "metrics.json").read_text())
        predicted = pd.read_csv(run / "eval" / "predictions.csv", keep_default_na=False)["predicted"]
        top_share = predicted.value_counts().iloc[0] / len(predicted)
        classes = json.loads((root / "reports" / "data.json").read_text())["classes"]
        print(
            f"weights={weights}: test balanced accuracy {metrics['balanced_accuracy']:.3f} "
            f"[{metrics['ci']['balanced_accuracy']['low']:.3f}, {metrics['ci']['balanced_accuracy']['high']:.3f}] "
            f"(chance {1 / classes:.3f}), accuracy {metrics['accuracy']:.3f}, macro-F1 {metrics['macro_f1']:.3f}, "
            f"most-predicted class {top_share:.0%} of {len(predicted)} test images, "
            f"epochs {summary.get('epochs', '?')}, {wall:.0f} s",
            flush=True,
        )


if __name__ == "__main__":
    main()
