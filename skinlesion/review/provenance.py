"""Which algorithm the results belong to: library versions, hashes, and the hyperparameters that shaped it.

The version block is the headline folder's ``metadata.json`` ``version`` (written by
:func:`skinlesion.deploy.description.write_headline_description`): the libraries that trained it, the
model file's SHA-256, and the content hashes ``dvc.lock`` records for each member's training stage
(``trained_from``: the code and the split it came from). Not the git commit: a tracked report would then
change with every commit. Nor does aggregate depend on ``dvc.lock``: the training entries it reads are
settled before aggregate runs, so reading them never makes the stage out of date.
"""

from __future__ import annotations

from pathlib import Path

from skinlesion.core.io import read_json
from skinlesion.core.layout import METADATA_FILE, RunPaths

# Version keys that are not library versions.
HASH_KEYS = ("model_sha256", "trained_from")


def algorithm_version(metadata: dict, members: dict[str, str]) -> dict:
    """The version block of the report and the card, from the headline's ``metadata.json``.

    Args:
        metadata: The headline folder's ``metadata.json``.
        members: ``{run name: SHA-256 of its model.keras}`` for an ensemble's members (each run's own
            ``metadata.json``); empty for a single run. An ensemble's file is assembled by aggregate and its
            bytes change with every save, so the block names the member files, which training fixed: a
            tracked report must not change when nothing did.

    Returns:
        ``libraries`` (``{name: version}``), ``model_sha256`` (a single run's file; None for an ensemble),
        ``members`` (``[{"run", "sha256"}]``), ``stages`` (the training stages locked), and ``trained_from``:
        one row per dependency path, ``{"path", "md5"}`` (``md5`` lists every distinct hash when the members'
        stages disagree), empty when ``dvc.lock`` had no entry for a member (a stage run by hand).
    """
    version = metadata["version"]
    trained = version.get("trained_from") or {}
    hashes: dict[str, list[str]] = {}
    for deps in trained.values():
        for path, md5 in deps.items():
            hashes.setdefault(path, [])
            if md5 not in hashes[path]:
                hashes[path].append(md5)
    return {
        "libraries": {k: v for k, v in version.items() if k not in HASH_KEYS},
        "model_sha256": None if members else version["model_sha256"],
        "members": [{"run": run, "sha256": sha} for run, sha in members.items()],
        "stages": list(trained),
        "trained_from": [{"path": path, "md5": md5} for path, md5 in hashes.items()],
    }


def headline_version(headline_dir: Path, runs: list[RunPaths], ensemble: bool) -> dict:
    """:func:`algorithm_version` of a published headline folder and its runs (their ``metadata.json``)."""
    members = (
        {r.name: read_json(r.model_dir / METADATA_FILE)["version"]["model_sha256"] for r in runs} if ensemble else {}
    )
    return algorithm_version(read_json(headline_dir / METADATA_FILE), members)


def hyperparameters(configs: dict[str, dict]) -> dict:
    """The settings that shaped the headline's runs, from each member's ``config.json`` (resolved params).

    Args:
        configs: ``{run name: its config.json}``, the headline's members in order.

    Returns:
        ``train`` and ``augment`` (the first member's; ``differs`` names the keys on which members differ),
        and ``backbones``: ``{backbone: its params.yaml section}`` (input size, layers unfrozen, dropout).
    """
    first = next(iter(configs.values()))
    differs = sorted(
        {
            f"{part}.{k}"
            for c in configs.values()
            for part in ("train", "augment")
            for k, v in c[part].items()
            if first[part].get(k) != v
        }
    )
    return {
        "train": first["train"],
        "augment": first["augment"],
        "backbones": {c["backbone"]: c["section"] for c in configs.values()},
        "differs": differs,
    }
