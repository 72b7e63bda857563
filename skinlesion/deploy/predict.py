"""Predict (and optionally explain) new images with a saved classifier.

Usage::

    skinlesion-predict models/headline/model.keras IMAGE_OR_FOLDER [...] [-o predictions.csv]
        [--format csv|json] [--top-k 3] [--batch-size 32] [--explain DIR]

Class names and the input size come from ``labels.json`` beside the model, which must be the one the
model was saved with (the model carries its own class list). Arguments are checked before any work:
``-o`` may not name an input, nor a folder. Files that cannot be read are reported one line each with
the reason; the others are still predicted, and CSV rows are written as they are produced, so a late
failure keeps every row before it. Exit status: 0 when every file was predicted, 1 when some failed,
2 when nothing could be done (bad model, bad arguments, no input) or the run stopped part-way.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from skinlesion.core.errors import DataError, SkinLesionError, cli
from skinlesion.core.images import ImageLoadError, load_array
from skinlesion.core.io import is_printable, printable
from skinlesion.core.labels import LabelMap
from skinlesion.core.layout import LABELS_FILE, probability_column
from skinlesion.deploy.outputs import check_output, open_rows


def expand_inputs(inputs: list[str]) -> tuple[list[Path], list[dict]]:
    """Files given directly, plus every file under the folders given (sorted); the rest as error entries.

    Missing paths, broken or looping symbolic links and names no output can hold (not UTF-8, control
    characters) are reported, one entry each, instead of being dropped without a word.
    """
    files, errors = [], []
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            for found in sorted(path.rglob("*")):
                if not found.name.startswith("."):
                    _classify(found, files, errors)
        elif path.is_file() or path.is_symlink():
            _classify(path, files, errors)
        else:
            errors.append({"path": printable(raw), "error": "missing: no such file or folder"})
    return files, errors


def _classify(path: Path, files: list[Path], errors: list[dict]) -> None:
    if not is_printable(str(path)):
        errors.append({"path": printable(str(path)), "error": "bad_file_name: not valid UTF-8 or control characters"})
        return
    if path.is_symlink():
        try:
            path.stat()
        except FileNotFoundError:
            errors.append({"path": str(path), "error": "broken_link: the symbolic link's target does not exist"})
            return
        except OSError as exc:  # ELOOP
            errors.append({"path": str(path), "error": f"broken_link: {exc.strerror}"})
            return
    if path.is_file():
        files.append(path)


def load_model_and_labels(model_path: str | Path) -> tuple[object, list[str], int]:
    """Load a classifier and the label map (``labels.json``) saved beside it, checked against each other.

    Raises:
        SkinLesionError: One line naming the file when either cannot be read, or when labels.json is
            not the one the model was saved with (other classes or size, or another number of classes).
    """
    from skinlesion.modeling.model import load_classifier

    model_path = Path(model_path)
    LabelMap.of_model(model_path)  # missing, or not a Keras model file: said before loading TensorFlow
    labels = LabelMap.read(model_path.parent)
    labels.check_model(model_path)
    model = load_classifier(model_path)
    outputs = int(model.outputs[0].shape[-1])
    if outputs != len(labels.classes):  # a model saved before models carried their class list
        raise DataError(
            f"{model_path.parent / LABELS_FILE} lists {len(labels.classes)} classes but {model_path} has {outputs} "
            "outputs: it belongs to another model; put the model's own labels.json beside it"
        )
    return model, list(labels.classes), labels.image_size


def predict_batches(
    model: object,
    classes: list[str],
    image_size: int,
    files: list[Path],
    *,
    batch_size: int = 32,
    top_k: int = 3,
    explain_dir: Path | None = None,
    progress: bool = True,
):
    """Predict every file, a batch at a time, with the same loader and resizing as evaluate.

    Args:
        model: The classifier.
        classes: Class names in output order.
        image_size: Side length the images are loaded at.
        files: Image files.
        batch_size: Images per forward pass.
        top_k: Labels listed per image.
        explain_dir: Where to write one Grad-CAM overlay PNG per image, or ``None``.
        progress: Show a progress bar.

    Yields:
        Per batch: one row per predicted image, and one error entry per file that could not be read.

    Raises:
        DataError: When the model fails on a batch (the rows of the batches before it were yielded).
    """
    from tqdm import tqdm

    cam = None
    if explain_dir is not None:
        from skinlesion.modeling.explain import GradCam

        cam = GradCam(model)
    with tqdm(total=len(files), desc="predict", unit="img", disable=not progress, file=sys.stderr) as bar:
        for start in range(0, len(files), batch_size):
            batch, arrays, errors = [], [], []
            for path in files[start : start + batch_size]:
                try:
                    arrays.append(load_array(path, image_size))
                    batch.append(path)
                except ImageLoadError as exc:
                    errors.append({"path": str(path), "error": f"{exc.reason}: {exc.detail}"})
            bar.update(len(files[start : start + batch_size]))
            rows = _predict(model, cam, batch, arrays, explain_dir, classes, top_k) if batch else []
            yield rows, errors


def _predict(model, cam, batch: list[Path], arrays: list, explain_dir, classes: list[str], top_k: int) -> list[dict]:
    images = np.stack(arrays)
    try:
        # One batch: predict_on_batch runs the model without building (and tearing down) a tf.data pipeline.
        probs = np.asarray(model.predict_on_batch(images))
        if cam is not None:
            _write_overlays(cam, images, batch, explain_dir)
    except Exception as exc:  # out of memory, a broken model graph...: stop, keeping what was written
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise DataError(
            f"the model failed on the batch starting with {batch[0]} ({type(exc).__name__}: {first})"
        ) from None
    return [prediction_row(path, p, classes, top_k) for path, p in zip(batch, probs, strict=True)]


def predict_files(model: object, classes: list[str], image_size: int, files: list[Path], **options) -> tuple:
    """:func:`predict_batches` collected: every row, and every error entry."""
    rows, errors = [], []
    for batch_rows, batch_errors in predict_batches(model, classes, image_size, files, **options):
        rows += batch_rows
        errors += batch_errors
    return rows, errors


def prediction_row(path: Path, p: np.ndarray, classes: list[str], top_k: int) -> dict:
    """One output row: the file, its top class and probability, the top ``top_k``, every class's probability."""
    order = np.argsort(-p, kind="stable")[:top_k]
    row = {"path": str(path), "predicted": classes[order[0]], "probability": round(float(p[order[0]]), 6)}
    row["top_k"] = ";".join(f"{classes[i]}:{p[i]:.4f}" for i in order)
    return row | {probability_column(c): round(float(v), 6) for c, v in zip(classes, p, strict=True)}


