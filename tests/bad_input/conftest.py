"""Fixtures of the bad-input tests: a project folder for the stages, the predict command and its model."""

from __future__ import annotations

from pathlib import Path

import pytest

from skinlesion.core.labels import LabelMap

from .helpers import External, Predict, Project


@pytest.fixture
def project(tmp_path: Path, monkeypatch, capsys) -> Project:
    """A project folder (the working directory for the test) whose stages run in-process."""
    return Project(tmp_path, monkeypatch, capsys)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A small Keras classifier of 8x8 images into 3 classes, saved as train saves models (never modified)."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.Rescaling(1 / 255), keras.layers.Flatten(), keras.layers.Dense(3)]
    )
    model = keras.Sequential([model, keras.layers.Softmax()])
    folder = tmp_path_factory.mktemp("model")
    LabelMap(("akiec", "bcc", "mel"), 8).save_model(model, folder)
    return folder / "model.keras"


@pytest.fixture
def predict(tmp_path: Path, tiny_model: Path, capsys) -> Predict:
    """The predict command in ``tmp_path``, with its own copy of :func:`tiny_model` and 5 images."""
    return Predict(tmp_path, tiny_model, capsys)


@pytest.fixture
def external(project: Project, tiny_model: Path) -> External:
    """A split project with one run (the tiny model) and an external set folder ``site/`` of 12 new images."""
    return External(project, tiny_model)
