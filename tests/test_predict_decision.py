"""skinlesion-predict applies the decision rules its model folder ships: sets, refer and malignant per image.

The rules come from ``metadata.json`` (nothing is re-derived at prediction time) and give what the
aggregate stage computes for the same images: crepes' conformal sets from the same calibration images,
the referral and malignant thresholds applied to evaluate's probabilities. A folder without them still
predicts, and every row says they are unavailable.
"""

import json
import shutil
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import pytest

from skinlesion.core.images import load_batch
from skinlesion.core.labels import LabelMap
from skinlesion.deploy import description as described
from skinlesion.deploy.predict import model_decision
from skinlesion.evaluation.evaluate import predict_probabilities
from skinlesion.modeling.model import load_classifier
from skinlesion.uncertainty import conformal
from skinlesion.uncertainty.decision import UNAVAILABLE, decide, decision_block

from .conftest import make_class_tree
from .test_predict import CLASSES, run_cli, save_model

SCHEMA = json.loads((Path(described.__file__).parent / described.SCHEMA_FILE).read_text())
ALPHAS = (0.1, 0.2)


def _decision(y: np.ndarray, probs: np.ndarray) -> dict:
    """The rules as the aggregate stage writes them, calibrated on ``(y, probs)``."""
    levels = [
        {
            "alpha": a,
            "quantiles": dict(zip(CLASSES, conformal.class_quantiles(y, probs, a), strict=True)),
            "calibration_images": dict(zip(CLASSES, np.bincount(y, minlength=len(CLASSES)).tolist(), strict=True)),
        }
        for a in ALPHAS
    ]
    return decision_block(
        {"score": conformal.SCORE, "calibration": "one validation image per lesion", "levels": levels},
        {"score": "maximum calibrated probability", "threshold": float(np.median(probs.max(1))), "target_error": 0.1},
        {"classes": ["bcc", "mel"], "threshold": float(np.median(probs[:, [1, 4]].sum(1))), "target_specificity": 0.9},
    )


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict:
    """A model folder with a decision block calibrated on 'validation' images, one without, and test images."""
    import keras

    keras.utils.set_random_seed(0)
    root = tmp_path_factory.mktemp("decision")
    path = save_model(root / "new")
    model = load_classifier(path)
    size = LabelMap.read(path.parent).image_size
    make_class_tree(root / "val", {"v": 60})
    make_class_tree(root / "test", {"t": 12}, start=100)
    val_files, test_files = (sorted((root / s).rglob("*.png")) for s in ("val", "test"))
    p_val = predict_probabilities(model, load_batch(val_files, size))
    y_val = np.random.default_rng(0).choice([0, 1, 5], len(val_files))  # 3 classes of ~20, the rest none
    decision = _decision(y_val, p_val)
    counts = {"train": dict.fromkeys(CLASSES, 1), "validation": dict.fromkeys(CLASSES, 1)}
    data = {"source": "synthetic", "licence": "NONE", "class_counts": counts}
    run = described.describe_run(LabelMap.read(path.parent), backbone="mobilenet", seed=0, data=data)
    written = described.write_description(path.parent, run | {"decision": decision})
    shutil.copytree(root / "new", root / "old")
    (root / "old" / "metadata.json").unlink()  # a folder from before models described themselves
    expected = predict_probabilities(model, load_batch(test_files, size))
    return {"root": root, "written": written, "cal": (y_val, p_val), "test": test_files, "expected": expected}


def test_the_decision_block_is_valid_metadata(folders: dict):
    jsonschema.Draft202012Validator(SCHEMA).validate(folders["written"])
    quantiles = folders["written"]["decision"]["conformal"]["levels"][0]["quantiles"]
    # Classes without calibration images ship no threshold: always in the set (the fallback).
    assert quantiles["df"] is None and quantiles["akiec"] is not None