def _write_overlays(cam: object, images: np.ndarray, paths: list[Path], out_dir: Path) -> None:
    from PIL import Image

    from skinlesion.core.images import load_rgb
    from skinlesion.core.io import atomic_path
    from skinlesion.modeling.explain import overlay

    heats, _ = cam(images)
    for path, heat in zip(paths, heats, strict=True):
        original = np.asarray(load_rgb(path))
        target = out_dir / f"{path.stem}_gradcam.png"
        n = 1
        while target.exists():  # same stem in two folders: keep both
            target = out_dir / f"{path.stem}_gradcam_{n}.png"
            n += 1
        with atomic_path(target) as tmp:
            Image.fromarray(overlay(original, heat)).save(tmp, format="PNG")


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are the command's one ``error:`` line (exit status 2), like every other error."""

    def error(self, message: str):  # noqa: D102
        raise SkinLesionError(f"{message} (see skinlesion-predict --help)")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1 (got {text!r})")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = _Parser(prog="skinlesion-predict", description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a .keras classifier with labels.json beside it")
    parser.add_argument("inputs", nargs="+", help="image files and/or folders (searched recursively)")
    parser.add_argument("-o", "--output", help="output file (default: standard output)")
    parser.add_argument("--format", choices=("csv", "json"), default="csv")
    parser.add_argument("--top-k", type=_positive, default=3)
    parser.add_argument("--batch-size", type=_positive, default=32)
    parser.add_argument("--explain", metavar="DIR", help="write a Grad-CAM overlay PNG per image into DIR")
    return parser.parse_args(argv)


def _explain_dir(explain: str | None) -> Path | None:
    if explain is None:
        return None
    folder = Path(explain)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"--explain {explain}: cannot make that folder ({exc.strerror}); give a folder") from None
    return folder


@cli
def main(argv: list[str] | None = None) -> int:
    """Run the command; returns the exit status."""
    from tqdm import tqdm

    args = parse_args(argv)
    files, errors = expand_inputs(args.inputs)
    for error in errors:
        print(f"error: {error['path']}: {error['error']}", file=sys.stderr)
    if not files:
        raise DataError(f"no image files to predict in {', '.join(map(printable, args.inputs))}")
    if args.output:
        model = Path(args.model)
        check_output(Path(args.output), [*files, model, model.parent / LABELS_FILE])
    explain_dir = _explain_dir(args.explain)
    model, classes, image_size = load_model_and_labels(args.model)
    writer = open_rows(args.output, args.format, classes, errors)
    try:
        batches = predict_batches(
            model,
            classes,
            image_size,
            files,
            batch_size=args.batch_size,
            top_k=min(args.top_k, len(classes)),
            explain_dir=explain_dir,
        )
        for rows, batch_errors in batches:
            writer.add(rows, batch_errors)
            for error in batch_errors:  # on a line of its own, not after the progress bar
                tqdm.write(f"error: {error['path']}: {error['error']}", file=sys.stderr)
    except SkinLesionError as exc:
        raise DataError(f"{exc}; the {writer.count} predictions before it are in {writer.where}") from None
    finally:
        writer.close()
    print(f"predicted {writer.count} image(s); {len(writer.errors)} failed", file=sys.stderr)
    return 1 if writer.errors else 0


if __name__ == "__main__":
    sys.exit(main())
