"""End to end: the real `dvc repro` on a tiny config in a temporary copy of the repository.

One `dvc repro` (the ``reproduced`` fixture) is shared by the whole module. The read-only checks look at it
as it is; the checks of what `dvc status` would rerun edit one file and put it back; every scenario that
runs stages gets its own copy of the reproduced project (``scenario``), so no test depends on another's
clean-up. The long scenarios are marked ``slow``: `.ci/run` runs them, the README's `python -m pytest`
leaves them out, and each names the fast test that keeps its protection in the default run.

Which stages ran is read from the files (a stage DVC reruns gets new output files), never from DVC's log;
the only printed text read is the stages' own.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from skinlesion.core import layout
from skinlesion.core.modes import FoldPart, Phase

from .conftest import REPO, copy_sources

GIT_ID = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
}
# What `dvc repro` writes: never copied from the checkout, compared before and after a command.
GENERATED = (*layout.GENERATED, layout.RAW, layout.SPLITS)
# Two backbones: every stage that loops over runs sees more than one. The third, InceptionV3 (the slowest
# to build and train), is built at its minimum size by tests/test_backbones.py; as a classifier it is
# built, saved, loaded and explained in CI (`slow`), and trained by no test.
BACKBONES = ("mobilenet", "vgg19")


def tiny_params() -> dict:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["seeds"] = [0]
    params["backbones"] = list(BACKBONES)
    params["data"]["synthetic"].update(n_images=120, image_size=32)
    params["train"].update(epochs_head=8, epochs_finetune=2, batch_size=16)
    params["mobilenet"]["image_size"] = 32
    params["vgg19"]["image_size"] = 32
    params["preview"]["per_class"] = 1
    return params


def env(pythonpath: str = ".") -> dict:
    out = dict(os.environ) | GIT_ID
    out["PATH"] = str(Path(sys.executable).parent) + os.pathsep + out["PATH"]
    out["PYTHONPATH"] = pythonpath  # the copy's package, not the checkout's (or the installed one)
    out["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return out


def dvc(root: Path, *args: str, check: bool = True, environment: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=root, env=environment or env(), capture_output=True, text=True
    )
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
    """The stages `dvc status` says a `dvc repro` would run (its structured result, not its log).

    DVC's Python API, in this process: what `dvc status --json` prints, without a process start per call.
    """
    from contextlib import chdir

    from dvc.repo import Repo

    with chdir(root), Repo() as repo:  # from the project's root, stages are named as `dvc status` names them
        return set(repo.status())


def snapshot(root: Path, *folders: Path) -> dict[str, tuple[int, int]]:
    """Identity (inode, modification time) of every file a stage writes: a stage that runs replaces its files."""
    files = [p for f in folders or GENERATED for p in ([root / f] if (root / f).is_file() else (root / f).rglob("*"))]
    return {p.relative_to(root).as_posix(): (p.stat().st_ino, p.stat().st_mtime_ns) for p in files if p.is_file()}


def under(paths, *prefixes: str) -> set[str]:
    return {p for p in paths if p.startswith(prefixes)}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    root = tmp_path_factory.mktemp("project")
    copy_sources(root, GENERATED)
    (root / "params.yaml").write_text(yaml.safe_dump(tiny_params(), sort_keys=False))
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "tiny"]):
        subprocess.run(cmd, cwd=root, check=True, env=env())
    return root


@pytest.fixture(scope="module")
def reproduced(project: Path) -> Path:
    """The tiny project after one full `dvc repro`, committed as `baseline`. Tests must leave it as it is."""
    dvc(project, "repro")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "baseline")
    return project


@pytest.fixture
def scenario(reproduced: Path, tmp_path: Path):
    """A copy of the reproduced project of the test's own (the DVC cache hard-linked: DVC never edits its files)."""
    root = tmp_path / "project"

    def copy(src: str, dst: str) -> None:
        if Path(src).relative_to(reproduced).parts[:2] == (".dvc", "cache"):
            os.link(src, dst)
        else:
            shutil.copy2(src, dst)

    shutil.copytree(reproduced, root, symlinks=True, copy_function=copy)
    yield root
    shutil.rmtree(root, ignore_errors=True)


# --- The reproduced project, read only ------------------------------------------------------------------


