import sys

import pytest

from skinlesion.core.errors import DataError, cli
from skinlesion.core.layout import run_arguments


def test_cli_turns_user_errors_into_one_line_and_exit_2(capsys, monkeypatch):
    monkeypatch.delenv("DVC_STAGE", raising=False)  # outside dvc repro: no restore hint

    @cli
    def fails() -> None:
        raise DataError("data/raw: no files; run the fetch stage first")

    assert fails() == 2
    err = capsys.readouterr().err
    assert err == "error: data/raw: no files; run the fetch stage first\n"


def test_an_error_during_a_progress_bar_is_a_line_of_its_own(capsys, monkeypatch):
    from tqdm import tqdm

    monkeypatch.delenv("DVC_STAGE", raising=False)

    @cli
    def fails_mid_loop() -> None:
        bar = tqdm(total=10, desc="predict", file=sys.stderr)  # left open: the loop is stopped by the error
        bar.update(5)
        raise DataError("out.csv: No space left on device")

    assert fails_mid_loop() == 2
    lines = capsys.readouterr().err.split("\n")
    assert "error: out.csv: No space left on device" in lines  # not inside the bar's line
    assert lines[-2].startswith("error:") and "predict" in "".join(lines[:-2])


def test_a_stage_failing_under_dvc_says_how_to_restore_its_previous_outputs(capsys, monkeypatch):
    monkeypatch.setenv("DVC_STAGE", "train@vgg19-0")  # as dvc repro sets it for the stage it runs

    @cli
    def fails() -> None:
        raise DataError("train.weights=x.h5: not found")

    assert fails() == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: train.weights=x.h5: not found (DVC removed")
    assert "`dvc checkout train@vgg19-0` restores them" in err


def test_cli_exit_codes_for_success_interrupt_and_bugs():
    assert cli(lambda: None)() == 0
    assert cli(lambda: 3)() == 3

    def interrupted():
        raise KeyboardInterrupt

    assert cli(interrupted)() == 130
    with pytest.raises(ZeroDivisionError):  # a bug is not a user error: its traceback is kept
        cli(lambda: 1 / 0)()


def test_run_arguments_need_backbone_and_integer_seed(capsys):
    args = run_arguments(["--backbone", "vgg19", "--seed", "2"], "x")
    assert (args.backbone, args.seed) == ("vgg19", 2)
    for argv in (["--backbone", "vgg19"], ["--backbone", "vgg19", "--seed", "two"]):
        with pytest.raises(SystemExit) as info:
            run_arguments(argv, "x")
        assert info.value.code == 2


def test_cli_pins_onednn_off_whatever_the_environment_says(monkeypatch):
    import os

    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "1")  # what TensorFlow decides by itself on some CPUs
    assert cli(lambda: int(os.environ["TF_ENABLE_ONEDNN_OPTS"]))() == 0


def test_no_entry_point_imports_tensorflow_before_its_wrapper_pins_the_numerics():
    # The pin is an environment variable TensorFlow reads when it is imported: a stage module (or the
    # predict command) that imported TensorFlow at module level would import it before the pin.
    import subprocess
    import sys

    from .conftest import REPO

    scripts = sorted((REPO / "stages").glob("*.py")) + [REPO / "skinlesion" / "deploy" / "predict.py"]
    code = (
        "import importlib.util, sys\n"
        "for path in sys.argv[1:]:\n"
        "    spec = importlib.util.spec_from_file_location('m' + str(abs(hash(path))), path)\n"
        "    spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *map(str, scripts)], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"
