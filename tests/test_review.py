"""The items a reviewer expects (issue 29): cohort tables, Table 1 on HAM10000's columns, version, utility."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from skinlesion.core.modes import PrimaryMetric
from skinlesion.render.documents import ENV
from skinlesion.review.baselines import published_baselines
from skinlesion.review.cohort import class_table, flow, table1
from skinlesion.review.provenance import algorithm_version, hyperparameters
from skinlesion.review.utility import decision_curve, expected_half_width, net_benefit, per_class_intervals
from skinlesion.stats.intervals import Resampling

# Rows of /work/shared/data/ham10000-224/HAM10000_metadata.csv, as written there: a missing age, sex and site
# "unknown", the confocal and follow-up diagnosis methods.
HAM = """lesion_id,image_id,dx,dx_type,age,sex,localization
HAM_0006631,ISIC_0031651,bcc,histo,85,female,face
HAM_0006541,ISIC_0025064,bkl,histo,35,female,lower extremity
HAM_0001167,ISIC_0028448,bkl,consensus,55,male,trunk
HAM_0006521,ISIC_0031557,mel,histo,80,male,lower extremity
HAM_0004056,ISIC_0034051,mel,histo,55,female,upper extremity
HAM_0002613,ISIC_0030925,mel,histo,45,male,lower extremity
HAM_0007141,ISIC_0031513,bcc,histo,50,male,trunk
HAM_0001571,ISIC_0029156,nv,follow_up,55,female,lower extremity
HAM_0001769,ISIC_0032176,nv,histo,75,male,unknown
HAM_0005415,ISIC_0029102,bkl,confocal,80,male,face
HAM_0003300,ISIC_0034195,nv,consensus,,unknown,unknown
HAM_0001277,ISIC_0031927,akiec,histo,75,male,chest
"""

DATA = {
    "files_seen": 20,
    "images": {"train": 10, "val": 3, "test": 3, "total": 16},
    "per_class": {"train": {"a": 6, "b": 4}, "val": {"a": 2, "b": 1}, "test": {"a": 2, "b": 1}},
    "skipped": {"corrupt": 1, "too_small": 0, "duplicate": 2, "near_duplicate": 0, "label_conflict": 1},
    "skipped_total": 4,
}


# A run's train section as config.json records it (the hyperparameters the report lists).
TRAIN = {
    "class_weight": "balanced",
    "label_smoothing": 0.05,
    "weights": "none",
    "batch_size": 32,
    "epochs_head": 12,
    "lr_head": 0.003,
    "epochs_finetune": 2,
    "lr_finetune": 3e-06,
    "patience": 4,
    "lr_factor": 0.5,
    "lr_patience": 2,
    "precision": "float32",
}


def ham_metadata() -> pd.DataFrame:
    """HAM10000's metadata as load_metadata reads it: strings, indexed by image id."""
    return pd.read_csv(io.StringIO(HAM), dtype=str, keep_default_na=False).set_index("image_id")


def test_class_table_counts_each_class_per_split_and_totals():
    rows = class_table(DATA)
    assert rows[0] == {"class": "a", "train": 6, "val": 2, "test": 2, "total": 10}
    assert rows[-1] == {"class": "total", "train": 10, "val": 3, "test": 3, "total": 16}


def test_flow_runs_from_files_seen_through_skips_to_splits_and_what_was_scored():
    external = {"isic": {"files_seen": 9, "scored": 6, "skipped": {"duplicate": 1, "unknown_class": 2}}}
    rows = {r["step"]: r["images"] for r in flow(DATA, 3, external)}
    assert rows["files seen"] == 20 and rows["left out by the split stage"] == 4
    assert rows["unusable file: corrupt"] == 1 and "unusable file: too_small" not in rows  # zero reasons folded
    assert (rows["duplicate"], rows["near duplicate"], rows["label conflict"]) == (2, 0, 1)  # always shown
    assert rows["images kept"] == rows["files seen"] - rows["left out by the split stage"]
    assert (rows["train"], rows["val"], rows["test"], rows["test images scored"]) == (10, 3, 3, 3)
    assert rows["external `isic`: images scored"] == 6 and rows["left out: unknown class"] == 2


