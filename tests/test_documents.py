"""The report, the summary and the model card: Jinja2 templates rendered from ``reports/summary.json``'s numbers."""

import copy
import json
import re
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd
import pytest

from skinlesion.core import layout
from skinlesion.core.labels import LabelMap
from skinlesion.render import documents
from skinlesion.render.documents import links, render_card, render_report, render_summary

from .conftest import REPO, default_config

# What the aggregate stage writes as summary.json's `settings` under the default params.yaml.
SETTINGS = {
    "seeds": [0, 1],
    "confidence": 0.95,
    "alpha": 0.05,
    "source": "synthetic",
    "subgroups": ["sex", "age", "localization", "dx_type"],
}


def committed_summary() -> dict:
    """The repository's reports/summary.json, as the documents read it (no Markdown in it)."""
    summary = json.loads((REPO / layout.SUMMARY_JSON).read_text(encoding="utf-8"))
    summary.pop("tables", None)  # what summary.json held before the templates: nothing reads it
    summary.setdefault("settings", SETTINGS)
    summary["subgroups"].setdefault("missing", [])
    return summary


def lines(text: str) -> list[str]:
    return text.splitlines()


def committed(path: Path) -> str:
    return (REPO / path).read_text(encoding="utf-8")


# The committed documents, rendered again from the committed summary.json: that file must be the one the
# aggregate stage writes now (each run's `calibration_runs`; rows in the order of `backbones:`, not sorted).
def test_the_committed_report_and_summary_render_from_summary_json():
    summary, data = committed_summary(), json.loads(committed(layout.DATA_SUMMARY))
    # Byte for byte: the stage writes exactly this text from exactly this summary.
    assert render_report(summary, data) == committed(layout.REPORT)
    assert render_summary(summary) == committed(layout.SUMMARY_MD)


def test_the_committed_model_card_renders_from_summary_json():
    summary, data = committed_summary(), json.loads(committed(layout.DATA_SUMMARY))
    config = default_config()
    headline = summary["headline"]
    # The headline's label map as aggregate writes it: a run's input size and temperature (built into its
    # model), or an ensemble's largest member size and its own temperature.
    sizes = [config.backbone[run.rsplit("-", 1)[0]].image_size for run in headline["members"]]
    labels = LabelMap(
        classes=tuple(sorted(data["per_class"]["test"])),
        image_size=max(sizes),
        temperature=summary["calibration"]["temperature"],
        backbone=headline["model"],
        seed=headline["seed"],
    )
    # Export's own measurement: metrics/export.json keeps the label agreement; the image count and the largest
    # probability change are in the card only, read back from it (every other line is rendered from summary.json).
    stated = re.search(r"TFLite vs Keras on (\d+) test images: max \|Δp\| ([0-9.]+)", committed(layout.MODEL_CARD))
    label_agreement = json.loads(committed(layout.EXPORT_METRICS))["label_agreement"]
    agreement = {"images": int(stated[1]), "max_abs_diff": float(stated[2]), "label_agreement": label_agreement}
    card = {
        "labels": labels,
        "weights": config.train.weights,
        "quantization": config.export.quantization,
        "source": config.data.source,
        "agreement": agreement,
    }
    assert render_card(summary, data, card) == committed(layout.MODEL_CARD)


def strings(value) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return [value] if isinstance(value, str) else []


def test_the_summary_holds_numbers_not_markdown_and_the_documents_make_the_tables():
    summary = committed_summary()
    assert not [s for s in strings(summary) if "|---" in s or "\n|" in s]
    text = render_summary(summary)
    assert sum(line.startswith("|---|") for line in lines(text)) == 5  # backbones ... operating points
    assert text.endswith(" |\n") and "\n\n\n" not in text


# --- A small summary of the same shape: two backbones, two seeds --------------------------------------


def entry(value: float, low: float, high: float) -> dict:
    return {"value": value, "low": low, "high": high}


