"""Cross-validation's plumbing: its params, the folds, the fold runs' names, pooling, the fold-ensemble candidates.

The statistics of the estimate and the comparisons are tested by simulation in tests/test_cv_estimate.py and
tests/test_cv_paired.py; the stages end to end (CV on, the real pipeline) in tests/test_pipeline.py (slow).
"""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from skinlesion.core.config import parse_config
from skinlesion.core.data_params import fold_names
from skinlesion.core.errors import ConfigError, DataError
from skinlesion.core.layout import RunPaths
from skinlesion.cv.folds import check_fold_count, check_pool, make_folds, write_folds
from skinlesion.cv.pool import out_of_fold, pool_predictions
from skinlesion.evaluation.evaluate import predictions_frame
from skinlesion.evaluation.headline import FOLD_ENSEMBLE, candidates, choose
from skinlesion.evaluation.runs import Predictions

from .conftest import REPO


def params(**cv) -> dict:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["cv"] |= cv
    return raw


# --- params ---------------------------------------------------------------------------------------------


def test_cross_validation_is_off_by_default_and_the_fold_count_is_the_list_length():
    config = parse_config(params())
    assert not config.cv.enabled
    assert parse_config(params(pool=["train"], folds=fold_names(3))).cv.folds == ["f0", "f1", "f2"]


@pytest.mark.parametrize(
    ("cv", "says"),
    [
        ({"folds": ["f0"]}, "at least 2 folds"),
        ({"folds": []}, "at least 2 folds"),
        ({"folds": 5}, "[f0, f1, f2, f3, f4]"),
        ({"folds": 2.5}, "list the folds by name"),
        ({"folds": ["f0", "f2"]}, "[f0, f1]"),
        ({"folds": [0, 1, 2]}, "[f0, f1, f2]"),
        ({"pool": ["val"]}, "[] (off) or [train]"),
        ({"inner_val_parts": 1}, "[2, 20]"),
        ({"pool": "train"}, "brackets included"),
        ({"folds": "f0"}, "[f0, f1, f2, f3, f4]"),
    ],
)
def test_bad_cv_params_fail_before_any_work_naming_the_key_and_the_fix(cv: dict, says: str):
    with pytest.raises(ConfigError) as info:
        parse_config(params(**cv))
    message = str(info.value)
    assert "cv." in message and says in message
    assert "\n" not in message


# --- folds ----------------------------------------------------------------------------------------------


def lesion_pool(lesions: dict[str, int], images_per_lesion: int = 3, seed: int = 0) -> pd.DataFrame:
    """A training split of ``lesions[class]`` lesions per class, each photographed 1 to ``images_per_lesion`` times."""
    rng = np.random.default_rng(seed)
    rows = []
    for label, n in lesions.items():
        for lesion in range(n):
            for image in range(rng.integers(1, images_per_lesion + 1)):
                name = f"{label}_{lesion}_{image}"
                rows.append(
                    {
                        "path": f"data/raw/{label}/{name}.png",
                        "label": label,
                        "sha256": name,
                        "group": f"{label}{lesion}",
                    }
                )
    return pd.DataFrame(rows)


def cv_config(k: int, seed: int = 0, parts: int = 5):
    return parse_config(params(pool=["train"], folds=fold_names(k), seed=seed, inner_val_parts=parts)).cv


@pytest.mark.parametrize("k", [2, 3, 5])
def test_folds_partition_the_pool_by_lesion_and_each_model_trains_on_every_class(k: int):
    pool = lesion_pool({"nv": 60, "mel": 15, "bcc": 9, "df": 5})
    folds = make_folds(pool, cv_config(k))
    held = pd.concat([f.held_out for f in folds])
    assert sorted(held["path"]) == sorted(pool["path"])  # every training image in exactly one fold
    owner = held.groupby("group")["path"].apply(
        lambda p: {fold.name for fold in folds if p.iloc[0] in set(fold.held_out["path"])}
    )
    assert all(len(names) == 1 for names in owner)  # no lesion in two folds
    for fold in folds:
        train, val, out = (set(f["group"]) for f in (fold.train, fold.val, fold.held_out))
        assert not (train & val) and not (train & out) and not (val & out)  # grouped at every cut
        assert set(fold.train["label"]) == set(pool["label"])  # even df, 5 lesions over k folds
        assert len(fold.train) + len(fold.val) + len(fold.held_out) == len(pool)
        assert set(fold.held_out["label"]) == set(pool["label"])  # stratified: each fold has each class


