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


# --- Seeds past what NumPy takes ----------------------------------------------------------------------


def test_params_refuse_a_split_seed_whose_validation_seed_numpy_refuses(project: Project):
    # split.seed + 1 seeds the validation split: 2**32 is one past NumPy's RandomState.
    project.fetched()
    project.params["split"]["seed"] = 2**32 - 1
    project.write_params()
    fails_once(*project.run("split")[::2], "split.seed must be <= 4294967294", "2**32 - 1")


def test_params_refuse_a_training_seed_numpy_refuses(project: Project):
    project.params["seeds"] = [0, 2**32]
    project.write_params()
    fails_once(*project.run("split")[::2], "seeds must be <= 4294967295", "keras.utils.set_random_seed")


# --- External sets named like the project's own sets -------------------------------------------------


@pytest.mark.parametrize("name", ["test", "val", "train", "Test"])
def test_params_refuse_an_external_set_named_like_a_split(project: Project, name: str):
    project.fetched()
    project.params["external"] = {name: {"source": "folder", "path": str(project.src)}}
    project.write_params()
    fails_once(*project.run("split")[::2], f"external.{name}", "the project's own sets", "rename")
    assert not (project.root / "data" / "splits").exists()  # refused before any work


# --- The newer evaluate params --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, words",
    [
        pytest.param({"subgroups": ["sex", "age", "sex"]}, ("evaluate.subgroups", "twice"), id="subgroup-twice"),
        pytest.param({"subgroup_bins": [30, float("nan")]}, ("evaluate.subgroup_bins", "finite"), id="nan-bin"),
        pytest.param({"subgroup_bins": [30, float("inf")]}, ("evaluate.subgroup_bins", "finite"), id="inf-bin"),
        pytest.param({"alpha": 0.5}, ("evaluate.alpha",), id="alpha-0.5"),
        pytest.param({"operating_points": {"specificity": [0.9, 0.9], "sensitivity": [0.9]}}, ("distinct",), id="op"),
        pytest.param({"operating_points": {"specificity": [1.0], "sensitivity": []}}, ("specificity",), id="op-1"),
    ],
)
def test_params_refuse_evaluate_values_out_of_range(project: Project, change: dict, words: tuple[str, ...]):
    project.params["evaluate"].update(change)
    project.write_params()
    fails_once(*project.run("split")[::2], *words)
