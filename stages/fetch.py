"""fetch: bring the images of ``data.source`` into the raw layout.

The raw folder (one class folder per image class, under the source's own train/val/test folders when it has
them, with the metadata CSV when ``data.metadata`` names one) is replaced only when fetch succeeds. Inputs and
outputs: the ``fetch`` stage of ``dvc.yaml``.
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
    # Every file the source holds is copied or counted here, by reason (SOURCE.json has the same counts).
    left_out = [f"{info['unlabelled']} outside class folders"] if info["unlabelled"] else []
    left_out += [
        f"{n} {reason} (symbolic link)" if reason == "link" else f"{n} {reason}"
        for reason, n in info["skipped"].items()
    ]
    print(
        f"fetch: {info['files']} files from {data.source} into {RAW}/ {info['per_split']}"
        + (f"; left out: {', '.join(left_out)}" if left_out else "")
    )


if __name__ == "__main__":
    sys.exit(main())
