"""External test sets (what is scored, what is left out and why) and subgroups (levels, gaps, operating points)."""

import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from skinlesion.core.config import ExternalConfig
from skinlesion.core.modes import ExternalSource

from .conftest import default_config


def _write_split(root: Path, name: str, paths: list[Path]) -> None:
    rows = [
        {"path": str(p), "label": p.parent.name, "sha256": hashlib.sha256(p.read_bytes()).hexdigest(), "group": p.stem}
        for p in paths
    ]
    (root / "data" / "splits").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(root / "data" / "splits" / f"{name}.csv", index=False)


@pytest.fixture
def project(tmp_path: Path, monkeypatch) -> Path:
    """A project whose splits hold generated lesions, and an external folder beside it."""
    from skinlesion.data.synthetic import generate

    generate(tmp_path / "internal", 60, 64, seed=0, workers=1, progress=False)
    images = sorted((tmp_path / "internal").rglob("*.png"))
    _write_split(tmp_path, "train", images[0::3])
    _write_split(tmp_path, "val", images[1::3])
    _write_split(tmp_path, "test", images[2::3])
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_an_external_set_leaves_out_copies_of_used_images_unknown_labels_and_bad_files(project: Path):
    from skinlesion.core.layout import ExternalPaths
    from skinlesion.data.external import prepare_external
    from skinlesion.data.synthetic import generate

    generate(project / "new", 24, 64, seed=7, workers=1, progress=False)  # other lesions: to score
    source = project / "outside"
    for p in sorted((project / "new").rglob("*.png")):
        label = "MEL" if p.parent.name == "melanoma" else p.parent.name  # the set's own name for melanoma
        (source / label).mkdir(parents=True, exist_ok=True)
        p.rename(source / label / p.name)
    train = sorted(Path(p) for p in pd.read_csv(project / "data/splits/train.csv")["path"])
    test = sorted(Path(p) for p in pd.read_csv(project / "data/splits/test.csv")["path"])
    (source / train[0].parent.name / "copy_of_train.png").write_bytes(train[0].read_bytes())
    Image.open(test[0]).convert("RGB").save(source / test[0].parent.name / "reencoded_test.jpg", quality=85)
    (source / "nevus" / "broken.png").write_bytes(b"not an image")
    (source / "psoriasis").mkdir()
    Image.open(train[1]).convert("RGB").resize((40, 40)).save(source / "psoriasis" / "other.png")
    cfg = ExternalConfig(ExternalSource.FOLDER, str(source), {"MEL": "melanoma"})
    config = replace(default_config(), external={"site2": cfg})

    external = prepare_external("site2", config, progress=False)

    summary = external.summary()
    assert summary["files_seen"] == 28 and summary["scored"] == 24
    assert summary["skipped"] == {"in_test_split": 1, "in_training_data": 1, "not_an_image": 1, "unknown_class": 1}
    assert summary["unknown_classes"] == {"psoriasis": 1}
    assert "melanoma" in summary["per_class"] and "MEL" not in summary["per_class"]  # mapped onto the class
    skipped = pd.read_csv(ExternalPaths("site2").skipped).set_index("reason")
    assert "the same bytes as" in skipped.loc["in_training_data", "detail"]
    assert "a near-duplicate of" in skipped.loc["in_test_split", "detail"]
    scored = pd.read_csv(ExternalPaths("site2").images)
    assert len(scored) == 24 and not scored["path"].str.contains("copy_of_train|reencoded_test").any()


def test_subgroup_levels_bin_numbers_and_keep_names(tmp_path: Path):
    from skinlesion.stats.subgroups import subgroup_levels

    meta = pd.DataFrame(
        {"age": ["25", "30", "44", "45", "80", ""], "sex": ["male", "female", "male", "", "female", "male"]},
        index=pd.Index([f"img{i}" for i in range(6)], name="image_id"),
    )
    paths = pd.Series([f"data/raw/unsplit/nv/img{i}.jpg" for i in range(6)] + ["data/raw/unsplit/nv/other.jpg"])
    assert subgroup_levels(paths, meta, "age", [30, 45]).tolist() == [
        "<30",
        "30–44",
        "30–44",
        "≥45",
        "≥45",
        "unknown",
        "unknown",
    ]
    assert subgroup_levels(paths, meta, "sex", [30, 45]).tolist()[:5] == ["male", "female", "male", "unknown", "female"]


