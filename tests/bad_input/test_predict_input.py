"""``skinlesion-predict`` given bad images, options or output paths (with a good model)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from ..conftest import REPO, corrupt_jpeg, write_image
from .helpers import Predict, cells, error_lines, fails_once


def failing_model(monkeypatch, after: int) -> None:
    """Make every Keras model fail on its forward pass after ``after`` successful ones."""
    import keras

    real, calls = keras.Model.predict_on_batch, []

    def predict_on_batch(self, x):
        calls.append(len(x))
        if len(calls) > after:
            raise MemoryError("out of memory (test stub)")
        return real(self, x)

    monkeypatch.setattr(keras.Model, "predict_on_batch", predict_on_batch)


# --- Bad images among good ones: reported one line each, the others predicted (exit status 1) ---------


def test_predict_reports_a_latin1_file_name_among_good_images(predict: Predict):
    write_image(Path(os.fsdecode(bytes(predict.images / "x") + b"/caf\xe9.png")), 9)
    rc, _, err = predict(str(predict.images), "-o", str(predict.root / "p.csv"))
    assert rc == 1 and "Traceback" not in err
    assert error_lines(err) == [
        f"error: {predict.images}/x/caf\\xe9.png: bad_file_name: not valid UTF-8 or control characters"
    ]
    assert len(pd.read_csv(predict.root / "p.csv")) == 5


def test_predict_reports_a_dangling_symbolic_link_in_a_folder(predict: Predict):
    (predict.images / "x" / "gone.png").symlink_to(predict.root / "nowhere.png")
    rc, out, err = predict(str(predict.images))
    assert rc == 1 and "Traceback" not in err
    assert error_lines(err) == [
        f"error: {predict.images}/x/gone.png: broken_link: the symbolic link's target does not exist"
    ]
    assert len(out.splitlines()) == 1 + 5


def test_predict_reports_a_looping_symbolic_link(predict: Predict):
    (predict.images / "x" / "loop.png").symlink_to(predict.images / "x" / "loop.png")
    rc, out, err = predict(str(predict.images))
    assert rc == 1 and len(error_lines(err)) == 1 and "loop.png: broken_link" in err
    assert len(out.splitlines()) == 1 + 5


def test_predict_reports_a_missing_input_among_good_ones(predict: Predict):
    rc, out, err = predict(str(predict.images), str(predict.root / "missing.jpg"))
    assert rc == 1 and error_lines(err) == [f"error: {predict.root / 'missing.jpg'}: missing: no such file or folder"]
    assert len(out.splitlines()) == 1 + 5


def test_predict_reports_a_corrupt_image_among_good_ones(predict: Predict):
    jpeg = write_image(predict.root / "ok.jpg", 5, size=48, fmt="JPEG").read_bytes()
    (predict.images / "y" / "broken.jpg").write_bytes(corrupt_jpeg(jpeg))
    rc, out, err = predict(str(predict.images))
    assert rc == 1 and len(error_lines(err)) == 1 and "broken.jpg: corrupt" in err and len(out.splitlines()) == 6


def test_predict_escapes_file_names_that_start_a_spreadsheet_formula(predict: Predict, monkeypatch):
    write_image(predict.root / "=cmd().png", 8)
    monkeypatch.chdir(predict.root)
    rc, out, err = predict("=cmd().png", "-o", "p.csv")
    assert rc == 0 and not error_lines(err)
    assert cells(predict.root / "p.csv")[len(cells(predict.root / "p.csv")) // 2] == "'=cmd().png"


def test_predict_refuses_an_empty_folder(predict: Predict):
    (predict.root / "empty").mkdir()
    fails_once(
        *predict(str(predict.root / "empty"), "-o", str(predict.root / "p.csv"))[::2], "no image files to predict"
    )
    assert not (predict.root / "p.csv").exists()


def test_predict_keeps_the_predictions_made_before_the_model_fails_part_way(predict: Predict, monkeypatch):
    failing_model(monkeypatch, after=1)
    rc, _, err = predict(str(predict.images), "-o", str(predict.root / "p.csv"), "--batch-size", "2")
    fails_once(rc, err, "the model failed", "the 2 predictions before it are in")
    assert len(pd.read_csv(predict.root / "p.csv")) == 2


# --- Options -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "option, words",
    [
        pytest.param(("--batch-size", "0"), ("--batch-size", "must be an integer >= 1"), id="batch-size-0"),
        pytest.param(("--batch-size", "-1"), ("--batch-size", "must be an integer >= 1"), id="batch-size-minus-1"),
        pytest.param(("--top-k", "0"), ("--top-k",), id="top-k-0"),
    ],
)
def test_predict_refuses_an_option_out_of_range(predict: Predict, option: tuple[str, str], words: tuple[str, ...]):
    fails_once(*predict(str(predict.images), *option)[::2], *words)


def test_predict_refuses_explain_naming_a_file(predict: Predict):
    (predict.root / "cam").write_text("a file")
    fails_once(
        *predict(str(predict.images), "--explain", str(predict.root / "cam"))[::2],
        "--explain",
        "cannot make that folder",
    )


# --- The output path (-o) ------------------------------------------------------------------------------


def test_predict_refuses_an_output_that_is_a_folder(predict: Predict):
    fails_once(*predict(str(predict.images), "-o", str(predict.root))[::2], "is a folder")


def test_predict_refuses_an_output_naming_the_model(predict: Predict):
    before = (predict.model_dir / "model.keras").read_bytes()
    fails_once(
        *predict(str(predict.images), "-o", str(predict.model_dir / "model.keras"))[::2], "is the input", "model.keras"
    )
    assert (predict.model_dir / "model.keras").read_bytes() == before


def test_predict_refuses_an_output_under_a_file(predict: Predict):
    (predict.root / "file").write_text("x")
    fails_once(
        *predict(str(predict.images), "-o", str(predict.root / "file" / "p.csv"))[::2], "is a file, not a folder"
    )


def test_predict_refuses_an_output_naming_an_input_image_before_any_work(predict: Predict, monkeypatch):
    from skinlesion.deploy import predict as predict_module

    target = predict.images / "x" / "img_0000.png"
    before, loaded = target.read_bytes(), []
    monkeypatch.setattr(predict_module, "load_model_and_labels", lambda *args: loaded.append(args))
    fails_once(*predict(str(predict.images), "-o", str(target))[::2], "is the input")
    assert target.read_bytes() == before and loaded == []  # the model was not even loaded


def test_predict_subprocess_refuses_an_output_naming_an_input_image_by_another_path(predict: Predict):
    target = predict.images / "y" / "img_0004.png"
    before = target.read_bytes()
    env = {"PATH": str(Path(sys.executable).parent), "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    other_path = predict.images / "x" / ".." / "y" / target.name
    argv = [str(predict.model_dir / "model.keras"), str(target), "-o", str(other_path)]
    proc = subprocess.run([sys.executable, "-m", "skinlesion.deploy.predict", *argv], env=env, capture_output=True)
    fails_once(proc.returncode, proc.stderr.decode(), "is the input")
    assert target.read_bytes() == before


def test_predict_refuses_an_output_in_a_folder_without_write_permission(predict: Predict, monkeypatch):
    from skinlesion.deploy import outputs

    def open_(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(outputs, "open", open_, raising=False)  # as a read-only folder does for a user
    fails_once(
        *predict(str(predict.images), "-o", str(predict.root / "p.csv"))[::2], "cannot write it", "Permission denied"
    )


# --- Images too small, files given twice, things that are not files ----------------------------------


def test_predict_refuses_a_1x1_image_among_good_ones(predict: Predict):
    write_image(predict.images / "x" / "pixel.png", 11, size=1)
    rc, out, err = predict(str(predict.images))
    assert rc == 1 and error_lines(err) == [
        f"error: {predict.images}/x/pixel.png: too_small: 1 x 1 pixels, a side under 8 px (--min-side 8)"
    ]
    assert len(out.splitlines()) == 1 + 5
    rc, out, err = predict(str(predict.images), "--min-side", "1")  # asked for: predicted
    assert rc == 0 and len(out.splitlines()) == 1 + 6


def test_predict_min_side_default_is_split_min_side():
    import yaml

    from skinlesion.deploy.predict import MIN_SIDE, parse_args

    assert (
        parse_args(["m.keras", "x.png"]).min_side
        == MIN_SIDE
        == yaml.safe_load((REPO / "params.yaml").read_text())["split"]["min_side"]
    )


def test_predict_predicts_a_file_given_twice_once_and_says_so(predict: Predict):
    image = predict.images / "x" / "img_0000.png"
    rc, out, err = predict(str(predict.images), str(image), str(predict.images / "x" / ".." / "x" / image.name))
    assert rc == 0 and not error_lines(err)
    assert len(out.splitlines()) == 1 + 5
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2 and all("predicted once" in line for line in warnings)


def test_predict_reports_a_fifo_given_or_found_in_a_folder(predict: Predict):
    os.mkfifo(predict.images / "x" / "pipe.png")
    os.mkfifo(predict.root / "given.png")
    rc, out, err = predict(str(predict.images), str(predict.root / "given.png"))
    assert rc == 1 and len(out.splitlines()) == 1 + 5
    assert sorted(error_lines(err)) == [
        f"error: {predict.root}/given.png: not_a_file: a FIFO, socket or device, not an image file",
        f"error: {predict.images}/x/pipe.png: not_a_file: a FIFO, socket or device, not an image file",
    ]


def test_predict_reports_a_link_to_a_folder_inside_a_folder(predict: Predict):
    (predict.images / "x" / "elsewhere").symlink_to(predict.root / "model", target_is_directory=True)
    rc, out, err = predict(str(predict.images))
    assert rc == 1 and len(out.splitlines()) == 1 + 5
    assert error_lines(err) == [
        f"error: {predict.images}/x/elsewhere: link_to_folder: a symbolic link to a folder is not followed; "
        "give the folder itself"
    ]


@pytest.mark.parametrize(
    "option, words",
    [
        pytest.param(("--top-k", "4"), ("--top-k 4", "the model has 3 classes", "at most 3"), id="top-k-over-classes"),
        pytest.param(("--tta", "9"), ("unrecognized arguments: --tta 9",), id="tta"),
        pytest.param(("--min-side", "0"), ("--min-side", "must be an integer >= 1"), id="min-side-0"),
    ],
)
def test_predict_refuses_an_option_the_model_cannot_honour(predict: Predict, option, words: tuple[str, ...]):
    fails_once(*predict(str(predict.images), *option)[::2], *words)
