"""Ctrl-C: one line, ``error: interrupted``, from every stage and the predict command, however many worker
processes they run; the terminal sends SIGINT to the whole process group, workers included.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from ..conftest import REPO
from .helpers import Predict, Project, error_lines

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to see worker processes")


def _children(pid: int) -> int:
    """How many processes ``pid`` has started (and not yet reaped)."""
    count = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        count += int(fields[1]) == pid
    return count


# Runs a stage script (argv[1]) as DVC does, with fetch's synthetic workers held back: the first to take the
# second chunk of images waits 3 s, so the other, done with the first chunk, waits for work meanwhile.
# The forked workers inherit the patch.
FETCH_WITH_A_WORKER_WAITING = """
import runpy, sys, time
from skinlesion.data import synthetic
real = synthetic._render_to_file
def render(job):
    if job[1] == 32:
        time.sleep(3)
    return real(job)
render.__module__, render.__qualname__ = real.__module__, real.__qualname__  # pickled by reference
synthetic._render_to_file = render
runpy.run_path(sys.argv[1], run_name="__main__")
"""
# Runs split with validation processes that take 3 s to start (their initializer sleeps): Ctrl-C finds them
# starting. A spawned process imports the initializer's module: slow_start.py, on PYTHONPATH. The stage takes
# half a second to end its pool, time enough for a worker to print what Ctrl-C did to it.
SPLIT_WITH_SLOW_WORKERS = """
import multiprocessing.pool, runpy, sys, time
import slow_start
from skinlesion.data import split
split.set_max_pixels = slow_start.set_max_pixels
exit_ = multiprocessing.pool.Pool.__exit__
def slow_exit(self, *args):
    time.sleep(0.5)
    return exit_(self, *args)
multiprocessing.pool.Pool.__exit__ = slow_exit
runpy.run_path(sys.argv[1], run_name="__main__")
"""
SLOW_START = """
import time
from skinlesion.core import images
def set_max_pixels(limit):
    time.sleep(3)
    images.set_max_pixels(limit)
"""


def _ctrl_c(project: Project, script: str, runner: str, ready: Callable[[int], bool]) -> tuple[int, str]:
    """Run a stage through ``runner``, press Ctrl-C once ``ready(pid)``: SIGINT to its whole process group."""
    (project.root / "slow_start.py").write_text(SLOW_START)
    env = {
        "PATH": str(Path(sys.executable).parent),
        "PYTHONPATH": os.pathsep.join((str(REPO), str(project.root))),
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", runner, str(REPO / "stages" / f"{script}.py")],
        cwd=project.root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group, as a shell gives a foreground job
        # A shell starts a job with Ctrl-C at its default; a process that inherits it ignored (pytest's worker,
        # after some test left SIGINT ignored) ignores it too, and Python then installs no KeyboardInterrupt.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while not ready(proc.pid):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the workers never started"
        time.sleep(0.02)
    assert proc.poll() is None, "the stage ended before Ctrl-C could be pressed"
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err.decode(errors="replace")


def _interrupted_once(rc: int, err: str) -> None:
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert rc == 130 and error_lines(err) == ["error: interrupted"], (rc, err)


def test_ctrl_c_during_fetch_prints_one_line_not_the_workers_tracebacks(project: Project):
    project.params["data"]["synthetic"]["n_images"] = 50  # two chunks of work: images 0-31 and 32-49
    project.write_params(source="synthetic")
    partial = project.root / "data" / ".raw.partial"
    first_chunk_done = lambda pid: len(list(partial.rglob("syn_*.png"))) >= 32  # noqa: E731
    _interrupted_once(*_ctrl_c(project, "fetch", FETCH_WITH_A_WORKER_WAITING, first_chunk_done))
    assert not partial.exists() and not (project.root / "data" / "raw").exists()


def test_ctrl_c_while_split_starts_its_workers_prints_one_line(project: Project):
    project.params["data"]["synthetic"]["n_images"] = 100
    project.write_params(source="synthetic")
    assert project.run("fetch")[0] == 0
    project.params["runtime"]["workers"] = 2
    project.write_params()
    started: list[float] = []

    def starting(pid: int) -> bool:  # the resource tracker and both workers exist, and the workers start
        if not started and _children(pid) >= 3:
            started.append(time.monotonic())
        return bool(started) and time.monotonic() > started[0] + 1.5

    _interrupted_once(*_ctrl_c(project, "split", SPLIT_WITH_SLOW_WORKERS, starting))
    assert not (project.root / "data" / "splits").exists()


def test_ctrl_c_during_predict_prints_one_line_and_keeps_the_rows_before(predict: Predict, monkeypatch):
    import keras

    real, calls = keras.Model.predict_on_batch, []

    def predict_on_batch(self, x):
        calls.append(len(x))
        if len(calls) > 1:
            raise KeyboardInterrupt
        return real(self, x)

    monkeypatch.setattr(keras.Model, "predict_on_batch", predict_on_batch)
    rc, _, err = predict(str(predict.images), "-o", str(predict.root / "p.csv"), "--batch-size", "2")
    _interrupted_once(rc, err)
    assert len(pd.read_csv(predict.root / "p.csv")) == 2
