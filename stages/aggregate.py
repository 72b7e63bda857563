"""aggregate: compare backbones across seeds, test differences, pick the headline run, write the report.

Inputs: ``runs/`` (every run's training log, evaluation summary, predictions, ROC and calibration),
``reports/data.json``, ``data/splits/test.csv``; params ``model``, ``backbones``, ``seeds``, ``data.source``,
``evaluate.{bootstrap,confidence,seed,malignant}``.
Outputs: ``metrics/metrics.json`` (headline), ``metrics/backbones.json``, ``reports/summary.{json,md}`` (also:
paired balanced-accuracy tests, seed and all-backbone ensembles, clinical operating points),
``reports/report.md``, ``models/headline/{model.keras,labels.json}``, the comparison plot data
``plots/{curves,roc,calibration,confusion}.csv`` and the pictures ``plots/comparison.png``, ``plots/recall.png``
(backbone x class recall), ``plots/gradcam.png``.
"""

import sys

from skinlesion.core.config import load_config
from skinlesion.core.errors import cli
from skinlesion.evaluation.aggregate import aggregate_runs, verdict, write_aggregate
from skinlesion.evaluation.runs import collect_runs


@cli
def main() -> None:
    """Run the stage."""
    config = load_config()
    runs = collect_runs(config.backbones, config.seeds)
    result = aggregate_runs(runs, config)
    write_aggregate(runs, result, config)
    print(verdict(result))


if __name__ == "__main__":
    sys.exit(main())
