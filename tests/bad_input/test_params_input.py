"""params.yaml values that fetch and split refuse with one ``error:`` line naming the key."""

from __future__ import annotations

import pytest

from .helpers import Project, fails_once


def test_params_refuse_a_negative_split_seed(project: Project):
    project.params["split"]["seed"] = -1
    project.write_params()
    fails_once(*project.run("split")[::2], "split.seed must be >= 0")


def test_params_refuse_a_negative_synthetic_seed(project: Project):
    project.params["data"]["synthetic"]["seed"] = -3
    project.write_params(source="synthetic")
    fails_once(*project.run("fetch")[::2], "data.synthetic.seed must be >= 0")


def test_params_refuse_a_key_given_twice(project: Project):
    text = (project.root / "params.yaml").read_text().replace("split:\n", "split:\n  seed: 5\n", 1)
    (project.root / "params.yaml").write_text(text)
    fails_once(*project.run("split")[::2], "'seed' appears twice", "keep one")


@pytest.mark.parametrize(
    "source, words",
    [
        # For the synthetic source too: DVC cannot load an empty path.
        pytest.param("synthetic", ("data.path must not be empty", "data/external"), id="synthetic"),
        pytest.param("folder", ("data.path must name a folder or archive",), id="folder"),
    ],
)
def test_params_refuse_an_empty_data_path(project: Project, source: str, words: tuple[str, ...]):
    project.write_params(source=source, path="")
    fails_once(*project.run("fetch")[::2], *words)