def test_a_column_that_says_unknown_itself_has_one_unknown_level():
    from skinlesion.stats.subgroups import subgroup_levels

    # HAM10000's sex and localization spell some missing values "unknown"; others are empty.
    meta = pd.DataFrame({"sex": ["male", "unknown", ""]}, index=pd.Index(["a", "b", "c"], name="image_id"))
    levels = subgroup_levels(pd.Series(["x/a.jpg", "x/b.jpg", "x/c.jpg", "x/d.jpg"]), meta, "sex", [30])
    assert levels.tolist() == ["male", "unknown", "unknown", "unknown"]
    assert list(levels.cat.categories) == ["male", "unknown"]


def _scored(rng, n, classes, accuracy):
    from skinlesion.stats.clinical import Scored

    y = rng.integers(0, len(classes), n)
    right = rng.random(n) < accuracy
    predicted = np.where(right, y, (y + 1) % len(classes))
    probs = np.full((n, len(classes)), 0.1 / (len(classes) - 1))
    probs[np.arange(n), predicted] = 0.9
    return Scored(classes, y, probs, np.array([f"g{i}" for i in range(n)]))


def test_subgroup_analysis_reports_each_level_flags_small_ones_and_states_the_largest_gap():
    from skinlesion.stats.clinical import Scored
    from skinlesion.stats.intervals import Resampling
    from skinlesion.stats.subgroups import SubgroupRule, subgroup_analysis

    rng = np.random.default_rng(0)
    classes = ["mel", "nv", "bkl"]
    good, bad = _scored(rng, 150, classes, 0.9), _scored(rng, 150, classes, 0.4)
    test = Scored(classes, np.r_[good.y, bad.y], np.r_[good.probs, bad.probs], np.r_[good.groups, bad.groups + "b"])
    levels = pd.Series(["female"] * 150 + ["male"] * 144 + ["other"] * 6)
    rule = SubgroupRule(["mel"], target_specificity=0.9, min_size=10, resampling=Resampling(1000, 0.9, 0))
    analysis = subgroup_analysis(test, _scored(rng, 200, classes, 0.7), {"sex": levels}, rule)
    rows = {r["level"]: r for r in analysis["columns"]["sex"]["levels"]}
    assert rows["other"]["too_small"] and "balanced_accuracy" not in rows["other"] and rows["other"]["n"] == 6
    female = rows["female"]["balanced_accuracy"]
    assert female["low"] < female["value"] < female["high"] and female["value"] > 0.8
    assert {"roc_auc", "sensitivity", "specificity"} <= set(rows["male"])
    gap = analysis["columns"]["sex"]["gap"]
    assert (gap["best"], gap["worst"]) == ("female", "male") and 0 < gap["low"] < gap["value"] < gap["high"]
    assert analysis["threshold"] is not None  # fixed on the validation scores


def test_the_drop_compares_the_same_classes_and_its_interval_covers_it():
    from skinlesion.evaluation.external_results import balanced_accuracy_drop
    from skinlesion.stats.clinical import Scored
    from skinlesion.stats.intervals import Resampling

    rng = np.random.default_rng(1)
    classes = ["mel", "nv", "vasc"]
    internal = _scored(rng, 300, classes, 0.85)
    external = _scored(rng, 200, classes, 0.6)
    external = Scored(classes, external.y % 2, external.probs, external.groups)  # no vasc in the external set
    drop = balanced_accuracy_drop(internal, external, Resampling(1000, 0.95, 0))
    assert drop["classes"] == ["mel", "nv"]
    assert drop["value"] == pytest.approx(drop["internal"] - drop["external"])
    assert drop["low"] < drop["value"] < drop["high"] and drop["low"] > 0
