"""fetch: bring the images of ``data.source`` into the raw layout.

Inputs: params ``data.*``; ``data.path`` (folder or archive) for the folder/zip sources.
Outputs: ``data/raw/<train|val|test|unsplit>/<class>/<file>`` and ``data/raw/SOURCE.json``.
"""

import sys

from skinlesion.core.config import load_config
from skinlesion.core.errors import cli
from skinlesion.core.layout import RAW
from skinlesion.data.fetch import fetch


@cli
def main() -> None:
    """Run the stage."""
    data = load_config().data
    info = fetch(data, RAW)
    print(
        f"fetch: {info['files']} files from {data.source} into {RAW}/ {info['per_split']}"
        + (f"; {info['unlabelled']} files outside class folders left out" if info["unlabelled"] else "")
    )


if __name__ == "__main__":
    sys.exit(main())
