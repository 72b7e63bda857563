"""Training from the decode-once disk cache: flat memory as the data set grows, and no loss of speed.

Usage: python benchmarks/bench_stream.py [--counts 2500 10000] [--image-size 224] [--workdir /tmp/skinlesion-stream]

Builds a tree of full-size JPEGs from the real 600x450 ISIC 2018 images in ../shared/data/isic2018-600x450,
re-encoded with small variations (JPEG quality, brightness, a few pixels of crop) to reach the largest
count. Then, each in a fresh process so every figure is that process's own:

1. for each count, one training run (mobilenet, ``train.weights: none``, 1 head + 1 fine-tuning epoch,
   ``runtime.in_memory_mb: 0``: always stream) on the first ``count`` images: peak RSS and wall time;
2. a second process asking for the same images at the same size: whether it decodes anything;
3. the fine-tuning step's throughput (images/s) streaming from the cache against the same model step
   fed from in-memory tensors (the ceiling), on the same images.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[1]
ISIC = REPO.parent / "shared" / "data" / "isic2018-600x450"
VAL_IMAGES = 256


def _variant(job: tuple[str, str, int]) -> None:
    """Write copy ``k`` of one source JPEG with a small, copy-specific change."""
    from PIL import Image, ImageEnhance

    source, target, k = job
    with Image.open(source) as image:
        image = image.convert("RGB")
        shift = k % 7
        image = image.crop((shift, shift, image.width - 6 + shift, image.height - 6 + shift))
        image = ImageEnhance.Brightness(image).enhance(1.0 + 0.01 * ((k % 9) - 4))
        image.save(target, quality=86 + k % 10)


def make_tree(root: Path, count: int) -> list[tuple[str, str]]:
    """``count`` (path, label) pairs of variant JPEGs under ``root`` (made once, reused afterwards)."""
    import pandas as pd

    sources = sorted(ISIC.glob("*/*.jpg"))
    if not sources:
        raise SystemExit(f"no JPEGs under {ISIC}: needs the shared ISIC 2018 sample (../shared beside the checkout)")
    jobs, items = [], []
    for i in range(count):
        source = sources[i % len(sources)]
        target = root / source.parent.name / f"{source.stem}_v{i // len(sources):03d}.jpg"
        items.append((str(target), source.parent.name))
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            jobs.append((str(source), str(target), i // len(sources)))
    if jobs:
        start = time.perf_counter()
        with ProcessPoolExecutor() as pool:
            list(pool.map(_variant, jobs, chunksize=32))
        print(f"wrote {len(jobs)} variant JPEGs in {time.perf_counter() - start:.0f} s")
    pd.DataFrame(items, columns=["path", "label"]).to_csv(root / "index.csv", index=False)
    return items


def _data(workdir: Path, count: int):
    """TrainData for the first ``count`` training images and a fixed validation set."""
    import hashlib

    import numpy as np
    import pandas as pd

    from skinlesion.modeling.feed import TrainData

    index = pd.read_csv(workdir / "jpeg" / "index.csv")
    val, train = index.iloc[:VAL_IMAGES], index.iloc[VAL_IMAGES : VAL_IMAGES + count]
    classes = sorted(index["label"].unique())

    def sha(paths):
        return [hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths]

    def y(frame):
        return np.array([classes.index(c) for c in frame["label"]])

    tp, vp = train["path"].tolist(), val["path"].tolist()
    return TrainData(classes, tp, y(train), vp, y(val), sha(tp), sha(vp))


def child_train(workdir: Path, count: int, image_size: int) -> dict:
    """One training run streaming from the cache; returns this process's figures."""
    from dataclasses import replace

    from skinlesion.core.backbones import get_backbone
    from skinlesion.core.config import BackboneConfig, load_config
    from skinlesion.core.modes import Distribute
    from skinlesion.modeling.train import RunSettings, train_run

    config = load_config()  # before leaving the repository for the work folder
    settings = RunSettings(
        get_backbone("mobilenet"),
        BackboneConfig(image_size=image_size, unfreeze=12, dropout=0.2),
        replace(config.train, batch_size=32, epochs_head=1, epochs_finetune=1, weights="none"),
        config.augment,
        replace(config.runtime, in_memory_mb=0, distribute=Distribute.NONE),
        seed=0,
    )
    data = _data(workdir, count)
    os.chdir(workdir)  # the decode cache (.cache/decoded) lives in the work folder
    state = workdir / "state" / str(count)
    # A previous benchmark's checkpoints would be resumed (its finished phases skipped): start afresh.
    shutil.rmtree(state, ignore_errors=True)
    lines: list[str] = []
    start = time.perf_counter()
    result = train_run(settings, data, state, log=lines.append)
    return {
        "count": count,
        "wall_s": time.perf_counter() - start,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "decoded": sum(line.lstrip().startswith("decoded ") for line in lines),
        "timings": {k: round(v, 1) for k, v in result.timings.items()},
    }


