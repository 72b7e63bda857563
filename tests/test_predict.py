import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from skinlesion.core.backbones import get_backbone
from skinlesion.core.images import load_batch
from skinlesion.core.labels import LabelMap
from skinlesion.deploy.predict import load_model_and_labels, predict_files
from skinlesion.evaluation.evaluate import predict_probabilities
from skinlesion.modeling.augment import build_augmenter
from skinlesion.modeling.model import build_backbone, build_classifier

from .conftest import REPO, augment_on, corrupt_jpeg, make_class_tree

SIZES = {"mobilenet": 32, "vgg19": 32, "inceptionv3": 75}
CLASSES = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]


def save_model(folder: Path, name: str = "mobilenet", size: int | None = None) -> Path:
    size = size or SIZES[name]
    spec = get_backbone(name)
    base = build_backbone(spec, size, "none")
    clf = build_classifier(spec, base, size, len(CLASSES), 0.2, build_augmenter(augment_on(), seed=0))
    folder.mkdir(parents=True, exist_ok=True)
    LabelMap(tuple(CLASSES), size).save_model(clf.model, folder)  # as train saves it: classes inside
    return folder / "model.keras"


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    return save_model(tmp_path_factory.mktemp("model"))


def test_predictions_equal_what_evaluate_computes(model_path: Path, tmp_path: Path):
    make_class_tree(tmp_path / "imgs", {"a": 5, "b": 4})
    files = sorted((tmp_path / "imgs").rglob("*.png"))
    forward, classes = load_model_and_labels(model_path)
    rows, errors = predict_files(forward, classes, files, batch_size=4, progress=False)
    assert not errors and len(rows) == 9
    expected = predict_probabilities(forward.model, load_batch(files, forward.image_size))
    got = np.array([[r[f"p_{c}"] for c in classes] for r in rows])
    np.testing.assert_allclose(got, expected, atol=2e-6)
    assert [r["predicted"] for r in rows] == [classes[i] for i in expected.argmax(1)]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": str(Path(sys.executable).parent)}
    return subprocess.run(
        [sys.executable, "-m", "skinlesion.deploy.predict", *args], capture_output=True, text=True, cwd=REPO, env=env
    )


def test_cli_on_jpeg_folders_with_bad_files_and_a_bad_model(model_path: Path, tmp_path: Path, lesion_jpegs: Path):
    folders = sorted(p for p in lesion_jpegs.iterdir() if p.is_dir())[:2]
    jpeg = next(folders[0].glob("*.jpg")).read_bytes()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "corrupt.jpg").write_bytes(corrupt_jpeg(jpeg))
    (tmp_path / "bad" / "notes.txt").write_text("not an image")
    out = tmp_path / "pred.csv"
    missing = tmp_path / "missing.jpg"
    proc = run_cli(str(model_path), *map(str, folders), str(tmp_path / "bad"), str(missing), "-o", str(out))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    frame = pd.read_csv(out)
    expected = sum(len(list(f.glob("*.jpg"))) for f in folders)
    assert len(frame) == expected and {"path", "predicted", "probability", "top_k", "p_mel"} <= set(frame.columns)
    assert "corrupt.jpg: corrupt" in proc.stderr and "notes.txt: not_an_image" in proc.stderr
    assert f"{missing}: missing" in proc.stderr
    (tmp_path / "fake.keras").write_text("not a model")
    bad = run_cli(str(tmp_path / "fake.keras"), str(folders[0]))
    assert bad.returncode == 2 and "not a Keras model file" in bad.stderr and "Traceback" not in bad.stderr


# InceptionV3 (the slowest to build) runs in CI (`slow`); Grad-CAM finds each backbone's last block alike.
@pytest.mark.parametrize(
    "name", [name if name != "inceptionv3" else pytest.param(name, marks=pytest.mark.slow) for name in sorted(SIZES)]
)
def test_explain_writes_one_overlay_per_image_for_each_backbone(name: str, tmp_path: Path):
    path = save_model(tmp_path / "m", name)
    make_class_tree(tmp_path / "imgs", {"a": 2, "b": 1})
    forward, classes = load_model_and_labels(path)
    files = sorted((tmp_path / "imgs").rglob("*.png"))
    predict_files(forward, classes, files, explain_dir=tmp_path / "cam", progress=False)
    overlays = sorted((tmp_path / "cam").glob("*.png"))
    assert [p.name for p in overlays] == sorted(f"{f.stem}_gradcam.png" for f in files)


def test_cli_exit_0_json_top_k_and_missing_label_map(model_path: Path, tmp_path: Path, capsys):
    from skinlesion.deploy.predict import main

    make_class_tree(tmp_path / "imgs", {"a": 2})
    # In this process (the command in a process of its own: test_cli_on_jpeg_folders_with_bad_files_and_a_bad_model,
    # and tests/test_packaging.py).
    assert main([str(model_path), str(tmp_path / "imgs"), "--top-k", "2", "--format", "json"]) == 0
    ok = capsys.readouterr()
    assert [line for line in ok.err.splitlines() if line.startswith("error:")] == []
    result = json.loads(ok.out)
    rows = result["predictions"]
    assert len(rows) == 2 and result["errors"] == [] and all(len(r["top_k"].split(";")) == 2 for r in rows)
    assert [r["predicted"] for r in rows] == [r["top_k"].split(":")[0] for r in rows]
    # An input that is not there: listed under "errors", the others still predicted, exit status 1.
    assert main([str(model_path), str(tmp_path / "imgs"), str(tmp_path / "missing.jpg"), "--format", "json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert len(result["predictions"]) == 2 and [e["path"] for e in result["errors"]] == [str(tmp_path / "missing.jpg")]
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    (lonely / "model.keras").write_bytes(model_path.read_bytes())  # a model without its labels.json
    missing = run_cli(str(lonely / "model.keras"), str(tmp_path / "imgs"))
    assert missing.returncode == 2 and "labels.json" in missing.stderr and "Traceback" not in missing.stderr
    # Only the command's own lines are read: TensorFlow's start-up log differs between CPUs (oneDNN's note
    # mentions "errors"), so a word count over all of standard error would depend on the machine.
    assert len([line for line in missing.stderr.splitlines() if line.startswith("error:")]) == 1


def test_console_script_runs_the_deploy_cli():
    import importlib
    import tomllib

    from skinlesion.deploy import predict

    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, attribute = scripts["skinlesion-predict"].partition(":")
    assert getattr(importlib.import_module(module), attribute) is predict.main
