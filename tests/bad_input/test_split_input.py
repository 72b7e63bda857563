"""The split stage on bad images in a good raw folder: odd names, one class, huge or unreadable images."""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image

from skinlesion.core.io import ESCAPE
from skinlesion.core.layout import read_split

from ..conftest import make_class_tree, write_image
from .helpers import Project, cells, error_lines, fails_once, skipped_once

# --- Non-UTF-8 and other unprintable file names ------------------------------------------------------


def test_split_counts_a_latin1_file_name(project: Project):
    # As copied from an archive made on Windows.
    write_image(Path(os.fsdecode(bytes(project.src / "a") + b"/caf\xe9.png")), 99)
    project.fetched()
    skipped_once(project, "bad_file_name")
    assert project.skipped()["path"].iloc[0] == "data/raw/unsplit/a/caf\\xe9.png"  # the bytes, shown safely


def test_split_counts_every_image_of_a_latin1_class_folder(project: Project):
    make_class_tree(Path(os.fsdecode(bytes(project.src) + b"/n\xe6vus")), {"": 3}, start=50)
    project.fetched()
    skipped_once(project, "bad_file_name", 3)


def test_split_counts_a_file_name_with_a_newline(project: Project):
    write_image(project.src / "a" / "two\nlines.png", 77)
    project.fetched()
    skipped_once(project, "bad_file_name")


# --- One class --------------------------------------------------------------------------------------


def test_split_refuses_one_class(project: Project):
    project.fetched({"nevus": 12})
    fails_once(*project.run("split")[::2], "1 class (nevus)", "at least two")


def test_split_refuses_one_class_in_train_and_test_folders(project: Project):
    make_class_tree(project.src / "train", {"nevus": 8})
    make_class_tree(project.src / "test", {"nevus": 3}, start=20)
    assert project.run("fetch")[0] == 0
    fails_once(*project.run("split")[::2], "1 class (nevus)")


# --- Resource limits --------------------------------------------------------------------------------


def test_split_counts_a_144_megapixel_png_of_18_kb_as_too_large(project: Project):
    Image.new("1", (12_000, 12_000)).save((project.src / "a").mkdir(parents=True) or project.src / "a" / "huge.png")
    assert (project.src / "a" / "huge.png").stat().st_size < 100_000
    project.fetched()
    skipped_once(project, "too_large")
    assert "40,000,000" in project.skipped()["detail"].iloc[0]  # split.max_pixels, the stated limit


def test_split_counts_an_image_over_a_lowered_max_pixels_as_too_large(project: Project):
    write_image(project.src / "a" / "big.png", 5, size=200)
    project.params["split"]["max_pixels"] = 30_000
    project.write_params()
    project.fetched()
    skipped_once(project, "too_large")


# --- Unreadable files --------------------------------------------------------------------------------


def test_split_counts_an_unreadable_image(project: Project, monkeypatch):
    from skinlesion.core import images

    project.fetched()

    def open_(path, *args, **kwargs):
        if str(path).endswith("unsplit/a/img_0003.png"):
            raise PermissionError(13, "Permission denied", str(path))
        return open(path, *args, **kwargs)

    monkeypatch.setattr(images, "open", open_, raising=False)  # as chmod 000 does for a user other than root
    skipped_once(project, "unreadable")


# --- CSV formula injection --------------------------------------------------------------------------


def test_split_escapes_class_and_file_names_that_start_a_spreadsheet_formula(project: Project):
    make_class_tree(project.src, {"=HYPERLINK(1)": 10, "-ve": 10})
    write_image(project.src / "-ve" / "@SUM(A1).png", 42)
    assert project.run("fetch")[0] == 0 and project.run("split")[0] == 0
    splits = project.root / "data" / "splits"
    written = [c for f in (*splits.glob("*.csv"), project.root / "plots" / "class_counts.csv") for c in cells(f)]
    assert not [c for c in written if c[:1] in ("=", "+", "-", "@")]
    assert {"'=HYPERLINK(1)", "'-ve", "'@SUM(A1)"} <= set(written)
    train = read_split("train", splits)  # the project reads back the names it wrote
    assert set(train["label"]) == {"=HYPERLINK(1)", "-ve"} and ESCAPE not in "".join(train["label"])


# --- Images too small to show a lesion (split.min_side) ----------------------------------------------


def test_split_counts_images_under_min_side_and_keeps_dermamnist_sized_ones(project: Project):
    for side in (1, 7, 8, 28):  # 28 px: DermaMNIST's smallest images must pass
        write_image(project.src / "a" / f"side{side}.png", 300 + side, size=side)
    project.fetched()
    skipped_once(project, "too_small", 2)
    assert sorted(project.skipped()["path"].str.rsplit("/", n=1).str[-1]) == ["side1.png", "side7.png"]
    assert "a side under 8 px" in project.skipped()["detail"].iloc[0]  # split.min_side, the stated limit


# --- A training class that validation or test lacks --------------------------------------------------


def test_split_warns_of_a_training_class_the_test_split_lacks(project: Project):
    make_class_tree(project.src / "train", {"a": 8, "b": 8, "c": 8})
    make_class_tree(project.src / "test", {"a": 3, "b": 3}, start=50)
    assert project.run("fetch")[0] == 0
    rc, out, err = project.run("split")
    assert rc == 0 and not error_lines(err)
    warnings = [line for line in out.splitlines() if line.startswith("warning:") and "test split" in line]
    assert len(warnings) == 1 and "training class(es) c" in warnings[0] and "balanced accuracy" in warnings[0]
    assert project.summary()["missing_classes"] == {"val": [], "test": ["c"]}
