"""External test sets (what is scored, what is left out and why) and subgroups (levels, gaps, operating points)."""

import hashlib
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from skinlesion.core.config import ExternalConfig
from skinlesion.core.modes import ExternalSource

from .conftest import default_config


def _write_split(root: Path, name: str, paths: list[Path]) -> None:
    rows = [
        {"path": str(p), "label": p.parent.name, "sha256": hashlib.sha256(p.read_bytes()).hexdigest(), "group": p.stem}
        for p in paths
    ]
    (root / "data" / "splits").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(root / "data" / "splits" / f"{name}.csv", index=False)


@pytest.fixture
def project(tmp_path: Path, monkeypatch) -> Path:
    """A project whose splits hold generated lesions, and an external folder beside it."""
    from skinlesion.data.synthetic import generate

    generate(tmp_path / "internal", 60, 64, seed=0, workers=1, progress=False)
    images = sorted((tmp_path / "internal").rglob("*.png"))
    _write_split(tmp_path, "train", images[0::3])
    _write_split(tmp_path, "val", images[1::3])
    _write_split(tmp_path, "test", images[2::3])
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_an_external_set_leaves_out_copies_of_used_images_unknown_labels_and_bad_files(project: Path):
    from skinlesion.core.layout import ExternalPaths
    from skinlesion.data.external import prepare_external
    from skinlesion.data.synthetic import generate

    generate(project / "new", 24, 64, seed=7, workers=1, progress=False)  # other lesions: to score
    source = project / "outside"
    for p in sorted((project / "new").rglob("*.png")):
        label = "MEL" if p.parent.name == "melanoma" else p.parent.name  # the set's own name for melanoma
        (source / label).mkdir(parents=True, exist_ok=True)
        p.rename(source / label / p.name)
    train = sorted(Path(p) for p in pd.read_csv(project / "data/splits/train.csv")["path"])
    test = sorted(Path(p) for p in pd.read_csv(project / "data/splits/test.csv")["path"])
    (source / train[0].parent.name / "copy_of_train.png").write_bytes(train[0].read_bytes())
    Image.open(test[0]).convert("RGB").save(source / test[0].parent.name / "reencoded_test.jpg", quality=85)
    (source / "nevus" / "broken.png").write_bytes(b"not an image")
    (source / "psoriasis").mkdir()
    Image.open(train[1]).convert("RGB").resize((40, 40)).save(source / "psoriasis" / "other.png")
    cfg = ExternalConfig(ExternalSource.FOLDER, str(source), {"MEL": "melanoma"})
    config = replace(default_config(), external={"site2": cfg})

    external = prepare_external("site2", config, progress=False)

    summary = external.summary()
    assert summary["files_seen"] == 28 and summary["scored"] == 24
    assert summary["skipped"] == {"in_test_split": 1, "in_training_data": 1, "not_an_image": 1, "unknown_class": 1}
    assert summary["unknown_classes"] == {"psoriasis": 1}
    assert "melanoma" in summary["per_class"] and "MEL" not in summary["per_class"]  # mapped onto the class
    skipped = pd.read_csv(ExternalPaths("site2").skipped).set_index("reason")
    assert "the same bytes as" in skipped.loc["in_training_data", "detail"]
    assert "a near-duplicate of" in skipped.loc["in_test_split", "detail"]
    scored = pd.read_csv(ExternalPaths("site2").images)
    assert len(scored) == 24 and not scored["path"].str.contains("copy_of_train|reencoded_test").any()
