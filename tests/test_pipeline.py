"""End to end: the real `dvc repro` on a tiny config in a temporary copy of the repository."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from .conftest import REPO

GIT_ID = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
}
GENERATED = ("dvc.lock", "metrics/", "plots/", "reports/", "models/")


def tiny_params() -> dict:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["seeds"] = [0]
    params["data"]["synthetic"].update(n_images=120, image_size=32)
    params["train"].update(epochs_head=3, epochs_finetune=2, batch_size=16)
    params["mobilenet"]["image_size"] = 32
    params["vgg19"]["image_size"] = 32
    params["inceptionv3"]["image_size"] = 75
    params["augment"]["preview_per_class"] = 1
    return params


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    root = tmp_path_factory.mktemp("project")
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout.splitlines()
    for rel in listed:
        if rel.startswith(GENERATED) or not (REPO / rel).is_file():
            continue
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, root / rel)
    (root / "params.yaml").write_text(yaml.safe_dump(tiny_params(), sort_keys=False))
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "tiny"]):
        subprocess.run(cmd, cwd=root, check=True, env=env())
    return root


def env() -> dict:
    out = dict(os.environ) | GIT_ID
    out["PATH"] = str(Path(sys.executable).parent) + os.pathsep + out["PATH"]
    out["PYTHONPATH"] = "."
    out["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return out


def dvc(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, env=env(), capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def test_kill_during_training_then_repro_resumes(project: Path):
    dvc(project, "repro", "augment-preview")
    proc = subprocess.Popen(
        [sys.executable, "-m", "dvc", "repro", "train@mobilenet-0"],
        cwd=project,
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 240
    while not list((project / ".cache" / "train").rglob("finetune.json")) and time.time() < deadline:
        assert proc.poll() is None, "training finished before it could be interrupted"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    rerun = dvc(project, "repro", "train@mobilenet-0")
    assert "resuming after epoch 1" in rerun.stdout + rerun.stderr
    history = (project / "plots" / "mobilenet" / "seed0" / "history.csv").read_text().splitlines()
    assert len(history) == 1 + 3 + 2


def test_full_repro_status_and_no_op_second_run(project: Path):
    dvc(project, "repro")
    for rel in (
        "metrics/metrics.json",
        "metrics/summary.json",
        "metrics/data.json",
        "reports/report.md",
        "models/model.keras",
        "models/labels.json",
        "plots/comparison.png",
        "plots/augment_preview.png",
        "metrics/inceptionv3/seed0.json",
        "plots/vgg19/seed0/confusion.png",
        "metrics/mobilenet/seed0/predictions.csv",
        "plots/gradcam.png",
        "models/MODEL_CARD.md",
        "models/export/model.tflite",
        "models/export/saved_model/saved_model.pb",
        "metrics/export.json",
    ):
        assert (project / rel).exists(), rel
    assert "Data and pipelines are up to date" in dvc(project, "status").stdout
    second = dvc(project, "repro").stdout
    assert "Running stage" not in second
    shown = dvc(project, "metrics", "show", "--json").stdout
    assert "balanced_accuracy" in shown and "metrics/vgg19/seed0.json" in shown
    headline = json.loads((project / "metrics" / "metrics.json").read_text())
    assert headline["model"] == "mobilenet" and headline["selected_seed"] == 0
    agreement = json.loads((project / "metrics" / "export.json").read_text())
    assert agreement["label_agreement"] == 1.0 and agreement["max_abs_diff"] < 0.02


def test_changing_model_reruns_only_aggregate_and_export(project: Path):
    subprocess.run(["git", "add", "-A"], cwd=project, check=True, env=env())
    subprocess.run(["git", "commit", "-qm", "baseline"], cwd=project, check=True, env=env())
    out = dvc(project, "exp", "run", "-S", "model=inceptionv3")
    ran = [line for line in (out.stdout + out.stderr).splitlines() if line.startswith("Running stage")]
    assert ran == ["Running stage 'aggregate':", "Running stage 'export':"]  # nothing trains or re-evaluates
    diff = dvc(project, "metrics", "diff", "--json").stdout
    assert "metrics/metrics.json" in diff
    assert json.loads((project / "metrics" / "metrics.json").read_text())["model"] == "inceptionv3"


def test_plots_show_writes_html(project: Path):
    out = dvc(project, "plots", "show", "-o", "html_out")
    page = (project / "html_out" / "index.html").read_text()
    # DVC names each plot after its file path.
    for name in ("confusion", "confusion_normalized", "history", "calibration", "roc"):
        assert f"plots_mobilenet_seed0_{name}_csv" in page, (name, out.stdout)
    assert "plots/vgg19/seed0/confusion.png" in page


def test_editing_one_backbone_section_affects_only_its_runs(project: Path):
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["vgg19"]["dropout"] = 0.5
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    changed = json.loads(dvc(project, "status", "--json").stdout)
    assert sorted(changed) == ["train@vgg19-0"]


def test_adding_seeds_adds_runs_without_touching_existing_ones(project: Path):
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["seeds"] = [0, 1]
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    changed = set(json.loads(dvc(project, "status", "--json").stdout))
    assert {"train@mobilenet-1", "train@vgg19-1", "train@inceptionv3-1"} <= changed
    assert not {"train@mobilenet-0", "train@inceptionv3-0", "evaluate@mobilenet-0"} & changed
