"""split: validate every raw image once, deduplicate, and split train/val/test without leakage.

Inputs: ``data/raw/``; params ``split.*``, ``data.metadata``, ``data.metadata_id_column``.
Outputs: ``data/splits/{train,val,test}.csv`` (path,label,sha256,group), ``data/splits/skipped.csv``
(path,reason,detail), ``metrics/data.json``, ``plots/class_distribution.png``.
"""

import sys
from pathlib import Path

import pandas as pd

from skinlesion.config import load_config
from skinlesion.errors import cli
from skinlesion.io import save_figure, write_csv, write_json
from skinlesion.split import data_metrics, plot_class_distribution, split_dataset, split_frames

RAW = Path("data/raw")
OUT = Path("data/splits")


@cli
def main() -> None:
    """Run the stage."""
    config = load_config()
    result = split_dataset(
        RAW,
        val_fraction=config.split.val_fraction,
        test_fraction=config.split.test_fraction,
        seed=config.split.seed,
        group_by=config.split.group_by,
        metadata=config.data.metadata,
        metadata_id_column=config.data.metadata_id_column,
        drop_label_conflicts=config.split.drop_label_conflicts,
        workers=config.split.workers,
    )
    for name, frame in split_frames(result).items():
        write_csv(OUT / f"{name}.csv", frame)
    write_csv(OUT / "skipped.csv", pd.DataFrame(result.skipped, columns=["path", "reason", "detail"]))
    metrics = data_metrics(result)
    write_json("metrics/data.json", metrics)
    save_figure(plot_class_distribution(metrics["per_class"]), "plots/class_distribution.png")
    skipped = {k: v for k, v in metrics["skipped"].items() if v}
    print(
        f"split: {metrics['images']} over {metrics['classes']} classes; "
        f"skipped {metrics['skipped_total']} {skipped or ''} (see {OUT}/skipped.csv)"
    )


if __name__ == "__main__":
    sys.exit(main())
