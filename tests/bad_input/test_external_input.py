"""The external stage on bad external sets (``external.<name>``): names, links, files that are not what
their source says, metadata, label mappings. Checked like the training data: an error line or a counted skip.
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from ..conftest import write_image
from .helpers import External, counted_once, error_lines, fails_once

# --- Files of the set --------------------------------------------------------------------------------


def test_external_counts_a_latin1_file_name(external: External):
    write_image(Path(os.fsdecode(bytes(external.folder / "bcc") + b"/caf\xe9.png")), 999)
    counted_once(external, "bad_file_name")
    assert external.skipped().set_index("reason").loc["bad_file_name", "path"].endswith("caf\\xe9.png")
    assert external.summary()["scored"] == 12


def test_external_counts_symbolic_links_a_loop_a_dangling_one_and_one_to_a_file(external: External):
    folder = external.folder
    (folder / "mel" / "loop.png").symlink_to(folder / "mel" / "loop.png")
    (folder / "mel" / "gone.png").symlink_to(external.root / "nowhere.png")
    (folder / "akiec" / "other.png").symlink_to(write_image(external.root / "outside.png", 998))
    counted_once(external, "link", 3)
    assert external.summary()["files_seen"] == 15 and external.summary()["scored"] == 12


def test_external_counts_files_outside_class_folders(external: External):
    write_image(external.folder / "stray.png", 997)
    counted_once(external, "unlabelled")


def test_external_counts_an_image_under_min_side(external: External):
    write_image(external.folder / "bcc" / "pixel.png", 996, size=1)
    counted_once(external, "too_small")


# --- What the path points at ---------------------------------------------------------------------------


def _npz(path: Path, **arrays) -> Path:
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)
    return path


def _medmnist(n: int = 4, **changes) -> dict:
    rng = np.random.default_rng(0)
    arrays = {}
    for split in ("train", "val", "test"):
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, 28, 28, 3), dtype=np.uint8)
        arrays[f"{split}_labels"] = rng.integers(0, 7, (n, 1))
    return arrays | changes


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"image_id,dx\nISIC_0000000,mel\n", id="a-csv"),
        pytest.param(pickle.dumps({"train_images": [1, 2]}), id="a-pickle"),
        pytest.param(lambda p: _npz(p, **_medmnist(test_labels=np.array([[1], [2]], dtype=object))), id="objects"),
        pytest.param(lambda p: _npz(p, **_medmnist(test_labels=np.zeros((3, 1), int))), id="3-labels-4-images"),
        pytest.param(lambda p: _npz(p, **_medmnist(val_images=np.zeros((4, 28, 28, 5), np.uint8))), id="5-channels"),
    ],
)
def test_external_refuses_an_npz_source_that_is_not_a_medmnist_file(external: External, content):
    path = external.root / "set.npz"
    content(path) if callable(content) else path.write_bytes(content)
    external.set(source="npz", path=str(path))
    fails_once(*external.run()[::2], "external.site.path", "set.npz", "MedMNIST")


def test_external_refuses_a_zip_source_that_is_not_an_archive(external: External):
    (external.root / "set.zip").write_bytes(b"PK\x03\x04 not really a zip")
    external.set(source="zip", path=str(external.root / "set.zip"))
    fails_once(*external.run()[::2], "set.zip", "not a readable .zip or .tar archive")


def test_external_refuses_a_path_inside_its_own_output_folder_and_keeps_the_images(external: External):
    inside = external.root / "external" / "site" / "images"
    inside.parent.mkdir(parents=True)
    external.folder.rename(inside)
    before = sorted(p.relative_to(inside) for p in inside.rglob("*"))
    external.set(source="folder", path="external/site/images")
    fails_once(*external.run()[::2], "external.site.path", "external/site")
    assert sorted(p.relative_to(inside) for p in inside.rglob("*")) == before  # not one image deleted


# --- Labels ----------------------------------------------------------------------------------------------


def test_external_refuses_classes_mapping_a_label_onto_an_unknown_class(external: External):
    external.set(source="folder", path=str(external.folder), classes={"MEL": "melanoma"})
    line = fails_once(*external.run()[::2], "external.site.classes", "'melanoma'", "akiec, bcc, mel")
    assert "MEL" in line and not (external.root / "external" / "site").exists()  # refused before any work


def test_external_scores_a_set_of_one_class(external: External):
    for name in ("akiec", "bcc"):
        for image in (external.folder / name).iterdir():
            image.unlink()
        (external.folder / name).rmdir()
    rc, _, err = external.run()
    assert rc == 0 and not error_lines(err) and "Traceback" not in err, err
    assert external.summary()["per_class"] == {"mel": 4}


# --- Its metadata CSV (external.<name>.metadata) ----------------------------------------------------------


@pytest.mark.parametrize(
    "content, words",
    [
        pytest.param(None, ("no such file",), id="missing"),
        pytest.param("image_id,lesion_id\nimg_0500,l\xe9sion\n".encode("utf-16"), ("UTF-8",), id="utf-16"),
        pytest.param("image_id,lesion_id\nimg_0500,l\xe9sion\n".encode("latin-1"), ("UTF-8",), id="latin-1"),
        pytest.param(b"image_id;lesion_id\nimg_0500;L1\n", ("';'", "comma"), id="semicolons"),
        pytest.param(b"image_id,lesion_id,lesion_id\nimg_0500,L1,L2\n", ("'lesion_id' twice",), id="duplicate-column"),
        pytest.param(b"name,lesion_id\nimg_0500,L1\n", ("no column 'image_id'",), id="no-id-column"),
    ],
)
def test_external_refuses_a_bad_metadata_csv_naming_its_key(external: External, content: bytes | None, words):
    if content is not None:
        (external.folder / "meta.csv").write_bytes(content)
    external.set(source="folder", path=str(external.folder), metadata="meta.csv")
    line = fails_once(*external.run()[::2], "external.site.metadata", *words)
    assert "data.metadata=" not in line and "data.metadata (" not in line


def test_external_reads_a_metadata_csv_with_a_byte_order_mark(external: External):
    rows = "".join(f"img_{i:04d},L{i // 2}\n" for i in range(500, 512))
    (external.folder / "meta.csv").write_bytes(("\ufeffimage_id,lesion_id\n" + rows).encode("utf-8"))
    external.project.params["split"]["group_by"] = "lesion_id"
    external.set(source="folder", path=str(external.folder), metadata="meta.csv")
    rc, _, err = external.run()
    assert rc == 0 and not error_lines(err), err
    assert external.summary()["metadata"] is True


def test_external_archive_with_a_zip_metadata_names_its_key(external: External):
    archive = external.root / "set.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in sorted(external.folder.rglob("*.png")):
            zf.writestr(f"set/{f.relative_to(external.folder).as_posix()}", f.read_bytes())
        zf.writestr("set/meta.csv", io.BytesIO(b"").getvalue())
    external.set(source="zip", path=str(archive), metadata="set/meta.csv")
    fails_once(*external.run()[::2], "external.site.metadata", "is empty")


def test_external_with_no_image_left_writes_the_skipped_list_it_points_to(external: External):
    external.set(source="folder", path=str(external.folder), classes={"akiec": "bcc"})
    for name in ("bcc", "mel"):
        (external.folder / name).rename(external.folder / f"{name}_other")  # labels the model does not know
    for image in (external.folder / "akiec").iterdir():
        image.write_bytes(b"not an image")
    line = fails_once(*external.run()[::2], "external.site: no image left to score", "skipped.csv")
    assert len(external.skipped()) == 12 and "external/site/skipped.csv" in line  # the list it points to
