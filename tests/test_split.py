import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from skinlesion.core.errors import DataError
from skinlesion.core.modes import Source
from skinlesion.data.duplicates import CHASH_BITS, DHASH_BITS, PHASH_BITS, near_duplicate_clusters
from skinlesion.data.fetch import fetch
from skinlesion.data.grouping import grouping_warning
from skinlesion.data.split import SplitResult, data_summary, split_dataset, split_frames

from .conftest import corrupt_jpeg, default_config, make_class_tree, write_image

# Every split: setting the tests rely on, whatever params.yaml holds.
ARGS = dict(
    val_fraction=0.2, test_fraction=0.2, seed=0, group_by="", allow_missing_groups=False, drop_label_conflicts=True
)


def run_split(raw: Path, *, metadata: str = "", workers: int = 1, **changes) -> SplitResult:
    """``split_dataset`` with :data:`ARGS` updated by ``changes``; no metadata unless given."""
    config = replace(default_config().split, **ARGS | changes)
    return split_dataset(raw, config, metadata, "image_id", workers=workers, progress=False)


def fetch_folder(folder: Path, raw: Path) -> dict:
    return fetch(replace(default_config().data, source=Source.FOLDER, path=str(folder)), raw, progress=False)


def _raw(tmp_path: Path, classes: dict[str, int]) -> Path:
    raw = tmp_path / "raw"
    make_class_tree(raw / "unsplit", classes)
    return raw


