"""external: check one external test set and score every run on it (one stage per entry of ``external``).

The set's images go through the split stage's checks; images already in train, validation or test are
left out, and so are labels the model does not know. Aggregate turns the predictions into the report's
numbers. Inputs and outputs: the ``external`` stage of ``dvc.yaml``.
"""

import argparse
import sys

from skinlesion.core.config import load_config
from skinlesion.core.errors import ConfigError, cli
from skinlesion.core.layout import RunPaths
from skinlesion.data.external import prepare_external
from skinlesion.evaluation.external import score_runs


@cli
def main(argv: list[str] | None = None) -> None:
    """Run the stage."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True, help="the set's key in params.yaml's external: section")
    name = parser.parse_args(argv).name
    config = load_config()
    if name not in config.external:
        raise ConfigError(f"--name {name}: no such entry in params.yaml's external: ({', '.join(config.external)})")
    summary = prepare_external(name, config).summary()
    print(
        f"external@{name}: {summary['scored']} of {summary['files_seen']} files to score "
        f"{summary['per_class']}; left out {summary['skipped'] or 'none'}"
        + (f"; labels the model does not know: {summary['unknown_classes']}" if summary["unknown_classes"] else "")
    )
    # With cross-validation on, the fold runs too: the headline is a fold ensemble then.
    folds = config.cv.folds if config.cv.enabled else []
    runs = [RunPaths(b, s, f) for b in config.backbones for s in config.seeds for f in (None, *folds)]
    score_runs(name, runs, config.runtime.workers)


if __name__ == "__main__":
    sys.exit(main())
