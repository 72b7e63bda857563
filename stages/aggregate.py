"""aggregate: compare the backbones across seeds, choose the headline run on validation, write the report.

Reads every run's evaluation (and every external set's predictions), tests the differences between
backbones, scores the ensembles, fixes the operating points on validation, breaks the headline down by
subgroup, publishes the headline model and renders the report from ``reports/summary.json`` through the
templates in ``skinlesion/render/templates/``. Inputs and outputs: the ``aggregate`` stage of ``dvc.yaml``.
"""

import sys
from dataclasses import replace

from skinlesion.core.config import load_config
from skinlesion.core.errors import cli
from skinlesion.core.modes import Split
from skinlesion.evaluation.aggregate import aggregate_runs, report_settings, verdict, write_aggregate
from skinlesion.evaluation.analysis import analysis_of
from skinlesion.evaluation.review import review_of, write_review
from skinlesion.evaluation.runs import collect_runs


@cli
def main() -> None:
    """Run the stage."""
    config = load_config()
    runs = collect_runs(config.backbones, config.seeds, config.cv.folds if config.cv.enabled else [])
    analysis = analysis_of(config)
    result = aggregate_runs(runs, config.model, analysis, list(config.external))
    test, val = runs.arrays(Split.TEST), runs.arrays(Split.VAL)
    review = review_of(config, result.headline, test, val, analysis)
    write_aggregate(
        runs,
        replace(result, summary_json=result.summary_json | review.summary),
        report_settings(config),
        config.evaluate.malignant,
    )
    write_review(review)
    print(verdict(result))


if __name__ == "__main__":
    sys.exit(main())