def test_table1_describes_ham10000_columns_per_split_and_says_which_sets_have_none():
    meta = ham_metadata()
    ids = list(meta.index)
    paths = {
        "train": pd.Series([f"nv/{i}.jpg" for i in ids[:8]]),
        "test": pd.Series([f"x/{i}.jpg" for i in ids[8:]]),
        "isic": pd.Series(["MEL/a.jpg", "NV/b.jpg"]),
    }
    t = table1(
        paths,
        {"train": meta, "test": meta, "isic": None},
        ["age", "sex", "localization", "dx_type", "fitz"],
        [30, 45, 60, 75],
    )
    assert t["described"] == ["train", "test"] and t["n"] == {"train": 8, "test": 4, "isic": 2}
    assert t["missing"] == ["fitz"]
    columns = {c["column"]: c for c in t["columns"]}
    age = columns["age"]
    # train ages 85 35 55 80 55 45 50 55: median 55, quartiles 48.75 and 61.25; test has one missing age.
    assert age["median"]["train"] == pytest.approx([55.0, 48.75, 61.25])
    assert age["median"]["test"] == pytest.approx([75.0, 75.0, 77.5])
    levels = {r["level"]: r["counts"] for r in age["levels"]}
    assert [r["level"] for r in age["levels"]] == ["30–44", "45–59", "≥75", "unknown"]  # bins low to high, unknown last
    assert levels["45–59"] == {"train": 5, "test": 0} and levels["unknown"] == {"train": 0, "test": 1}
    dx = {r["level"]: r["counts"] for r in columns["dx_type"]["levels"]}
    assert dx == {
        "confocal": {"train": 0, "test": 1},
        "consensus": {"train": 1, "test": 1},
        "follow_up": {"train": 1, "test": 0},
        "histo": {"train": 6, "test": 2},
    }
    sex = {r["level"]: r["counts"] for r in columns["sex"]["levels"]}
    assert sex["unknown"] == {"train": 0, "test": 1} and columns["sex"]["median"] == {}
    assert [r["level"] for r in columns["localization"]["levels"]][-1] == "unknown"
    text = ENV.get_template("cohort.md.j2").module.table1(t)
    assert "| **age**, median (quartiles) | 55 (48.75–61.25) | 75 (75–77.5) |" in text
    assert "| &nbsp;&nbsp;confocal | 0 (0%) | 1 (25%) |" in text and "No metadata for isic." in text


def test_table1_without_any_metadata_says_so():
    t = table1({"train": pd.Series(["a/x.png"])}, {"train": None}, ["age", "sex"], [30])
    assert t["columns"] == [] and t["missing"] == ["age", "sex"]
    assert "No metadata describes these images" in ENV.get_template("cohort.md.j2").module.table1(t)


def test_net_benefit_matches_the_definition_and_the_reference_strategies():
    positive = np.array([True, True, False, False, False])
    score = np.array([0.9, 0.4, 0.6, 0.2, 0.1])
    t = np.array([0.3, 0.5])
    # t=0.3: treated 0.9, 0.4, 0.6 -> TP 2, FP 1: 2/5 - 1/5 * 0.3/0.7; t=0.5: 0.9, 0.6 -> TP 1, FP 1.
    assert net_benefit(positive, score, t) == pytest.approx([0.4 - 0.2 * 3 / 7, 0.2 - 0.2])
    curve = decision_curve(positive, score, t)
    assert curve["treat_all"] == pytest.approx([0.4 - 0.6 * 3 / 7, 0.4 - 0.6])
    assert not curve["treat_none"].any()
    perfect = decision_curve(positive, positive.astype(float), np.linspace(0.05, 0.95, 7))
    assert perfect["model"] == pytest.approx(np.full(7, 0.4))  # every malignant lesion referred, no benign one


def test_per_class_intervals_match_sklearn_and_leave_undefined_precision_empty():
    from sklearn.metrics import precision_recall_fscore_support

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 120)
    probs = rng.dirichlet(np.ones(4), 120)
    probs[:, 3] = 0  # class 3 never predicted nor present
    probs[y == 0, 0] += 0.5
    rows = per_class_intervals(y, probs, np.arange(120).astype(str), ["a", "b", "c", "d"], Resampling(1000, 0.95, 0))
    precision, recall, f1, support = precision_recall_fscore_support(
        y, probs.argmax(1), labels=[0, 1, 2], zero_division=0
    )
    assert [r["class"] for r in rows] == ["a", "b", "c"]
    for i, r in enumerate(rows):
        assert r["support"] == support[i]
        for name, value in (("recall", recall), ("precision", precision), ("f1", f1)):
            assert r[name]["value"] == pytest.approx(value[i])
            assert r[name]["low"] <= r[name]["value"] <= r[name]["high"]
    never = per_class_intervals(
        np.array([0, 0, 1, 1]),
        np.array([[1, 0], [1, 0], [1, 0], [0.9, 0.1]]),
        np.arange(4),
        ["a", "b"],
        Resampling(1000, 0.95, 0),
    )
    assert never[1]["precision"] is None and never[1]["recall"]["value"] == 0