def small_summary() -> dict:
    """A summary.json with every key the documents read; no subgroups, no external set."""
    ci = {"low": 0.4, "high": 0.6}
    metrics = {"balanced_accuracy": 0.5, "accuracy": 0.55, "macro_f1": 0.48, "roc_auc_macro": 0.8}
    spread = {m: {"mean": v, "std": 0.01} for m, v in metrics.items()}
    calibration = {
        "temperature": 1.234,
        "before": {"calibration_error": 0.12, "low": 0.05, "high": 0.2, "ece": 0.1, "log_loss": 1.2},
        "after": {"calibration_error": 0.03, "low": 0.0, "high": 0.1, "ece": 0.05, "log_loss": 1.1},
    }
    point = {"threshold": 0.3, "test": {"sensitivity": entry(0.8, 0.7, 0.9), "specificity": entry(0.9, 0.8, 0.95)}}
    pair = {"a": "mobilenet", "b": "vgg19", "difference": -0.05, "low": -0.1, "high": 0.01}
    few_seeds = {"seeds_a": 1, "seeds_b": 2, "seed_sd_a": 0.01, "seed_sd_b": 0.02, "significant": False}
    few_seeds |= {"p_text": "0.300", "p_holm_text": "0.300", "verdict": "too few seeds"}
    return {
        "settings": SETTINGS | {"confidence": 0.9, "seeds": [0, 1]},
        "headline": {
            "model": "mobilenet",
            "seed": 1,
            "kind": "single run",
            "members": ["mobilenet-1"],
            "temperature": 1.0,
            "val": {"balanced_accuracy": 0.52},
            "test": metrics | {"calibration_error": None},
            "ci": {m: ci for m in metrics},
            "seeds": {m: spread[m] for m in ("balanced_accuracy", "macro_f1")},
        },
        "selection": {
            "rule": "auto",
            "candidates": [
                {"name": "mobilenet", "kind": "single run", "runs": ["mobilenet-1"], "val_balanced_accuracy": 0.52},
                {"name": "vgg19", "kind": "single run", "runs": ["vgg19-0"], "val_balanced_accuracy": 0.47},
                {
                    "name": "ensemble-all",
                    "kind": "all-backbone ensemble",
                    "runs": ["mobilenet-1", "vgg19-0"],
                    "val_balanced_accuracy": 0.5,
                },
            ],
        },
        "backbones": {"mobilenet": spread, "vgg19": spread},
        "backbones_val": {"mobilenet": spread, "vgg19": spread},
        "architectures": [pair | few_seeds],
        "networks": [pair | {"p_text": "< 0.001", "p_holm_text": "0.00300", "significant": True}],
        "seeds_message": "SEEDS",
        "ensembles": {
            name: {"runs": runs, "ci": {"balanced_accuracy": ci}} | metrics | {"roc_auc_macro": None}
            for name, runs in (("mobilenet", 2), ("vgg19", 2), ("all backbones", 4))
        },
        "operating_points": {
            "malignant_vs_benign": {
                "classes": ["bcc", "mel"],
                "roc_auc": entry(0.85, 0.8, 0.9),
                "fixed": {"sensitivity_at_specificity_0.9": point, "specificity_at_sensitivity_0.95": point},
                "test_roc": {"sensitivity_at_specificity_0.9": 0.7, "specificity_at_sensitivity_0.95": 0.6},
            }
        },
        "calibration": calibration,
        "calibration_runs": {"mobilenet": {"0": calibration, "1": calibration}, "vgg19": {"0": calibration}},
        "pairwise_mcnemar": [
            {
                "a": "mobilenet",
                "b": "vgg19",
                "better": "vgg19",
                "significant": True,
                "seeds": {"0": {"p": 0.0123456}, "1": {"p": 1.19e-06}},
            }
        ],
        "subgroups": {"headline": None, "ensembles": {}, "missing": []},
        "external": {},
    }


DATA = {
    "images": {"train": 8, "val": 2, "test": 2, "total": 12},
    "classes": 4,
    "files_seen": 14,
    "skipped": {"corrupt": 1, "duplicate": 0, "empty": 1},
    "skipped_total": 2,
    "grouping": {"group_by": "lesion_id", "images_without_group": 2, "given_split": None, "warning": None},
}
CARD = {
    "labels": LabelMap(("bcc", "mel"), 32, temperature=1.5, backbone="mobilenet", seed=1),
    "weights": "scratch",
    "quantization": "float16",
    "source": "synthetic",
    "agreement": {"images": 2, "max_abs_diff": 0.001, "label_agreement": 0.5, "tflite_megabytes": 1.0},
}


