"""What pinning oneDNN's custom operations off costs, and what leaving them to TensorFlow would change.

Usage: python benchmarks/bench_onednn.py [--repeats 2] [--workdir /tmp/skinlesion-onednn]

Trains the same small run (mobilenet and vgg19 at the demo's sizes, on generated lesions, two head and
one fine-tuning epoch) in fresh processes with ``TF_ENABLE_ONEDNN_OPTS`` 0 and 1, interleaved, and
prints the wall time of each training and whether the trained weights and validation probabilities
are bit-identical between the two settings. The stages pin it to 0 (``skinlesion.core.errors``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

BACKBONES = {"mobilenet": 64, "vgg19": 48}


def child(workdir: Path, backbone: str) -> dict:
    """Train one run in this process (the environment was set by the parent); return its figures."""
    from dataclasses import replace

    import numpy as np

    from skinlesion.core.backbones import get_backbone
    from skinlesion.core.config import load_config
    from skinlesion.core.modes import Distribute
    from skinlesion.modeling.feed import TrainData
    from skinlesion.modeling.train import RunSettings, train_run

    config = load_config()
    paths = sorted(str(p) for p in (workdir / "images").rglob("*.png"))
    classes = sorted({Path(p).parent.name for p in paths})
    labels = np.array([classes.index(Path(p).parent.name) for p in paths])
    sha = [hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths]
    data = TrainData(classes, paths[::2], labels[::2], paths[1::2], labels[1::2], sha[::2], sha[1::2])
    settings = RunSettings(
        get_backbone(backbone),
        replace(config.backbone[backbone], image_size=BACKBONES[backbone]),
        replace(config.train, epochs_head=2, epochs_finetune=1),
        config.augment,
        replace(config.runtime, distribute=Distribute.NONE),
        seed=0,
    )
    os.chdir(workdir)
    state = workdir / "state" / os.environ["TF_ENABLE_ONEDNN_OPTS"] / backbone
    start = time.perf_counter()
    result = train_run(settings, data, state, log=lambda _: None)
    seconds = time.perf_counter() - start
    weights = hashlib.sha256(b"".join(np.asarray(w).tobytes() for w in result.model.weights)).hexdigest()
    return {"seconds": seconds, "weights": weights, "val": result.val_probabilities.tolist()}


def run(workdir: Path, backbone: str, onednn: str) -> dict:
    """One training in a fresh process with ``TF_ENABLE_ONEDNN_OPTS=onednn``."""
    env = os.environ | {"TF_ENABLE_ONEDNN_OPTS": onednn, "TF_CPP_MIN_LOG_LEVEL": "3"}
    args = [sys.executable, __file__, "--child", backbone, "--workdir", str(workdir)]
    out = subprocess.run(args, check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    """Run the benchmark and print its figures."""
    import numpy as np

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/skinlesion-onednn"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.workdir, args.child)))
        return
    from skinlesion.data.synthetic import generate

    if not (args.workdir / "images").exists():
        generate(args.workdir / "images", 300, 64, seed=0, progress=False)
    print(f"machine: {platform.machine()}, {platform.processor() or '?'}, {os.cpu_count()} cores")
    for backbone in BACKBONES:
        times: dict[str, list[float]] = {"0": [], "1": []}
        results = {}
        for _ in range(args.repeats):
            for onednn in ("0", "1"):  # interleaved: drift on the machine hits both alike
                results[onednn] = run(args.workdir, backbone, onednn)
                times[onednn].append(results[onednn]["seconds"])
        off, on = min(times["0"]), min(times["1"])
        same = results["0"]["weights"] == results["1"]["weights"]
        diff = float(np.abs(np.array(results["0"]["val"]) - np.array(results["1"]["val"])).max())
        print(
            f"{backbone}: training best of {args.repeats}: oneDNN off {off:.1f} s, on {on:.1f} s "
            f"(off/on {off / on:.2f}); weights identical: {same}; max |val probability difference| {diff:.2e}"
        )


if __name__ == "__main__":
    main()
