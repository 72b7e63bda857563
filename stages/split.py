"""split: validate every raw image once, deduplicate, and split train/val/test without leakage.

Empty, corrupt, oversized and duplicate files are counted by reason, never dropped silently; a lesion never
straddles two splits when ``split.group_by`` names its column. The outputs are replaced as one unit, so a
failed run leaves the previous ones. Inputs and outputs: the ``split`` stage of ``dvc.yaml``
(``runtime.workers`` is read but not tracked: speed only).
"""

import sys

import pandas as pd

from skinlesion.core.config import load_config
from skinlesion.core.errors import DataError, cli
from skinlesion.core.io import csv_text, json_text, write_together
from skinlesion.core.layout import CLASS_COUNTS, DATA_SUMMARY, RAW, RAW_METADATA, SKIPPED, split_csv, split_journal
from skinlesion.data.split import check_raw, class_counts, data_summary, split_dataset, split_frames


@cli
def main() -> None:
    """Run the stage."""
    config = load_config()
    check_raw(RAW)
    metadata = RAW / RAW_METADATA
    if metadata.is_file() != bool(config.data.metadata):
        raise DataError(
            f"data.metadata={config.data.metadata!r} but {RAW} {'holds' if metadata.is_file() else 'lacks'} "
            f"{RAW_METADATA}: it was fetched with other params; rerun `dvc repro fetch`"
        )
    result = split_dataset(
        RAW,
        config.split,
        str(metadata) if metadata.is_file() else "",
        config.data.metadata_id_column,
        workers=config.runtime.workers,
    )
    summary = data_summary(result, config.data.source)
    outputs = {split_csv(name): csv_text(frame) for name, frame in split_frames(result).items()}
    outputs[SKIPPED] = csv_text(pd.DataFrame(result.skipped, columns=["path", "reason", "detail"]))
    outputs[DATA_SUMMARY] = json_text(summary)
    outputs[CLASS_COUNTS] = csv_text(class_counts(summary["per_class"]))
    try:
        write_together(outputs, split_journal())
    except OSError as exc:  # disk full, permissions: write_together has put the previous outputs back
        raise DataError(
            f"cannot write {exc.filename or 'the outputs'} ({exc.strerror or exc}); the previous outputs are kept"
        ) from None
    report(summary)


def report(summary: dict) -> None:
    """Print the warnings about grouping and the stage's closing line."""
    skipped = {k: v for k, v in summary["skipped"].items() if v}
    grouping = summary["grouping"]
    if grouping["warning"]:
        print(f"warning: {grouping['warning']}")
    if grouping["images_without_group"]:
        print(
            f"warning: {grouping['images_without_group']} images have no {grouping['group_by']} in the metadata "
            "and form their own groups (split.allow_missing_groups: true)"
        )
    for name, classes in summary["missing_classes"].items():
        if classes:
            print(
                f"warning: the {name} split has no image of training class(es) {', '.join(classes)}: its balanced "
                f"accuracy averages over the {summary['classes'] - len(classes)} classes it has, and those classes "
                f"go unmeasured; add images of them (to the source's {name} folder, or more images for split to carve)"
            )
    print(
        f"split: {summary['images']} over {summary['classes']} classes; "
        f"skipped {summary['skipped_total']} {skipped or ''} (see {SKIPPED})"
    )


if __name__ == "__main__":
    sys.exit(main())