def test_the_report_states_its_numbers_with_intervals_at_evaluate_confidence():
    text = render_report(small_summary(), DATA)
    assert "say nothing\n> about clinical performance" in text and "locked" in text
    assert "- Skipped by validation: 2 (corrupt: 1, empty: 1)." in lines(text)
    assert "- Grouping: by `lesion_id` — no `lesion_id` straddles train/val/test; 2 images without a" in text
    assert "seed 1 (chosen by validation balanced accuracy 0.520, never by test). Test split, 90 % CIs from" in text
    # A metric without a value (calibration error here) is left out, not printed as a dash.
    assert "- balanced accuracy 0.500 (0.400–0.600)" in text and "- calibration error" not in text
    assert "- chance level (balanced accuracy): 0.250" in lines(text)
    assert "## Backbones (mean ± std over seeds 0, 1)" in lines(text)
    assert "| mobilenet vs vgg19 | 1, 2 | -0.050 | 0.010, 0.020 | – | – | too few seeds |" in lines(text)
    assert (
        "| mobilenet vs vgg19 | -0.050 (-0.100 to +0.010) | < 0.001 | 0.00300 | the vgg19 runs score higher |" in text
    )
    assert "| all backbones | 4 | 0.500 (0.400–0.600) | – | 0.550 | 0.480 | – |" in lines(text)
    assert "|  | sensitivity ≥ 95% | 0.300 | 0.800 (0.700–0.900) | 0.900 (0.800–0.950) | specificity 0.600 |" in text
    assert "| vgg19 seed 0 | 1.23 | 0.120 (0.050–0.200) | 0.030 (0.000–0.100) | 0.100 → 0.050 | 1.200 → 1.100 |" in text
    assert "| mobilenet vs vgg19 | seed 0: 0.0123, seed 1: 1.19e-06 | the vgg19 runs score higher (p < 0.05 on" in text
    assert "α = 0.05)" in text and "\n\nSEEDS\n\n" in text and "## External validation" not in text
    assert "no metadata with any of the columns sex, age, localization, dx_type (`data.metadata`" in text


def test_every_link_leads_from_the_document_to_its_file():
    linked = {
        layout.REPORT: ("comparison", "recall", "gradcam", "augmentation"),
        layout.MODEL_CARD: ("model", "labels", "tflite", "export_labels"),
    }
    for document, names in linked.items():
        made = links(document)
        for name in names:
            assert (document.parent / made[name]).resolve() == documents.LINKED[name].resolve(), name
    report = render_report(small_summary(), DATA)
    assert f"![comparison]({links(layout.REPORT)['comparison']})" in report and "](../" in report
    card = render_card(small_summary(), DATA, CARD)
    assert f"`{links(layout.MODEL_CARD)['tflite']}` (float16 quantised)" in card


@pytest.mark.parametrize(
    "grouping, sentence",
    [
        ({"group_by": None, "given_split": None, "warning": "W"}, "Grouping: none, image-level split; W"),
        ({"group_by": None, "given_split": None, "warning": None}, "Grouping: none, image-level split."),
        (
            {"group_by": None, "given_split": "val+test", "warning": "W"},
            "Grouping: the source's own split (val+test), kept as it is; W",
        ),
        (
            {"group_by": None, "given_split": "val+test", "warning": None},
            "Grouping: the source's own split (val+test), kept as it is, grouped by lesion at the source.",
        ),
        (
            {"group_by": "lesion_id", "images_without_group": 0},
            "Grouping: by `lesion_id` — no `lesion_id` straddles train/val/test.",
        ),
    ],
)
def test_the_grouping_sentence_states_the_leak_of_an_ungrouped_split(grouping: dict, sentence: str):
    data = DATA | {"grouping": grouping}
    assert f"- {sentence}" in lines(render_report(small_summary(), data))
    assert f"- {sentence}" in lines(render_card(small_summary(), data, CARD))