def test_expected_half_width_is_about_0085_at_135_test_images():
    assert expected_half_width([22, 23, 22, 23, 22, 23], PrimaryMetric.BALANCED_ACCURACY, 0.95) == pytest.approx(
        0.084, abs=0.002
    )
    assert expected_half_width([135], PrimaryMetric.ACCURACY, 0.95) == pytest.approx(
        1.96 * 0.5 / np.sqrt(135), rel=1e-3
    )
    assert expected_half_width([10, 0, 10], PrimaryMetric.BALANCED_ACCURACY, 0.95) == pytest.approx(
        1.96 * np.sqrt(0.05) / 2, rel=1e-3
    )


def test_expected_half_width_matches_simulation_and_bounds_other_recalls():
    """Simulation: balanced accuracy over the synthetic demo's test counts (18, 15, 22, 27, 40, 13).

    Every recall 0.5: the formula's ±0.0904 against a simulated 2.5-97.5 % half-range of 0.090, and ±half-width
    around the truth covers 95.1 % of 20,000 test sets. Recalls 0.8: the simulated half-range is 0.072 (coverage
    98.6 %), inside the planned width (it is the worst case).
    """
    counts = np.array([18, 15, 22, 27, 40, 13])
    width = expected_half_width(list(counts), PrimaryMetric.BALANCED_ACCURACY, 0.95)
    rng = np.random.default_rng(1)
    for recall, check in ((0.5, "equal"), (0.8, "below")):
        ba = (rng.binomial(counts, recall, (20_000, len(counts))) / counts).mean(axis=1)
        half = (np.quantile(ba, 0.975) - np.quantile(ba, 0.025)) / 2
        if check == "equal":
            assert half == pytest.approx(width, rel=0.05)
            assert np.mean(np.abs(ba - recall) <= width) == pytest.approx(0.95, abs=0.01)
        else:
            assert half < 0.85 * width


def test_version_block_merges_the_lock_hashes_of_the_members_and_lists_libraries():
    meta = {
        "version": {
            "skinlesion": "1.0",
            "tensorflow": "2.19",
            "keras": "3.1",
            "model_sha256": "abc",
            "trained_from": {
                "train@mobilenet-0": {"data/splits": "d1.dir", "skinlesion/core": "c1.dir"},
                "train@vgg19-0": {"data/splits": "d1.dir", "skinlesion/core": "c2.dir"},
            },
        }
    }
    a = algorithm_version(meta, {})
    assert a["libraries"] == {"skinlesion": "1.0", "tensorflow": "2.19", "keras": "3.1"}
    assert a["model_sha256"] == "abc" and a["stages"] == ["train@mobilenet-0", "train@vgg19-0"]
    assert a["trained_from"] == [
        {"path": "data/splits", "md5": ["d1.dir"]},
        {"path": "skinlesion/core", "md5": ["c1.dir", "c2.dir"]},
    ]
    unlocked = algorithm_version({"version": {"keras": "3", "model_sha256": "x"}}, {})
    version = ENV.get_template("version.md.j2").module.version
    assert unlocked["trained_from"] == [] and "not recorded" in version(unlocked) and "`x`" in version(unlocked)
    # An ensemble's file is assembled (its bytes change with every save): the block names its members' files.
    ensemble = algorithm_version(meta, {"mobilenet-0": "m0", "vgg19-0": "v0"})
    assert ensemble["model_sha256"] is None and ensemble["members"][1] == {"run": "vgg19-0", "sha256": "v0"}
    assert "| `mobilenet-0` | `m0` |\n| `vgg19-0` | `v0` |\n\n" in version(ensemble) and "abc" not in version(ensemble)


def test_hyperparameters_report_class_weighting_and_where_members_differ():
    train = dict(TRAIN)
    configs = {
        "mobilenet-0": {
            "backbone": "mobilenet",
            "train": train,
            "augment": {"zoom": 0.1},
            "section": {"image_size": 64, "unfreeze": 12, "dropout": 0.2},
        },
        "vgg19-0": {
            "backbone": "vgg19",
            "train": train | {"lr_finetune": 1e-5},
            "augment": {"zoom": 0.1},
            "section": {"image_size": 48, "unfreeze": 4, "dropout": 0.3},
        },
    }
    h = hyperparameters(configs)
    assert h["differs"] == ["train.lr_finetune"] and list(h["backbones"]) == ["mobilenet", "vgg19"]
    text = ENV.get_template("version.md.j2").module.hyperparameters(h)
    assert "`class_weight: balanced`" in text and "inversely proportional" in text and "train.lr_finetune" in text


