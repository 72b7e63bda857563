from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from skinlesion.evaluation.select import backbone_metrics, headline_metrics, select_run
from skinlesion.render.documents import render_report
from skinlesion.render.figures import comparison_figure
from skinlesion.render.plotdata import calibration_frame, curves_frame, roc_frame
from skinlesion.stats.compare import mcnemar_test, pairwise_tests, summarise


def test_mcnemar_on_a_constructed_table():
    # 30 items: both right on 10, only A right on 15, only B right on 1, both wrong on 4.
    y = np.zeros(30, int)
    a = np.array([0] * 10 + [0] * 15 + [1] * 1 + [1] * 4)
    b = np.array([0] * 10 + [1] * 15 + [0] * 1 + [1] * 4)
    result = mcnemar_test(y, a, b)
    assert (result["a_only_correct"], result["b_only_correct"]) == (15, 1)
    # Exact binomial test (16 discordant pairs): p = 2 * P(X <= 1), X ~ Bin(16, 0.5).
    assert result["p"] == pytest.approx(2 * (1 + 16) / 2**16)
    assert mcnemar_test(y, a, a)["p"] == 1.0


def test_pairwise_verdict_requires_every_seed():
    paths = [f"img{i}" for i in range(40)]
    truth = ["x"] * 40

    def frame(correct: int) -> pd.DataFrame:
        return pd.DataFrame({"path": paths, "actual": truth, "predicted": ["x"] * correct + ["y"] * (40 - correct)})

    strong = {0: frame(38), 1: frame(39)}
    weak = {0: frame(10), 1: frame(12)}
    close = {0: frame(37), 1: frame(12)}
    tests = {(t["a"], t["b"]): t for t in pairwise_tests({"strong": strong, "weak": weak, "close": close}, alpha=0.05)}
    assert tests[("strong", "weak")]["significant"] and tests[("strong", "weak")]["better"] == "strong"
    assert not tests[("close", "strong")]["significant"]


def test_selection_uses_validation_not_test():
    val = {0: 0.61, 1: 0.70, 2: 0.65}
    test = {0: 0.90, 1: 0.50, 2: 0.60}  # the best test run must not be picked
    assert select_run(val) == 1 and max(test, key=test.get) != select_run(val)
    assert select_run({3: 0.5, 1: 0.5}) == 1


def _metrics(ba: float) -> dict:
    return {
        "accuracy": ba + 0.05,
        "balanced_accuracy": ba,
        "macro_f1": ba - 0.02,
        "weighted_f1": ba,
        "roc_auc_macro": 0.8,
        "top2_accuracy": 0.9,
        "log_loss": 1.0,
        "ece": 0.1,
        "calibration_error": 0.05,
        "images": 20,
        "ci": {k: {"low": ba - 0.1, "high": ba + 0.1} for k in ("accuracy", "balanced_accuracy", "macro_f1")},
    }


DATA = {
    "images": {"train": 10, "val": 3, "test": 3, "total": 16},
    "classes": 4,
    "files_seen": 18,
    "skipped": {"corrupt": 1, "duplicate": 1, "empty": 0},
    "skipped_total": 2,
    "grouping": {"group_by": "lesion_id", "images_without_group": 2, "given_split": None, "warning": None},
}
TABLES = ("summary", "architectures", "networks", "ensembles", "operating_points", "calibration", "mcnemar")
TABLES += ("subgroups",)


def test_report_renders_from_fixture_metrics(tmp_path: Path):
    per_run = {
        "mobilenet": {0: _metrics(0.5), 1: _metrics(0.6)},
        "vgg19": {0: _metrics(0.4), 1: _metrics(0.45)},
    }
    summary = summarise(per_run)
    assert summary["mobilenet"]["balanced_accuracy"]["mean"] == pytest.approx(0.55)
    assert summary["mobilenet"]["balanced_accuracy"]["std"] == pytest.approx(np.std([0.5, 0.6], ddof=1))
    headline = {"model": "mobilenet", "seed": 1, "val": {"balanced_accuracy": 0.7}, "test": per_run["mobilenet"][1]}
    headline["ci"] = headline["test"]["ci"]
    text = render_report(
        data=DATA,
        headline=headline,
        seeds=[0, 1],
        synthetic=True,
        tables={name: name.upper() + "-TABLE" for name in TABLES},
        seeds_message="SEEDS-MESSAGE",
        confidence=0.9,
    )
    assert "say nothing" in text and "locked" in text
    assert "Grouping: by `lesion_id`" in text and "2 images without a `lesion_id`" in text
    for name in TABLES:
        assert f"\n{name.upper()}-TABLE\n" in text
    assert "\nSEEDS-MESSAGE\n" in text and "corrupt: 1" in text
    assert "../plots/comparison.png" in text and "seed 1 (chosen by validation balanced accuracy 0.700" in text
    assert "- balanced accuracy 0.600 (0.500–0.700)" in text and "90 % CIs" in text