@pytest.mark.parametrize(
    "weights, quantization, training, files",
    [
        ("scratch", "float16", "trained from random initialisation, every layer and BatchNorm", "float16 quantised"),
        ("none", "dynamic_range", "a random frozen backbone with `train.weights: none`", "dynamic_range quantised"),
        ("imagenet", "none", "transfer learning from ImageNet weights: frozen backbone + head", "float32"),
        ("w/backbone.h5", "none", "transfer learning from the weights file `w/backbone.h5`: frozen", "float32"),
    ],
)
def test_the_model_card_says_how_the_model_was_trained_and_exported(weights, quantization, training, files):
    card = render_card(small_summary(), DATA, CARD | {"weights": weights, "quantization": quantization})
    assert f"- Backbone: mobilenet; {training}" in card and f"`export/model.tflite` ({files})" in card
    assert card.startswith("# Model card: skinlesion `mobilenet`, seed 1\n\n**Not a diagnostic device.**")
    assert "T = 1.50" in card and "- Classes (2): `bcc`, `mel`." in card
    assert "max |Δp| 0.0010, top-1 agreement 50.0%." in card and "say nothing clinical" in card
    assert "macro-F1 0.480 (0.400–0.600) (90 % CIs: this network on this test set)." in card
    assert "0.120 (0.050–0.200) before temperature scaling, 0.030 (0.000–0.100) after." in card
    assert "Across seeds: balanced accuracy 0.500 ± 0.010, macro-F1 0.480 ± 0.010." in card
    assert "\n\nSEEDS\n\n## Intended use" in card and card.endswith("carry over.\n")
    other = render_card(small_summary(), DATA, CARD | {"source": "kaggle"})
    assert "- Source: `kaggle`." in lines(other)


# --- Subgroups and external sets ------------------------------------------------------------------


def analysis(offset: float) -> dict:
    """A subgroup analysis as stats.subgroups.subgroup_analysis returns it: sex with a gap, site without."""
    female = {"level": "female", "n": 40, "too_small": False, "balanced_accuracy": entry(0.7 + offset, 0.6, 0.8)}
    female |= {
        "roc_auc": entry(0.9, 0.85, 0.95),
        "sensitivity": entry(0.8, 0.6, 0.9),
        "specificity": entry(0.9, 0.8, 1),
    }
    male = {"level": "male", "n": 30, "too_small": False, "balanced_accuracy": entry(0.55 + offset, 0.45, 0.65)}
    other = {"level": "other", "n": 6, "too_small": True}
    back = {"level": "back", "n": 76, "too_small": False, "balanced_accuracy": entry(0.6, 0.5, 0.7)}
    gap = {"best": "female", "worst": "male", "value": 0.15, "low": 0.02, "high": 0.28}
    return {
        "threshold": 0.3,
        "target_specificity": 0.9,
        "columns": {
            "sex": {"levels": [female, male, other], "gap": gap},
            "localization": {"levels": [back], "gap": None},
        },
    }


def with_subgroups(summary: dict, missing: list[str]) -> dict:
    summary = copy.deepcopy(summary)
    ensembles = {"mobilenet": analysis(0.01), "all backbones": analysis(0.02)}
    summary["subgroups"] = {"headline": analysis(0.0), "ensembles": ensembles, "missing": missing}
    return summary


LABEL = "(90 % CI)"
SUBGROUPS = f"""\
| subgroup | n | balanced accuracy {LABEL} | malignant ROC-AUC {LABEL} | sensitivity {LABEL} | specificity {LABEL} |
|---|---|---|---|---|---|
| sex = female | 40 | 0.700 (0.600–0.800) | 0.900 (0.850–0.950) | 0.800 (0.600–0.900) | 0.900 (0.800–1.000) |
| sex = male | 30 | 0.550 (0.450–0.650) | – | – | – |
| sex = other | 6 | too small | – | – | – |
| localization = back | 76 | 0.600 (0.500–0.700) | – | – | – |

Largest gap in balanced accuracy between subgroups (best − worst):
- sex: female − male = 0.150 (90 % CI 0.020 to 0.280)

| subgroup | mobilenet (90 % CI) | all backbones (90 % CI) |
|---|---|---|
| sex = female | 0.710 (0.600–0.800) | 0.720 (0.600–0.800) |
| sex = male | 0.560 (0.450–0.650) | 0.570 (0.450–0.650) |
| sex = other | too small | too small |
| localization = back | 0.600 (0.500–0.700) | 0.600 (0.500–0.700) |
"""


