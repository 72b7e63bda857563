"""Predict (and optionally explain) new images with a saved classifier.

Usage::

    skinlesion-predict models/headline/model.keras IMAGE_OR_FOLDER [...] [-o predictions.csv]
        [--format csv|json] [--top-k 3] [--batch-size 32] [--explain DIR] [--min-side 8] [--trust-labels]

Class names and the input size come from ``labels.json`` beside the model, which must be the one the
model was saved with (the model carries its own class list). A ``metadata.json`` beside it must describe
this model file (its SHA-256); its name and versions are reported on standard error. A folder without
one (written before models described themselves) predicts as before. Each row also applies the rules
``metadata.json``'s ``decision`` ships (:mod:`skinlesion.uncertainty.decision`): ``malignant`` at the
validated operating point, ``refer`` to a human, and the conformal prediction set at each level
(``set_90``...); a folder without them says so in a ``note`` column. Arguments are checked before any work:
``-o`` may not name an input, nor a folder. Files that cannot be read are reported one line each with
the reason; the others are still predicted, and CSV rows are written as they are produced, so a late
failure keeps every whole row before it (how ``-o`` is written safely: :mod:`skinlesion.deploy.outputs`).
A model without its class list is refused unless ``--trust-labels``. Exit status: 0 when every file was
predicted, 1 when some failed, 2 when nothing could be done (bad model, bad arguments, no input) or the run
stopped part-way.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np

from skinlesion.core.errors import DataError, SkinLesionError, cli
from skinlesion.core.images import ImageLoadError, check_side
from skinlesion.core.io import printable
from skinlesion.core.labels import LabelMap
from skinlesion.core.layout import LABELS_FILE, METADATA_FILE, probability_column
from skinlesion.deploy.description import check_description
from skinlesion.deploy.forward import Forward
from skinlesion.deploy.inputs import Inputs, expand_inputs
from skinlesion.deploy.outputs import check_output, open_output, open_rows
from skinlesion.uncertainty.decision import decide, decision_columns, decision_problem


def load_model_and_labels(model_path: str | Path, trust_labels: bool = False) -> tuple[Forward, list[str]]:
    """Load a classifier and the label map (``labels.json``) saved beside it, checked against each other.

    Returns:
        The model's forward pass (:class:`~skinlesion.deploy.forward.Forward`) and its class names.

    Args:
        model_path: The ``.keras`` file.
        trust_labels: Take labels.json as it is when the model carries no class list to check it against
            (``--trust-labels``); a warning line says so.

    Raises:
        SkinLesionError: One line naming the file when either cannot be read, when labels.json is not the one
            the model was saved with (other classes or size, or another number of classes), or when the model
            carries no class list and ``trust_labels`` is false.
    """
    from skinlesion.modeling.model import load_classifier

    model_path = Path(model_path)
    carried = LabelMap.of_model(model_path)  # missing, or not a Keras model file: said before loading TensorFlow
    labels = LabelMap.read(model_path.parent)
    labels.check_model(model_path)
    model = load_classifier(model_path)
    outputs = int(model.outputs[0].shape[-1])
    labels_path = model_path.parent / LABELS_FILE
    if outputs != len(labels.classes):  # a model saved before models carried their class list
        raise DataError(
            f"{labels_path} lists {len(labels.classes)} classes but {model_path} has {outputs} "
            "outputs: it belongs to another model; put the model's own labels.json beside it"
        )
    if carried is None and not trust_labels:
        raise DataError(
            f"{model_path} carries no class list (saved before models carried one, or re-saved by plain Keras), "
            f"so {labels_path} cannot be checked against it, and one of another model with as many classes would "
            "name every prediction wrongly: re-save the model with its class list (README, Predict and explain), "
            "or pass --trust-labels if this labels.json is the one it was trained with"
        )
    if carried is None:
        print(
            f"warning: {model_path} carries no class list: class names from {labels_path}, unchecked", file=sys.stderr
        )
    return Forward.of(model, labels), list(labels.classes)


def predict_batches(
    forward: Forward,
    classes: list[str],
    files: list[Path],
    *,
    batch_size: int = 32,
    row: RowRule | None = None,
    explain_dir: Path | None = None,
    progress: bool = True,
):
    """Predict every file, a batch at a time, with the same loader and resizing as evaluate.

    Args:
        forward: The loaded model (:func:`load_model_and_labels`).
        classes: Class names in output order.
        files: Image files.
        batch_size: Images per forward pass.
        row: Classes listed per image and the folder's decision rules (None: ``RowRule()``, no rules).
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

        cam = GradCam(forward.model)
    with tqdm(total=len(files), desc="predict", unit="img", disable=None if progress else True, file=sys.stderr) as bar:
        for start in range(0, len(files), batch_size):
            batch, arrays, errors = [], [], []
            for path in files[start : start + batch_size]:
                try:
                    arrays.append(forward.load(path))
                    batch.append(path)
                except ImageLoadError as exc:
                    errors.append({"path": str(path), "error": f"{exc.reason}: {exc.detail}"})
            bar.update(len(files[start : start + batch_size]))
            rows = _predict(forward, cam, batch, arrays, explain_dir, classes, row or RowRule()) if batch else []
            yield rows, errors