def test_full_repro_writes_every_output_and_a_second_repro_runs_nothing(reproduced: Path, tmp_path: Path):
    project = reproduced
    for rel in (
        layout.HEADLINE_METRICS,
        layout.BACKBONE_METRICS,
        layout.EXPORT_METRICS,
        layout.DATA_SUMMARY,
        layout.REPORT,
        layout.SUMMARY_JSON,
        layout.HEADLINE_MODEL / layout.MODEL_FILE,
        layout.HEADLINE_MODEL / layout.LABELS_FILE,
        layout.COMPARISON,
        layout.AUGMENT_PREVIEW,
        layout.GRADCAM,
        layout.CURVES,
        layout.RunPaths("mobilenet", 0).eval_summary,
        layout.RunPaths("vgg19", 0).predictions,
        layout.RunPaths("mobilenet", 0).train_summary,
        layout.RunPaths("mobilenet", 0).config,
        layout.MODEL_CARD,
        layout.EXPORT_TFLITE,
        layout.EXPORT_DIR / layout.LABELS_FILE,
    ):
        assert (project / rel).exists(), rel
    assert changed_stages(project) == set()
    before = snapshot(project)
    dvc(project, "repro")
    assert snapshot(project) == before  # no stage ran: every output is the same file as before
    assert git(project, "status", "--porcelain") == ""


def test_the_tiny_runs_learn_and_the_tables_stay_small(reproduced: Path):
    project = reproduced
    headline = json.loads((project / layout.HEADLINE_METRICS).read_text())
    summary = json.loads((project / layout.SUMMARY_JSON).read_text())
    selected = summary["headline"]
    # `model: auto`: the candidate with the best validation balanced accuracy (ties: the first, the simpler)
    # among each backbone's best run and the all-backbone ensemble; the report lists every one with its score.
    candidates = summary["selection"]["candidates"]
    assert [c["name"] for c in candidates] == [*BACKBONES, "ensemble-all"]
    best = max(candidates, key=lambda c: c["val_balanced_accuracy"])
    assert selected["members"] == best["runs"] and summary["selection"]["rule"] == "auto"
    assert selected["val"]["balanced_accuracy"] == pytest.approx(best["val_balanced_accuracy"], abs=1e-6)
    report = (project / layout.REPORT).read_text()
    assert all(f"| `{c['name']}`" in report and f"{c['val_balanced_accuracy']:.3f} |" in report for c in candidates)
    assert headline["test"] == selected["test"]  # the summary's headline block is metrics.json's, named
    # Training learns something on the held-out test split (6 classes, 18 test images, random frozen
    # backbones): the best run beats chance and the runs rank images better than chance on average.
    # Measured here (balanced accuracy, ROC-AUC): mobilenet 0.20, 0.65; vgg19 0.25, 0.57 (0.15, 0.48 at 40 px).
    runs = [json.loads((project / layout.RunPaths(b, 0).eval_summary).read_text()) for b in BACKBONES]
    classes = json.loads((project / layout.DATA_SUMMARY).read_text())["classes"]
    assert max(r["test"]["balanced_accuracy"] for r in runs) > 1 / classes
    assert np.mean([r["test"]["roc_auc_macro"] for r in runs]) > 0.55
    # The lean experiment table: the headline's validation metrics first (what selected it), its test
    # metrics next, few columns besides the code files (one per params key, metric and data dependency:
    # 133 at this writing, 4 of them the cv section's keys; each package file a stage loads is a dependency
    # column of its own), few numbers.
    columns = dvc(project, "exp", "show", "--csv").stdout.splitlines()[0].split(",")
    metrics = [c for c in columns if c.startswith(("val.", "test."))]
    assert metrics[0] == "val.balanced_accuracy" and columns.index("test.balanced_accuracy") < 25
    assert len([c for c in columns if not c.startswith(("skinlesion/", "stages/"))]) <= 140
    shown = json.loads(dvc(project, "metrics", "show", "--json").stdout)
    numbers = [v for v in pd.json_normalize(shown).iloc[0] if isinstance(v, (int, float)) and not isinstance(v, bool)]
    assert 10 <= len(numbers) <= 100
    agreement = json.loads((project / layout.EXPORT_METRICS).read_text())
    assert agreement == {"label_agreement": 1.0}  # the card has the rest (max |dp|, model size)


