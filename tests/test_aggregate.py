"""The aggregate stage's work: the headline chosen on validation, every interval at evaluate.confidence."""

from pathlib import Path

import pandas as pd

from skinlesion.render.documents import render_summary

from .test_select import run_metrics


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
            "test": run_metrics(test_right / 20) | {"calibration": cal},
            "val": run_metrics(val_right / 20),
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

    from skinlesion.core.layout import RunPaths
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
    runs = collect_runs(config.backbones, config.seeds, [])
    assert runs.val_scores("mobilenet") == {0: 0.5, 1: 0.7}
    result = aggregate_runs(runs, config.model, analysis_of(config), [])
    assert result.headline.candidate.members == (RunPaths("mobilenet", 1),)
    assert result.metrics["val"]["balanced_accuracy"] == 0.7 and result.metrics["test"]["balanced_accuracy"] == 0.4
    assert result.summary_json["headline"]["seed"] == 1
    # Two seeds each: the report declines to rank the architectures, and says how to get a verdict.
    assert [t["verdict"] for t in result.summary_json["architectures"]] == ["too few seeds"]
    # One pair: 4 seeds each reach p < 0.05 (3 pairs under Holm need 5).
    assert "dvc exp run -S 'seeds=[0,1,2,3]'" in result.summary_json["seeds_message"]


def test_the_aggregate_stage_gives_every_interval_at_evaluate_confidence(tmp_path: Path, monkeypatch):
    from dataclasses import replace

    from skinlesion.evaluation.aggregate import aggregate_runs, report_settings
    from skinlesion.evaluation.analysis import analysis_of
    from skinlesion.evaluation.runs import collect_runs

    from .conftest import default_config

    for backbone, rights in (("mobilenet", (14, 13)), ("vgg19", (10, 8))):
        for seed, right in enumerate(rights):
            _write_run(tmp_path, backbone, seed, val_right=12, test_right=right)
    base = replace(default_config(), model="mobilenet", backbones=["mobilenet", "vgg19"], seeds=[0, 1])
    monkeypatch.chdir(tmp_path)
    runs = collect_runs(base.backbones, base.seeds, [])
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
        settings = report_settings(replace(base, evaluate=replace(base.evaluate, confidence=level)))
        text = render_summary(results[level].summary_json | {"settings": settings})
        assert text.count(label) >= 3, text  # the networks, architectures and ensembles tables
