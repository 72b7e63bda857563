"""Predict (and optionally explain) new images with a saved classifier.

Usage::

    skinlesion-predict models/headline/model.keras IMAGE_OR_FOLDER [...] [-o predictions.csv]
        [--format csv|json] [--top-k 3] [--batch-size 32] [--explain DIR]

Class names and the input size come from ``labels.json`` beside the model. Files that cannot be read
are reported one line each with the reason; the others are still predicted. Exit status: 0 when every
file was predicted, 1 when some failed, 2 when nothing could be done (bad model, bad arguments).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from skinlesion.core.errors import cli
from skinlesion.core.images import ImageLoadError, load_array
from skinlesion.core.io import write_csv, write_text
from skinlesion.core.layout import LabelMap, probability_column


def expand_inputs(inputs: list[str]) -> tuple[list[Path], list[dict]]:
    """Files given directly, plus every file under the folders given (sorted); missing paths as errors."""
    files, errors = [], []
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        elif path.is_file():
            files.append(path)
        else:
            errors.append({"path": raw, "error": "missing: no such file or folder"})
    return files, errors


def load_model_and_labels(model_path: str | Path) -> tuple[object, list[str], int]:
    """Load a classifier and the label map (``labels.json``) saved beside it.

    Raises:
        SkinLesionError: One line naming the file when either cannot be read.
    """
    from skinlesion.modeling.model import load_classifier

    model_path = Path(model_path)
    model = load_classifier(model_path)
    labels = LabelMap.read(model_path.parent)
    return model, list(labels.classes), labels.image_size


def predict_files(
    model: object,
    classes: list[str],
    image_size: int,
    files: list[Path],
    *,
    batch_size: int = 32,
    top_k: int = 3,
    explain_dir: Path | None = None,
    progress: bool = True,
) -> tuple[list[dict], list[dict]]:
    """Predict every file, in batches, with the same loader and resizing as evaluate.

    Args:
        model: The classifier.
        classes: Class names in output order.
        image_size: Side length the images are loaded at.
        files: Image files.
        batch_size: Images per forward pass.
        top_k: Labels listed per image.
        explain_dir: Where to write one Grad-CAM overlay PNG per image, or ``None``.
        progress: Show a progress bar.

    Returns:
        One row per predicted image, and one error entry per file that could not be read.
    """
    from tqdm import tqdm

    rows, errors = [], []
    cam = None
    if explain_dir is not None:
        from skinlesion.evaluation.explain import GradCam

        cam = GradCam(model)
    bar = tqdm(total=len(files), desc="predict", unit="img", disable=not progress, file=sys.stderr)
    for start in range(0, len(files), batch_size):
        batch, arrays = [], []
        for path in files[start : start + batch_size]:
            try:
                arrays.append(load_array(path, image_size))
                batch.append(path)
            except ImageLoadError as exc:
                errors.append({"path": str(path), "error": f"{exc.reason}: {exc.detail}"})
        bar.update(len(files[start : start + batch_size]))
        if not batch:
            continue
        images = np.stack(arrays)
        # One batch: predict_on_batch runs the model without building (and tearing down) a tf.data pipeline.
        probs = np.asarray(model.predict_on_batch(images))
        if cam is not None:
            _write_overlays(cam, images, batch, explain_dir)
        rows += [prediction_row(path, p, classes, top_k) for path, p in zip(batch, probs, strict=True)]
    bar.close()
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
    from skinlesion.evaluation.explain import overlay

    heats, _ = cam(images)
    out_dir.mkdir(parents=True, exist_ok=True)
    for path, heat in zip(paths, heats, strict=True):
        original = np.asarray(load_rgb(path))
        target = out_dir / f"{path.stem}_gradcam.png"
        n = 1
        while target.exists():  # same stem in two folders: keep both
            target = out_dir / f"{path.stem}_gradcam_{n}.png"
            n += 1
        with atomic_path(target) as tmp:
            Image.fromarray(overlay(original, heat)).save(tmp, format="PNG")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(prog="skinlesion-predict", description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a .keras classifier with labels.json beside it")
    parser.add_argument("inputs", nargs="+", help="image files and/or folders (searched recursively)")
    parser.add_argument("-o", "--output", help="output file (default: standard output)")
    parser.add_argument("--format", choices=("csv", "json"), default="csv")
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--explain", metavar="DIR", help="write a Grad-CAM overlay PNG per image into DIR")
    return parser.parse_args(argv)


@cli
def main(argv: list[str] | None = None) -> int:
    """Run the command; returns the exit status."""
    args = parse_args(argv)
    model, classes, image_size = load_model_and_labels(args.model)
    files, errors = expand_inputs(args.inputs)
    rows, read_errors = predict_files(
        model,
        classes,
        image_size,
        files,
        batch_size=args.batch_size,
        top_k=max(1, min(args.top_k, len(classes))),
        explain_dir=Path(args.explain) if args.explain else None,
    )
    errors += read_errors
    if args.format == "json":
        text = json.dumps({"predictions": rows, "errors": errors}, indent=2, ensure_ascii=False) + "\n"
    else:
        text = pd.DataFrame(rows).to_csv(index=False, lineterminator="\n") if rows else ""
    if args.output:
        if args.format == "json":
            write_text(args.output, text)
        else:
            write_csv(args.output, pd.DataFrame(rows))
    else:
        sys.stdout.write(text)
    for error in errors:
        print(f"error: {error['path']}: {error['error']}", file=sys.stderr)
    print(f"predicted {len(rows)} image(s); {len(errors)} failed", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