def test_outputs_honour_the_umask_the_pipeline_ran_under(reproduced: Path):
    # Whatever the machine's umask (0644 under 022, 0600 under 077), never mkstemp's 0600 nor a fixed 0644;
    # tests/test_io.py and tests/test_umask.py check 022 and 077 explicitly.
    umask = os.umask(0)
    os.umask(umask)
    for rel in (layout.HEADLINE_METRICS, layout.REPORT, layout.COMPARISON):  # git-tracked, written by the stages
        assert (reproduced / rel).stat().st_mode & 0o777 == 0o666 & ~umask, rel


def test_plots_show_overlays_every_run(reproduced: Path, tmp_path: Path):
    dvc(reproduced, "plots", "show", "-o", str(tmp_path / "html"))
    page = (tmp_path / "html" / "index.html").read_text()
    for title in ("Validation loss, every run", "Macro ROC per backbone", "Confusion, headline run", "Calibration"):
        assert title in page, title
    for run in (f"{backbone}-0" for backbone in BACKBONES):
        assert run in page  # every run's curve is in the one overlay plot
    assert "datum.run || datum.backbone" in page  # the project's overlay template was used
    for image in (layout.COMPARISON, layout.GRADCAM, layout.AUGMENT_PREVIEW):
        assert image.as_posix() in page


# --- What a change reruns: `dvc status` on the reproduced project, the edit undone afterwards -----------


def _add_resnet(params: dict) -> None:
    params["backbones"].append("resnet50")
    params["resnet50"] = {"image_size": 32, "unfreeze": 4, "dropout": 0.2}


NEW_SEED = {f"{stage}@{b}-1" for stage in ("train", "evaluate") for b in BACKBONES}
RERUNS = {
    "preview": (lambda p: p["preview"].update(views=3), {"augment-preview"}),
    "runtime": (lambda p: p["runtime"].update(workers=1), set()),
    "vgg19": (lambda p: p["vgg19"].update(dropout=0.5), {"train@vgg19-0"}),
    # README: the headline switches backbone, only aggregate (and export, once the headline model changed) rerun.
    "model": (lambda p: p.update(model="vgg19"), {"aggregate"}),
    # README: the malignant classes decide operating points, which aggregate computes: no run is re-evaluated.
    "malignant": (lambda p: p["evaluate"].update(malignant=["melanoma"]), {"aggregate"}),
    # README: only the new seeds train (and are evaluated); aggregate follows.
    "seeds": (lambda p: p.update(seeds=[0, 1]), NEW_SEED | {"aggregate"}),
    # README: an external set is scored by its own stage and aggregate; nothing trains or is re-evaluated.
    "external": (
        lambda p: p.update(external={"site2": {"source": "folder", "path": "stages"}}),
        {"external@site2", "aggregate"},
    ),
    # README: with cross-validation off, its fold count and seed are read by nothing; switching it on adds
    # the cv stages (new, so never run) and aggregate's switch: nothing that exists retrains.
    "cv-settings": (lambda p: p["cv"].update(folds=["f0", "f1"], seed=3), set()),
    "cv-on": (
        lambda p: p["cv"].update(pool=["train"], folds=["f0", "f1"]),
        {"cv-folds@train", "aggregate", *(f"cv@train-{b}-0-f{j}" for b in BACKBONES for j in (0, 1))}
        | {f"cv-pool@train-{b}" for b in BACKBONES},
    ),
    # README: a fourth backbone needs a params section and no edit of dvc.yaml; only its runs are new.
    "backbone": (_add_resnet, {"train@resnet50-0", "evaluate@resnet50-0", "aggregate"}),
    # Code: each stage depends on the files it loads. A run's scoring code reruns the evaluations only ...
    "evaluation-code": ("skinlesion/evaluation/evaluate.py", {f"evaluate@{backbone}-0" for backbone in BACKBONES}),
    # ... a statistic only aggregate, which computes it ...
    "statistics-code": ("skinlesion/stats/subgroups.py", {"aggregate"}),
    # ... and a sentence of the report's template the two stages that render documents: nothing retrains.
    "report-template": ("skinlesion/render/templates/report.md.j2", {"aggregate", "export"}),
}