def child_reuse(workdir: Path, count: int, image_size: int) -> dict:
    """Ask for the same images again, as another run of the same size would: count the decodes."""
    from dataclasses import replace

    from skinlesion.core.config import load_config
    from skinlesion.modeling.feed import load_decoded

    runtime = replace(load_config().runtime, in_memory_mb=0)
    data = _data(workdir, count)
    os.chdir(workdir)
    lines: list[str] = []
    start = time.perf_counter()
    load_decoded(data, image_size, runtime, lines.append)
    decodes = sum(line.lstrip().startswith("decoded ") for line in lines)
    return {"count": count, "decoded": decodes, "wall_s": time.perf_counter() - start}


def child_throughput(workdir: Path, count: int, image_size: int, repeats: int = 2) -> dict:
    """Fine-tuning step images/s: batches streamed from the cache vs the same step on in-memory tensors."""
    from dataclasses import replace

    import keras
    import numpy as np
    import tensorflow as tf

    from skinlesion.core.backbones import get_backbone
    from skinlesion.core.config import BackboneConfig, load_config
    from skinlesion.modeling.feed import epoch_batches, load_decoded, without_autotuner
    from skinlesion.modeling.model import build_model, compile_model, unfreeze_top

    config = load_config()
    data = _data(workdir, count)
    os.chdir(workdir)
    cached, _ = load_decoded(data, image_size, replace(config.runtime, in_memory_mb=0), lambda _: None)
    y = keras.utils.to_categorical(data.y_train, len(data.classes))
    keras.utils.set_random_seed(0)
    section = BackboneConfig(image_size=image_size, unfreeze=12, dropout=0.2)
    clf = build_model(get_backbone("mobilenet"), section, "none", len(data.classes), config.augment, seed=0)
    clf.norm.adapt(np.zeros((2, clf.base.output.shape[-1]), "float32"))
    unfreeze_top(clf.base, 12)
    compile_model(clf.model, 0.0)
    clf.model.optimizer.learning_rate.assign(1e-4)
    memory = tf.constant(cached.take(np.arange(len(cached))))  # the ceiling: every batch already a tensor
    order = np.random.default_rng(0).permutation(len(y))

    def in_memory(epoch):  # without the autotuner, like the pipeline's feed, so only the pixels' source differs
        batches = tf.data.Dataset.from_tensor_slices((tf.gather(memory, order), y[order])).batch(32)
        return batches.with_options(without_autotuner())

    feeds = {"in-memory tensors": in_memory, "streamed from cache": lambda e: epoch_batches(cached, y, 32, 0, 1, e)}
    for feed in feeds.values():  # warm-up: tracing
        clf.model.fit(feed(0).take(2), epochs=1, verbose=0)
    best = {name: float("inf") for name in feeds}
    for _ in range(repeats):
        for name, feed in feeds.items():  # interleaved, so drift hits both alike
            start = time.perf_counter()
            clf.model.fit(feed(0), epochs=1, verbose=0)
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: count / seconds for name, seconds in best.items()}


def run_child(kind: str, workdir: Path, count: int, image_size: int) -> dict:
    """Run one measurement in a fresh Python process and return its JSON line."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--workdir", str(workdir), "--image-size", str(image_size)]
        + ["--counts", str(count)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[2500, 10000])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--throughput-images", type=int, default=512)
    parser.add_argument("--workdir", default="/tmp/skinlesion-stream")
    parser.add_argument("--child", choices=["train", "reuse", "throughput"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    workdir = Path(args.workdir)
    if args.child:
        fn = {"train": child_train, "reuse": child_reuse, "throughput": child_throughput}[args.child]
        print(json.dumps(fn(workdir, args.counts[0], args.image_size)))
        return

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    make_tree(workdir / "jpeg", VAL_IMAGES + max(args.counts))
    runs = [run_child("train", workdir, n, args.image_size) for n in args.counts]
    for r in runs:
        print(
            f"train run, {r['count']} training images at {args.image_size}px, in_memory_mb 0: "
            f"peak RSS {r['peak_rss_mb']:.0f} MB, {r['wall_s']:.0f} s, decode passes {r['decoded']}, {r['timings']}"
        )
    growth = runs[-1]["peak_rss_mb"] / runs[0]["peak_rss_mb"] - 1
    print(f"peak RSS growth for {args.counts[-1] / args.counts[0]:.0f}x the training images: {growth:+.1%}")
    reuse = run_child("reuse", workdir, args.counts[0], args.image_size)
    print(f"another run of the same size: {reuse['decoded']} decode passes ({reuse['wall_s']:.1f} s to open)")
    speed = run_child("throughput", workdir, args.throughput_images, args.image_size)
    (a, ceiling), (b, streamed) = speed.items()
    print(f"fine-tuning step, {args.throughput_images} images: {a} {ceiling:.1f} img/s, {b} {streamed:.1f} img/s")
    print(f"streamed / in-memory throughput: {streamed / ceiling:.1%}")


if __name__ == "__main__":
    main()