def test_subgroups_render_the_headline_table_its_gaps_and_each_ensemble():
    summary = with_subgroups(small_summary(), missing=["age", "dx_type"])
    report, card = render_report(summary, DATA), render_card(summary, DATA, CARD)
    block = SUBGROUPS + "\nColumns not in the metadata: age, dx_type.\n\n"
    assert f"## Subgroups (test split)\n\n{block}Per subgroup of each" in report
    assert f"### Subgroups (test split)\n\n{block}### Ensembles" in card
    # Every column there: no note; no gap at all: the heading alone, then the ensembles' table.
    assert f"\n\n{SUBGROUPS}\nPer subgroup" in render_report(with_subgroups(small_summary(), missing=[]), DATA)
    summary["subgroups"]["headline"]["columns"]["sex"]["gap"] = None
    assert "(best − worst):\n\n| subgroup | mobilenet (90 % CI)" in render_report(summary, DATA)


def test_a_subgroup_analysis_from_the_statistics_renders():
    from skinlesion.stats.clinical import Scored
    from skinlesion.stats.intervals import Resampling
    from skinlesion.stats.subgroups import SubgroupRule, subgroup_analysis

    rng = np.random.default_rng(0)
    classes, n = ["mel", "nv", "bkl"], 120
    y = rng.integers(0, 3, n)
    probs = rng.dirichlet(np.ones(3), n)
    probs[np.arange(n), y] += rng.random(n)
    scored = Scored(classes, y, probs / probs.sum(1, keepdims=True), np.array([f"g{i}" for i in range(n)]))
    levels = {"sex": pd.Series(["female"] * 60 + ["male"] * 54 + ["other"] * 6)}
    rule = SubgroupRule(["mel"], 0.9, 10, Resampling(50, 0.9, 0))
    found = subgroup_analysis(scored, scored, levels, rule)
    summary = small_summary()
    summary["subgroups"] = {"headline": found, "ensembles": {"mobilenet": found}, "missing": []}
    text = render_report(summary, DATA)
    assert "| sex = other | 6 | too small | – | – | – |" in lines(text)
    assert "- sex: " in text and "| sex = male | " in text and "| subgroup | mobilenet (90 % CI) |" in text


def external_set(views: dict, skipped: dict, ensembles: dict) -> dict:
    """One external set as evaluation's external results give it."""
    return {
        "data": {"scored": 50, "files_seen": 50 + sum(skipped.values()), "skipped": skipped},
        "classes": ["mel", "nv"],
        "ensembles": {name: {"balanced_accuracy": value} for name, value in ensembles.items()},
        "headline": {"balanced_accuracy": 0.61, "ci": {"balanced_accuracy": {"low": 0.5, "high": 0.7}}},
        "operating_points": views,
        "drop": {"internal": 0.7, "external": 0.61, "value": 0.09, "low": -0.02, "high": 0.2},
        "subgroups": None,
    }


def test_external_sets_render_their_table_and_operating_points():
    summary = small_summary()
    views = summary["operating_points"]
    summary["external"] = {
        "site2": external_set(views, {"duplicate": 2, "unknown_label": 1}, {"mobilenet": 0.6, "all backbones": 0.65}),
        "derm7": external_set({}, {}, {"mobilenet": 0.5}),
    }
    report, card = render_report(summary, DATA), render_card(summary, DATA, CARD)
    scored = "| mel, nv | 0.700 | 0.610 (0.500–0.700) | +0.090 (-0.020 to +0.200) |"
    row = f"| site2 | 50 (53) | duplicate: 2, unknown_label: 1 {scored} mobilenet 0.600, all backbones 0.650 |"
    assert row in lines(report) and row in lines(card)
    assert f"| derm7 | 50 (50) | none {scored} mobilenet 0.500 |" in lines(report)
    assert "balanced accuracy on the set, with a 90 % CI from resampling both sets independently." in report
    internal = render_summary(summary).splitlines()[-4:]  # the internal operating points, the same views
    points = "\n".join(["Operating points on `site2` (thresholds fixed on validation):", "", *internal, ""])
    assert points in report
    none = "Operating points on `derm7` (thresholds fixed on validation):\n\nNo malignant class (`evaluate.malignant`)"
    assert none in report and report.index("## External validation") < report.index("## Secondary check")
    assert "of this data set.\n\n## Secondary check" in report
    assert "\n### External validation\n\n| set |" in card and "mobilenet 0.500 |\n\n### Ensembles\n" in card


# --- Strictness, filters, packaging ---------------------------------------------------------------


