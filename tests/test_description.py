"""metadata.json: every model folder the pipeline writes describes itself, valid against the shipped schema."""

import hashlib
import importlib.util
import json
import shutil
import subprocess
import sys
import tomllib
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest
import yaml

from skinlesion.core import layout
from skinlesion.core.labels import LabelMap
from skinlesion.core.layout import RunPaths
from skinlesion.core.modes import Source
from skinlesion.deploy import description as described

from .conftest import REPO, default_config, make_class_tree
from .test_stages import _tiny_project

SCHEMA_PATH = Path(described.__file__).parent / described.SCHEMA_FILE
SCHEMA = json.loads(SCHEMA_PATH.read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
RUN, OTHER_SEED = RunPaths("mobilenet", 0), RunPaths("mobilenet", 1)
# A realistic evaluation block: the shapes aggregate has (metrics/metrics.json, summary.json's selection and
# operating points), cut down.
EVALUATION = {
    "confidence": 0.95,
    "temperature": 1.0,
    "metrics": {
        "val": {"balanced_accuracy": 0.61, "accuracy": 0.64, "macro_f1": 0.6, "roc_auc_macro": 0.83},
        "test": {"balanced_accuracy": 0.51, "accuracy": 0.54, "roc_auc_macro": 0.82, "calibration_error": 0.0},
        "ci": {"balanced_accuracy": {"low": 0.43, "high": 0.6}, "calibration_error": {"low": 0.0, "high": 0.15}},
        "seeds": {"balanced_accuracy": {"mean": 0.45, "std": 0.09}},
    },
    "operating_points": {
        "malignant_vs_benign": {
            "classes": ["bcc", "mel"],
            "fixed": {
                "sensitivity_at_specificity_0.9": {
                    "target": 0.9,
                    "threshold": 0.43,
                    "validation": {"sensitivity": 0.59, "specificity": 0.9},
                    "test": {"sensitivity": {"value": 0.58, "low": 0.43, "high": 0.71, "n": 45}},
                }
            },
        }
    },
    "selection": {
        "rule": "auto",
        "candidates": [
            {"name": "mobilenet", "kind": "single run", "runs": ["mobilenet-0"], "val_balanced_accuracy": 0.61},
            {"name": "ensemble-mobilenet", "kind": "seed ensemble", "val_balanced_accuracy": 0.6},
        ],
    },
}


def failing(document: dict) -> set[tuple[str, tuple]]:
    """What the schema rejects in a document: (validator, where) pairs; empty when it is valid."""
    return {(error.validator, tuple(error.absolute_path)) for error in VALIDATOR.iter_errors(document)}


def _train_stage():
    spec = importlib.util.spec_from_file_location("train_stage", REPO / "stages" / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A tiny project where the train stage really ran (stages/train.py, mobilenet seed 0, 32 px, 3 epochs)."""
    from skinlesion.data.synthetic import generate

    images = tmp_path_factory.mktemp("images")
    generate(images, 48, 32, seed=2, workers=1, progress=False)
    root = _tiny_project(tmp_path_factory.mktemp("tiny") / "project", images, "none")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        assert _train_stage().main(["--backbone", RUN.backbone, "--seed", str(RUN.seed)]) == 0
    return root


def _lock(root: Path, runs: list[RunPaths]) -> dict:
    """Write a dvc.lock with a train entry per run, as DVC records one; returns the deps hashes per stage."""
    deps = {"data/splits": "bff82d3638ddbd306fd7954aefe85e0b.dir", "skinlesion/modeling/run.py": "3e" * 16}
    stages = {
        f"train@{run.name}": {
            "cmd": f"python stages/train.py --backbone {run.backbone} --seed {run.seed}",
            "deps": [{"hash": "md5", "md5": md5, "path": path, "size": 1} for path, md5 in deps.items()],
            "outs": [{"hash": "md5", "md5": "0" * 32, "path": str(run.model_dir)}],
        }
        for run in runs
    }
    (root / layout.DVC_LOCK).write_text(yaml.safe_dump({"schema": "2.0", "stages": stages}))
    return {name: deps for name in stages}


def _second_run(root: Path) -> None:
    """runs/mobilenet/seed1: the trained run's model under another seed (its description says seed 1)."""
    shutil.rmtree(root / OTHER_SEED.model_dir, ignore_errors=True)
    shutil.copytree(root / RUN.model_dir, root / OTHER_SEED.model_dir)
    own = described.read_description(root / OTHER_SEED.model_dir)
    described.write_description(root / OTHER_SEED.model_dir, own | {"model": own["model"] | {"seed": OTHER_SEED.seed}})


def _publish(root: Path, monkeypatch, members: tuple[RunPaths, ...], evaluation: dict | None) -> dict:
    """Publish the headline of ``members`` with the real publish_headline; returns its metadata.json."""
    from skinlesion.evaluation.headline import SEED_ENSEMBLE, SINGLE_RUN, Candidate, Headline
    from skinlesion.evaluation.publish import publish_headline

    monkeypatch.chdir(root)
    shutil.rmtree(layout.HEADLINE_MODEL, ignore_errors=True)
    if len(members) == 1:
        headline = Headline(Candidate(RUN.backbone, SINGLE_RUN, members, 0.6), 1.0)
    else:
        headline = Headline(Candidate(f"ensemble-{RUN.backbone}", SEED_ENSEMBLE, members, 0.6), 1.3)
    publish_headline(headline, evaluation=evaluation)
    return json.loads((layout.HEADLINE_MODEL / layout.METADATA_FILE).read_text())


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_schema_is_draft_2020_12_and_shipped_as_package_data():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert SCHEMA["additionalProperties"] is False and SCHEMA["$id"] == described.SCHEMA_ID
    globs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["skinlesion"]
    shipped = SCHEMA_PATH.relative_to(REPO / "skinlesion")
    assert any(shipped.match(glob) for glob in globs)


def test_a_run_folder_written_by_training_describes_itself(project: Path):
    folder = project / RUN.model_dir
    description = json.loads((folder / layout.METADATA_FILE).read_text())
    assert failing(description) == set()
    labels = LabelMap.read(folder)  # labels.json is still written as before, and agrees
    assert description["classes"] == list(labels.classes) and description["temperature"] == labels.temperature
    assert description["network_data_format"]["inputs"]["image"]["image_size"] == labels.image_size == 32
    assert description["model"] == {"name": "mobilenet", "backbone": "mobilenet", "seed": 0}
    assert description["version"]["model_sha256"] == _sha256(folder / layout.MODEL_FILE)
    assert "trained_from" not in description["version"] and "evaluation" not in description  # known later
    # The class counts are the splits' (train.csv and val.csv: every other image of the 48).
    import pandas as pd

    for split, key in (("train", "train"), ("val", "validation")):
        counts = pd.read_csv(project / layout.split_csv(split))["label"].value_counts().to_dict()
        assert description["data"]["class_counts"][key] == {c: counts.get(c, 0) for c in labels.classes}
    assert description["data"] == description["data"] | {"source": "synthetic", "licence": "NONE"}


def test_the_headline_of_a_run_describes_itself_with_the_lock_hashes_and_the_evaluation(project: Path, monkeypatch):
    hashes = _lock(project, [RUN])
    for evaluation in (None, EVALUATION):
        description = _publish(project, monkeypatch, (RUN,), evaluation)
        assert failing(description) == set()
        assert description["version"]["trained_from"] == hashes
        assert description["version"]["model_sha256"] == _sha256(project / layout.HEADLINE_MODEL / layout.MODEL_FILE)
        run = json.loads((project / RUN.model_dir / layout.METADATA_FILE).read_text())
        assert description["data"] == run["data"] and description["model"] == run["model"]
        assert description.get("evaluation") == evaluation
    # Published by hand, with no dvc.lock entry for the run: the hashes are left out, not guessed.
    (project / layout.DVC_LOCK).unlink()
    description = _publish(project, monkeypatch, (RUN,), None)
    assert failing(description) == set() and "trained_from" not in description["version"]


def test_an_ensemble_headline_lists_its_members_and_its_own_temperature(project: Path, monkeypatch):
    _second_run(project)
    hashes = _lock(project, [RUN, OTHER_SEED])
    description = _publish(project, monkeypatch, (RUN, OTHER_SEED), EVALUATION)
    assert failing(description) == set()
    assert description["members"] == [{"backbone": "mobilenet", "seed": s, "image_size": 32} for s in (0, 1)]
    assert description["model"] == {"name": "ensemble-mobilenet"} and description["temperature"] == 1.3
    assert description["version"]["trained_from"] == hashes
    assert description["version"]["model_sha256"] == _sha256(project / layout.HEADLINE_MODEL / layout.MODEL_FILE)
    assert description["version"]["model_sha256"] != _sha256(project / RUN.model)  # the ensemble's own file
    # One member's training stage missing from dvc.lock: no hashes rather than some (a reader would take them
    # for the whole model's).
    _lock(project, [OTHER_SEED])
    assert "trained_from" not in _publish(project, monkeypatch, (RUN, OTHER_SEED), None)["version"]
    # An ensemble that named one member's backbone and seed as its own would be rejected.
    assert ("not", ("model",)) in failing(description | {"model": {"name": "x", "backbone": "mobilenet", "seed": 0}})


def test_a_misspelt_or_missing_field_is_rejected(project: Path):
    valid = described.read_description(project / RUN.model_dir)
    assert failing(valid) == set()
    assert failing(valid | {"clases": valid["classes"]}) == {("additionalProperties", ())}
    assert failing({k: v for k, v in valid.items() if k != "classes"}) == {("required", ())}
    assert failing({k: v for k, v in valid.items() if k != "data"}) == {("required", ())}
    data = {k: v for k, v in valid["data"].items() if k != "licence"} | {"license": "NONE"}
    assert failing(valid | {"data": data}) == {("additionalProperties", ("data",)), ("required", ("data",))}
    # The fields known only after evaluation are optional, but checked when there.
    assert failing(valid | {"evaluation": {"metrics": EVALUATION["metrics"]}}) == {("required", ("evaluation",))}


def test_no_field_holds_a_git_commit(project: Path, monkeypatch):
    _lock(project, [RUN])
    headline = _publish(project, monkeypatch, (RUN,), EVALUATION)
    run = described.read_description(project / RUN.model_dir)
    texts = [json.dumps(d) for d in (run, headline)]
    git = ["git", "rev-parse", "HEAD"]
    head = subprocess.run(git, cwd=REPO, capture_output=True, text=True) if shutil.which("git") else None
    if head is not None and head.returncode == 0:  # a checkout (a copy of the sources may have no .git)
        commit = head.stdout.strip()
        assert not any(commit in text or commit[:12] in text for text in texts)

    def strings(value) -> list[str]:
        if isinstance(value, dict):
            return [s for k, v in value.items() for s in [k, *strings(v)]]
        return [s for v in value for s in strings(v)] if isinstance(value, list) else [str(value)]

    import re

    # A commit is 40 hex digits (SHA-1) or 64 (SHA-256 repositories): only the model file's hash may be 64.
    found = [s for d in (run, headline) for s in strings(d) if re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", s)]
    assert found == [run["version"]["model_sha256"], headline["version"]["model_sha256"]]
    assert not [s for d in (run, headline) for s in strings(d) if s in ("commit", "git_commit", "git")]


KAGGLE_SET = "vinayjayanti/skin-lesion-image-classification/versions/1"
HAM = "../shared/data/ham10000-224"
SOURCES = [
    (Source.KAGGLE, {"kaggle_dataset": KAGGLE_SET}, {"dataset": KAGGLE_SET, "licence": "CC-BY-NC-SA-4.0"}),
    (Source.KAGGLE, {"kaggle_dataset": "some/set"}, {"dataset": "some/set", "licence": "NOASSERTION"}),
    (Source.FOLDER, {"path": HAM}, {"path": HAM, "licence": "NOASSERTION"}),
    (Source.ZIP, {"path": "images.zip"}, {"path": "images.zip", "licence": "NOASSERTION"}),
    (Source.DERMAMNIST, {}, {"licence": "CC-BY-NC-4.0"}),
    (Source.DERMAMNIST_C, {"dermamnist_size": 224}, {"licence": "CC-BY-NC-4.0"}),
    (Source.SYNTHETIC, {}, {"licence": "NONE"}),
]


@pytest.mark.parametrize(("source", "extra", "expected"), SOURCES)
def test_every_data_source_is_described_with_its_licence(source, extra, expected):
    import numpy as np

    data = replace(default_config().data, source=source, **extra)
    labels = LabelMap(("bcc", "mel", "nv"), 64, 1.2)
    provenance = described.data_source(data)
    counts = described.class_counts(labels.classes, np.array([0, 0, 2]), np.array([1]))
    assert counts == {"train": {"bcc": 2, "mel": 0, "nv": 1}, "validation": {"bcc": 0, "mel": 1, "nv": 0}}
    assert {k: v for k, v in provenance.items() if k != "licence_url"} == {"source": str(source)} | expected
    doc = described.describe_run(labels, backbone="vgg19", seed=3, data=provenance | {"class_counts": counts})
    assert failing(doc | {"version": doc["version"] | {"model_sha256": "0" * 64}}) == set()


def _predict(model: Path, images: Path, capsys) -> tuple[int, dict, list[str]]:
    from skinlesion.deploy.predict import main

    status = main([str(model), str(images), "--format", "json"])
    out = capsys.readouterr()
    return status, json.loads(out.out) if out.out else {}, out.err.splitlines()


def test_predict_reports_the_description_and_still_predicts_older_folders(project: Path, tmp_path: Path, capsys):
    make_class_tree(tmp_path / "imgs", {"a": 2, "b": 1})
    folder = project / RUN.model_dir
    status, described_run, err = _predict(folder / layout.MODEL_FILE, tmp_path / "imgs", capsys)
    sha = described.read_description(folder)["version"]["model_sha256"]
    assert status == 0 and [line for line in err if line.startswith("model: ")] == [
        f"model: mobilenet seed 0 (skinlesion {described.versions()['skinlesion']}, TensorFlow "
        f"{described.versions()['tensorflow']}, Keras {described.versions()['keras']}; model.keras sha256 {sha[:12]})"
    ]
    # A folder written before models described themselves: model.keras and labels.json only.
    old = tmp_path / "old"
    old.mkdir()
    for name in (layout.MODEL_FILE, layout.LABELS_FILE):
        shutil.copy(folder / name, old / name)
    status, older, err = _predict(old / layout.MODEL_FILE, tmp_path / "imgs", capsys)
    assert status == 0 and older == described_run and set(older) == {"predictions", "errors"}
    assert len(older["predictions"]) == 3 and not [line for line in err if line.startswith(("model: ", "error:"))]
    # A metadata.json that describes another model file is refused, like another model's labels.json.
    other = json.loads((folder / layout.METADATA_FILE).read_text())
    other["version"]["model_sha256"] = "0" * 64
    (old / layout.METADATA_FILE).write_text(json.dumps(other))
    status, refused, err = _predict(old / layout.MODEL_FILE, tmp_path / "imgs", capsys)
    errors = [line for line in err if line.startswith("error:")]
    assert status == 2 and refused == {} and len(errors) == 1 and str(old / layout.METADATA_FILE) in errors[0]


def test_nothing_at_run_time_needs_jsonschema():
    code = "import sys, skinlesion.deploy.predict, skinlesion.modeling.run; print('jsonschema' in sys.modules)"
    shown = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0 and shown.stdout.strip() == "False", shown.stderr[-2000:]
