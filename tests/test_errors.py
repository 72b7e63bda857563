import pytest

from skinlesion.core.errors import DataError, cli
from skinlesion.core.layout import run_arguments


def test_cli_turns_user_errors_into_one_line_and_exit_2(capsys):
    @cli
    def fails() -> None:
        raise DataError("data/raw: no files; run the fetch stage first")

    assert fails() == 2
    err = capsys.readouterr().err
    assert err == "error: data/raw: no files; run the fetch stage first\n"


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