def _predict(
    forward, cam, batch: list[Path], arrays: list, explain_dir, classes: list[str], row: RowRule
) -> list[dict]:
    batches = forward.stack(arrays)
    try:
        rows = prediction_rows(forward, batch, batches, classes, row)
        if cam is not None:
            _write_overlays(cam, forward.explained(batches), batch, explain_dir)
    except Exception as exc:  # out of memory, a broken model graph...: stop, keeping what was written
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise DataError(
            f"the model failed on the batch starting with {batch[0]} ({type(exc).__name__}: {first})"
        ) from None
    return rows


def prediction_rows(
    forward: Forward, names: list, batches: list[np.ndarray], classes: list[str], row: RowRule
) -> list[dict]:
    """One forward pass over a batch and one output row per image: what predict writes and ``skinlesion-serve`` answers.

    Args:
        forward: The loaded model.
        names: What each row's ``path`` says (a file; an upload's name for the server).
        batches: The images as :meth:`Forward.stack` gives them.
        classes: Class names in output order.
        row: Classes listed per image and the folder's decision rules.
    """
    probs = forward.probabilities(batches)
    return [
        prediction_row(name, p, classes, row.top_k, decision=row.decision) for name, p in zip(names, probs, strict=True)
    ]


def predict_files(forward: Forward, classes: list[str], files: list[Path], **options) -> tuple:
    """:func:`predict_batches` collected: every row, and every error entry."""
    rows, errors = [], []
    for batch_rows, batch_errors in predict_batches(forward, classes, files, **options):
        rows += batch_rows
        errors += batch_errors
    return rows, errors


def prediction_row(path: Path, p: np.ndarray, classes: list[str], top_k: int, *, decision: dict | None) -> dict:
    """One output row (CSV and JSON alike), the only place one is built.

    The file, its top class and probability, the top ``top_k``; then the model folder's decision rules applied
    (:func:`~skinlesion.uncertainty.decision.decide`): ``malignant``, ``refer`` and the prediction set at each
    level (``set_90``...), or with ``decision`` None (a folder from before they were shipped) null flags and a
    ``note`` saying they are unavailable; last every class's probability.

    Args:
        path: The image file.
        p: Its probabilities, in the order of ``classes``.
        classes: Class names.
        top_k: Classes listed in ``top_k``.
        decision: The folder's ``decision`` block (:func:`model_decision`), or None.
    """
    order = np.argsort(-p, kind="stable")[:top_k]
    row = {"path": str(path), "predicted": classes[order[0]], "probability": round(float(p[order[0]]), 6)}
    row["top_k"] = ";".join(f"{classes[i]}:{p[i]:.4f}" for i in order)
    row |= decide(decision, p[None, :], classes)[0]
    return row | {probability_column(c): round(float(v), 6) for c, v in zip(classes, p, strict=True)}


def model_decision(description: dict | None, model_path: str | Path, classes: list[str]) -> dict | None:
    """The decision rules of a model folder's description (None: an older folder, or none written).

    Raises:
        DataError: One line naming ``metadata.json`` when the rules cannot be applied to this model
            (:func:`~skinlesion.uncertainty.decision.decision_problem`): before any image, not mid-batch.
    """
    decision = None if description is None else description.get("decision")
    problem = None if decision is None else decision_problem(decision, classes)
    if problem:
        where = Path(model_path).parent / METADATA_FILE
        raise DataError(f"{where}: {problem}; re-run `dvc repro aggregate` to write it again, or remove the block")
    return decision


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


def version_line(description: dict) -> str:
    """Which model predicts, from its folder's ``metadata.json``: name, versions, the model file's hash."""
    model, version = description["model"], description["version"]
    name = f"{model['name']} seed {model['seed']}" if "seed" in model else model["name"]
    return (
        f"{name} (skinlesion {version['skinlesion']}, TensorFlow {version['tensorflow']}, Keras {version['keras']}; "
        f"model.keras sha256 {version['model_sha256'][:12]})"
    )


class UsageParser(argparse.ArgumentParser):
    """argparse whose usage errors are the command's one ``error:`` line (exit status 2), like every other error.

    The commands' own parser (``skinlesion-predict``, ``skinlesion-serve``): the line names ``prog``.
    """

    def error(self, message: str):  # noqa: D102
        raise SkinLesionError(f"{message} (see {self.prog} --help)")


