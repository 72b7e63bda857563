"""The stage scripts as a user runs them: argument handling and one-line errors, no traceback."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from skinlesion.core.labels import LabelMap
from skinlesion.core.layout import RunPaths

from .conftest import REPO


def error_lines(stderr: str) -> list[str]:
    """The stage's own messages (TensorFlow's CUDA-probe log lines on CPU machines are left out)."""
    return [line for line in stderr.splitlines() if line.startswith("error:")]


# A stage's environment as a user's shell gives it: this interpreter, the checkout's package, quiet TensorFlow.
STAGE_ENV = {"PATH": str(Path(sys.executable).parent), "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}


def run_stage(cwd: Path, script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "stages" / script), *args], cwd=cwd, env=STAGE_ENV, capture_output=True, text=True
    )


def test_evaluate_without_its_model_prints_one_error_line(tmp_path: Path):
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    run = RunPaths("mobilenet", 0)
    LabelMap(("a", "b"), 32).write(tmp_path / run.model_dir)  # the label map is there, model.keras is not
    (tmp_path / "data" / "splits").mkdir(parents=True)
    (tmp_path / "data" / "splits" / "test.csv").write_text("path,label,sha256,group\nx.png,a,0,x\n")
    proc = run_stage(tmp_path, "evaluate.py", "--backbone", "mobilenet", "--seed", "0")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = error_lines(proc.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: runs/mobilenet/seed0/model/model.keras not found")
    assert not (tmp_path / run.eval_dir).exists()  # nothing half-written


# Runs each command given (a stage script and its arguments) as `python <script>` would, one after another
# in this one process, and prints after each its exit status and whether TensorFlow had been imported.
EACH_STAGE = """
import runpy, sys
for argv in map(str.split, sys.argv[1:]):
    sys.argv = argv
    try:
        runpy.run_path(argv[0], run_name="__main__")
    except SystemExit as exc:
        print(exc.code, "tensorflow" in sys.modules)
"""


def test_every_stage_with_invalid_params_fails_at_once_naming_the_key(tmp_path: Path):
    import re

    from .test_dvc_yaml import STAGES

    text = (REPO / "params.yaml").read_text().replace("  views: 5", "  views: 0")
    (tmp_path / "params.yaml").write_text(text)
    matrix = {"item.backbone": "mobilenet", "item.seed": "0", "item.fold": "f0", "key": "site2"}
    commands = [
        re.sub(r"\$\{([^}]+)\}", lambda m: matrix[m[1]], stage.get("do", stage)["cmd"]) for stage in STAGES.values()
    ]
    absolute = [str(REPO / c.removeprefix("python ")) for c in commands]
    proc = subprocess.run(
        [sys.executable, "-c", EACH_STAGE, *absolute], cwd=tmp_path, env=STAGE_ENV, capture_output=True, text=True
    )
    assert len(commands) == 11 and "Traceback" not in proc.stderr  # the cv stages too
    # Each stage stops with exit status 2 and one line naming the key, before TensorFlow is imported.
    assert proc.stdout.splitlines() == ["2 False"] * len(commands)
    assert error_lines(proc.stderr) == ["error: params.yaml: preview.views must be >= 1 (got 0)"] * len(commands)


def test_matrix_stage_needs_its_arguments(tmp_path: Path):
    proc = run_stage(tmp_path, "train.py", "--backbone", "mobilenet")
    assert proc.returncode == 2 and "--seed" in proc.stderr and "Traceback" not in proc.stderr


def _free_ports(n: int) -> list[int]:
    import socket

    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _tiny_project(root: Path, images: Path, distribute: str) -> Path:
    """A project folder with tiny params and train/val splits of the given synthetic images."""
    import hashlib

    import pandas as pd
    import yaml

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params.update(backbones=["mobilenet"], seeds=[0])
    params["mobilenet"].update(image_size=32, unfreeze=4)
    params["train"].update(batch_size=16, epochs_head=2, epochs_finetune=1, weights="none")
    params["runtime"].update(distribute=distribute, workers=1)
    root.mkdir(parents=True)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    rows = [
        {"path": str(p), "label": p.parent.name, "sha256": hashlib.sha256(p.read_bytes()).hexdigest(), "group": p.stem}
        for p in sorted(images.rglob("*.png"))
    ]
    (root / "data" / "splits").mkdir(parents=True)
    pd.DataFrame(rows[::2]).to_csv(root / "data" / "splits" / "train.csv", index=False)
    pd.DataFrame(rows[1::2]).to_csv(root / "data" / "splits" / "val.csv", index=False)
    return root


# Imported first by each worker process (its folder leads PYTHONPATH): before a run's checkpoints are
# cleared, a copy goes to $SKINLESION_TEST_KEEP/<project folder>, so the test can compare what each worker
# ended with. No TensorFlow is imported here: the stage pins its numerics before importing it.
KEEP_CHECKPOINTS = """
import os, shutil
from skinlesion.modeling import resume
_clear = resume.clear_state
def clear_state(state_dir):
    shutil.copytree(state_dir, os.path.join(os.environ["SKINLESION_TEST_KEEP"], os.path.basename(os.getcwd())))
    _clear(state_dir)