@pytest.mark.parametrize("change", list(RERUNS))
def test_status_names_exactly_the_stages_a_change_reruns(reproduced: Path, change: str):
    edit, expected = RERUNS[change]
    edited = reproduced / (edit if isinstance(edit, str) else "params.yaml")
    original = edited.read_bytes()
    try:
        if isinstance(edit, str):
            edited.write_bytes(original + (b"\n# edited\n" if edited.suffix == ".py" else b"\nOne more sentence.\n"))
        else:
            edit_params(reproduced, edit)
        assert changed_stages(reproduced) == expected
    finally:
        edited.write_bytes(original)
    assert changed_stages(reproduced) == set()


# --- Scenarios that run stages, each in its own copy ------------------------------------------------------


@pytest.mark.slow
def test_a_failed_rerun_leaves_every_file_of_the_run_restorable(scenario: Path):
    """Fast checks: tests/test_model.py::test_a_weights_file_that_loads_into_nothing_is_a_one_line_config_error,
    tests/test_dvc_yaml.py::test_outputs_a_clone_restores_are_cached_and_registered.
    """
    project = scenario
    run = project / layout.RunPaths("mobilenet", 0).root
    before = {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()}
    (project / "broken.weights.h5").write_bytes(b"")  # exists (config accepts it), loads into nothing
    edit_params(project, lambda p: p["train"].update(weights="broken.weights.h5"))
    failed = dvc(project, "repro", "train@mobilenet-0", check=False)
    assert failed.returncode != 0 and "error: train.weights=broken.weights.h5" in failed.stdout + failed.stderr
    assert not (run / "model" / layout.MODEL_FILE).exists()  # DVC removed the outputs before running
    git(project, "checkout", "--", "params.yaml")
    (project / "broken.weights.h5").unlink()
    dvc(project, "checkout")
    after = {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert after == before and changed_stages(project) == set()


@pytest.mark.slow
def test_remote_push_then_fresh_clone_pulls_everything(scenario: Path, tmp_path: Path):
    """Fast check: tests/test_dvc_yaml.py::test_outputs_a_clone_restores_are_cached_and_registered."""
    project = scenario
    remote = tmp_path / "remote"
    dvc(project, "remote", "add", "-d", "local", str(remote))
    git(project, "add", "-A")
    git(project, "commit", "-qm", "remote")
    dvc(project, "push", "--run-cache")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(project), str(clone)], check=True, env=env())
    dvc(clone, "pull")
    assert changed_stages(clone) == set()
    for rel in (layout.HEADLINE_MODEL / layout.MODEL_FILE, layout.RunPaths("vgg19", 0).model, layout.EXPORT_TFLITE):
        assert (clone / rel).read_bytes() == (project / rel).read_bytes()
    # A version of the registry entry is a GTO tag (what `gto register` writes); `artifacts get`
    # fetches the newest one through the repository's default remote.
    git(project, "tag", "-a", "skinlesion-classifier@v0.1.0", "-m", "Registering skinlesion-classifier v0.1.0")
    out = tmp_path / "artifact"
    dvc(tmp_path, "artifacts", "get", str(project), "skinlesion-classifier", "-o", str(out))
    assert (out / layout.MODEL_FILE).read_bytes() == (project / layout.HEADLINE_MODEL / layout.MODEL_FILE).read_bytes()
    headline = json.loads((project / layout.HEADLINE_MODEL / layout.LABELS_FILE).read_text())["backbone"]
    assert json.loads((out / layout.LABELS_FILE).read_text())["backbone"] == headline


# Imported first by every Python process that has its folder on PYTHONPATH: after the file named by
# SKINLESION_TEST_KILL_AFTER is first put in place (os.replace, as core.io's atomic writes do), the process
# kills itself, as `kill -9` would at exactly that moment.
KILL_AFTER_REPLACE = """
import os, signal
_replace = os.replace
def replace(src, dst, *args, **kwargs):
    _replace(src, dst, *args, **kwargs)
    if os.path.basename(os.fspath(dst)) == os.environ.get("SKINLESION_TEST_KILL_AFTER"):
        os.kill(os.getpid(), signal.SIGKILL)
os.replace = replace
"""