def test_planted_bad_files_are_counted_by_reason(tmp_path: Path):
    raw = _raw(tmp_path, {"a": 12, "b": 12})
    a, b = raw / "unsplit" / "a", raw / "unsplit" / "b"
    jpeg = write_image(a / "good.jpg", 999, size=48, fmt="JPEG").read_bytes()
    (a / "corrupt.jpg").write_bytes(corrupt_jpeg(jpeg))
    (a / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (a / "empty.png").write_bytes(b"")
    (a / "notes.txt").write_text("not an image")
    (a / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    write_image(a / "cmyk.jpg", 501, mode="CMYK", fmt="JPEG")
    Image.fromarray(np.full((8, 8), 40000, np.uint16)).save(b / "sixteen.png")
    write_image(b / "rgba.png", 502, mode="RGBA")
    (b / "cross_dup.jpg").write_bytes(jpeg)  # same bytes as a/good.jpg under another label
    (a / "same_dup.png").write_bytes((a / "img_0000.png").read_bytes())
    write_image(b / "huge.png", 503, size=120)  # 14,400 pixels: over the limit set below
    write_image(b / "tiny.png", 505, size=4)  # 4 x 4 pixels: under split.min_side (8)
    write_image(Path(os.fsdecode(bytes(b) + b"/caf\xe9.png")), 504)  # a Latin-1 name: not UTF-8

    result = run_split(raw, max_pixels=10_000)
    m = data_summary(result, "synthetic")
    assert m["skipped"] == {
        "empty": 1,
        "not_an_image": 2,
        "truncated": 1,
        "corrupt": 1,
        "unreadable": 0,
        "too_large": 1,
        "too_small": 1,
        "bad_file_name": 1,
        "duplicate": 1,
        "near_duplicate": 0,  # random-noise images of different seeds are far apart
        "label_conflict": 2,
    }
    kept = {Path(r.path).name for recs in result.splits.values() for r in recs}
    assert {"cmyk.jpg", "sixteen.png", "rgba.png"} <= kept
    assert not {"good.jpg", "cross_dup.jpg"} & kept
    assert {s["path"] for s in result.skipped if s["reason"] == "bad_file_name"} == {f"{b.as_posix()}/caf\\xe9.png"}
    conflict = [s for s in result.skipped if s["reason"] == "label_conflict"][0]
    assert "good.jpg" in conflict["detail"] and "cross_dup.jpg" in conflict["detail"]
    assert m["images"]["total"] == 24 + 3  # the originals and the three odd formats


def test_same_params_same_bytes_and_no_content_in_two_splits(tmp_path: Path, monkeypatch):
    import skinlesion.data.split as split_mod

    raw = _raw(tmp_path, {"a": 30, "b": 25, "c": 20})  # 75 files: above the serial threshold (64)
    first = {k: f.to_csv(index=False) for k, f in split_frames(run_split(raw)).items()}
    pools = []
    real_context = split_mod.multiprocessing.get_context
    monkeypatch.setattr(split_mod.multiprocessing, "get_context", lambda m: pools.append(m) or real_context(m))
    second = {k: f.to_csv(index=False) for k, f in split_frames(run_split(raw, workers=2)).items()}
    assert pools == ["spawn"]  # the parallel path really ran
    assert first == second
    frames = split_frames(run_split(raw))
    hashes = [set(f["sha256"]) for f in frames.values()]
    assert not (hashes[0] & hashes[1] or hashes[0] & hashes[2] or hashes[1] & hashes[2])
    for frame in frames.values():  # stratified: every class in every split
        assert set(frame["label"]) == {"a", "b", "c"}
    assert list(frames["train"].columns[:3]) == ["path", "label", "sha256"]


def test_given_splits_are_respected_and_only_val_is_carved(tmp_path: Path):
    raw = tmp_path / "raw"
    make_class_tree(raw / "train", {"a": 10, "b": 10})
    make_class_tree(raw / "test", {"a": 3, "b": 3}, start=500)
    result = run_split(raw)
    assert all("/test/" in r.path for r in result.splits["test"])
    assert len(result.splits["test"]) == 6
    assert all("/train/" in r.path for r in result.splits["val"]) and len(result.splits["val"]) == 4


def test_grouped_split_keeps_each_lesion_in_one_split(tmp_path: Path):
    raw = _raw(tmp_path, {"a": 30, "b": 30})
    paths = sorted((raw / "unsplit").rglob("*.png"))
    meta = pd.DataFrame({"image_id": [p.stem for p in paths], "lesion_id": [f"L{i // 3}" for i in range(len(paths))]})
    meta.to_csv(tmp_path / "meta.csv", index=False)
    result = run_split(raw, group_by="lesion_id", metadata=str(tmp_path / "meta.csv"))
    where = {}
    for split, recs in result.splits.items():
        for r in recs:
            assert where.setdefault(r.group, split) == split
    assert len(where) == 20 and all(result.splits.values())


def test_group_by_without_metadata_or_column_is_a_clear_error(tmp_path: Path):
    raw = _raw(tmp_path, {"a": 10, "b": 10})
    with pytest.raises(DataError, match="split.group_by"):
        run_split(raw, group_by="lesion_id")
    pd.DataFrame({"image_id": ["x"], "other": ["y"]}).to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(DataError, match="not a column"):
        run_split(raw, group_by="lesion_id", metadata=str(tmp_path / "m.csv"))


def test_class_too_small_gets_a_clear_message(tmp_path: Path):
    raw = _raw(tmp_path, {"a": 20, "rare": 1})
    with pytest.raises(DataError, match="class 'rare' has 1 image"):
        run_split(raw)


@pytest.mark.parametrize("images_per_lesion", [1, 4])
def test_split_of_the_shared_ham10000_sample_grouped_by_lesion(tmp_path: Path, ham_dir: Path, images_per_lesion):
    fetch_folder(ham_dir, tmp_path / "raw")
    metadata = pd.read_csv(ham_dir / "HAM10000_metadata.csv", dtype=str)
    if images_per_lesion > 1:
        # The sample holds one image per lesion, where grouping cannot fail: regroup the real files of
        # each class into lesions of several images, so that a leaking split would show.
        metadata = metadata.sort_values(["dx", "image_id"], ignore_index=True)
        metadata["lesion_id"] = (
            metadata["dx"] + "-" + (metadata.groupby("dx").cumcount() // images_per_lesion).astype(str)
        )
    metadata.to_csv(tmp_path / "meta.csv", index=False)
    result = run_split(
        tmp_path / "raw",
        val_fraction=0.15,
        test_fraction=0.15,
        workers=0,
        group_by="lesion_id",
        metadata=str(tmp_path / "meta.csv"),
    )
    m = data_summary(result, "folder")
    assert m["images"]["total"] == 1123 and m["classes"] == 7
    assert m["grouping"] == {"group_by": "lesion_id", "images_without_group": 0, "given_split": None, "warning": None}
    groups = [{r.group for r in recs} for recs in result.splits.values()]
    assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])
    sizes = pd.Series([r.group for recs in result.splits.values() for r in recs]).value_counts()
    assert sizes.max() == images_per_lesion  # the metadata's lesions, not one group per file
    assert 0.10 < m["images"]["test"] / 1123 < 0.20


def test_label_conflicts_can_keep_the_first_copy_by_path(tmp_path: Path):
    raw = _raw(tmp_path, {"a": 10, "b": 10})
    same = write_image(raw / "unsplit" / "a" / "zz_shared.png", 777).read_bytes()
    (raw / "unsplit" / "b" / "aa_shared.png").write_bytes(same)  # the same bytes under label b
    dropped = run_split(raw)
    kept = run_split(raw, drop_label_conflicts=False)
    names = lambda result: {Path(r.path).name: r.label for recs in result.splits.values() for r in recs}  # noqa: E731
    assert "zz_shared.png" not in names(dropped) and "aa_shared.png" not in names(dropped)
    # The first copy by path wins: unsplit/a/zz_shared.png sorts before unsplit/b/aa_shared.png.
    assert names(kept)["zz_shared.png"] == "a" and "aa_shared.png" not in names(kept)
    assert [s["reason"] for s in kept.skipped] == ["label_conflict"]


def test_shared_ham10000_sample_ungrouped_warns_and_ids_missing_from_metadata_are_an_error(tmp_path: Path, ham_dir):
    fetch_folder(ham_dir, tmp_path / "raw")
    ungrouped = data_summary(run_split(tmp_path / "raw"), "folder")["grouping"]
    assert ungrouped["group_by"] is None and ungrouped["given_split"] is None
    assert "images of one lesion can sit in train and test" in ungrouped["warning"]
    assert "split.group_by: lesion_id" in ungrouped["warning"]

    metadata = pd.read_csv(ham_dir / "HAM10000_metadata.csv", dtype=str)
    dropped = sorted(metadata["image_id"])[:7]
    metadata[~metadata["image_id"].isin(dropped)].to_csv(tmp_path / "meta.csv", index=False)
    grouped = {"group_by": "lesion_id", "metadata": str(tmp_path / "meta.csv")}
    with pytest.raises(DataError) as error:
        run_split(tmp_path / "raw", **grouped)
    message = str(error.value)
    assert "\n" not in message and "7 of 1123 images have no lesion_id" in message
    assert all(image_id in message for image_id in dropped[:5]) and "split.allow_missing_groups: true" in message
    allowed = data_summary(run_split(tmp_path / "raw", **grouped, allow_missing_groups=True), "folder")
    assert allowed["grouping"] == {
        "group_by": "lesion_id",
        "images_without_group": 7,
        "given_split": None,
        "warning": None,
    }


def test_grouping_warning_names_what_leaks_per_source():
    assert grouping_warning("synthetic", "", ()) is None
    assert grouping_warning("folder", "lesion_id", ()) is None
    derma = grouping_warning("dermamnist", "", ("val", "test"))
    assert "image-level" in derma and "data.source: dermamnist_c" in derma and "10.5281/zenodo.11101337" in derma
    assert grouping_warning("dermamnist_c", "", ("val", "test")) is None  # its split is grouped by lesion
    kaggle = grouping_warning("kaggle", "", ("val",))
    assert kaggle.startswith("split.group_by is empty (test carved out image by image)")


def _copies(image: Image.Image) -> tuple[Image.Image, Image.Image]:
    """A JPEG re-encode (quality 70) and a half-size copy of an image."""
    import io

    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=70)
    half = image.resize((image.width // 2, image.height // 2), Image.Resampling.BILINEAR)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"), half


@pytest.mark.slow
def test_near_duplicate_thresholds_on_the_shared_real_images(ham_dir: Path, isic_dir: Path):
    """Fast check: test_reencoded_and_resized_copies_of_generated_lesions_are_dropped_as_near_duplicates."""
    import imagehash

    from skinlesion.core.images import centre_square, load_rgb

    paths = sorted(ham_dir.glob("*/*.jpg")) + sorted(isic_dir.glob("*/*.jpg"))
    images = [load_rgb(p) for p in paths]
    hashes = [
        (str(imagehash.phash(image)), str(imagehash.dhash(image)), str(imagehash.phash(centre_square(image))))
        for image in images
    ]
    # Distinct lesions (HAM10000 sample: one image per lesion; ISIC: distinct images) never merge ...
    assert len(set(near_duplicate_clusters(*zip(*hashes, strict=True)))) == len(paths) == 1123 + 302
    # ... while a re-encoded and a half-size copy of every 10th image fall within all three thresholds.
    for image, (p, d, c) in zip(images[::10], hashes[::10], strict=True):
        for copy in _copies(image):
            assert imagehash.hex_to_hash(p) - imagehash.phash(copy) <= PHASH_BITS
            assert imagehash.hex_to_hash(d) - imagehash.dhash(copy) <= DHASH_BITS
            assert imagehash.hex_to_hash(c) - imagehash.phash(centre_square(copy)) <= CHASH_BITS


def test_distinct_generated_lesions_alike_in_layout_stay_distinct(tmp_path: Path):
    import imagehash

    from skinlesion.core.images import centre_square, load_rgb
    from skinlesion.data.synthetic import generate

    # Distinct images alike in layout (the demo's lesions in a dark circular frame) stay distinct: seed 0
    # is the demo's data set (params.yaml); with seed 1 the whole-image hashes alone merge a melanoma with a
    # nevus, and the centres tell them apart.
    for seed, merged_by_two in ((0, 0), (1, 5)):
        generate(tmp_path / f"syn{seed}", 900, 64, seed=seed, workers=1, progress=False)
        synthetic = [load_rgb(p) for p in sorted((tmp_path / f"syn{seed}").rglob("*.png"))]
        p, d = [str(imagehash.phash(i)) for i in synthetic], [str(imagehash.dhash(i)) for i in synthetic]
        centres = [str(imagehash.phash(centre_square(i))) for i in synthetic]
        assert len(set(near_duplicate_clusters(p, d, centres))) == 900
        assert 900 - len(set(near_duplicate_clusters(p, d, ["0" * 16] * 900))) == merged_by_two
        assert len(set(near_duplicate_clusters(p, ["0" * 16] * 900, ["0" * 16] * 900))) < 900  # pHash alone


def test_reencoded_and_half_size_copies_are_near_duplicates_never_in_two_splits(tmp_path: Path, ham_dir: Path):
    from skinlesion.core.images import load_rgb

    raw = tmp_path / "raw" / "unsplit"
    for label in ("mel", "nv"):
        for path in sorted((ham_dir / label).glob("*.jpg"))[:15]:
            (raw / label).mkdir(parents=True, exist_ok=True)
            (raw / label / path.name).write_bytes(path.read_bytes())
    original = sorted((raw / "nv").glob("*.jpg"))[0]
    reencoded, half = _copies(load_rgb(original))
    reencoded.save(raw / "nv" / "zz_reencoded.jpg", quality=70)
    half.save(raw / "nv" / "zz_half.png")
    half.save(raw / "mel" / "zz_half_mislabelled.png")  # a copy under another label: a conflict
    result = run_split(tmp_path / "raw")
    summary = data_summary(result, "folder")
    assert summary["skipped"]["near_duplicate"] == 0 and summary["skipped"]["label_conflict"] == 4
    kept = {Path(r.path).name for recs in result.splits.values() for r in recs}
    assert not {original.name, "zz_reencoded.jpg", "zz_half.png", "zz_half_mislabelled.png"} & kept

    (raw / "mel" / "zz_half_mislabelled.png").unlink()
    result = run_split(tmp_path / "raw")
    near = {Path(s["path"]).name: s["detail"] for s in result.skipped if s["reason"] == "near_duplicate"}
    assert set(near) == {"zz_reencoded.jpg", "zz_half.png"} and original.name in near["zz_half.png"]
    where = [s for s, recs in result.splits.items() for r in recs if Path(r.path).name == original.name]
    assert len(where) == 1 and data_summary(result, "folder")["images"]["total"] == 30


def test_reencoded_and_resized_copies_of_generated_lesions_are_dropped_as_near_duplicates(tmp_path: Path):
    # The same check as above without ../shared: copies of generated lesions (PNG originals, so a copy
    # never shares their bytes) are found by their hashes alone and dropped, the originals kept once.
    from skinlesion.data.synthetic import generate

    raw = tmp_path / "raw" / "unsplit"
    generate(raw, 40, 128, seed=0, workers=1, progress=False)
    originals = [sorted((raw / label).glob("*.png"))[0] for label in ("melanoma", "nevus")]
    for original in originals:
        reencoded, half = _copies(Image.open(original).convert("RGB"))
        reencoded.save(original.with_name(f"zz_{original.stem}_q70.jpg"), quality=70)
        half.save(original.with_name(f"zz_{original.stem}_half.png"))
    result = run_split(tmp_path / "raw")
    near = {Path(s["path"]).name: s["detail"] for s in result.skipped if s["reason"] == "near_duplicate"}
    assert data_summary(result, "folder")["skipped"]["near_duplicate"] == 4
    for original in originals:
        copies = {f"zz_{original.stem}_q70.jpg", f"zz_{original.stem}_half.png"}
        assert copies <= set(near) and all(original.name in near[c] for c in copies)  # the kept one is named
    kept = [Path(r.path).name for recs in result.splits.values() for r in recs]
    assert all(kept.count(o.name) == 1 for o in originals) and not [k for k in kept if k.startswith("zz_")]
    assert len(kept) == 40  # the 40 distinct lesions, none merged


def test_given_val_and_test_folders_with_grouping_pull_a_lesions_training_images_along(tmp_path: Path):
    # A source with its own train/val/test folders, split by lesion: a training image of a lesion that
    # the source put in val or test follows it there, and every lesion ends in exactly one split.
    raw = tmp_path / "raw"
    make_class_tree(raw / "train", {"a": 16, "b": 16})
    make_class_tree(raw / "val", {"a": 3, "b": 3}, start=100)
    make_class_tree(raw / "test", {"a": 4, "b": 4}, start=200)
    lesion = {p.stem: f"L-{p.stem}" for p in raw.rglob("*.png")}
    for i, stem in enumerate(["img_0000", "img_0001", "img_0016"]):  # three training photos of held-out lesions
        lesion[stem] = lesion[["img_0100", "img_0200", "img_0204"][i]]
    lesion["img_0002"] = lesion["img_0003"] = "L-shared-in-train"
    pd.DataFrame({"image_id": list(lesion), "lesion_id": list(lesion.values())}).to_csv(tmp_path / "m.csv", index=False)
    result = run_split(raw, group_by="lesion_id", metadata=str(tmp_path / "m.csv"))
    where = {s: {Path(r.path).stem for r in recs} for s, recs in result.splits.items()}
    assert where["val"] == {f"img_{i:04d}" for i in range(100, 106)} | {"img_0000"}
    assert where["test"] == {f"img_{i:04d}" for i in range(200, 208)} | {"img_0001", "img_0016"}
    assert where["train"] == {f"img_{i:04d}" for i in range(32)} - {"img_0000", "img_0001", "img_0016"}
    groups = [{r.group for r in recs} for recs in result.splits.values()]
    assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])
    grouping = data_summary(result, "folder")["grouping"]
    assert grouping["group_by"] == "lesion_id" and grouping["given_split"] == "val+test"


def test_a_given_test_folder_with_grouping_carves_val_by_lesion(tmp_path: Path):
    raw = tmp_path / "raw"
    make_class_tree(raw / "train", {"a": 24, "b": 24})
    make_class_tree(raw / "test", {"a": 4, "b": 4}, start=200)
    lesion = {p.stem: f"L-{p.stem}" for p in raw.rglob("*.png")}
    lesion |= {f"img_{i:04d}": f"L-train-{i // 3}" for i in range(48)}  # three photos per training lesion
    lesion["img_0047"] = lesion["img_0204"]  # a training photo of a test lesion (class b, like it)
    pd.DataFrame({"image_id": list(lesion), "lesion_id": list(lesion.values())}).to_csv(tmp_path / "m.csv", index=False)
    result = run_split(raw, group_by="lesion_id", metadata=str(tmp_path / "m.csv"))
    test = {Path(r.path).stem for r in result.splits["test"]}
    assert test == {f"img_{i:04d}" for i in range(200, 208)} | {"img_0047"}
    assert all("/train/" in r.path for r in result.splits["val"]) and result.splits["val"]
    groups = [{r.group for r in recs} for recs in result.splits.values()]
    assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])
    assert data_summary(result, "folder")["grouping"]["given_split"] == "test"
