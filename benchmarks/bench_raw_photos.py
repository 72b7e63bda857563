"""How close ``model.predict`` on a raw full-size photo comes to evaluate's probabilities, antialiased or not.

Usage: python benchmarks/bench_raw_photos.py [--every 25] [--image-size 32]

A mobilenet classifier (random backbone, head sharpened so that predictions are confident) at a small
input size, so that a 600x450 ISIC 2018 photo (../shared/data/isic2018-600x450) shrinks about 16x: the
worst case. For every k-th photo: evaluate's path (the loader's antialiased resize to uint8, then the
model) against the saved model given the raw photo (its own Resizing layer), once with the layer's
antialiasing (as built) and once without it (as the model was before), in the same process. Prints the
median and largest per-image max |probability difference| of each.
"""

from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # as the stages pin it (skinlesion.core.errors)
ISIC = Path(__file__).resolve().parents[2] / "shared" / "data" / "isic2018-600x450"


def classifier(image_size: int, n_classes: int):
    """A mobilenet classifier as train builds it (random backbone, no augmentation)."""
    from dataclasses import replace

    from skinlesion.core.backbones import get_backbone
    from skinlesion.core.config import load_config
    from skinlesion.modeling.augment import build_augmenter
    from skinlesion.modeling.model import build_backbone, build_classifier

    spec = get_backbone("mobilenet")
    no_augment = replace(load_config().augment, horizontal_flip=False, vertical_flip=False, rotation=0.0, zoom=0.0)
    no_augment = replace(no_augment, translation=0.0, brightness=0.0, contrast=0.0)
    base = build_backbone(spec, image_size, "none")
    return build_classifier(spec, base, image_size, n_classes, 0.2, build_augmenter(no_augment, seed=0)).model


def main() -> None:
    """Run the benchmark and print its figures."""
    import keras
    from PIL import Image, ImageOps

    from skinlesion.core.images import load_batch
    from skinlesion.modeling.model import CLASSIFIER_LAYER, RESIZE_LAYER, fit_feature_norm

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=int, default=25)
    parser.add_argument("--image-size", type=int, default=32)
    args = parser.parse_args()
    paths = sorted(ISIC.glob("*/*.jpg"))[:: args.every]
    if not paths:
        raise SystemExit(f"no JPEGs under {ISIC}: needs the shared ISIC 2018 sample (../shared beside the checkout)")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; {len(paths)} photos, input {args.image_size} px")
    keras.utils.set_random_seed(0)
    model = classifier(args.image_size, 7)
    pixels = load_batch(paths, args.image_size)
    fit_feature_norm(model.get_layer("feature_norm"), keras.Model(model.inputs, model.get_layer("pool").output)(pixels))
    dense = model.get_layer(CLASSIFIER_LAYER)
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel * 8, bias])  # sharpened, as after training: probabilities far from uniform
    evaluated = model.predict(pixels, verbose=0)
    print(f"mean top probability on evaluate's pixels: {evaluated.max(axis=1).mean():.2f}")
    photos = [np.asarray(ImageOps.exif_transpose(Image.open(p)).convert("RGB"))[None] for p in paths]
    for antialias in (True, False):
        model.get_layer(RESIZE_LAYER).antialias = antialias
        raw = keras.Model(model.inputs, model.outputs)  # a fresh predict function: the attribute is read when traced
        gaps = [
            np.abs(raw.predict(photo, verbose=0)[0] - expected).max()
            for photo, expected in zip(photos, evaluated, strict=True)
        ]
        print(
            f"model resize antialias={antialias}: per-image max |dp| median {np.median(gaps):.3f}, max {max(gaps):.3f}"
        )


if __name__ == "__main__":
    main()
