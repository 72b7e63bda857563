"""Published results on the benchmark data sets, placed beside ours: figures and sources in ``baselines.json``.

The figures are data, not code: each entry names its paper, table and the setting it was measured in, so a
reader can check it, and a figure is added only with its source.
"""

from __future__ import annotations

import json
from pathlib import Path

# Read from beside this module: pyproject ships it as package data, and tests/test_dvc_yaml.py makes the
# stages that import this module depend on it.
PACKAGE_DATA = BASELINES = "baselines.json"


def published_baselines(source: str) -> dict | None:
    """The published baselines of ``data.source`` (``dermamnist``, ``dermamnist_c``), or None for another source.

    Returns:
        ``{"data_set", "note", "results": [{"model", "size", "accuracy", "roc_auc", "source"}]}`` (``results``
        may be empty: no figure recorded yet).
    """
    entries = json.loads((Path(__file__).parent / BASELINES).read_text(encoding="utf-8"))
    return entries.get(source)
