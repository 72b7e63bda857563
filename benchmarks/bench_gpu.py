"""Training throughput on an accelerator: the seed notebook's ImageDataGenerator vs this pipeline vs the ceiling.

Usage: python benchmarks/bench_gpu.py [--images 2048] [--backbones mobilenet vgg19 inceptionv3] [--smoke]

For each backbone at its native ImageNet size (224 / 224 / 299), on full-size JPEGs (variants of the real
600x450 ISIC 2018 images in ../shared/data/isic2018-600x450, or ``--data``), the fine-tuning model step's
training images/s when fed by:

- ``ImageDataGenerator``: the seed notebook's recipe (``flow_from_directory``, decode + resize + numpy
  augmentation every epoch, on the CPU);
- ``pipeline``: this project's decode-once cache (``.cache/decoded``) streamed into the model (``tf.data``;
  a ``keras.utils.PyDataset`` over the same cache when TensorFlow is absent, e.g. Keras on JAX), with
  augmentation inside the model, on the accelerator;
- ``in-memory``: the same model step on arrays already in memory (the ceiling).

Then, with TensorFlow, the wall time of the whole recipe (``train_run``: 12 head + 2 fine-tuning epochs).
``--smoke`` runs everything tiny (CI-sized, on CPU) to prove the script works end to end. Prints the
device, Keras backend and precision with every figure.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_stream import ISIC, REPO, _data, make_tree  # noqa: E402

# The repository's params: the script works in --workdir, where no params.yaml is.
PARAMS = REPO / "params.yaml"

NATIVE = {"mobilenet": 224, "vgg19": 224, "inceptionv3": 299}
SMOKE = {"mobilenet": 32, "vgg19": 32, "inceptionv3": 75}
BATCH = 32


def device_name() -> str:
    """The accelerator Keras computes on (or the CPU)."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return str(jax.devices()[0].device_kind)
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        return tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU") if gpus else "CPU"
    return backend


def classifier(name: str, image_size: int, n_classes: int, augment: bool) -> object:
    """The project's classifier, top layers unfrozen (the fine-tuning step), compiled."""
    import keras
    import numpy as np

    from skinlesion.core.backbones import get_backbone
    from skinlesion.core.config import AugmentConfig, BackboneConfig, load_config
    from skinlesion.modeling.model import build_model, compile_model, unfreeze_top

    keras.utils.set_random_seed(0)
    aug = load_config(PARAMS).augment if augment else AugmentConfig(False, False, 0.0, 0.0, 0.0, 0.0, 0.0)
    section = BackboneConfig(image_size=image_size, unfreeze=12, dropout=0.2)
    clf = build_model(get_backbone(name), section, "none", n_classes, aug, seed=0)
    clf.norm.adapt(np.zeros((2, clf.base.output.shape[-1]), "float32"))
    unfreeze_top(clf.base, 12)
    compile_model(clf.model, 0.0)
    clf.model.optimizer.learning_rate.assign(1e-4)
    return clf.model


def notebook_generator(root: Path, image_size: int, classes: list[str]) -> object:
    """The seed notebook's input pipeline: ImageDataGenerator with on-the-fly numpy augmentation."""
    # The class the notebook imported as tf.keras.preprocessing.image.ImageDataGenerator: with Keras 3
    # it lives here (numpy + scipy), and this path works without TensorFlow too.
    from keras.src.legacy.preprocessing.image import ImageDataGenerator

    gen = ImageDataGenerator(rotation_range=180, zoom_range=0.1, horizontal_flip=True, vertical_flip=True)
    return gen.flow_from_directory(
        root, target_size=(image_size, image_size), classes=classes, batch_size=BATCH, class_mode="categorical", seed=0
    )


def cache_feed(images: object, y: object) -> object:
    """This pipeline's feed: tf.data over the decode-once cache, or a PyDataset over it without TensorFlow."""
    import keras
    import numpy as np

    if keras.backend.backend() == "tensorflow":
        from skinlesion.modeling.feed import epoch_batches

        return epoch_batches(images, y, BATCH, 0, 1, 0)

    class CacheBatches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__(workers=4, use_multiprocessing=False)
            self.order = np.random.default_rng(0).permutation(len(y))

        def __len__(self):
            return len(self.order) // BATCH

        def __getitem__(self, i):
            idx = self.order[i * BATCH : (i + 1) * BATCH]
            return images.take(idx), y[idx]

    return CacheBatches()


def images_per_second(model: object, n: int, repeats: int, feed: object = None, arrays: tuple = ()) -> float:
    """Best of ``repeats`` training epochs of ``model`` over ``feed`` (or in-memory ``arrays``), in images/s.

    A two-batch warm-up first compiles the step, so compilation is not timed.
    """
    if arrays:
        x, y = arrays

        def epoch(steps=None):
            k = len(x) if steps is None else steps * BATCH
            model.fit(x[:k], y[:k], batch_size=BATCH, shuffle=False, epochs=1, verbose=0)
    else:

        def epoch(steps=None):
            model.fit(feed, epochs=1, steps_per_epoch=steps, verbose=0)

    epoch(steps=2)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        epoch()
        best = min(best, time.perf_counter() - start)
    return n / best


