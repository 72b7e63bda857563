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
