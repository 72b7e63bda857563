from pathlib import Path

import pytest
import yaml

from skinlesion.core.config import load_config, parse_config
from skinlesion.core.errors import ConfigError

from .conftest import REPO


def raw_params() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


def test_repository_params_are_valid():
    config = load_config(REPO / "params.yaml")
    assert config.model in config.model_choices()
    assert config.backbone["inceptionv3"].image_size >= 75


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (lambda p: p["train"].update(bogus=1), "train.bogus"),
        (lambda p: p.update(extra={}), "extra"),
        (lambda p: p["split"].update(val_fraction="a lot"), "split.val_fraction"),
        (lambda p: p["split"].update(test_fraction=0.9), "split.test_fraction"),
        (lambda p: p["inceptionv3"].update(image_size=64), "inceptionv3.image_size"),
        (lambda p: p.update(model="resnet50"), "model"),
        (lambda p: p.update(model="ensemble-resnet50"), "model"),
        (lambda p: p.update(model="ensemble-all", backbones=["vgg19"]), "model"),  # one backbone: no such ensemble
        (lambda p: p.update(model="ensemble-vgg19", seeds=[0]), "model"),  # one seed: the run itself
        (lambda p: p["train"].update(lr_finetune="fast"), "train.lr_finetune"),
        (lambda p: p["train"].update(lr_finetune=2.0), "train.lr_finetune"),
        (lambda p: p.update(backbones=["mobilenet", "alexnet"]), "backbones"),
        (lambda p: p["data"].update(source="ftp"), "data.source"),
        (lambda p: p["train"].update(precision="float16"), "train.precision"),
        (lambda p: p["train"].update(jit_compile=True), "train.jit_compile"),
        (lambda p: p["train"].update(jit_compile="sometimes"), "train.jit_compile"),
        (lambda p: p["runtime"].update(in_memory_mb=-1), "runtime.in_memory_mb"),
        (lambda p: p["runtime"].update(distribute="horovod"), "runtime.distribute"),
        (lambda p: p["data"].update(dermamnist_size=32), "data.dermamnist_size"),
        (lambda p: p["train"].update(weights="missing/{backbone}.weights.h5"), "train.weights"),
        (lambda p: p["train"].update(augment_head="yes"), "train.augment_head"),
        (lambda p: p.update(seeds=[1, 1]), "seeds"),
        (lambda p: p.update(seeds=[0, -1]), "seeds"),
        (lambda p: p["export"].update(quantization="int4"), "export.quantization"),
        (lambda p: p["preview"].update(views=0), "preview.views"),
        (lambda p: p["runtime"].update(distribute="tpu"), "runtime.distribute"),
        (lambda p: p["data"].update(source="folder", metadata="../HAM10000_metadata.csv"), "data.metadata"),
        (lambda p: p["data"].update(source="zip", metadata="/data/HAM10000_metadata.csv"), "data.metadata"),
        (lambda p: p["data"].update(metadata="HAM10000_metadata.csv"), "data.metadata"),  # synthetic: none
        (lambda p: p["split"].update(seed=-1), "split.seed"),
        (lambda p: p["data"]["synthetic"].update(seed=-1), "data.synthetic.seed"),
        (lambda p: p["evaluate"].update(seed=-2), "evaluate.seed"),
        (lambda p: p["split"].update(max_pixels=0), "split.max_pixels"),
        (lambda p: p["split"].update(max_pixels=200_000_000), "split.max_pixels"),
        (lambda p: p["data"].update(max_archive_mb=0), "data.max_archive_mb"),
        (lambda p: p["data"].update(max_compression_ratio=1), "data.max_compression_ratio"),
        (lambda p: p["augment"].update(preview_views=3), "augment.preview_views"),  # moved to preview:
        (lambda p: p["data"].update(source="dermamnist_c", dermamnist_size=64), "data.dermamnist_size"),
        (lambda p: p["train"].update(epochs_scratch=0), "train.epochs_scratch"),
        (lambda p: p["train"].update(lr_scratch=2.0), "train.lr_scratch"),
        (lambda p: p["evaluate"].update(malignant=["mel", ""]), "evaluate.malignant"),
        (lambda p: p["split"].update(allow_missing_groups="maybe"), "split.allow_missing_groups"),
        (lambda p: p["evaluate"].update(calibration_bins=15), "evaluate.calibration_bins"),  # a constant now
        # A primary subgroup column must be one that is analysed (dx_type left the defaults: no group of patients).
        (lambda p: p["evaluate"].update(primary_subgroup="dx_type"), "evaluate.primary_subgroup"),
    ],
)
def test_invalid_params_name_the_key(edit, key):
    params = raw_params()
    edit(params)
    with pytest.raises(ConfigError) as info:
        parse_config(params)
    assert key in str(info.value)
    assert "\n" not in str(info.value)


