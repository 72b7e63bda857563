"""The benchmark scripts run end to end (tiny sizes), so a GPU session can trust them when it has minutes."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO


@pytest.mark.slow
def test_gpu_benchmark_smoke_runs_on_cpu(isic_dir: Path, tmp_path: Path):
    env = os.environ | {"TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bench_gpu.py"), "--smoke", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("mobilenet"))
    for feed in ("pipeline", "in-memory", "ImageDataGenerator"):
        assert f"{feed} " in line and " img/s" in line
    assert "device: CPU" in proc.stdout and "whole recipe (train_run" in proc.stdout
    # The decode-once cache was built once per size and reused by the whole-recipe run.
    assert len(list((tmp_path / ".cache" / "decoded").rglob("*.npy"))) == 2  # train + val at one size
