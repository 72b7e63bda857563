"""End to end: the real `dvc repro` on a tiny config in a temporary copy of the repository."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from .conftest import REPO

GIT_ID = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
}
GENERATED = ("dvc.lock", "metrics/", "plots/", "reports/", "models/", "runs/")


def tiny_params() -> dict:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["seeds"] = [0]
    params["data"]["synthetic"].update(n_images=120, image_size=32)
    params["train"].update(epochs_head=8, epochs_finetune=2, batch_size=16)
    params["mobilenet"]["image_size"] = 32
    params["vgg19"]["image_size"] = 32
    params["inceptionv3"]["image_size"] = 75
    params["preview"]["per_class"] = 1
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


@pytest.fixture(scope="module")
def reproduced(project: Path) -> Path:
    """The tiny project after one full `dvc repro`, committed as `baseline`."""
    dvc(project, "repro")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "baseline")
    return project


@pytest.fixture
def repo(reproduced: Path):
    """The reproduced project; whatever a test changes is undone afterwards (tests share no state)."""
    base = git(reproduced, "rev-parse", "HEAD").strip()
    yield reproduced
    git(reproduced, "reset", "-q", "--hard", base)
    git(reproduced, "clean", "-qfd")  # untracked files; ignored ones (outputs, the DVC cache) stay
    for tag in git(reproduced, "tag").split():
        git(reproduced, "tag", "-d", tag)
    dvc(reproduced, "exp", "remove", "--all-commits", "-q", check=False)
    dvc(reproduced, "checkout", "--force")
    assert "Data and pipelines are up to date" in dvc(reproduced, "status").stdout


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


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, env=env(), check=True, capture_output=True, text=True).stdout


def edit_params(root: Path, edit) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    edit(params)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def changed_stages(root: Path) -> set[str]:
    return set(json.loads(dvc(root, "status", "--json").stdout))


def test_kill_during_training_then_repro_resumes(repo: Path):
    project = repo
    proc = subprocess.Popen(
        [sys.executable, "-m", "dvc", "repro", "--force", "train@mobilenet-0"],
        cwd=project,
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 240
    state_files = []
    while not state_files and time.time() < deadline:
        assert proc.poll() is None, "training finished before it could be interrupted"
        time.sleep(0.2)
        state_files = list((project / ".cache" / "train").rglob("finetune.json"))
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    # Where the kill landed is read from the checkpoint, not guessed from timing.
    state = json.loads(state_files[0].read_text())
    # --force: the outputs are in the DVC cache, and a plain repro would restore them instead of training.
    rerun = dvc(project, "repro", "--force", "train@mobilenet-0")
    if not state["done"]:
        assert f"resuming after epoch {state['epoch']}" in rerun.stdout + rerun.stderr
    log = project / "runs" / "mobilenet" / "seed0" / "train" / "plots" / "metrics" / "val" / "loss.tsv"
    assert log.read_text().splitlines()[0] == "step\tloss"
    epochs = json.loads((project / "runs" / "mobilenet" / "seed0" / "train" / "metrics.json").read_text())["epochs"]
    assert [int(line.split("\t")[0]) for line in log.read_text().splitlines()[1:]] == list(range(epochs))
    # The resumed run ends exactly where the uninterrupted baseline run did: nothing else changed.
    assert "Data and pipelines are up to date" in dvc(project, "status").stdout


def test_full_repro_status_and_no_op_second_run(repo: Path):
    project = repo
    for rel in (
        "metrics/metrics.json",
        "metrics/backbones.json",
        "metrics/export.json",
        "reports/data.json",
        "reports/report.md",
        "reports/summary.json",
        "models/headline/model.keras",
        "models/headline/labels.json",
        "plots/comparison.png",
        "plots/augment_preview.png",
        "plots/gradcam.png",
        "plots/curves.csv",
        "runs/inceptionv3/seed0/eval/metrics.json",
        "runs/vgg19/seed0/eval/predictions.csv",
        "runs/mobilenet/seed0/train/metrics.json",
        "runs/mobilenet/seed0/config.json",
        "models/MODEL_CARD.md",
        "models/export/model.tflite",
        "models/export/labels.json",
    ):
        assert (project / rel).exists(), rel
    assert "Data and pipelines are up to date" in dvc(project, "status").stdout
    assert "Running stage" not in dvc(project, "repro").stdout
    headline = json.loads((project / "metrics" / "metrics.json").read_text())
    selected = json.loads((project / "reports" / "summary.json").read_text())["headline"]
    assert selected["model"] == "mobilenet" and selected["seed"] == 0
    assert headline["test"] == selected["test"]  # the summary's headline block is metrics.json's, named
    # Training learns something on the held-out test split (6 classes, 18 test images, random frozen
    # backbones): the best run beats chance and the runs rank images better than chance on average.
    # Measured with other augmentation draws: best balanced accuracy 0.20-0.27, mean ROC-AUC 0.57-0.64.
    runs = [json.loads(p.read_text()) for p in sorted((project / "runs").glob("*/seed0/eval/metrics.json"))]
    classes = json.loads((project / "reports" / "data.json").read_text())["classes"]
    assert len(runs) == 3 and max(r["balanced_accuracy"] for r in runs) > 1 / classes
    assert np.mean([r["roc_auc_macro"] for r in runs]) > 0.55
    # The lean experiment table: headline first, few columns, few numbers.
    columns = dvc(project, "exp", "show", "--csv").stdout.splitlines()[0].split(",")
    assert columns.index("test.balanced_accuracy") < 25 and len(columns) <= 120
    shown = json.loads(dvc(project, "metrics", "show", "--json").stdout)
    numbers = [v for v in pd.json_normalize(shown).iloc[0] if isinstance(v, (int, float)) and not isinstance(v, bool)]
    assert 10 <= len(numbers) <= 100
    agreement = json.loads((project / "metrics" / "export.json").read_text())
    assert agreement == {"label_agreement": 1.0}  # the card has the rest (max |dp|, model size)
    # Outputs honour the umask (0644 under 022), not mkstemp's 0600.
    assert (project / "metrics" / "metrics.json").stat().st_mode & 0o044 == 0o044


def test_forced_retrain_to_same_weights_reruns_nothing_downstream(repo: Path):
    project = repo
    model = project / "runs" / "mobilenet" / "seed0" / "model" / "model.keras"
    before = model.read_bytes()
    dvc(project, "repro", "--force", "train@mobilenet-0")
    assert model.read_bytes() == before  # no save date or zip time in the file
    assert "Running stage" not in dvc(project, "repro").stdout
    assert git(project, "status", "--porcelain") == ""  # dvc.lock and every git-tracked output unchanged


def test_a_failed_rerun_leaves_every_file_of_the_run_restorable(repo: Path):
    project = repo
    run = project / "runs" / "mobilenet" / "seed0"
    before = {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()}
    (project / "broken.weights.h5").write_bytes(b"")  # exists (config accepts it), loads into nothing
    edit_params(project, lambda p: p["train"].update(weights="broken.weights.h5"))
    failed = dvc(project, "repro", "train@mobilenet-0", check=False)
    assert failed.returncode != 0 and "error: train.weights=broken.weights.h5" in failed.stdout + failed.stderr
    assert not (run / "model" / "model.keras").exists()  # DVC removed the outputs before running
    git(project, "checkout", "--", "params.yaml")
    (project / "broken.weights.h5").unlink()
    dvc(project, "checkout")
    after = {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert after == before and "Data and pipelines are up to date" in dvc(project, "status").stdout


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda p: p["preview"].update(views=3), {"augment-preview"}),
        (lambda p: p["runtime"].update(workers=1), set()),
        (lambda p: p["vgg19"].update(dropout=0.5), {"train@vgg19-0"}),
        (lambda p: p.update(model="inceptionv3"), {"aggregate"}),
        (None, {"evaluate@mobilenet-0", "evaluate@vgg19-0", "evaluate@inceptionv3-0", "aggregate", "export"}),
    ],
    ids=["preview", "runtime", "vgg19", "model", "evaluation-code"],
)
def test_status_names_exactly_the_affected_stages(repo: Path, change, expected):
    if change is None:  # an edit of evaluation code
        with (repo / "skinlesion" / "evaluation" / "evaluate.py").open("a") as f:
            f.write("\n# edited\n")
    else:
        edit_params(repo, change)
    assert changed_stages(repo) == expected


def test_changing_model_reruns_only_aggregate_and_export(repo: Path):
    project = repo
    out = dvc(project, "exp", "run", "-S", "model=inceptionv3")
    ran = [line for line in (out.stdout + out.stderr).splitlines() if line.startswith("Running stage")]
    assert ran == ["Running stage 'aggregate':", "Running stage 'export':"]  # nothing trains or re-evaluates
    diff = dvc(project, "metrics", "diff", "--json").stdout
    assert "metrics/metrics.json" in diff
    summary = json.loads((project / "reports" / "summary.json").read_text())
    assert summary["headline"]["model"] == "inceptionv3"
    headline = json.loads((project / "metrics" / "metrics.json").read_text())
    assert headline["test"] == summary["headline"]["test"]


def test_plots_show_overlays_every_run(repo: Path):
    project = repo
    dvc(project, "plots", "show", "-o", "html_out")
    page = (project / "html_out" / "index.html").read_text()
    for title in ("Validation loss, every run", "Macro ROC per backbone", "Confusion, headline run", "Calibration"):
        assert title in page, title
    for run in ("mobilenet-0", "vgg19-0", "inceptionv3-0"):
        assert run in page  # every run's curve is in the one overlay plot
    assert "datum.run || datum.backbone" in page  # the project's overlay template was used
    for image in ("plots/comparison.png", "plots/gradcam.png", "plots/augment_preview.png"):
        assert image in page
    shutil.rmtree(project / "html_out")


def test_remote_push_then_fresh_clone_pulls_everything(repo: Path, tmp_path: Path):
    project = repo
    remote = tmp_path / "remote"
    dvc(project, "remote", "add", "-d", "local", str(remote))
    git(project, "add", "-A")
    git(project, "commit", "-qm", "remote")
    dvc(project, "push", "--run-cache")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(project), str(clone)], check=True, env=env())
    dvc(clone, "pull")
    assert "Data and pipelines are up to date" in dvc(clone, "status").stdout
    assert "Running stage" not in dvc(clone, "repro").stdout
    # A version of the registry entry is a GTO tag (what `gto register` writes); `artifacts get`
    # fetches the newest one through the repository's default remote.
    git(project, "tag", "-a", "skinlesion-classifier@v0.1.0", "-m", "Registering skinlesion-classifier v0.1.0")
    out = tmp_path / "artifact"
    dvc(tmp_path, "artifacts", "get", str(project), "skinlesion-classifier", "-o", str(out))
    assert (out / "model.keras").read_bytes() == (project / "models" / "headline" / "model.keras").read_bytes()
    assert json.loads((out / "labels.json").read_text())["backbone"] == "mobilenet"


def test_a_fourth_backbone_runs_without_editing_dvc_yaml(repo: Path):
    project = repo
    pipeline = (project / "dvc.yaml").read_bytes()

    def add_resnet(params: dict) -> None:
        params["backbones"].append("resnet50")
        params["resnet50"] = {"image_size": 32, "unfreeze": 4, "dropout": 0.2}

    edit_params(project, add_resnet)
    out = dvc(project, "repro").stdout
    assert "Running stage 'train@resnet50-0'" in out and "Running stage 'evaluate@resnet50-0'" in out
    assert "Running stage 'train@mobilenet-0'" not in out
    assert "resnet50" in json.loads((project / "metrics" / "backbones.json").read_text())
    assert (project / "dvc.yaml").read_bytes() == pipeline


def test_an_external_set_retrains_nothing_and_removing_it_restores_every_other_output(repo: Path, tmp_path: Path):
    from skinlesion.data.synthetic import generate

    project = repo
    generate(tmp_path / "site2", 24, 32, seed=5, workers=1, progress=False)  # lesions from "another source"
    tracked = ("metrics", "reports", "plots", "models/MODEL_CARD.md")
    before = {p: p.read_bytes() for root in tracked for p in sorted((project / root).rglob("*")) if p.is_file()}

    def add(params: dict) -> None:
        params["external"] = {"site2": {"source": "folder", "path": str(tmp_path / "site2")}}

    edit_params(project, add)
    flagged = changed_stages(project)
    assert "external@site2" in flagged and not any(s.startswith(("train@", "evaluate@")) for s in flagged)
    out = dvc(project, "repro").stdout
    assert "Running stage 'external@site2'" in out and "Running stage 'train@" not in out
    metrics = json.loads((project / "metrics" / "metrics.json").read_text())
    assert 0 <= metrics["external"]["site2"]["balanced_accuracy"] <= 1
    assert "## External validation" in (project / "reports" / "report.md").read_text()
    assert (project / "plots" / "subgroups" / "site2.csv").is_file()
    edit_params(project, lambda params: params.update(external={}))
    assert "Running stage 'train@" not in dvc(project, "repro").stdout
    after = {p: p.read_bytes() for root in tracked for p in sorted((project / root).rglob("*")) if p.is_file()}
    assert after == before  # every other output is back to what it was, byte for byte
