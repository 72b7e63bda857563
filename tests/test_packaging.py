"""The package as a user gets it: installed, imported and run from anywhere, without the checkout on the path.

Every other test imports the package from the checkout (pytest's rootdir, ``PYTHONPATH=.``, ``cwd=REPO``),
so a broken ``pyproject.toml`` (packages list, entry point) or a requirements file without ``-e .`` would
pass them all. These run the installed package from an empty folder with ``PYTHONPATH`` unset.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from skinlesion.core import layout

from .conftest import REPO, copy_sources

COMMAND = "skinlesion-predict"
# Committed outputs and caches: not part of what a wheel is built from.
GENERATED = (*layout.GENERATED, Path(".dvc"), Path("data"))


def clean_env() -> dict[str, str]:
    """This environment without ``PYTHONPATH``: only what is installed can be imported."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return env | {"TF_CPP_MIN_LOG_LEVEL": "3"}


def modules() -> list[str]:
    """Every module of the checkout's package, by dotted name."""
    package = REPO / "skinlesion"
    return sorted(
        ".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__") for p in package.rglob("*.py")
    )


def import_modules(python: Path | str, cwd: Path, names: list[str]) -> subprocess.CompletedProcess:
    """Import ``names`` in a fresh ``python`` run from ``cwd``; it prints where skinlesion came from."""
    code = (
        "import importlib, sys\n"
        "for name in sys.argv[1:]:\n"
        "    importlib.import_module(name)\n"
        "import skinlesion\n"
        "print(skinlesion.__file__)\n"
    )
    return subprocess.run(
        [str(python), "-c", code, *names], cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=300
    )


def help_text(command: Path, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(command), "--help"], cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=120
    )


def test_the_environment_has_the_package_and_its_command_installed(tmp_path: Path):
    # What `pip install -r requirements-dev.txt` (its `-e .`) must have done: without it, the command is
    # missing and the package cannot be imported outside the checkout.
    command = Path(sys.executable).parent / COMMAND
    assert command.is_file(), f"{command} not installed: does requirements.txt still install the package (-e .)?"
    imported = import_modules(sys.executable, tmp_path, ["skinlesion.deploy.predict"])
    assert imported.returncode == 0, imported.stderr[-3000:]
    shown = help_text(command, tmp_path)
    assert shown.returncode == 0 and shown.stdout.startswith(f"usage: {COMMAND} "), shown.stderr[-3000:]


def fresh_venv(root: Path) -> Path:
    """A new virtual environment that sees this one's third-party libraries, but not its skinlesion."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, capture_output=True)
    python = root / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # A plain path line: the .pth files in that folder (this environment's editable skinlesion) stay unread.
    (Path(site) / "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return python


def test_a_wheel_of_this_checkout_installs_every_module_and_the_command(tmp_path: Path):
    if shutil.which("git") is None:
        import pytest

        pytest.skip("git is not installed")
    source, wheels, empty = tmp_path / "source", tmp_path / "wheels", tmp_path / "empty"
    copy_sources(source, GENERATED)
    empty.mkdir()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    built = subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(wheels), str(source)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    python = fresh_venv(tmp_path / "venv")
    installed = subprocess.run(
        [*pip, "--python", str(python), "install", "--no-deps", "--no-index", *map(str, wheels.glob("*.whl"))],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    imported = import_modules(python, empty, modules())
    assert imported.returncode == 0, imported.stderr[-3000:]
    assert Path(imported.stdout.strip()).is_relative_to(tmp_path / "venv")  # the wheel's copy, not the checkout
    shown = help_text(tmp_path / "venv" / "bin" / COMMAND, empty)
    assert shown.returncode == 0 and shown.stdout.startswith(f"usage: {COMMAND} "), shown.stderr[-3000:]
    assert list(empty.iterdir()) == []
