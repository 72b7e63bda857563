"""Speed-up of training the head on cached backbone features over running the frozen backbone each epoch.

Usage (after `dvc repro split`): python benchmarks/bench_train.py [--epochs 12]
For each default backbone at its params.yaml size, on the training split: the time of one head epoch
through the whole frozen model, against one feature extraction pass plus per-epoch head training.
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    """Run the benchmark and print its figures."""
    import keras
    import numpy as np

    from skinlesion.core.backbones import get_backbone
    from skinlesion.core.config import AugmentConfig, load_config
    from skinlesion.core.images import load_batch
    from skinlesion.core.layout import read_split
    from skinlesion.modeling.model import build_model, compile_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12)
    args = parser.parse_args()
    config = load_config()
    train = read_split("train")
    labels = keras.utils.to_categorical(train["label"].astype("category").cat.codes, train["label"].nunique())
    no_aug = AugmentConfig(False, False, 0.0, 0.0, 0.0, 0.0, 0.0)
    print(f"cores: {os.cpu_count()}, training images: {len(train)}, head epochs: {args.epochs}")
    for name in config.backbones:
        section = config.backbone[name]
        x = load_batch(train["path"].tolist(), section.image_size)
        clf = build_model(get_backbone(name), section, "none", labels.shape[1], no_aug, seed=0)
        clf.norm.adapt(np.zeros((2, clf.base.output.shape[-1]), "float32"))
        compile_model(clf.model, 0.0)
        clf.model.fit(x[:64], labels[:64], batch_size=32, epochs=1, verbose=0)  # warm-up: tracing
        start = time.perf_counter()
        clf.model.fit(x, labels, batch_size=32, epochs=1, verbose=0)
        full_epoch = time.perf_counter() - start
        start = time.perf_counter()
        features = clf.features.predict(x, batch_size=32, verbose=0)
        extract = time.perf_counter() - start
        compile_model(clf.head, 0.0)
        clf.head.fit(features[:64], labels[:64], batch_size=32, epochs=1, verbose=0)
        start = time.perf_counter()
        clf.head.fit(features, labels, batch_size=32, epochs=1, verbose=0)
        head_epoch = time.perf_counter() - start
        uncached = full_epoch * args.epochs
        cached = extract + head_epoch * args.epochs
        print(
            f"{name:12s} {section.image_size}px: full-model epoch {full_epoch:.2f} s; "
            f"feature pass {extract:.2f} s "
            f"+ head epoch {head_epoch:.3f} s -> phase 1 of {args.epochs} epochs {uncached:.1f} s vs "
            f"{cached:.1f} s ({uncached / cached:.1f}x faster)"
        )


if __name__ == "__main__":
    main()
