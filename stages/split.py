"""split: validate every raw image once, deduplicate, and split train/val/test without leakage.

Inputs: ``data/raw/``, the ``data.metadata`` CSV; params ``split.*``, ``data.source``, ``data.metadata``,
``data.metadata_id_column`` (``runtime.workers`` is read but not tracked: speed only).
Outputs: ``data/splits/{train,val,test}.csv`` (path,label,sha256,group), ``data/splits/skipped.csv``
(path,reason,detail), ``reports/data.json`` (counts per split and class, skips by reason, how the
split was grouped and what an ungrouped split leaks),
``plots/class_counts.csv``.
"""

import sys

import pandas as pd

from skinlesion.core.config import load_config
from skinlesion.core.errors import cli
from skinlesion.core.io import write_csv, write_json
from skinlesion.core.layout import CLASS_COUNTS, DATA_SUMMARY, RAW, SKIPPED, split_csv
from skinlesion.data.split import class_counts, data_summary, split_dataset, split_frames


@cli
def main() -> None:
    """Run the stage."""
    config = load_config()
    result = split_dataset(
        RAW, config.split, config.data.metadata, config.data.metadata_id_column, workers=config.runtime.workers
    )
    for name, frame in split_frames(result).items():
        write_csv(split_csv(name), frame)
    write_csv(SKIPPED, pd.DataFrame(result.skipped, columns=["path", "reason", "detail"]))
    summary = data_summary(result, config.data.source)
    write_json(DATA_SUMMARY, summary)
    write_csv(CLASS_COUNTS, class_counts(summary["per_class"]))
    skipped = {k: v for k, v in summary["skipped"].items() if v}
    grouping = summary["grouping"]
    if grouping["warning"]:
        print(f"warning: {grouping['warning']}")
    if grouping["images_without_group"]:
        print(
            f"warning: {grouping['images_without_group']} images have no {grouping['group_by']} in the metadata "
            "and form their own groups (split.allow_missing_groups: true)"
        )
    print(
        f"split: {summary['images']} over {summary['classes']} classes; "
        f"skipped {summary['skipped_total']} {skipped or ''} (see {SKIPPED})"
    )


if __name__ == "__main__":
    sys.exit(main())