def test_folds_are_reproducible_and_follow_the_seed():
    pool = lesion_pool({"nv": 40, "mel": 12, "df": 6})
    first, again, other = (make_folds(pool, cv_config(3, seed=s)) for s in (0, 0, 1))
    assert [list(f.held_out["path"]) for f in first] == [list(f.held_out["path"]) for f in again]
    assert [list(f.held_out["path"]) for f in first] != [list(f.held_out["path"]) for f in other]


def test_more_folds_than_the_rarest_class_has_lesions_is_refused_naming_the_key_and_the_largest_count():
    pool = lesion_pool({"nv": 40, "df": 3}, images_per_lesion=4)  # df: 3 lesions, up to 12 images
    with pytest.raises(ConfigError, match=r"cv.folds asks for 5 folds.*only 3 lesions of class 'df'.*\[f0, f1, f2\]"):
        check_fold_count(pool, 5)
    check_fold_count(pool, 3)


def test_a_class_of_one_lesion_and_an_inner_split_too_fine_are_refused_naming_the_key():
    with pytest.raises(ConfigError, match=r"at least 2 lesions of every class.*'df' has 1.*do not help"):
        check_fold_count(lesion_pool({"nv": 10, "df": 1}, images_per_lesion=3), 2)
    pool = lesion_pool({"nv": 6, "mel": 4}, images_per_lesion=1)  # 10 lesions: 2 folds leave 5 to cut in 8 parts
    with pytest.raises(ConfigError, match=r"cv.inner_val_parts: 8 parts .* use fewer parts"):
        make_folds(pool, cv_config(2, parts=8))
    assert len(make_folds(pool, cv_config(2, parts=2))) == 2


def test_a_pool_without_groups_or_of_one_class_is_refused_naming_the_file():
    pool = lesion_pool({"nv": 10, "mel": 5})
    with pytest.raises(DataError, match="train.csv has no column 'group'"):
        check_pool(pool.drop(columns="group"), "data/splits/train.csv")
    blank = pool.assign(group=lambda f: f["group"].where(f.index > 0, " "))
    with pytest.raises(DataError, match="blank group"):
        check_pool(blank, "data/splits/train.csv")
    with pytest.raises(DataError, match="one class only"):
        check_pool(pool[pool["label"] == "nv"], "data/splits/train.csv")


def test_without_lesion_ids_every_image_is_its_own_group():
    pool = lesion_pool({"nv": 30, "mel": 10}, images_per_lesion=1)
    pool["group"] = pool["path"]  # what split writes when split.group_by is empty
    folds = make_folds(pool, cv_config(3))
    assert sum(len(f.held_out) for f in folds) == len(pool)


# --- fold runs, pooling ---------------------------------------------------------------------------------


def test_a_fold_run_has_its_own_folder_name_and_stage_name():
    run = RunPaths("mobilenet", 0, "f2")
    assert run.root.as_posix() == "runs/mobilenet/cv/seed0/f2"
    assert run.name == "mobilenet-0-f2"
    assert RunPaths.parse(run.name) == run
    assert RunPaths.parse("mobilenet-1") == RunPaths("mobilenet", 1)
    assert run.state_dir("k") != RunPaths("mobilenet", 0).state_dir("k")


def write_held_out(tmp_path, pool: pd.DataFrame, folds: list, seed: int, classes: list[str]) -> None:
    rng = np.random.default_rng(seed)
    for fold in folds:
        probs = rng.dirichlet(np.ones(len(classes)), size=len(fold.held_out))
        frame = fold.held_out.reset_index(drop=True)
        scores = type("S", (), {"frame": frame, "classes": classes, "probs": probs})
        path = tmp_path / RunPaths("mobilenet", seed, fold.name).held_out_predictions
        path.parent.mkdir(parents=True, exist_ok=True)
        predictions_frame(scores).to_csv(path, index=False)