def test_headline_metrics_lead_with_validation_then_test_and_keep_the_table_small():
    per_run = {"mobilenet": {0: _metrics(0.5), 1: _metrics(0.6)}, "vgg19": {0: _metrics(0.4), 1: _metrics(0.3)}}
    summary = summarise(per_run)
    run = {"val": _metrics(0.7), "test": per_run["mobilenet"][1]}
    head = headline_metrics("mobilenet", run, summary)
    assert list(head) == ["val", "test", "ci", "seeds"]  # the backbone is the `model` params column
    assert next(iter(head["val"])) == "balanced_accuracy" and head["val"]["balanced_accuracy"] == 0.7
    assert head["test"]["balanced_accuracy"] == 0.6 and head["test"]["calibration_error"] == 0.05
    assert head["seeds"]["balanced_accuracy"]["mean"] == pytest.approx(0.55)
    assert set(head["ci"]) == {"accuracy", "balanced_accuracy", "macro_f1"}  # only what the run has
    assert backbone_metrics(summary)["vgg19"] == {
        "mean": pytest.approx(0.35),
        "std": pytest.approx(np.std([0.4, 0.3], ddof=1)),
    }


def test_comparison_data_overlays_runs_and_pools_seeds(tmp_path: Path):
    def history(losses, phases):
        return pd.DataFrame(
            {
                "step": range(len(losses)),
                "phase": phases,
                "val_loss": losses,
                "val_accuracy": 0.5,
                "loss": 1.0,
                "accuracy": 0.5,
                "lr": 0.001,
            }
        )

    curves = curves_frame({"mobilenet": {0: history([3, 2, 1], [0, 0, 1]), 1: history([4, 3], [0, 1])}})
    assert curves.groupby("run")["step"].apply(list).to_dict() == {"mobilenet-0": [0, 1, 2], "mobilenet-1": [0, 1]}
    grid = np.linspace(0, 1, 3)
    roc = roc_frame(
        {
            "vgg19": {
                0: pd.DataFrame({"fpr": grid, "macro": [0, 0.5, 1]}),
                1: pd.DataFrame({"fpr": grid, "macro": [0, 0.9, 1]}),
            }
        }
    )
    assert roc["tpr"].tolist() == pytest.approx([0, 0.7, 1])
    cal = calibration_frame(
        {
            "vgg19": {
                0: pd.DataFrame({"bin": [8], "confidence": [0.85], "accuracy": [1.0], "count": [1]}),
                1: pd.DataFrame({"bin": [8], "confidence": [0.81], "accuracy": [0.0], "count": [3]}),
            }
        }
    )
    # Pooled by count: (0.85 + 3 * 0.81) / 4 and (1 + 0) / 4.
    assert cal[["confidence", "accuracy", "count"]].iloc[0].tolist() == pytest.approx([0.82, 0.25, 4])
    confusion = pd.DataFrame({"actual": ["a", "b", "b"], "predicted": ["a", "a", "b"]})
    per_run = {"vgg19": {0: _metrics(0.5), 1: _metrics(0.6)}}
    curves = curves_frame({"vgg19": {0: history([3, 2, 1], [0, 0, 1]), 1: history([4, 3], [0, 1])}})
    figure = comparison_figure(per_run, curves, roc, cal, confusion, "vgg19 seed 1")
    assert len(figure.axes) >= 10