@pytest.mark.slow
def test_a_run_killed_at_a_checkpoint_resumes_there_and_ends_as_the_uninterrupted_run(scenario: Path, tmp_path):
    """Fast check: tests/test_train.py::test_streamed_run_interrupted_resumes_as_the_uninterrupted_run."""
    project, hook = scenario, tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(KILL_AFTER_REPLACE)
    state_name = layout.Checkpoints(Path(), Phase.FINETUNE.label).state.name  # written after each fine-tuning epoch
    killing = env(f"{hook}{os.pathsep}.") | {"SKINLESION_TEST_KILL_AFTER": state_name}
    # --force: the outputs are in the DVC cache, and a plain repro would restore them instead of training.
    killed = dvc(project, "repro", "--force", "train@mobilenet-0", check=False, environment=killing)
    assert killed.returncode != 0
    states = list((project / layout.TRAIN_STATE).rglob(state_name))
    assert len(states) == 1
    state = json.loads(states[0].read_text())
    assert state["epoch"] == 1 and not state["done"]  # killed after the first of two fine-tuning epochs
    run = layout.RunPaths("mobilenet", 0)
    assert not (project / run.model).exists()
    rerun = dvc(project, "repro", "--force", "train@mobilenet-0")
    assert f"{Phase.FINETUNE.label}: resuming after epoch 1" in rerun.stdout  # the stage's own line
    log = project / run.train_log / "plots" / "metrics" / "val" / "loss.tsv"
    epochs = json.loads((project / run.train_summary).read_text())["epochs"]
    assert [int(line.split("\t")[0]) for line in log.read_text().splitlines()[1:]] == list(range(epochs))
    # The resumed run ends exactly where the uninterrupted baseline run did: the model, its log and
    # dvc.lock are the committed ones, byte for byte.
    assert git(project, "status", "--porcelain") == ""
    assert not list((project / layout.TRAIN_STATE).rglob("*.json"))  # and its checkpoints are cleared


@pytest.mark.slow
def test_forced_retrain_to_same_weights_reruns_nothing_downstream(scenario: Path):
    """Fast checks: tests/test_io.py (same weights, same bytes) and tests/test_train.py (same seed, same weights)."""
    project = scenario
    model = project / layout.RunPaths("mobilenet", 0).model
    before = model.read_bytes()
    dvc(project, "repro", "--force", "train@mobilenet-0")
    assert model.read_bytes() == before  # no save date or zip time in the file
    assert changed_stages(project) == set()
    assert git(project, "status", "--porcelain") == ""  # dvc.lock and every git-tracked output unchanged


@pytest.mark.slow
def test_changing_model_reruns_only_aggregate_and_export(scenario: Path):
    """Fast check: test_status_names_exactly_the_stages_a_change_reruns[model]."""
    project = scenario
    before = snapshot(project)
    dvc(project, "exp", "run", "-S", "model=vgg19")  # the README's `-S model=inceptionv3`, on the tiny project
    changed = {p for p, identity in snapshot(project).items() if before.get(p) != identity}
    assert not under(changed, layout.RUNS.as_posix(), layout.SPLITS.as_posix())  # nothing trained or re-evaluated
    assert layout.HEADLINE_METRICS.as_posix() in changed and layout.EXPORT_METRICS.as_posix() in changed
    assert under(changed, layout.HEADLINE_MODEL.as_posix()) and under(changed, layout.EXPORT_DIR.as_posix())
    assert layout.AUGMENT_PREVIEW.as_posix() not in changed
    assert layout.HEADLINE_METRICS.as_posix() in json.loads(dvc(project, "metrics", "diff", "--json").stdout)
    summary = json.loads((project / layout.SUMMARY_JSON).read_text())
    assert summary["headline"]["model"] == "vgg19"
    headline = json.loads((project / layout.HEADLINE_METRICS).read_text())
    assert headline["test"] == summary["headline"]["test"]


@pytest.mark.slow
def test_a_fourth_backbone_runs_without_editing_dvc_yaml(scenario: Path):
    """Fast check: test_status_names_exactly_the_stages_a_change_reruns[backbone]."""
    project = scenario
    pipeline = (project / "dvc.yaml").read_bytes()
    before = snapshot(project)
    edit_params(project, _add_resnet)
    dvc(project, "repro")
    changed = {p for p, identity in snapshot(project).items() if before.get(p) != identity}
    runs = {p.split("/")[1] for p in under(changed, layout.RUNS.as_posix())}
    assert runs == {"resnet50"}  # its runs are new; no other run trained or was re-evaluated
    assert (project / layout.RunPaths("resnet50", 0).eval_summary).is_file()
    assert "resnet50" in json.loads((project / layout.BACKBONE_METRICS).read_text())
    assert (project / "dvc.yaml").read_bytes() == pipeline


