"""The page in a real browser: Debian's headless Chromium, the network blocked, a real HAM10000 image uploaded."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO
from .test_predict import save_model


@pytest.mark.slow
def test_the_page_shows_predicts_class_and_the_overlay_offline(tmp_path: Path, ham_dir: Path):
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.skip("chromium and chromium-driver are not installed (.ci/run installs them)")
    from skinlesion.deploy.predict import load_model_and_labels, predict_files

    model = save_model(tmp_path / "model")
    image = sorted((ham_dir / "mel").glob("*.jpg"))[0]
    rows, _ = predict_files(*load_model_and_labels(model), [image], progress=False)
    env = os.environ | {"PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(
        [sys.executable, str(REPO / "tools" / "serve_page.py"), str(model.parent), str(image)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    shown = json.loads(proc.stdout.splitlines()[-1])
    assert shown["class"] == rows[0]["predicted"] and shown["status"].startswith(f"Predicted: {rows[0]['predicted']}")
    assert shown["overlay_width"] > 0  # the Grad-CAM PNG decoded in the page
    assert shown["offsite"] == [] and any(u.endswith("/predict?explain=true") for u in shown["urls"])
    assert shown["keyboard_reaches_upload"] and not shown["phone_scrolls_sideways"]
