"""The model a server answers with: loaded once, checked as predict checks it, described for ``GET /model``.

Every answer is built by predict's own row function (:func:`skinlesion.deploy.predict.prediction_rows`), so
the server says what ``skinlesion-predict --format json`` says for the same image, and whatever predict adds
to its rows the server returns too.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from skinlesion.core.layout import MODEL_FILE
from skinlesion.deploy.forward import Forward
from skinlesion.deploy.predict import RowRule

# The malignant-vs-benign operating point the page applies when predict's rows carry no malignant flag:
# the threshold fixed on validation for this specificity (params.yaml's evaluate.target_specificity, the
# one the report's subgroup and external tables use; a test checks that they agree). A model folder does
# not name it, so the server carries it, as predict carries --min-side.
TARGET_SPECIFICITY = 0.9
OPERATING_VIEW = "malignant_vs_benign"
# The longest side of the Grad-CAM overlay sent back: enough for a screen, small enough for a response.
OVERLAY_SIDE = 448
# Headline figures of the model card, in the order the page's summary line gives them.
HEADLINE_METRICS = ("balanced_accuracy", "accuracy", "macro_f1", "roc_auc_macro")


@dataclass
class Upload:
    """One decoded image waiting for the model: its pixels as the model reads them, and what to answer with."""

    name: str
    pixels: list[np.ndarray]  # one array per input (:meth:`~skinlesion.deploy.forward.Forward.pixels`)
    original: np.ndarray | None = None  # the full decoded image, kept only when an overlay is asked for
    explain: bool = False


@dataclass
class ServedModel:
    """A model folder loaded for serving.

    Attributes:
        folder: The model folder.
        forward: The loaded model, run as predict runs it.
        classes: Class names in output order.
        description: The folder's ``metadata.json`` (None for a folder from before models described themselves).
        row: Classes listed per answer (predict's default) and the folder's decision rules.
    """

    folder: Path
    forward: Forward
    classes: list[str]
    description: dict | None
    row: RowRule
    _cam: object = field(default=None, repr=False)

    @classmethod
    def load(cls, folder: str | Path) -> ServedModel:
        """Load ``folder/model.keras`` with its labels.json and metadata.json, refused as predict refuses them.

        Raises:
            SkinLesionError: predict's own error, one line (a labels.json of another model, a foreign metadata.json).
        """
        from skinlesion.deploy.description import check_description
        from skinlesion.deploy.predict import TOP_K, load_model_and_labels, model_decision

        folder = Path(folder)
        path = folder if folder.suffix == ".keras" else folder / MODEL_FILE
        forward, classes = load_model_and_labels(path)
        description = check_description(path, classes)
        row = RowRule(min(TOP_K, len(classes)), model_decision(description, path, classes))
        return cls(path.parent, forward, classes, description, row)

    def warm_up(self) -> None:
        """Run the model on a batch of 1 and of 2, so that no request pays for building its graph.

        Keras traces its predict function for the first batch shapes it sees, then (``reduce_retracing``) one
        graph for any batch size: after two sizes, a micro-batch of any size runs without tracing (measured on
        the headline ensemble: 7.7 s and 8.3 s for the first two calls, then 0.1-2.8 s for sizes 1-16).
        """
        blank = Upload("warm-up", self.forward.blank())
        self.run_batch([blank])
        self.run_batch([blank, blank])

    def run_batch(self, uploads: list[Upload]) -> list[dict]:
        """One model call for the batch, predict's row for each; a Grad-CAM overlay where one was asked for."""
        from skinlesion.deploy.predict import prediction_rows

        batches = self.forward.stack([u.pixels for u in uploads])
        rows = prediction_rows(self.forward, [u.name for u in uploads], batches, self.classes, self.row)
        wanted = [i for i, u in enumerate(uploads) if u.explain]
        if not wanted:
            return rows
        try:
            heats, _ = self._gradcam()(self.forward.explained(batches)[wanted])
        except Exception as exc:  # only the requests that asked for an overlay lose it; their rows still stand
            for i in wanted:
                rows[i] = rows[i] | {"explain_error": f"no Grad-CAM overlay for this model ({type(exc).__name__})"}
            return rows
        for i, heat in zip(wanted, heats, strict=True):
            rows[i] = rows[i] | {"gradcam_png": _overlay_png(uploads[i].original, heat)}
        return rows

    def _gradcam(self):
        if self._cam is None:
            from skinlesion.modeling.explain import GradCam

            self._cam = GradCam(self.forward.model)
        return self._cam

    def info(self) -> dict:
        """``GET /model``: classes, input size, backbone, seed, temperature, operating point, headline figures."""
        from skinlesion.deploy.predict import version_line

        described = self.description or {}
        model = described.get("model", {})
        evaluation = described.get("evaluation", {})
        return {
            "name": model.get("name", self.folder.name),
            "classes": self.classes,
            "image_size": self.forward.image_size,
            "backbone": model.get("backbone"),
            "seed": model.get("seed"),
            "members": described.get("members"),
            "temperature": described.get("temperature"),
            "operating_point": operating_point(evaluation),
            "decision": described.get("decision"),  # the rules predict applies to each row, where shipped
            "metrics": headline_metrics(evaluation),
            "data_source": described.get("data", {}).get("source"),
            "intended_use": described.get("intended_use"),
            "version": version_line(described) if described else None,
            "summary": summary_line(described, self.folder.name),
        }


def operating_point(evaluation: dict) -> dict | None:
    """The validated malignant-vs-benign threshold at :data:`TARGET_SPECIFICITY`, with its test figures."""
    view = evaluation.get("operating_points", {}).get(OPERATING_VIEW)
    if not view:
        return None
    fixed = view.get("fixed", {}).get(f"sensitivity_at_specificity_{TARGET_SPECIFICITY}")
    if not fixed:
        return None
    test = fixed.get("test", {})
    return {
        "view": OPERATING_VIEW,
        "classes": view["classes"],
        "target_specificity": TARGET_SPECIFICITY,
        "threshold": fixed["threshold"],
        "rule": "malignant iff the summed probability of these classes >= threshold",
        "test_sensitivity": test.get("sensitivity", {}).get("value"),
        "test_specificity": test.get("specificity", {}).get("value"),
    }


def headline_metrics(evaluation: dict) -> dict:
    """The model card's test figures with their intervals: ``{metric: {value, low, high}}``."""
    metrics = evaluation.get("metrics", {})
    test, ci = metrics.get("test", {}), metrics.get("ci", {})
    return {m: {"value": test[m]} | ci.get(m, {}) for m in HEADLINE_METRICS if m in test}


def summary_line(description: dict, fallback: str) -> str:
    """The model card in one line: which model, on what data, its test balanced accuracy with its interval."""
    if not description:
        return f"{fallback}: no metadata.json (a folder from before models described themselves)"
    model = description["model"]
    name = f"{model['name']} seed {model['seed']}" if "seed" in model else model["name"]
    size = f"ensemble of {len(description['members'])} runs" if description.get("members") else "single run"
    figures = headline_metrics(description.get("evaluation", {})).get("balanced_accuracy")
    score = "not evaluated (a run's own folder)"
    if figures:
        interval = f" ({figures['low']:.3f}–{figures['high']:.3f})" if "low" in figures else ""
        score = f"test balanced accuracy {figures['value']:.3f}{interval}"
    source = description.get("data", {}).get("source", "unknown")
    return f"{name} ({size}, {len(description['classes'])} classes), trained on {source} data; {score}."


def _overlay_png(original: np.ndarray, heat: np.ndarray) -> str:
    from PIL import Image

    from skinlesion.modeling.explain import overlay

    image = Image.fromarray(original)
    image.thumbnail((OVERLAY_SIDE, OVERLAY_SIDE), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    Image.fromarray(overlay(np.asarray(image), heat)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
