"""What ``tf.data``'s autotuner costs each ``fit`` call: the project's feed with it off (as built) and on, side by side.

Usage: python benchmarks/bench_autotune.py [--images 512] [--image-size 64] [--epochs 4]

One process, one model (mobilenet, random backbone, the classifier train builds, top layers trainable),
one set of generated lesions held in memory. Each epoch is one ``fit`` call on the batches of
``skinlesion.modeling.feed.epoch_batches`` (the training feed: autotuner off, fixed parallel reads and
prefetch), or on the same pipeline with the autotuner switched back on; the two alternate, so drift on
the machine hits both alike. Prints each epoch's wall time and the best of each. TensorFlow 2.21 ends
an iterator by waiting for the autotuner's next wake-up, 10 ms x (2^k - 1) after the iterator started,
so with it on an epoch's time is rounded up to 0.31, 0.63, 1.27, 2.55, 5.11, 10.23, ... s.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # as the stages pin it (skinlesion.core.errors)


def main() -> None:
    """Run the benchmark and print its figures."""
    import keras
    import tensorflow as tf

    from skinlesion.core.backbones import get_backbone
    from skinlesion.core.config import load_config
    from skinlesion.core.images import load_batch
    from skinlesion.data.synthetic import generate
    from skinlesion.modeling.feed import epoch_batches
    from skinlesion.modeling.model import build_model, compile_model, unfreeze_top

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, TensorFlow {tf.__version__}")
    with tempfile.TemporaryDirectory() as folder:
        generate(folder, args.images, args.image_size, seed=0, progress=False)
        paths = sorted(str(p) for p in Path(folder).rglob("*.png"))
        classes = sorted({p.split("/")[-2] for p in paths})
        x = load_batch(paths, args.image_size)
    y = keras.utils.to_categorical([classes.index(p.split("/")[-2]) for p in paths], len(classes))
    config = load_config()
    section = config.backbone["mobilenet"]
    keras.utils.set_random_seed(0)
    clf = build_model(get_backbone("mobilenet"), section, "none", len(classes), config.augment, seed=0)
    clf.norm.adapt(np.zeros((2, clf.base.output.shape[-1]), "float32"))
    unfreeze_top(clf.base, section.unfreeze)
    compile_model(clf.model, 0.0)
    autotuned = tf.data.Options()
    autotuned.autotune.enabled = True
    feeds = {
        "autotuner off (the project's feed)": lambda e: epoch_batches(x, y, 32, 0, 1, e),
        "autotuner on": lambda e: epoch_batches(x, y, 32, 0, 1, e).with_options(autotuned),
    }
    clf.model.fit(epoch_batches(x[:64], y[:64], 32, 0, 1, 0), epochs=1, verbose=0)  # tracing, not timed
    times: dict[str, list[float]] = {name: [] for name in feeds}
    for epoch in range(args.epochs):
        for name, batches in feeds.items():  # interleaved
            start = time.perf_counter()
            clf.model.fit(batches(epoch), epochs=1, verbose=0)
            times[name].append(time.perf_counter() - start)
    print(f"{args.images} images at {args.image_size} px, batch 32, {args.epochs} fit calls each:")
    for name, seconds in times.items():
        print(f"  {name:36s} best {min(seconds):5.2f} s; each: {', '.join(f'{s:.2f}' for s in seconds)}")


if __name__ == "__main__":
    main()
