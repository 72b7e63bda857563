"""external: check one external test set and score every run on it (a stage per entry of ``external``).

Inputs: the set's folder, archive or ``.npz`` (``external.<name>.path``), ``data/splits`` (images already
used are left out of the set), every run's model in ``runs/``; params ``external.<name>``, ``backbones``,
``seeds``, ``split.{max_pixels,group_by}``, ``data.{metadata_id_column,max_archive_mb,max_compression_ratio}``.
Outputs: ``external/<name>/``: ``raw/`` (the set's files in the raw layout), ``images.csv`` (the images
scored), ``skipped.csv`` (the others, with the reason), ``data.json`` (counts), ``metadata.csv`` (when the
set has one) and ``predictions/<backbone>-<seed>.csv``. Aggregate turns them into the report's numbers.
"""

import argparse
import sys

from skinlesion.core.config import load_config
from skinlesion.core.errors import ConfigError, cli
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
    score_runs(name, config)


if __name__ == "__main__":
    sys.exit(main())
