from pathlib import Path

import pytest

from skinlesion.core.errors import DataError
from skinlesion.core.labels import LabelMap
from skinlesion.core.layout import RunPaths


def test_one_folder_per_run():
    run = RunPaths("vgg19", 2)
    assert run.root == Path("runs/vgg19/seed2") and run.name == "vgg19-2"
    for path in (run.model, run.model_dir, run.config, run.train_log, run.eval_dir, run.predictions, run.roc):
        assert run.root in path.parents
    assert run.model.parent == run.model_dir


def test_label_map_round_trip(tmp_path: Path):
    LabelMap(("mel", "nv"), 224, temperature=1.25).write(tmp_path)
    assert LabelMap.read(tmp_path) == LabelMap(("mel", "nv"), 224, 1.25)
    LabelMap(("mel", "nv"), 224, backbone="mobilenet", seed=1).write(tmp_path / "h")
    assert LabelMap.read(tmp_path / "h").seed == 1


def test_label_map_errors_name_the_file(tmp_path: Path):
    with pytest.raises(DataError, match="labels.json not found"):
        LabelMap.read(tmp_path)
    (tmp_path / "labels.json").write_text('{"classes": ["a"]}')
    with pytest.raises(DataError, match="not a skinlesion label map"):
        LabelMap.read(tmp_path)


def test_read_split_errors_name_the_file_and_the_fix(tmp_path: Path):
    from skinlesion.core.layout import read_split

    with pytest.raises(DataError, match=r"train.csv not found: run `dvc repro split`"):
        read_split("train", tmp_path)
    (tmp_path / "val.csv").write_text("path,label,sha256,group\n")
    with pytest.raises(DataError, match="val split has no images"):
        read_split("val", tmp_path)


@pytest.mark.parametrize(
    "data",
    [
        {"classes": ["a", "b"], "image_size": True},
        {"classes": ["a", "b"], "image_size": 64.5},
        {"classes": ["a", "a"], "image_size": 64},
        {"classes": ["a"], "image_size": 64},
        {"classes": "ab", "image_size": 64},
        {"classes": ["a", ""], "image_size": 64},
        ["a", "b"],
    ],
)
def test_label_map_refuses_what_no_model_was_saved_with(tmp_path: Path, data):
    import json

    (tmp_path / "labels.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match="not a skinlesion label map") as info:
        LabelMap.read(tmp_path)
    assert "\n" not in str(info.value)


def test_a_model_carries_its_label_map_and_refuses_another(tmp_path: Path):
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    LabelMap(("mel", "nv"), 32, backbone="mobilenet", seed=1).save_model(model, tmp_path)
    assert LabelMap.of_model(tmp_path / "model.keras") == LabelMap(("mel", "nv"), 32)
    assert LabelMap.read(tmp_path).seed == 1
    LabelMap.read(tmp_path).check_model(tmp_path / "model.keras")  # its own: accepted
    for other in (LabelMap(("nv", "mel"), 32), LabelMap(("mel", "nv"), 64), LabelMap(("mel", "nv", "bcc"), 32)):
        with pytest.raises(DataError, match="does not belong to"):
            other.check_model(tmp_path / "model.keras")
    (tmp_path / "x.keras").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(DataError, match="not a Keras model file"):
        LabelMap.of_model(tmp_path / "x.keras")


def test_a_clean_copy_of_the_sources_keeps_only_the_readmes_and_gitignores_of_output_folders():
    from skinlesion.core.layout import is_generated

    # external/ must exist in a clean copy: aggregate depends on it when no external set is configured.
    assert not is_generated("external/README.md") and not is_generated("runs/vgg19/seed0/.gitignore")
    assert is_generated("external/isic/data.json") and is_generated("dvc.lock") and is_generated("plots/roc.csv")
    assert not is_generated("skinlesion/core/layout.py") and not is_generated("plotsx/a.csv")
    assert is_generated("data/raw/x.png", (Path("data"),)) and not is_generated("data/raw/x.png")
