"""What the bad-input tests share: the project folder, the predict command, and what "passes" means.

A test passes when the run fails with exactly one line starting ``error:`` (the library's own log lines
are never read), exit status 2 and no traceback (:func:`fails_once`), or succeeds with the file counted
under its reason in the stage's output (:func:`skipped_once`); nothing produced before may be lost.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import yaml

from ..conftest import REPO, make_class_tree


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def fails_once(rc: int, err: str, *words: str) -> str:
    """Assert one ``error:`` line, exit status 2 and no traceback; return the line (it must hold ``words``)."""
    assert "Traceback" not in err
    lines = error_lines(err)
    assert rc == 2 and len(lines) == 1, (rc, lines)
    assert all(w in lines[0] for w in words), (lines[0], words)
    return lines[0]


_STAGES: dict[str, Callable] = {}


def stage_main(script: str) -> Callable:
    """A stage script's ``main`` (wrapped by ``cli``, returning the exit status), loaded from stages/."""
    if script not in _STAGES:
        spec = importlib.util.spec_from_file_location(f"stage_{script}", REPO / "stages" / f"{script}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _STAGES[script] = module.main
    return _STAGES[script]


class Project:
    """A project folder with params.yaml (the repository's, edited) and a class-per-folder source ``src/``."""

    def __init__(self, root: Path, monkeypatch, capsys):
        self.root, self.capsys, self.src = root, capsys, root / "src"
        monkeypatch.chdir(root)
        self.params = yaml.safe_load((REPO / "params.yaml").read_text())
        self.params["data"].update(source="folder", path=str(self.src))
        self.params["runtime"]["workers"] = 1
        self.write_params()

    def write_params(self, **data) -> None:
        self.params["data"].update(data)
        (self.root / "params.yaml").write_text(yaml.safe_dump(self.params, sort_keys=False))

    def run(self, script: str, *argv: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        rc = stage_main(script)(list(argv)) if argv else stage_main(script)()
        out, err = self.capsys.readouterr()
        return rc, out, err

    def subprocess(self, script: str) -> tuple[int, str, str]:
        env = {"PATH": str(Path(sys.executable).parent), "PYTHONPATH": str(REPO)}
        proc = subprocess.run(
            [sys.executable, str(REPO / "stages" / f"{script}.py")], cwd=self.root, env=env, capture_output=True
        )
        return proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")

    def fetched(self, classes: dict[str, int] | None = None) -> Project:
        make_class_tree(self.src, classes or {"a": 10, "b": 10})
        rc, _, err = self.run("fetch")
        assert rc == 0, err
        return self

    def summary(self) -> dict:
        return json.loads((self.root / "reports" / "data.json").read_text())

    def skipped(self) -> pd.DataFrame:
        return pd.read_csv(self.root / "data" / "splits" / "skipped.csv", dtype=str, keep_default_na=False)

    def outputs(self) -> dict[str, bytes]:
        paths = [*(self.root / "data" / "splits").glob("*"), self.root / "reports" / "data.json"]
        return {p.name: p.read_bytes() for p in paths + [self.root / "plots" / "class_counts.csv"]}

    def raw_files(self) -> dict[str, bytes]:
        raw = self.root / "data" / "raw"
        return {p.relative_to(raw).as_posix(): p.read_bytes() for p in sorted(raw.rglob("*")) if p.is_file()}


def skipped_once(project: Project, reason: str, count: int = 1) -> None:
    """Assert that split succeeded and counted ``count`` files under ``reason`` in data.json and skipped.csv."""
    rc, out, err = project.run("split")
    assert rc == 0 and not error_lines(err) and "Traceback" not in err, err
    assert project.summary()["skipped"][reason] == count
    assert (project.skipped()["reason"] == reason).sum() == count
    assert f"'{reason}': {count}" in out  # the stage's closing line counts it too


class Predict:
    """The predict command run in-process in a project folder, with a copy of the tiny model."""

    def __init__(self, root: Path, model: Path, capsys):
        self.root, self.capsys = root, capsys
        self.model_dir = root / "model"
        self.model_dir.mkdir()
        shutil.copy(model, self.model_dir / "model.keras")
        shutil.copy(model.parent / "labels.json", self.model_dir / "labels.json")
        self.images = make_class_tree(root / "images", {"x": 3, "y": 2})

    def __call__(self, *args: str) -> tuple[int, str, str]:
        from skinlesion.deploy.predict import main

        self.capsys.readouterr()
        rc = main([str(self.model_dir / "model.keras"), *args])
        out, err = self.capsys.readouterr()
        return rc, out, err

    def labels(self, data) -> None:
        text = data if isinstance(data, str) else json.dumps(data)
        (self.model_dir / "labels.json").write_text(text)


def cells(path: Path) -> list[str]:
    """Every cell of a CSV file, row after row."""
    with open(path, newline="", encoding="utf-8") as handle:
        return [cell for row in csv.reader(handle) for cell in row]


class External:
    """A project trained on the tiny model's classes: fetched, split, one run (``mobilenet`` seed 0, the tiny
    model), and an external set ``site`` (``external.site``) in the folder ``site/``: 4 new images per class.
    """

    CLASSES = ("akiec", "bcc", "mel")  # the tiny model's (conftest.py)

    def __init__(self, project: Project, model: Path):
        self.project, self.root = project, project.root
        project.params.update(backbones=["mobilenet"], seeds=[0], model="mobilenet")
        project.fetched({c: 8 for c in self.CLASSES})
        assert project.run("split")[0] == 0
        run = self.root / "runs" / "mobilenet" / "seed0" / "model"
        run.mkdir(parents=True)
        shutil.copy(model, run / "model.keras")
        shutil.copy(model.parent / "labels.json", run / "labels.json")
        self.folder = make_class_tree(self.root / "site", {c: 4 for c in self.CLASSES}, start=500)
        self.set(source="folder", path=str(self.folder))

    def set(self, name: str = "site", **entry) -> None:
        """Make ``external.<name>`` the params' one external set."""
        self.project.params["external"] = {name: entry}
        self.project.write_params()

    def run(self, name: str = "site") -> tuple[int, str, str]:
        return self.project.run("external", "--name", name)

    def summary(self) -> dict:
        return json.loads((self.root / "external" / "site" / "data.json").read_text())

    def skipped(self) -> pd.DataFrame:
        return pd.read_csv(self.root / "external" / "site" / "skipped.csv", dtype=str, keep_default_na=False)


def counted_once(external: External, reason: str, count: int = 1) -> None:
    """Assert that the external stage succeeded and counted ``count`` files under ``reason`` (data.json, skipped)."""
    rc, _, err = external.run()
    assert rc == 0 and not error_lines(err) and "Traceback" not in err, err
    assert external.summary()["skipped"][reason] == count
    assert (external.skipped()["reason"] == reason).sum() == count