def _write_run(root: Path, backbone: str, seed: int, val_right: int, test_right: int) -> None:
    """A run folder as evaluate writes it: 20 validation and 20 test images of two classes, the first n right."""
    from skinlesion.core.io import write_json
    from skinlesion.core.layout import RunPaths
    from skinlesion.evaluation.evaluate import log_summary

    run = RunPaths(backbone, seed)

    def predictions(split: str, right: int) -> pd.DataFrame:
        actual = ["a", "b"] * 10
        predicted = [c if i < right else ("b" if c == "a" else "a") for i, c in enumerate(actual)]
        p_a = [0.8 if p == "a" else 0.2 for p in predicted]
        return pd.DataFrame(
            {"path": [f"{split}{i}" for i in range(20)], "group": [f"{split}{i}" for i in range(20)]}
            | {"actual": actual, "predicted": predicted, "p_a": p_a, "p_b": [1 - p for p in p_a]}
        )

    test, val = predictions("t", test_right), predictions("v", val_right)
    cal = {"temperature": 1.0} | {
        k: {"log_loss": 1, "ece": 0.1, "calibration_error": 0.1, "low": 0, "high": 0.2} for k in ("before", "after")
    }
    log_summary(
        root / run.eval_dir,
        {
            "test": _metrics(test_right / 20) | {"calibration": cal},
            "val": _metrics(val_right / 20),
        },
    )
    test.to_csv(root / run.predictions, index=False)
    val.to_csv(root / run.val_predictions, index=False)
    write_json(root / run.train_summary, {"val_balanced_accuracy": val_right / 20})
    pd.DataFrame({"fpr": [0.0, 1.0], "macro": [0.0, 1.0]}).to_csv(root / run.roc, index=False)
    pd.DataFrame({"bin": [9], "confidence": [0.95], "accuracy": [1.0], "count": [1]}).to_csv(
        root / run.calibration, index=False
    )
    metrics = root / run.train_log / "plots" / "metrics"
    for name, value in (
        ("train/loss", 1),
        ("train/accuracy", 0.5),
        ("val/loss", 1),
        ("val/accuracy", 0.5),
        ("lr", 0.1),
        ("phase", 0),
    ):
        (metrics / name).parent.mkdir(parents=True, exist_ok=True)
        (metrics / f"{name}.tsv").write_text(f"step\t{Path(name).name}\n0\t{value}\n")


def test_the_aggregate_stage_picks_the_headline_on_validation_when_test_disagrees(tmp_path: Path, monkeypatch):
    from dataclasses import replace

    from skinlesion.evaluation.aggregate import aggregate_runs
    from skinlesion.evaluation.analysis import analysis_of
    from skinlesion.evaluation.runs import collect_runs

    from .conftest import default_config

    # Validation and test disagree: seed 1 is best on validation, seed 0 on test.
    _write_run(tmp_path, "mobilenet", 0, val_right=10, test_right=18)
    _write_run(tmp_path, "mobilenet", 1, val_right=14, test_right=8)
    _write_run(tmp_path, "vgg19", 0, val_right=12, test_right=12)
    _write_run(tmp_path, "vgg19", 1, val_right=12, test_right=12)
    config = replace(default_config(), model="mobilenet", backbones=["mobilenet", "vgg19"], seeds=[0, 1])
    monkeypatch.chdir(tmp_path)
    runs = collect_runs(config.backbones, config.seeds)
    assert runs.val_scores("mobilenet") == {0: 0.5, 1: 0.7}
    result = aggregate_runs(runs, config.model, analysis_of(config), [])
    assert (result.selected.backbone, result.selected.seed) == ("mobilenet", 1)
    assert result.metrics["val"]["balanced_accuracy"] == 0.7 and result.metrics["test"]["balanced_accuracy"] == 0.4
    assert result.summary_json["headline"]["seed"] == 1
    # Two seeds each: the report declines to rank the architectures, and says how to get a verdict.
    assert [t["verdict"] for t in result.summary_json["architectures"]] == ["too few seeds"]
    # One pair: 4 seeds each reach p < 0.05 (3 pairs under Holm need 5).
    assert "dvc exp run -S 'seeds=[0,1,2,3]'" in result.summary_json["seeds_message"]