def test_predict_gives_the_sets_and_flags_evaluate_computes_for_the_same_images(folders: dict, tmp_path: Path):
    root, files = folders["root"], folders["test"]
    out = tmp_path / "rows.json"
    proc = run_cli(str(root / "new" / "model.keras"), *map(str, files), "--format", "json", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(out.read_text())["predictions"]
    by_path = {r["path"]: r for r in rows}
    rows = [by_path[str(f)] for f in files]
    expected, (y_cal, p_cal) = folders["expected"], folders["cal"]
    for alpha, column in zip(ALPHAS, ("set_90", "set_80"), strict=True):
        crepes = conformal.crepes_sets(y_cal, p_cal, expected, alpha)  # what the aggregate stage measures
        got = np.array([[c in r[column].split(";") for c in CLASSES] for r in rows])
        np.testing.assert_array_equal(got, crepes)
        assert got.sum(1).min() < len(CLASSES)  # not every class: the sets say something
    decision = folders["written"]["decision"]
    reference = decide(decision, expected, CLASSES)
    assert [r["refer"] for r in rows] == [r["refer"] for r in reference]
    assert [r["malignant"] for r in rows] == [r["malignant"] for r in reference]
    # The thresholds come from the folder: a stricter referral threshold there refers every image.
    assert any(r["refer"] for r in rows) and not all(r["refer"] for r in rows)
    strict = json.loads((root / "new" / "metadata.json").read_text())
    strict["decision"]["referral"]["threshold"] = 1.000001
    copy = tmp_path / "strict"
    shutil.copytree(root / "new", copy)
    (copy / "metadata.json").write_text(json.dumps(strict))
    csv = tmp_path / "rows.csv"
    proc = run_cli(str(copy / "model.keras"), *map(str, files), "-o", str(csv))
    frame = pd.read_csv(csv)
    assert proc.returncode == 0 and frame["refer"].all()
    leading = ["path", "predicted", "probability", "top_k", "malignant", "refer", "set_90", "set_80"]
    assert list(frame.columns[:8]) == leading


def test_an_old_model_folder_still_predicts_and_says_sets_and_referral_are_unavailable(folders: dict, tmp_path: Path):
    root, files = folders["root"], folders["test"][:3]
    proc = run_cli(str(root / "old" / "model.keras"), *map(str, files), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)["predictions"]
    assert len(rows) == 3 and all(r["refer"] is None and r["malignant"] is None for r in rows)
    assert all(r["note"] == UNAVAILABLE for r in rows) and not any(k.startswith("set_") for k in rows[0])
    csv = run_cli(str(root / "old" / "model.keras"), *map(str, files))
    assert csv.returncode == 0 and "note" in csv.stdout.splitlines()[0]


BROKEN = {
    "a class missing from a level's quantiles": lambda d: d["conformal"]["levels"][0]["quantiles"].pop("vasc"),
    "a malignant class the model lacks": lambda d: d["malignant"].update(classes=["melanoma"]),
    "a referral threshold as text": lambda d: d["referral"].update(threshold="0.5"),
    "no levels": lambda d: d["conformal"].pop("levels"),
    "alpha as text": lambda d: d["conformal"]["levels"][0].update(alpha="ten"),
    "two levels of one alpha": lambda d: d["conformal"]["levels"][1].update(alpha=0.1),
    "no referral": lambda d: d.pop("referral"),
}


@pytest.mark.parametrize("break_it", list(BROKEN.values()), ids=list(BROKEN))
def test_a_broken_decision_block_is_refused_in_one_line_naming_metadata_json(folders: dict, tmp_path: Path, break_it):
    copy = tmp_path / "broken"
    shutil.copytree(folders["root"] / "new", copy)
    description = json.loads((copy / "metadata.json").read_text())
    break_it(description["decision"])
    (copy / "metadata.json").write_text(json.dumps(description))
    path = copy / "model.keras"
    with pytest.raises(described.DataError, match=r"metadata\.json: .*decision|metadata\.json: the quantiles"):
        model_decision(described.check_description(path, CLASSES), path, CLASSES)
    intact = folders["root"] / "new" / "model.keras"
    assert model_decision(described.check_description(intact, CLASSES), intact, CLASSES) is not None


def test_predict_refuses_a_description_of_other_classes_before_any_image(folders: dict, tmp_path: Path):
    copy = tmp_path / "reversed"
    shutil.copytree(folders["root"] / "new", copy)
    description = json.loads((copy / "metadata.json").read_text())
    description["classes"] = description["classes"][::-1]
    (copy / "metadata.json").write_text(json.dumps(description))
    proc = run_cli(str(copy / "model.keras"), str(folders["test"][0]), "--format", "json")
    assert proc.returncode == 2 and not proc.stdout
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "metadata.json lists the classes" in errors[0] and "Traceback" not in proc.stderr
