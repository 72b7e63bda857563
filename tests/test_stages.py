"""The stage scripts as a user runs them: argument handling and one-line errors, no traceback."""

import shutil
import subprocess
import sys
from pathlib import Path

from skinlesion.core.layout import LabelMap, RunPaths

from .conftest import REPO


def error_lines(stderr: str) -> list[str]:
    """The stage's own messages (TensorFlow's CUDA-probe log lines on CPU machines are left out)."""
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def run_stage(cwd: Path, script: str, *args: str) -> subprocess.CompletedProcess:
    env = {"PATH": str(Path(sys.executable).parent), "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, str(REPO / "stages" / script), *args], cwd=cwd, env=env, capture_output=True, text=True
    )


def test_evaluate_without_its_model_prints_one_error_line(tmp_path: Path):
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    shutil.copy(REPO / "data" / "no-metadata.csv", (tmp_path / "data").mkdir() or tmp_path / "data")
    run = RunPaths("mobilenet", 0)
    LabelMap(("a", "b"), 32).write(tmp_path / run.model_dir)  # the label map is there, model.keras is not
    (tmp_path / "data" / "splits").mkdir()
    (tmp_path / "data" / "splits" / "test.csv").write_text("path,label,sha256,group\nx.png,a,0,x\n")
    proc = run_stage(tmp_path, "evaluate.py", "--backbone", "mobilenet", "--seed", "0")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = error_lines(proc.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: runs/mobilenet/seed0/model/model.keras not found")
    assert not (tmp_path / run.eval_dir).exists()  # nothing half-written


def test_stage_with_invalid_params_fails_before_work_naming_the_key(tmp_path: Path):
    text = (REPO / "params.yaml").read_text().replace("  views: 5", "  views: 0")
    (tmp_path / "params.yaml").write_text(text)
    proc = run_stage(tmp_path, "augment_preview.py")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert error_lines(proc.stderr) == ["error: params.yaml: preview.views must be >= 1 (got 0)"]


def test_matrix_stage_needs_its_arguments(tmp_path: Path):
    proc = run_stage(tmp_path, "train.py", "--backbone", "mobilenet")
    assert proc.returncode == 2 and "--seed" in proc.stderr and "Traceback" not in proc.stderr