def test_pooling_gives_each_training_image_one_row_per_seed_and_refuses_a_stale_fold(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pool = lesion_pool({"nv": 20, "mel": 8, "df": 4})
    folds = make_folds(pool, cv_config(3))
    write_folds(folds)
    classes = sorted(pool["label"].unique())
    for seed in (0, 1):
        write_held_out(tmp_path, pool, folds, seed, classes)
    pooled = pool_predictions("mobilenet", [0, 1], ["f0", "f1", "f2"], pool)
    assert len(pooled) == 2 * len(pool)
    assert (pooled.groupby(["seed", "path"]).size() == 1).all()
    assert list(pooled.columns[:5]) == ["seed", "fold", "path", "label", "group"]
    table = out_of_fold(pooled)
    assert table.probs.shape == (2 * len(pool), len(classes)) and np.allclose(table.probs.sum(axis=1), 1)
    # Fold runs of another fold assignment (another cv.seed): each still covers the pool once, but not its fold.
    for seed in (0, 1):
        write_held_out(tmp_path, pool, make_folds(pool, cv_config(3, seed=7)), seed, classes)
    with pytest.raises(DataError, match=r"f0/eval/held_out_predictions.csv does not predict the images of .*f0"):
        pool_predictions("mobilenet", [0, 1], ["f0", "f1", "f2"], pool)
    write_held_out(tmp_path, pool, folds, 0, classes)
    write_held_out(tmp_path, pool, folds, 1, classes)
    lacking = RunPaths("mobilenet", 1, "f2").held_out_predictions
    pd.read_csv(lacking).drop(columns="p_mel").to_csv(lacking, index=False)  # a class's probability column gone
    with pytest.raises(DataError, match="lacks a probability for a class"):
        pool_predictions("mobilenet", [0, 1], ["f0", "f1", "f2"], pool)
    lacking.write_text("")
    with pytest.raises(DataError, match="is missing or empty"):
        pool_predictions("mobilenet", [0, 1], ["f0", "f1", "f2"], pool)


# --- the headline's candidates --------------------------------------------------------------------------


def test_with_cross_validation_the_candidates_are_the_fold_ensembles_chosen_on_validation():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 20)
    runs = {
        RunPaths(b, s, f): rng.dirichlet(np.ones(3), size=60)
        for b in ("mobilenet", "vgg19")
        for s in (0,)
        for f in ("f0", "f1")
    }
    runs[RunPaths("vgg19", 0, "f1")] = np.eye(3)[y] * 0.9 + 0.1 / 3  # one strong fold model
    plain = {b: {0: rng.dirichlet(np.ones(3), size=60)} for b in ("mobilenet", "vgg19")}
    val = Predictions(["a", "b", "c"], y, np.arange(60).astype(str), plain, pd.Series(range(60)), runs)
    options = candidates(val, {"mobilenet": {0: 0.5}, "vgg19": {0: 0.4}}, ["f0", "f1"])
    assert [c.name for c in options] == ["ensemble-mobilenet", "ensemble-vgg19", "ensemble-all"]
    assert options[0].kind == FOLD_ENSEMBLE and len(options[0].members) == 2
    assert options[1].members[0] == RunPaths("vgg19", 0, "f1")  # best on validation first (Grad-CAM explains it)
    assert len(options[2].members) == 4
    assert choose(options, "vgg19").name == "ensemble-vgg19"  # a backbone's name: its fold ensemble
    assert choose(options, "auto").name in {"ensemble-vgg19", "ensemble-all"}


# --- dvc.yaml -------------------------------------------------------------------------------------------


def stage_names(tmp_path, raw: dict) -> list[str]:
    tmp_path.mkdir()
    (tmp_path / "dvc.yaml").write_text((REPO / "dvc.yaml").read_text())
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    listed = subprocess.run(
        [sys.executable, "-m", "dvc", "stage", "list", "--name-only"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
    )
    return listed.stdout.split()


def test_with_cv_off_no_cv_stage_exists_and_on_each_fold_run_has_a_readable_name(tmp_path):
    off = stage_names(tmp_path / "off", params())
    assert not [s for s in off if s.startswith("cv")]
    assert {"fetch", "split", "augment-preview", "aggregate", "export"} <= set(off)
    raw = params(pool=["train"], folds=fold_names(3))
    raw |= {"backbones": ["mobilenet"], "seeds": [0, 1]}
    on = stage_names(tmp_path / "on", raw)
    assert set(on) - set(off) >= {"cv-folds@train", "cv@train-mobilenet-1-f2", "cv-pool@train-mobilenet"}
    assert len([s for s in on if s.startswith("cv@")]) == 6