def test_weights_file_template_needs_files_for_the_trained_backbones_only(tmp_path: Path):
    params = raw_params()
    for name in params["backbones"]:  # not for resnet50 & co., which are registered but not trained
        (tmp_path / f"{name}.weights.h5").write_bytes(b"x")
    params["train"]["weights"] = str(tmp_path / "{backbone}.weights.h5")
    assert parse_config(params).train.weights.endswith("{backbone}.weights.h5")
    (tmp_path / "vgg19.weights.h5").unlink()
    with pytest.raises(ConfigError, match="vgg19.weights.h5 not found"):
        parse_config(params)


def test_missing_file_is_a_config_error(tmp_path: Path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "params.yaml")


def required_keys() -> list[tuple[str, ...]]:
    """Every key path of params.yaml: top-level sections and the keys inside each (nested) mapping."""
    keys: list[tuple[str, ...]] = []

    def walk(mapping: dict, prefix: tuple[str, ...]) -> None:
        for key, value in mapping.items():
            keys.append((*prefix, key))
            if isinstance(value, dict):
                walk(value, (*prefix, key))

    walk(raw_params(), ())
    return keys


@pytest.mark.parametrize("path", required_keys(), ids=".".join)
def test_every_params_key_is_required(path: tuple[str, ...]):
    params = raw_params()
    section = params
    for key in path[:-1]:
        section = section[key]
    del section[path[-1]]
    with pytest.raises(ConfigError) as info:
        parse_config(params)
    message = str(info.value)
    assert "\n" not in message
    if len(path) == 1 and path[0] in params.get("backbones", []):
        # A trained backbone's own section: the message names the section to add.
        assert path[0] in message and "section missing" in message
    else:
        assert f"params.yaml: {'.'.join(path)} is required" in message


@pytest.mark.parametrize(
    ("entry", "key"),
    [
        ({"source": "folder"}, "external.site2.path is required"),
        ({"source": "ftp", "path": "x"}, "external.site2.source"),
        ({"source": "npz", "path": "x.npz", "metadata": "m.csv"}, "external.site2.metadata"),
        ({"source": "folder", "path": "x", "colour": "red"}, "external.site2.colour"),
        ({"source": "folder", "path": "x", "classes": {"MEL": ""}}, "external.site2.classes"),
    ],
)
def test_external_sets_are_checked_naming_the_key(entry, key):
    params = raw_params()
    params["external"] = {"site2": entry}
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        parse_config(params)


def test_an_external_set_needs_only_its_source_and_path():
    params = raw_params()
    params["external"] = {"site2": {"source": "folder", "path": "elsewhere"}}
    entry = parse_config(params).external["site2"]
    assert (entry.source, entry.path, entry.classes, entry.metadata) == ("folder", "elsewhere", {}, "")
    params["external"] = {"site-2": {"source": "folder", "path": "elsewhere"}}
    with pytest.raises(ConfigError, match="site-2"):
        parse_config(params)


@pytest.mark.parametrize(
    ("weights", "rate"),
    [("imagenet", "lr_finetune_pretrained"), ("none", "lr_finetune_random"), ("scratch", "lr_finetune_random")],
)
def test_lr_finetune_auto_follows_the_weights(weights: str, rate: str):
    params = raw_params()
    assert params["train"]["lr_finetune"] == "auto"  # the default follows the weights
    params["train"]["weights"] = weights
    resolved = parse_config(params).train
    assert resolved.lr_finetune == params["train"][rate]
    assert params["train"]["lr_finetune_pretrained"] > params["train"]["lr_finetune_random"]


def test_a_pinned_lr_finetune_is_kept_whatever_the_weights():
    params = raw_params()
    params["train"].update(weights="imagenet", lr_finetune=0.0002)
    assert parse_config(params).train.lr_finetune == 0.0002


def test_model_may_name_auto_a_backbone_or_an_ensemble():
    params = raw_params()
    for model in ("auto", "vgg19", "ensemble-vgg19", "ensemble-all"):
        params["model"] = model
        assert parse_config(params).model == model