resume.clear_state = clear_state
"""


def h5_arrays(path: Path) -> dict:
    import h5py
    import numpy as np

    arrays = {}

    def keep(name: str, item) -> None:
        if isinstance(item, h5py.Dataset):
            arrays[name] = np.asarray(item)

    with h5py.File(path, "r") as f:
        f.visititems(keep)
    return arrays


@pytest.mark.slow
def test_two_workers_train_one_run_in_sync_and_only_the_chief_writes_it(tmp_path: Path):
    """CI only (`slow`, a minute of two training processes): training itself under two workers needs them.

    A multi-worker strategy must be created before TensorFlow runs anything else, so it needs fresh
    processes. By default: tests/test_stages.py::test_the_multi_worker_workarounds_find_what_they_patch
    (the Keras internals the workarounds rely on) and the single-process path it shares (tests/test_train.py).
    """
    import json

    import numpy as np

    from skinlesion.core.layout import Checkpoints
    from skinlesion.core.modes import Phase
    from skinlesion.data.synthetic import generate
    from skinlesion.modeling.model import load_classifier, set_temperature

    # 24 images to train on and 24 to validate: the last global batch of 16 is a partial one.
    generate(tmp_path / "images", 48, 32, seed=2, workers=1, progress=False)
    # Each worker in its own folder, as on its own machine: nothing the worker does can land in the chief's.
    roots = [_tiny_project(tmp_path / f"node{i}", tmp_path / "images", "multiworker") for i in range(2)]
    hook, keep = tmp_path / "hook", tmp_path / "kept"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(KEEP_CHECKPOINTS)
    cluster = {"worker": [f"localhost:{port}" for port in _free_ports(2)]}
    env = STAGE_ENV | {"PYTHONPATH": f"{hook}{os.pathsep}{REPO}", "SKINLESION_TEST_KEEP": str(keep)}
    procs = [
        subprocess.Popen(
            [sys.executable, str(REPO / "stages" / "train.py"), "--backbone", "mobilenet", "--seed", "0"],
            cwd=root,
            env=env | {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i, root in enumerate(roots)
    ]
    outputs = [p.communicate(timeout=420) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outputs]
    assert "the chief writes the outputs" in outputs[1][0]
    run = RunPaths("mobilenet", 0)
    chief, worker = roots
    assert (chief / run.model).is_file() and (chief / run.config).is_file() and (chief / run.train_log).is_dir()
    assert not (worker / "runs").exists()  # the other worker wrote no output
    assert not any((worker / ".cache" / "train").rglob("*.h5"))  # and cleared its checkpoints
    # In sync: the weights each worker ended with (its best fine-tuning checkpoint, what it loads last)
    # are equal, trainable or not ...
    best = Checkpoints(Path(), Phase.FINETUNE.label).best.name
    ended = [h5_arrays(keep / root.name / best) for root in roots]
    assert ended[0].keys() == ended[1].keys() and len(ended[0]) > 50
    for name, array in ended[0].items():
        np.testing.assert_array_equal(array, ended[1][name], err_msg=name)
    # ... and the model the chief saved is the other worker's, with the temperature built in.
    saved = load_classifier(chief / run.model)
    from_worker = load_classifier(chief / run.model)
    from_worker.load_weights(keep / worker.name / best)
    set_temperature(from_worker, LabelMap.read(chief / run.model_dir).temperature)
    for a, b in zip(saved.weights, from_worker.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=a.path)
    probs = np.asarray(saved.predict(np.zeros((2, 40, 40, 3), "float32"), verbose=0))
    assert probs.shape == (2, len(LabelMap.read(chief / run.model_dir).classes))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_the_multi_worker_workarounds_find_what_they_patch():
    """The Keras internals distribute.py patches still exist under these names (keras-team/keras#20585)."""
    from types import SimpleNamespace

    from keras.src.backend.tensorflow import trainer

    from skinlesion.modeling.distribute import _patch_multiworker_metric_reduction, is_chief, worker_index

    assert callable(trainer._collective_all_reduce_multi_worker)
    original = trainer.reduce_per_replica
    try:
        _patch_multiworker_metric_reduction()
        patched = trainer.reduce_per_replica
        assert patched is not original and patched.skinlesion_patched
        _patch_multiworker_metric_reduction()
        assert trainer.reduce_per_replica is patched  # once, however often a run starts
    finally:
        trainer.reduce_per_replica = original
    worker = SimpleNamespace(
        extended=SimpleNamespace(should_checkpoint=False),
        cluster_resolver=SimpleNamespace(task_type="worker", task_id=1),
    )
    assert not is_chief(worker) and worker_index(worker) == 1
    single = SimpleNamespace(extended=SimpleNamespace())
    assert is_chief(single) and worker_index(single) == 0