@pytest.mark.parametrize("path", [("settings", "alpha"), ("calibration_runs",), ("headline", "seeds"), ("networks",)])
def test_a_missing_key_fails_loudly_instead_of_printing_an_empty_cell(path: tuple[str, ...]):
    summary = small_summary()
    parent = summary
    for key in path[:-1]:
        parent = parent[key]
    del parent[path[-1]]
    with pytest.raises(jinja2.UndefinedError):
        render_report(summary, DATA) + render_card(summary, DATA, CARD)


def test_the_card_needs_what_only_export_knows():
    with pytest.raises(jinja2.UndefinedError):
        render_card(small_summary(), DATA, {k: v for k, v in CARD.items() if k != "agreement"})


def test_the_number_formats():
    assert documents.interval(0.5123, {"low": 0.4311, "high": 0.59}) == "0.512 (0.431–0.590)"
    assert documents.signed(0.0514, {"low": -0.02, "high": 0.121}) == "+0.051 (-0.020 to +0.121)"
    assert documents.ci_label(0.95) == "95 % CI" and documents.ci_label(0.8) == "80 % CI"
    assert documents.spread({"mean": 0.5511, "std": 0.0874}) == "0.551 ± 0.087" and documents.spread(None) == "–"
    assert documents.estimate(entry(0.5, 0.4, 0.6)) == "0.500 (0.400–0.600)" and documents.estimate(None) == "–"
    assert documents.target("sensitivity_at_specificity_0.9") == "specificity ≥ 90%"
    assert documents.target("specificity_at_sensitivity_0.95") == "sensitivity ≥ 95%"
    assert documents.measured("specificity_at_sensitivity_0.95") == "specificity"
    assert documents.fmt(1.19e-06, ".3g") == "1.19e-06" and documents.fmt(None) == "–"


def test_a_wheel_carries_every_template():
    folder = Path(documents.__file__).parent / documents.TEMPLATES
    templates = sorted(p.relative_to(REPO / "skinlesion").as_posix() for p in folder.iterdir())
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["skinlesion"]
    assert len(templates) >= 4 and all(any(fnmatch(t, p) for p in patterns) for t in templates)


def test_the_report_says_what_a_class_missing_from_test_does_to_balanced_accuracy():
    data = DATA | {"missing_classes": {"val": [], "test": ["df"]}}
    text = render_report(small_summary(), data)
    assert "**The test split has no image of df**" in text and "other 3 classes only" in text
    assert "chance level there is 1/3" in text and "The val split" not in text
    assert "has no image of" not in render_report(small_summary(), DATA | {"missing_classes": {"val": [], "test": []}})


def test_every_candidate_is_listed_with_its_validation_score_and_the_rule_that_chose():
    summary = small_summary()
    report, card = render_report(summary, DATA), render_card(summary, DATA, CARD)
    for text in (report, card):
        assert "| `mobilenet` (headline) | single run | 1 | 0.520 |" in lines(text)
        assert "| `ensemble-all` | all-backbone ensemble | 2 | 0.500 |" in lines(text)
    assert "`model: auto`: the candidate with the best validation balanced accuracy (ties: the simpler)" in report


def test_an_ensemble_headline_is_named_with_its_runs_and_its_recalibration():
    summary = small_summary()
    summary["headline"] |= {"model": "ensemble-all", "seed": None, "kind": "all-backbone ensemble"}
    summary["headline"] |= {"members": ["mobilenet-1", "vgg19-0"], "temperature": 0.8}
    summary["selection"]["rule"] = "ensemble-all"
    report = render_report(summary, DATA)
    assert "`ensemble-all` (all-backbone ensemble of 2 runs) (pinned by `model`; its validation balanced" in report
    assert "plain mean 0.120 (0.050–0.200), recalibrated by the ensemble's temperature (T = 0.80" in report
    assert "| `ensemble-all` (headline) | all-backbone ensemble | 2 | 0.500 |" in lines(report)
    labels = LabelMap(("bcc", "mel"), 40, temperature=0.8, backbone="ensemble-all", seed=None)
    card = render_card(summary, DATA, CARD | {"labels": labels})
    assert card.startswith("# Model card: skinlesion `ensemble-all` (all-backbone ensemble of 2 runs)\n")
    assert "the all-backbone ensemble of 2 runs (`mobilenet-1`, `vgg19-0`)" in card
    assert "for the members' plain mean (each member calibrated)" in card and "member runs one by one" in card
    assert "its validation balanced accuracy 0.520, never by test" in report
    assert "each member resizes to its own input size inside the model" in card