def test_published_baselines_come_from_the_data_file_with_their_sources():
    derma = published_baselines("dermamnist")
    assert derma["results"] and all(
        r["source"] and 0 < r["accuracy"] < 1 and 0.5 < r["roc_auc"] < 1 for r in derma["results"]
    )
    assert {(r["model"], r["size"]): (r["accuracy"], r["roc_auc"]) for r in derma["results"]}[("ResNet-18", 28)] == (
        0.735,
        0.917,
    )
    assert published_baselines("dermamnist_c") is not None and published_baselines("synthetic") is None
    summary = {"baselines": derma, "headline": {"test": {"accuracy": 0.7, "roc_auc_macro": 0.9}}}
    line = ENV.get_template("utility.md.j2").module.baselines(summary)
    assert "ResNet-18 (28) 0.735 and 0.917" in line and "MedMNIST v2" in line


def review_summary() -> dict:
    """The keys of summary.json this module's items add (for the documents' small summary): no metadata."""
    entry = {"value": 0.5, "low": 0.4, "high": 0.6}
    return {
        "primary": {"metric": "balanced_accuracy", "expected_half_width": 0.085, "test_images": 135},
        "cohort": {
            "classes": class_table(DATA),
            "flow": flow(DATA, 3, {}),
            "table1": table1({"train": pd.Series(["a/x.png"])}, {"train": None}, ["age"], [30]),
        },
        "per_class": [{"class": "bcc", "support": 2, "recall": entry, "precision": None, "f1": entry}],
        "utility": {
            "target_specificity": 0.9,
            "sets": {"test": {"prevalence": 0.5, "images": 2, "threshold": 0.3, "model": 0.2, "treat_all": 0.1}},
        },
        "hyperparameters": {
            "train": TRAIN,
            "augment": {"horizontal_flip": True, "zoom": 0.1},
            "backbones": {"mobilenet": {"image_size": 64, "unfreeze": 12, "dropout": 0.2}},
            "differs": [],
        },
        "baselines": None,
        "scope": {"external": [], "metadata": False},
        "algorithm": algorithm_version({"version": {"keras": "3", "model_sha256": "f00"}}, {}),
    }


def test_the_report_and_card_show_every_item_of_a_small_summary():
    from skinlesion.render.documents import render_card, render_report

    from .test_documents import CARD, small_summary
    from .test_documents import DATA as DOC_DATA

    report = render_report(small_summary(), DOC_DATA)
    for heading in ("### Images per class and split", "### Flow of images", "### Table 1", "### Per class"):
        assert f"\n{heading}" in report, heading
    assert "**Primary endpoint**" in report and "±0.085" in report and "| **total** | 10 | 3 | 3 | **16** |" in report
    assert "| &nbsp;&nbsp;&nbsp;&nbsp;label conflict | 1 |" in report and "| test images scored | 3 |" in report
    assert "![decision curve](../plots/decision_curve.png)" in report and "| test | 2 | 50% | 0.300 | 0.200 |" in report
    assert "## Algorithm version and settings" in report and "`f00`" in report and "## What this evidence" in report
    assert "No external test set" in report and "\n\n\n" not in report
    card = render_card(small_summary(), DOC_DATA, CARD)
    assert "**Primary endpoint**" in card and "| bcc | 2 | 0.500 (0.400–0.600) | – |" in card and "`f00`" in card
    assert "## What this evidence does not cover" in card and "\n\n\n" not in card


@pytest.mark.parametrize(
    "edit, key",
    [
        (lambda e: e.update(primary_metric="auc"), "evaluate.primary_metric"),
        (lambda e: e.update(table1=["age", ""]), "evaluate.table1"),
        (lambda e: e.pop("primary_metric"), "evaluate.primary_metric"),
    ],
)
def test_invalid_review_params_name_the_key(edit, key):
    from skinlesion.core.config import parse_config
    from skinlesion.core.errors import ConfigError

    from .test_config import raw_params

    params = raw_params()
    edit(params["evaluate"])
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        parse_config(params)


