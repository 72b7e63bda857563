"""Interrupted, crashed, killed or missing runs: nothing produced before is lost, and a half-done raw folder
or split is refused until it is redone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from skinlesion.core.layout import read_split

from ..conftest import REPO, write_image
from .helpers import Project, error_lines, fails_once

# --- fetch: interrupted, failed or missing -----------------------------------------------------------


def test_fetch_interrupted_part_way_keeps_the_previous_raw_folder(project: Project, monkeypatch):
    project.fetched()
    before = project.raw_files()
    write_image(project.src / "b" / "new.png", 1234)
    copy, calls = shutil.copyfile, []

    def copyfile(*args, **kwargs):
        calls.append(args)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return copy(*args, **kwargs)

    monkeypatch.setattr(shutil, "copyfile", copyfile)
    rc, _, err = project.run("fetch")
    assert rc == 130 and error_lines(err) == ["error: interrupted"] and "Traceback" not in err
    assert project.raw_files() == before and not (project.root / "data" / ".raw.partial").exists()


def test_fetch_of_a_bad_archive_after_a_good_fetch_keeps_the_raw_folder(project: Project):
    project.fetched()
    before = project.raw_files()
    (project.root / "d.zip").write_bytes(b"garbage")
    project.write_params(source="zip", path=str(project.root / "d.zip"))
    fails_once(*project.run("fetch")[::2], "d.zip")
    assert project.raw_files() == before


def test_split_refuses_a_half_copied_raw_folder_without_source_json(project: Project):
    project.fetched()
    (project.root / "data" / "raw" / "SOURCE.json").unlink()
    fails_once(*project.run("split")[::2], "data/raw is incomplete", "rerun `dvc repro fetch`")


def test_split_refuses_a_raw_folder_changed_after_fetch(project: Project):
    project.fetched()
    (project.root / "data" / "raw" / "unsplit" / "a" / "img_0002.png").unlink()
    fails_once(*project.run("split")[::2], "data/raw holds 19 files", "rerun `dvc repro fetch`")


def test_split_subprocess_before_fetch_says_to_run_fetch(project: Project):
    fails_once(*project.subprocess("split")[::2], "data/raw not found", "dvc repro fetch")


# --- split: crashed or killed while replacing its outputs --------------------------------------------


def _consistent(splits: Path) -> None:
    """The split files can be read, and no image (by content) is in two of them."""
    hashes = [set(read_split(name, splits)["sha256"]) for name in ("train", "val", "test")]
    assert not (hashes[0] & hashes[1] or hashes[0] & hashes[2] or hashes[1] & hashes[2])


def _changed_source(p: Project) -> dict[str, bytes]:
    """Split once, then fetch a source with one more image (every output of the next split differs)."""
    p.fetched({"a": 12, "b": 12})
    assert p.run("split")[0] == 0
    before = p.outputs()
    write_image(p.src / "b" / "new.png", 4321)
    assert p.run("fetch")[0] == 0
    return before


def test_split_crash_after_the_first_output_keeps_the_previous_outputs(project: Project, monkeypatch):
    from skinlesion.core import io as core_io

    before = _changed_source(project)
    real, swapped = core_io._swap, []

    def disk_full_after_one(new: Path, target: Path) -> None:
        if swapped:
            raise OSError(28, "No space left on device", str(target))
        swapped.append(target)
        real(new, target)

    monkeypatch.setattr(core_io, "_swap", disk_full_after_one)
    rc, _, err = project.run("split")
    fails_once(rc, err, "No space left on device", "the previous outputs are kept")
    assert swapped == [Path("data/splits/train.csv")]  # the crash came after the first file was replaced
    assert project.outputs() == before  # every file as the previous run left it, none from this one
    assert not [f for f in (project.root / "data").rglob(".*") if f.is_file()]  # no journal, no leftovers
    _consistent(project.root / "data" / "splits")
    monkeypatch.undo()
    monkeypatch.chdir(project.root)
    assert project.run("split")[0] == 0 and project.outputs() != before


# Runs the split stage with its process killed (os._exit: no except or finally block runs) right after
# the first of its outputs was replaced.
KILLED_AFTER_FIRST_SWAP = """
import os, runpy, sys
from skinlesion.core import io
real = io._swap
def swap(new, target):
    if getattr(swap, "done", False):
        os._exit(137)
    swap.done = True
    real(new, target)
io._swap = swap
runpy.run_path(sys.argv[1], run_name="__main__")
"""


def test_split_killed_during_the_swap_is_refused_then_rolled_back(project: Project):
    from skinlesion.core import io as core_io
    from skinlesion.core.layout import split_journal

    before = _changed_source(project)
    env = {"PATH": str(Path(sys.executable).parent), "PYTHONPATH": str(REPO)}
    script = [sys.executable, "-c", KILLED_AFTER_FIRST_SWAP, str(REPO / "stages" / "split.py")]
    assert subprocess.run(script, cwd=project.root, env=env, capture_output=True).returncode == 137
    splits = project.root / "data" / "splits"
    assert split_journal(splits).exists() and project.outputs() != before  # a mix on disk ...
    with pytest.raises(Exception, match="interrupted while replacing its files; rerun `dvc repro split`"):
        read_split("val", splits)  # ... that nothing reads
    core_io.roll_back(split_journal(splits))  # what the next split run does first
    assert project.outputs() == before and not split_journal(splits).exists()  # the previous outputs, whole
    assert project.run("split")[0] == 0 and project.outputs() != before
    _consistent(splits)


# --- dvc status before any run -----------------------------------------------------------------------


def _dvc_project(root: Path, params: dict, dvc_yaml: str) -> subprocess.CompletedProcess:
    root.mkdir()
    (root / "dvc.yaml").write_text(dvc_yaml)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.copytree(REPO / ".dvc", root / ".dvc", ignore=shutil.ignore_patterns("tmp", "cache", "plots"))
    shutil.copy(REPO / ".dvcignore", root / ".dvcignore")
    env = {"PATH": os.environ["PATH"], "HOME": str(root), "GIT_CONFIG_NOSYSTEM": "1"}
    subprocess.run(["git", "init", "-q"], cwd=root, check=True, env=env)
    return subprocess.run([sys.executable, "-m", "dvc", "status"], cwd=root, env=env, capture_output=True, text=True)


def test_dvc_status_with_no_metadata_gives_the_status_not_an_unexpected_error(tmp_path: Path):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    assert params["data"]["metadata"] == ""  # "no metadata", the default
    dvc_yaml = (REPO / "dvc.yaml").read_text()
    proc = _dvc_project(tmp_path / "repo", params, dvc_yaml)
    assert proc.returncode == 0 and "unexpected error" not in proc.stdout + proc.stderr, proc.stderr
    assert "fetch:" in proc.stdout and "split:" in proc.stdout  # DVC loaded the pipeline and reports on it
    # The check can fail: with the user's metadata path interpolated into split's deps, as it was, DVC
    # cannot even load dvc.yaml.
    old = dvc_yaml.replace(
        "      - data/raw\n    params:\n      - split\n",
        "      - data/raw\n      - ${data.metadata}\n    params:\n      - split\n",
    )
    assert old != dvc_yaml
    proc = _dvc_project(tmp_path / "old", params, old)
    assert proc.returncode != 0 and "unexpected error" in proc.stdout + proc.stderr