def bench_backbone(name: str, image_size: int, workdir: Path, n: int, repeats: int) -> dict[str, float]:
    """Images/s of the three feeds for one backbone."""
    from dataclasses import replace

    import keras
    import numpy as np

    from skinlesion.core.config import load_config
    from skinlesion.modeling.feed import load_decoded

    data = _data(workdir, n)
    cached, _ = load_decoded(data, image_size, replace(load_config(PARAMS).runtime, in_memory_mb=0), lambda _: None)
    y = keras.utils.to_categorical(data.y_train, len(data.classes)).astype("float32")
    out = {}
    model = classifier(name, image_size, len(data.classes), augment=True)
    out["pipeline"] = images_per_second(model, n, repeats, feed=cache_feed(cached, y))
    out["in-memory"] = images_per_second(model, n, repeats, arrays=(cached.take(np.arange(n)), y))
    # The notebook reads the same training images from class folders.
    tree = workdir / f"flow{n}"
    if not tree.exists():
        for label in data.classes:
            (tree / label).mkdir(parents=True)
        for path, label in zip(data.train_paths, [data.classes[i] for i in data.y_train], strict=True):
            os.symlink(Path(path).resolve(), tree / label / Path(path).name)
    plain = classifier(name, image_size, len(data.classes), augment=False)
    out["ImageDataGenerator"] = images_per_second(
        plain, n, repeats, feed=notebook_generator(tree, image_size, data.classes)
    )
    return out


def full_recipe(workdir: Path, n: int, image_size: int, smoke: bool) -> float:
    """Wall time of one whole training run (train_run) of mobilenet at ``image_size`` on ``n`` images."""
    from dataclasses import replace

    from skinlesion.core.backbones import get_backbone
    from skinlesion.core.config import load_config
    from skinlesion.core.modes import Distribute
    from skinlesion.modeling.train import RunSettings, train_run

    config = load_config(PARAMS)
    epochs = (1, 1) if smoke else (12, 2)
    settings = RunSettings(
        get_backbone("mobilenet"),
        replace(config.backbone["mobilenet"], image_size=image_size, unfreeze=12),
        replace(config.train, batch_size=BATCH, epochs_head=epochs[0], epochs_finetune=epochs[1], weights="none"),
        config.augment,
        replace(config.runtime, distribute=Distribute.NONE),
        seed=0,
    )
    start = time.perf_counter()
    train_run(settings, _data(workdir, n), workdir / "state", log=lambda _: None)
    return time.perf_counter() - start


def main() -> None:
    """Run the benchmark and print its figures."""
    import keras

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2048, help="training images per epoch (a multiple of 32)")
    parser.add_argument("--backbones", nargs="+", help="default: all three (--smoke: mobilenet)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--data", type=Path, default=ISIC, help="class folders of full-size JPEGs")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/skinlesion-gpu"))
    parser.add_argument("--precision", choices=["float32", "mixed_float16"], default="float32")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes and counts: proves the script runs (CI)")
    args = parser.parse_args()
    keras.config.set_dtype_policy(args.precision)
    n = 64 if args.smoke else args.images // BATCH * BATCH
    sizes = SMOKE if args.smoke else NATIVE
    backbones = args.backbones or (["mobilenet"] if args.smoke else list(NATIVE))
    import bench_stream

    bench_stream.ISIC = args.data
    args.workdir.mkdir(parents=True, exist_ok=True)
    make_tree(args.workdir / "jpeg", bench_stream.VAL_IMAGES + n)
    os.chdir(args.workdir)  # the decode cache lands in the work folder
    print(
        f"device: {device_name()}; Keras {keras.__version__} on {keras.backend.backend()}; "
        f"{os.cpu_count()} CPU cores ({platform.machine()}); precision {keras.config.dtype_policy().name}; "
        f"{n} training images per epoch, batch {BATCH}"
    )
    for name in backbones:
        figures = bench_backbone(name, sizes[name], args.workdir, n, args.repeats)
        line = ", ".join(f"{k} {v:.0f} img/s" for k, v in figures.items())
        ratio = figures["pipeline"] / figures["in-memory"]
        print(f"{name:12s} {sizes[name]}px: {line}; pipeline / ceiling {ratio:.0%}")
    if keras.backend.backend() == "tensorflow":
        size = sizes["mobilenet"]
        seconds = full_recipe(args.workdir, n, size, args.smoke)
        print(f"whole recipe (train_run, mobilenet {size}px, {n} images): {seconds:.0f} s wall")
    else:
        print("whole recipe: skipped (train_run needs TensorFlow)")
    if args.smoke:
        shutil.rmtree(args.workdir / "state", ignore_errors=True)


if __name__ == "__main__":
    main()