def test_table1_reads_ham10000_metadata_as_the_pipeline_loads_it(tmp_path):
    """HAM10000_metadata.csv through load_metadata (indexed by image_id, lesions checked), images by file name."""
    from skinlesion.data.grouping import load_metadata

    csv = tmp_path / "HAM10000_metadata.csv"
    csv.write_text(HAM, encoding="utf-8")
    meta = load_metadata(str(csv), "image_id", "lesion_id")
    paths = {"test": pd.Series(["mel/ISIC_0031557.jpg", "nv/ISIC_0034195.jpg", "bkl/ISIC_0029102.jpg"])}
    t = table1(paths, {"test": meta}, ["age", "sex", "localization", "dx_type"], [30, 45, 60, 75])
    columns = {c["column"]: {r["level"]: r["counts"]["test"] for r in c["levels"]} for c in t["columns"]}
    assert columns["age"] == {"≥75": 2, "unknown": 1} and columns["sex"] == {"male": 2, "unknown": 1}
    assert columns["localization"] == {"face": 1, "lower extremity": 1, "unknown": 1}
    assert columns["dx_type"] == {"confocal": 1, "consensus": 1, "histo": 1}


def test_the_decision_curves_of_test_and_an_external_set_mark_the_threshold_fixed_on_validation(tmp_path, monkeypatch):
    from skinlesion.core import layout
    from skinlesion.core.layout import RunPaths
    from skinlesion.evaluation.analysis import Analysis
    from skinlesion.evaluation.headline import SINGLE_RUN, Candidate, Headline
    from skinlesion.evaluation.review import THRESHOLDS, Review, _utility, write_review
    from skinlesion.evaluation.runs import Predictions
    from skinlesion.stats.subgroups import SubgroupRule, operating_threshold

    def predictions(n: int, seed: int) -> Predictions:
        rng = np.random.default_rng(seed)
        y = rng.integers(0, 3, n)
        probs = rng.dirichlet(np.ones(3), n)
        probs[y == 2, 2] += 1.0  # class 2 (mel) scores higher on melanomas
        probs /= probs.sum(axis=1, keepdims=True)
        groups = np.arange(n).astype(str)
        return Predictions(["nv", "bkl", "mel"], y, groups, {"mobilenet": {0: probs}}, pd.Series(groups))

    resampling = Resampling(1000, 0.95, 0)
    rule = SubgroupRule(["mel"], 0.9, 10, resampling, 0.05, "")
    analysis = Analysis(resampling, 0.05, ["mel"], None, rule, None, None)
    headline = Headline(Candidate("mobilenet", SINGLE_RUN, (RunPaths("mobilenet", 0),), 0.5), 1.0)
    val, test, other = predictions(200, 0), predictions(150, 1), predictions(90, 2)
    curves, utility = _utility(headline, {"test": test, "isic": other}, val, analysis)
    fixed = operating_threshold(headline.scored(val), ["mel"], 0.9)
    assert utility["target_specificity"] == 0.9 and list(utility["sets"]) == ["test", "isic"]
    mark = utility["sets"]["isic"]
    assert mark["threshold"] == fixed and mark["prevalence"] == pytest.approx(np.mean(other.y == 2))
    positive, score = other.y == 2, other.probs["mobilenet"][0][:, 2]
    assert mark["model"] == pytest.approx(net_benefit(positive, score, np.array([fixed]))[0])
    assert len(curves) == 2 * 3 * len(THRESHOLDS)  # two sets, three strategies
    monkeypatch.chdir(tmp_path)
    write_review(Review({"utility": utility}, curves))
    written = pd.read_csv(layout.DECISION_CURVES / "isic.csv")
    assert list(written.columns) == ["threshold", "model", "treat_all", "treat_none"] and len(written) == len(
        THRESHOLDS
    )
    assert written["model"].to_numpy() == pytest.approx(net_benefit(positive, score, THRESHOLDS), abs=1e-6)
    assert layout.DECISION_FIGURE.stat().st_size > 10_000


def test_table1_keeps_age_bins_low_to_high_when_an_age_is_missing():
    """HAM10000's shared sample has ages under 30 and a missing one: `<30` first, `unknown` last."""
    meta = pd.DataFrame({"age": ["20", "50", "", "80"]}, index=["a", "b", "c", "d"])
    paths = {"train": pd.Series(["nv/a.jpg", "nv/b.jpg", "nv/c.jpg", "nv/d.jpg"])}
    t = table1(paths, {"train": meta}, ["age"], [30, 45, 60, 75])
    assert [r["level"] for r in t["columns"][0]["levels"]] == ["<30", "45–59", "≥75", "unknown"]
