"""Stage outputs get the modes the user's umask gives any new file, under 022 and under 077.

The stages write through temporary files (``mkstemp`` makes them 0600) and rename them into place, so a
missing ``chmod`` or a fixed mode would show only under some umask; the pipeline test sees the machine's.
"""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from skinlesion.core import layout
from skinlesion.core.modes import Split

from .conftest import REPO, make_class_tree


def run_stage(root: Path, script: str, umask: int) -> None:
    env = {"PATH": str(Path(sys.executable).parent), "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(
        [sys.executable, str(REPO / "stages" / f"{script}.py")],
        cwd=root,
        env=env,
        umask=umask,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.parametrize("umask", [0o022, 0o077], ids=["umask022", "umask077"])
def test_fetch_and_split_outputs_honour_the_umask(tmp_path: Path, umask: int):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"].update(source="folder", path=str(make_class_tree(tmp_path / "src", {"a": 10, "b": 10})))
    params["runtime"]["workers"] = 1
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run_stage(tmp_path, "fetch", umask)
    run_stage(tmp_path, "split", umask)
    files = [
        *(layout.split_csv(name) for name in Split),
        layout.SKIPPED,
        layout.DATA_SUMMARY,
        layout.CLASS_COUNTS,
        layout.RAW / layout.SOURCE_FILE,
        next((tmp_path / layout.RAW).rglob("*.png")).relative_to(tmp_path),
    ]
    folders = [layout.SPLITS, layout.DATA_SUMMARY.parent, layout.RAW]
    modes = {str(p): oct((tmp_path / p).stat().st_mode & 0o777) for p in files + folders}
    assert modes == {str(p): oct(0o666 & ~umask) for p in files} | {str(p): oct(0o777 & ~umask) for p in folders}
