"""cv-folds: assign the training split's images to lesion-grouped, stratified cross-validation folds.

Each fold's folder lists what its model trains on, its inner validation (carved, grouped, from the other
folds) and the fold it predicts; ``folds.json`` counts each fold's images, lesions and classes. A fold
count the rarest class cannot fill stops here, before any training. Inputs and outputs: the ``cv-folds``
stage of ``dvc.yaml`` (it exists only with ``cv.pool: [train]``).
"""

import sys

from skinlesion.core.config import load_config
from skinlesion.core.errors import cli
from skinlesion.core.layout import FOLDS, read_split, split_csv
from skinlesion.core.modes import Split
from skinlesion.cv.folds import check_pool, describe, grouping_warning, make_folds, write_folds


@cli
def main() -> None:
    """Run the stage."""
    config = load_config()
    pool = check_pool(read_split(Split.TRAIN), str(split_csv(Split.TRAIN)))
    warning = grouping_warning()
    if warning:  # the split's own warning: what groups per image (no lesion ids) lets leak, now between folds
        print(f"warning: {warning}")
    table = write_folds(make_folds(pool, config.cv))
    print(f"cv-folds: {len(table['folds'])} folds of {len(pool)} training images in {FOLDS}/")
    print("\n".join(describe(table)))


if __name__ == "__main__":
    sys.exit(main())
