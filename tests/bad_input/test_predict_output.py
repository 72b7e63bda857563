"""Where ``skinlesion-predict`` writes (``-o``): a full disk, links, FIFOs, a second run writing the same file.

Every output is written safely: rows that reach ``-o`` are whole, and a link or a FIFO is written through,
never replaced by a regular file.
"""

from __future__ import annotations

import csv
import json
import os
import resource
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest

from ..conftest import REPO, make_class_tree
from .helpers import Predict, error_lines, fails_once


def _rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def test_predict_keeps_whole_rows_when_the_disk_fills_up(predict: Predict):
    make_class_tree(predict.images / "more", {"z": 30}, start=100)
    limit = 4000  # bytes any file of this process may grow to: writes past it fail, as on a full disk
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        rc, _, err = predict(str(predict.images), "-o", str(predict.root / "p.csv"), "--batch-size", "4")
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    line = fails_once(rc, err, "-o", "p.csv", "cannot write it", "predictions before it are in")
    rows = _rows(predict.root / "p.csv")
    assert 1 < len(rows) and all(len(row) == len(rows[0]) for row in rows)  # every row whole
    assert f"the {len(rows) - 1} predictions before it" in line
    assert not [f for f in predict.root.iterdir() if f.name.startswith(".")]  # no temporary file left


def test_predict_json_that_does_not_fit_on_the_disk_leaves_the_previous_file(predict: Predict):
    make_class_tree(predict.images / "more", {"z": 30}, start=100)
    (predict.root / "p.json").write_text('{"predictions": []}\n')
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1500, hard))  # as a full disk: no file may grow past 1500 bytes
    try:
        rc, _, err = predict(str(predict.images), "-o", str(predict.root / "p.json"), "--format", "json")
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    fails_once(rc, err, "-o", "p.json", "cannot write it", "left as it was")
    assert json.loads((predict.root / "p.json").read_text()) == {"predictions": []}
    assert sorted(p.name for p in predict.root.iterdir()) == ["images", "model", "p.json"]


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_predict_writes_through_a_symbolic_link(predict: Predict, fmt: str):
    target = predict.root / "results" / f"p.{fmt}"
    target.parent.mkdir()
    target.write_text("old")
    link = predict.root / f"latest.{fmt}"
    link.symlink_to(target)
    rc, _, err = predict(str(predict.images), "-o", str(link), "--format", fmt)
    assert rc == 0 and not error_lines(err)
    assert link.is_symlink() and link.resolve() == target  # the link stays a link ...
    text = target.read_text()  # ... to the new predictions
    assert len(json.loads(text)["predictions"] if fmt == "json" else pd.read_csv(target)) == 5


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_predict_writes_into_a_fifo_without_replacing_it(predict: Predict, fmt: str):
    fifo = predict.root / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []

    def read() -> None:
        with open(fifo, "rb") as handle:
            received.append(handle.read())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    rc, _, err = predict(str(predict.images), "-o", str(fifo), "--format", fmt)
    assert rc == 0 and not error_lines(err)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)  # still the FIFO, not a regular file in its place
    reader.join(timeout=30)
    text = received[0].decode()
    assert len(json.loads(text)["predictions"]) == 5 if fmt == "json" else len(text.splitlines()) == 6


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_predict_writes_a_file_with_two_hard_links_under_both_names(predict: Predict, fmt: str):
    output, other = predict.root / f"p.{fmt}", predict.root / f"copy.{fmt}"
    output.write_text("old")
    os.link(output, other)
    rc, _, err = predict(str(predict.images), "-o", str(output), "--format", fmt)
    assert rc == 0 and not error_lines(err)
    assert os.path.samefile(output, other) and other.read_text() == output.read_text() != "old"


def test_two_predicts_writing_the_same_output_leave_one_whole_file(predict: Predict, monkeypatch):
    import keras

    output = predict.root / "p.csv"
    real, runs = keras.Model.predict_on_batch, []

    def predict_on_batch(self, x):  # the first run's first batch starts a second run to the same -o
        if not runs:
            runs.append(None)
            runs[0] = predict(str(predict.images), "-o", str(output))  # rows longer than the first run's
        return real(self, x)

    monkeypatch.setattr(keras.Model, "predict_on_batch", predict_on_batch)
    rc, _, err = predict(str(predict.images), "-o", str(output), "--batch-size", "2", "--top-k", "1")
    assert rc == 0 and runs[0][0] == 0 and not error_lines(err)
    frame = pd.read_csv(output, dtype=str)  # one run's file, whole: not the rows of one over those of the other
    # (malignant and refer are empty: this folder ships no decision rules, and its rows say so in note)
    whole = frame.drop(columns=["malignant", "refer"])
    assert len(frame) == 5 and frame["top_k"].str.count(";").nunique() == 1 and not whole.isna().any().any()


def test_predict_creates_a_missing_output_folder(predict: Predict):
    rc, _, err = predict(str(predict.images), "-o", str(predict.root / "new" / "sub" / "p.csv"))
    assert rc == 0 and not error_lines(err) and len(pd.read_csv(predict.root / "new" / "sub" / "p.csv")) == 5


def test_predict_refuses_a_looping_output_link(predict: Predict):
    (predict.root / "loop.csv").symlink_to(predict.root / "loop.csv")
    fails_once(*predict(str(predict.images), "-o", str(predict.root / "loop.csv"))[::2], "-o", "loop.csv")


def test_predict_keeps_the_previous_output_when_the_model_cannot_be_loaded(predict: Predict):
    (predict.root / "p.csv").write_text("the previous run's rows\n")
    (predict.model_dir / "model.keras").write_text("not a model")
    fails_once(*predict(str(predict.images), "-o", str(predict.root / "p.csv"))[::2], "not a Keras model file")
    assert (predict.root / "p.csv").read_text() == "the previous run's rows\n"
    assert sorted(p.name for p in predict.root.iterdir()) == ["images", "model", "p.csv"]


def test_predict_into_a_pipe_closed_early_says_so_in_one_line(predict: Predict):
    # As `skinlesion-predict model.keras images/ | head -1` does: the reader goes after one line.
    make_class_tree(predict.images / "many", {"z": 400}, start=1000)  # more rows than a pipe holds (64 KiB)
    env = {"PATH": str(Path(sys.executable).parent), "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    argv = [
        sys.executable,
        "-m",
        "skinlesion.deploy.predict",
        str(predict.model_dir / "model.keras"),
        str(predict.images),
    ]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline().startswith(b"path,predicted")
    proc.stdout.close()
    err = proc.stderr.read().decode(errors="replace")
    proc.wait(timeout=120)
    fails_once(proc.returncode, err, "standard output", "cannot write it")
    assert "Exception ignored" not in err
