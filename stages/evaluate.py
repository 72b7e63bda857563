"""evaluate: score one trained run on the validation and test splits (one stage per backbone and seed).

Validation is scored so that every later choice (the headline run, the temperature of ensembles, decision
thresholds) can be made on it; test only reports, with lesion-grouped intervals. Inputs and outputs: the
``evaluate`` stage of ``dvc.yaml``.
"""

import sys

from skinlesion.core.config import load_config
from skinlesion.core.errors import cli
from skinlesion.core.layout import RunPaths, run_arguments
from skinlesion.evaluation.evaluate import score_run, write_scores
from skinlesion.stats.intervals import Resampling


@cli
def main(argv: list[str] | None = None) -> None:
    """Run the stage."""
    args = run_arguments(argv, __doc__.splitlines()[0])
    config = load_config()
    run = RunPaths(args.backbone, args.seed)
    resampling = Resampling.from_params(config.evaluate)
    val, test = score_run(run, config.evaluate.tta, resampling, config.runtime.workers)
    write_scores(run, test, val)
    ci = test.result["ci"]["balanced_accuracy"]
    print(
        f"evaluate@{run.name}: test balanced accuracy {test.result['balanced_accuracy']:.3f} [{ci['low']:.3f}, "
        f"{ci['high']:.3f}] (validation {val.result['balanced_accuracy']:.3f}), calibration error (signed) "
        f"{test.result['calibration']['before']['calibration_error']:.3f} -> {test.result['calibration_error']:.3f} "
        f"(T = {test.result['calibration']['temperature']:.2f})"
    )


if __name__ == "__main__":
    sys.exit(main())