@pytest.mark.slow
def test_an_external_set_retrains_nothing_and_removing_it_restores_every_other_output(scenario: Path, tmp_path: Path):
    """Fast checks: test_status_names_exactly_the_stages_a_change_reruns[external], tests/test_external.py."""
    from skinlesion.data.synthetic import generate

    project = scenario
    generate(tmp_path / "site2", 24, 32, seed=5, workers=1, progress=False)  # lesions from "another source"
    tracked = ("metrics", "reports", "plots", layout.MODEL_CARD.as_posix())
    before = {p: p.read_bytes() for root in tracked for p in sorted((project / root).rglob("*")) if p.is_file()}
    identities = snapshot(project)

    def add(params: dict) -> None:
        params["external"] = {"site2": {"source": "folder", "path": str(tmp_path / "site2")}}

    edit_params(project, add)
    assert changed_stages(project) == {"external@site2", "aggregate"}
    dvc(project, "repro")
    changed = {p for p, identity in snapshot(project).items() if identities.get(p) != identity}
    assert not under(changed, layout.RUNS.as_posix(), layout.SPLITS.as_posix())  # nothing trained or re-evaluated
    metrics = json.loads((project / layout.HEADLINE_METRICS).read_text())
    assert 0 <= metrics["external"]["site2"]["balanced_accuracy"] <= 1
    assert "## External validation" in (project / layout.REPORT).read_text()
    assert (project / layout.SUBGROUP_PLOTS / "site2.csv").is_file()
    edit_params(project, lambda params: params.update(external={}))
    dvc(project, "repro")
    after = {p: p.read_bytes() for root in tracked for p in sorted((project / root).rglob("*")) if p.is_file()}
    assert after == before  # every other output is back to what it was, byte for byte


@pytest.mark.slow
def test_cross_validation_predicts_every_training_image_once_and_ships_the_fold_ensemble(scenario: Path):
    """Fast checks: tests/test_cv.py (params, folds, pooling, candidates, stage names)."""
    project = scenario
    before = snapshot(project)
    folds = ["f0", "f1"]
    edit_params(project, lambda params: params["cv"].update(pool=["train"], folds=folds))
    dvc(project, "repro")
    changed = {p for p, identity in snapshot(project).items() if before.get(p) != identity}
    assert not under(
        changed, layout.SPLITS.as_posix(), *(layout.RunPaths(b, 0).model_dir.as_posix() for b in BACKBONES)
    )
    train, val, test = (pd.read_csv(project / layout.split_csv(s)) for s in ("train", "val", "test"))
    held = {f: pd.read_csv(project / layout.fold_csv(f, "held_out")) for f in folds}
    assert sorted(pd.concat(held.values())["path"]) == sorted(train["path"])  # each training image in one fold
    assert not set(held["f0"]["group"]) & set(held["f1"]["group"])  # no lesion in two folds
    parts = [pd.read_csv(project / layout.fold_csv(f, part)) for f in folds for part in FoldPart]
    in_folds = set(pd.concat(parts)["path"])
    assert not in_folds & (set(val["path"]) | set(test["path"]))  # validation and test in no fold
    for backbone in BACKBONES:
        pooled = pd.read_csv(project / layout.CvPaths(backbone).predictions)
        assert sorted(pooled["path"]) == sorted(train["path"])  # exactly one out-of-fold prediction (one seed)
        assert (project / layout.CvPaths(backbone).confusion).is_file()
    summary = json.loads((project / layout.SUMMARY_JSON).read_text())
    estimate = summary["cv"]["estimates"]["mobilenet"]["metrics"]["balanced_accuracy"]
    assert estimate["low"] <= estimate["estimate"] <= estimate["high"]
    assert summary["headline"]["kind"] in {"fold ensemble", "all-backbone fold ensemble"}
    assert all(m.rsplit("-", 1)[1] in folds for m in summary["headline"]["members"])
    assert "## Cross-validation (2 folds" in (project / layout.REPORT).read_text()
    plots = json.loads(dvc(project, "plots", "show", "--json").stdout)
    assert not plots.get("errors") and any("cv_confusion" in name for name in plots["data"])
    assert changed_stages(project) == set()
    edit_params(project, lambda params: params["cv"].update(seed=1))  # new folds: never a new split
    status = changed_stages(project)
    assert "cv-folds@train" in status and "split" not in status and not any(s.startswith("train@") for s in status)
