"""The lesion metadata CSV (``data.metadata``, ``split.group_by``): bad files, bad params, stale raw folders."""

from __future__ import annotations

import pandas as pd
import pytest

from ..conftest import make_class_tree
from .helpers import Project, fails_once


def _metadata(p: Project, rows: list[tuple[str, str]], name: str = "meta.csv", **split) -> None:
    pd.DataFrame(rows, columns=["image_id", "lesion_id"]).to_csv(p.src / name, index=False)
    p.params["split"].update(group_by="lesion_id", **split)
    p.write_params(metadata=name)


# --- The metadata file -------------------------------------------------------------------------------


def test_split_refuses_duplicate_image_ids_with_different_lesion_ids(project: Project):
    make_class_tree(project.src, {"a": 10, "b": 10})
    rows = [(f"img_{i:04d}", f"L{i}") for i in range(20)] + [("img_0003", "L99"), ("img_0007", "L98")]
    _metadata(project, rows)
    assert project.run("fetch")[0] == 0
    fails_once(*project.run("split")[::2], "2 image id(s)", "img_0003", "img_0007", "keep one row per id")


def test_split_takes_duplicate_image_ids_with_the_same_lesion_id_as_one_row(project: Project):
    make_class_tree(project.src, {"a": 10, "b": 10})
    _metadata(project, [(f"img_{i:04d}", f"L{i // 2}") for i in range(20)] + [("img_0003", "L1")])
    assert project.run("fetch")[0] == 0
    assert project.run("split")[0] == 0 and project.summary()["grouping"]["group_by"] == "lesion_id"


@pytest.mark.parametrize(
    "content, words",
    [
        pytest.param(b"", ("data.metadata", "is empty"), id="0-byte"),
        pytest.param(
            "image_id,lesion_id\nimg_0000,l\xe9sion\n".encode("utf-16"), ("data.metadata", "UTF-8"), id="not-utf8"
        ),
    ],
)
def test_split_refuses_an_unreadable_metadata_csv(project: Project, content: bytes, words: tuple[str, ...]):
    make_class_tree(project.src, {"a": 10, "b": 10})
    _metadata(project, [])
    (project.src / "meta.csv").write_bytes(content)
    assert project.run("fetch")[0] == 0
    fails_once(*project.run("split")[::2], *words)


def test_fetch_refuses_a_metadata_path_that_is_a_folder(project: Project):
    make_class_tree(project.src, {"a": 10, "b": 10})
    (project.src / "meta.csv").mkdir()
    project.write_params(metadata="meta.csv")
    fails_once(*project.run("fetch")[::2], "data.metadata=meta.csv", "folder")


def test_fetch_subprocess_refuses_a_metadata_name_not_in_the_data_source(project: Project):
    make_class_tree(project.src, {"a": 10, "b": 10})
    project.write_params(metadata="HAM10000_metadata.csv")
    fails_once(*project.subprocess("fetch")[::2], "data.metadata=HAM10000_metadata.csv", "no such file")
    assert not (project.root / "data" / "raw").exists() and not (project.root / "data" / ".raw.partial").exists()


# --- The metadata params -----------------------------------------------------------------------------


def test_params_refuse_metadata_outside_the_data_source(project: Project):
    project.write_params(metadata="../HAM10000_metadata.csv")
    fails_once(*project.run("fetch")[::2], "data.metadata", "inside the data source")


def test_params_refuse_metadata_with_the_synthetic_source(project: Project):
    # The synthetic source has no metadata.
    project.write_params(source="synthetic", metadata="meta.csv")
    fails_once(*project.run("fetch")[::2], "data.metadata", "must be empty for source=synthetic")


def test_split_refuses_group_by_without_metadata(project: Project):
    project.fetched()
    project.params["split"]["group_by"] = "lesion_id"
    project.write_params()
    fails_once(*project.run("split")[::2], "split.group_by=lesion_id", "data.metadata")


def test_split_refuses_a_raw_folder_fetched_with_other_metadata_params(project: Project):
    project.fetched()
    project.write_params(metadata="meta.csv")
    fails_once(*project.run("split")[::2], "metadata.csv", "rerun `dvc repro fetch`")