def test_the_aggregate_stage_gives_every_interval_at_evaluate_confidence(tmp_path: Path, monkeypatch):
    from dataclasses import replace

    from skinlesion.evaluation.aggregate import aggregate_runs
    from skinlesion.evaluation.analysis import analysis_of
    from skinlesion.evaluation.runs import collect_runs

    from .conftest import default_config

    for backbone, rights in (("mobilenet", (14, 13)), ("vgg19", (10, 8))):
        for seed, right in enumerate(rights):
            _write_run(tmp_path, backbone, seed, val_right=12, test_right=right)
    base = replace(default_config(), model="mobilenet", backbones=["mobilenet", "vgg19"], seeds=[0, 1])
    monkeypatch.chdir(tmp_path)
    runs = collect_runs(base.backbones, base.seeds)
    results = {
        level: aggregate_runs(
            runs, base.model, analysis_of(replace(base, evaluate=replace(base.evaluate, confidence=level))), []
        )
        for level in (0.95, 0.8)
    }
    wide, narrow = (results[level].summary_json for level in (0.95, 0.8))
    pairs = [(wide[table][0], narrow[table][0]) for table in ("networks", "architectures")]
    pairs += [
        (wide["ensembles"][name]["ci"]["balanced_accuracy"], narrow["ensembles"][name]["ci"]["balanced_accuracy"])
        for name in ("mobilenet", "vgg19", "all backbones")
    ]
    # Every 80 % interval lies inside its 95 % one and is shorter: the level reached each computation.
    for w, n in pairs:
        assert w["low"] <= n["low"] <= n["high"] <= w["high"] and n["high"] - n["low"] < w["high"] - w["low"], (w, n)
    for level, label in ((0.95, "95 % CI"), (0.8, "80 % CI")):  # and every table says which level it shows
        for name in ("networks", "architectures", "ensembles"):
            assert label in results[level].tables[name], name


def test_grouping_sentence_states_the_leak_of_an_ungrouped_split():
    from skinlesion.render.documents import grouping_sentence

    warning = "split.group_by is empty (val and test carved out image by image): images of one lesion ..."
    data = {"grouping": {"group_by": None, "images_without_group": 0, "given_split": None, "warning": warning}}
    assert grouping_sentence(data) == f"Grouping: none, image-level split; {warning}"
    data["grouping"] |= {"given_split": "val+test"}
    assert grouping_sentence(data).startswith("Grouping: the source's own split (val+test)")
    derma_c = {"grouping": {"group_by": None, "images_without_group": 0, "given_split": "val+test", "warning": None}}
    assert grouping_sentence(derma_c).endswith("kept as it is, grouped by lesion at the source.")
    synthetic = {"grouping": {"group_by": None, "images_without_group": 0, "given_split": None, "warning": None}}
    assert grouping_sentence(synthetic) == "Grouping: none, image-level split."


def test_recall_per_class_is_the_mean_over_seeds_and_the_heatmap_marks_malignant_classes():
    from skinlesion.render.figures import recall_heatmap
    from skinlesion.render.plotdata import recall_frame

    actual = ["mel", "mel", "nv", "nv"]

    def run(predicted):
        return pd.DataFrame({"path": list("abcd"), "actual": actual, "predicted": predicted})

    predictions = {
        "vgg19": {0: run(["mel", "nv", "nv", "nv"]), 1: run(["mel", "mel", "mel", "nv"])},
        "mobilenet": {0: run(["nv", "nv", "nv", "nv"])},
    }
    recall = recall_frame(predictions)
    assert list(recall.index) == ["vgg19", "mobilenet"] and list(recall.columns) == ["mel", "nv"]
    # vgg19: mel recall 1/2 (seed 0) and 2/2 (seed 1) -> 0.75; nv 2/2 and 1/2 -> 0.75.
    assert recall.loc["vgg19"].tolist() == pytest.approx([0.75, 0.75])
    assert recall.loc["mobilenet"].tolist() == pytest.approx([0.0, 1.0])
    figure = recall_heatmap(recall, pd.Series({"mel": 2, "nv": 2}), ["MEL"])
    labels = [t.get_text() for t in figure.axes[0].get_xticklabels()]
    assert labels == ["mel *\n(n=2)", "nv\n(n=2)"]
    cells = [t.get_text() for t in figure.axes[0].texts]
    assert cells == ["0.75", "0.75", "0.00", "1.00"]