def positive_int(text: str) -> int:
    """An argument that must be an integer >= 1 (argparse ``type``)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1 (got {text!r})")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = UsageParser(prog="skinlesion-predict", description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a .keras classifier with labels.json beside it")
    parser.add_argument("inputs", nargs="+", help="image files and/or folders (searched recursively)")
    parser.add_argument("-o", "--output", help="output file (default: standard output)")
    parser.add_argument("--format", choices=("csv", "json"), default="csv")
    parser.add_argument("--top-k", type=positive_int, help=f"classes listed per image (default {TOP_K}, at most all)")
    parser.add_argument("--batch-size", type=positive_int, default=32)
    parser.add_argument("--explain", metavar="DIR", help="write a Grad-CAM overlay PNG per image into DIR")
    parser.add_argument(
        "--min-side",
        type=positive_int,
        default=MIN_SIDE,
        help=f"refuse images with a side under this many pixels (default {MIN_SIDE}, as split.min_side)",
    )
    parser.add_argument(
        "--trust-labels",
        action="store_true",
        help="take labels.json unchecked for a model that carries no class list (saved before models did)",
    )
    return parser.parse_args(argv)


# Classes listed per image when --top-k is not given (fewer when the model has fewer).
TOP_K = 3
# --min-side's default: the value of params.yaml's split.min_side (a test checks that they agree). The command
# runs without the project (an installed wheel, a copied model folder), and a model folder does not record
# the minimum its training data had, so the flag carries it; images split skipped, predict refuses.
MIN_SIDE = 8


class RowRule(NamedTuple):
    """How each row is built: classes listed (``--top-k``) and the model folder's decision rules."""

    top_k: int = TOP_K
    decision: dict | None = None


def _gather(args: argparse.Namespace) -> Inputs:
    """The files to predict, each once; every one left out is reported on a line of its own.

    Raises:
        DataError: When no file is left to predict.
    """
    found = expand_inputs(args.inputs)
    for path in list(found.files):
        try:
            check_side(path, args.min_side)
        except ImageLoadError as exc:
            found.files.remove(path)
            found.error(path, f"{exc.reason}: {exc.detail} (--min-side {args.min_side})")
    for error in found.errors:
        print(f"error: {error['path']}: {error['error']}", file=sys.stderr)
    for repeat in found.repeats:
        print(f"warning: {repeat['path']}: the file {repeat['first']} again; predicted once", file=sys.stderr)
    if not found.files:
        raise DataError(f"no image files to predict in {', '.join(map(printable, args.inputs))}")
    return found


def _top_k(asked: int | None, classes: list[str]) -> int:
    """``--top-k``, refused when it asks for more classes than the model has."""
    if asked is not None and asked > len(classes):
        raise DataError(f"--top-k {asked}: the model has {len(classes)} classes; give at most {len(classes)}")
    return asked or min(TOP_K, len(classes))


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
    found = _gather(args)
    files, errors = found.files, found.errors
    if args.output:
        model = Path(args.model)
        check_output(Path(args.output), [*files, model, model.parent / LABELS_FILE, model.parent / METADATA_FILE])
    explain_dir = _explain_dir(args.explain)
    out = open_output(args.output)  # created now: an output that cannot be written is refused before any work
    try:
        forward, classes = load_model_and_labels(args.model, args.trust_labels)
        description = check_description(args.model, classes)
        if description is not None:  # a folder from before metadata.json has labels.json alone: nothing to say
            print(f"model: {version_line(description)}", file=sys.stderr)
        row = RowRule(_top_k(args.top_k, classes), model_decision(description, args.model, classes))
        writer = open_rows(out, args.format, classes, errors, decision_columns(row.decision))
    except BaseException:
        out.close(keep=False)  # -o as it was
        raise
    batches = predict_batches(forward, classes, files, batch_size=args.batch_size, row=row, explain_dir=explain_dir)
    try:
        for rows, batch_errors in batches:
            writer.add(rows, batch_errors)
            for error in batch_errors:  # on a line of its own, not after the progress bar
                tqdm.write(f"error: {error['path']}: {error['error']}", file=sys.stderr)
    except SkinLesionError as exc:
        raise DataError(f"{exc}; the {writer.count} predictions before it are in {writer.where}") from None
    finally:
        batches.close()  # the progress bar ends its line before any error line
        writer.close()
    repeats = f"; {len(found.repeats)} given twice, predicted once" if found.repeats else ""
    print(f"predicted {writer.count} image(s); {len(writer.errors)} failed{repeats}", file=sys.stderr)
    return 1 if writer.errors else 0


if __name__ == "__main__":
    sys.exit(main())
