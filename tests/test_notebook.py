"""The Colab notebook, notebooks/skinlesion.ipynb: its structure and set-up cells (fast), a whole run (slow).

The notebook is committed with its outputs cleared. Run top to bottom it installs the pins, runs the pipeline
(`dvc exp run` on the Kaggle data with ImageNet weights when a GPU and the network are there, `dvc repro` on the
embedded data otherwise or under ``SKINLESION_OFFLINE=1``), then shows the headline with its interval, the plots
and a few predictions with Grad-CAM. The slow test executes all of it with nbclient in a kernel of this
interpreter, in a temporary copy of the checkout (the real workspace is never touched); by default the fast
tests stand in for it: the notebook's structure and commands, and its set-up cells executed in a kernel.
"""

import ast
import importlib.metadata
import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from skinlesion.core import layout

from .conftest import REPO, copy_sources

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK = Path("notebooks/skinlesion.ipynb")
GENERATED = (*layout.GENERATED, layout.RAW, layout.SPLITS)
GIT_ID = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com"}
GIT_ID |= {"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
# "test balanced accuracy 0.514 (95% CI 0.431 to 0.600)": the headline cell's line.
HEADLINE_LINE = re.compile(r"test balanced accuracy (\d\.\d{3}) \((\d+)% CI (\d\.\d{3}) to (\d\.\d{3})\)")


def read_notebook(path: Path = REPO / NOTEBOOK):
    return nbformat.read(path, as_version=4)


def cell(nb, cell_id: str):
    (found,) = [c for c in nb.cells if c.get("id") == cell_id]
    return found


def commands(nb) -> list[list[str]]:
    """Every ``run(...)`` call of the code cells: its string arguments, ``<*>`` for a starred one, ``<expr>`` else."""
    out = []
    for code in (c.source for c in nb.cells if c.cell_type == "code"):
        for node in ast.walk(ast.parse(code)):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "run":
                out.append(
                    [
                        a.value
                        if isinstance(a, ast.Constant) and isinstance(a.value, str)
                        else "<*>"
                        if isinstance(a, ast.Starred)
                        else "<expr>"
                        for a in node.args
                    ]
                )
    return out


def readme_kaggle_command() -> list[str]:
    """The README's "Real data" command for the origin's Kaggle data set, as arguments."""
    section = (REPO / "README.md").read_text().split("## Real data", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    lines = section.replace("\\\n", " ").splitlines()
    (line,) = [ln for ln in lines if ln.startswith("dvc exp run") and "data.source=kaggle" in ln]
    return shlex.split(line)


def settings(command: list[str]) -> set[str]:
    return {command[i + 1] for i, arg in enumerate(command) if arg == "-S"}


def missing_pins() -> list[str]:
    """The pins of requirements.txt this interpreter lacks (the notebook would then pip-install into it)."""
    lines = [ln.split("#")[0].split(";")[0].strip() for ln in (REPO / "requirements.txt").read_text().splitlines()]
    missing = []
    for line in filter(None, lines):
        name, _, version = ("skinlesion", "", "") if line == "-e ." else line.partition("==")
        try:
            if version and importlib.metadata.version(name) != version:
                missing.append(line)
        except importlib.metadata.PackageNotFoundError:
            missing.append(line)
    return missing


def project_copy(root: Path) -> Path:
    """The checkout's sources (no outputs) in ``root``, committed in a git repository of its own, as a clone is."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    if missing := missing_pins():
        pytest.fail(f"this environment lacks pins of requirements.txt ({', '.join(missing)}): the notebook would "
                    "pip-install them into it; run `pip install -r requirements-dev.txt` first")  # fmt: skip
    copy_sources(root, GENERATED)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "copy"]):
        subprocess.run(cmd, cwd=root, check=True, capture_output=True, env=os.environ | GIT_ID)
    return root


def execute(nb, root: Path, kernels: Path, timeout: int):
    """Run ``nb`` as Jupyter would from ``root/notebooks``, offline, in a kernel of this interpreter.

    The ``python3`` kernelspec is written for ``sys.executable`` into ``kernels`` (not the user's Jupyter
    folders, where a ``python3`` of another interpreter may live). Errors stay in the outputs, for the test
    to read; the executed notebook is saved beside the copy for a look after a failure.
    """
    from ipykernel.kernelspec import write_kernel_spec
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient

    write_kernel_spec(kernels / "python3")
    km = AsyncKernelManager(kernel_name="python3", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels)]))
    client = NotebookClient(
        nb, km=km, timeout=timeout, allow_errors=True, resources={"metadata": {"path": str(root / "notebooks")}}
    )
    environment = os.environ | {"SKINLESION_OFFLINE": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    environment.pop("PYTHONPATH", None)  # the notebook points the stages at its own checkout
    executed = client.execute(env=environment)
    nbformat.write(executed, root.parent / "executed.ipynb")
    return executed


def outputs(nb, cell_id: str | None = None) -> list:
    return [o for c in nb.cells if c.cell_type == "code" and cell_id in (None, c.id) for o in c.outputs]


def stream(nb, cell_id: str) -> str:
    return "".join(o.text for o in outputs(nb, cell_id) if o.output_type == "stream")


def errors(nb) -> list[str]:
    return [f"{o.ename}: {o.evalue}" for o in outputs(nb) if o.output_type == "error"]


# --- Fast: the committed file -----------------------------------------------------------------------------


def test_the_notebook_is_valid_and_committed_without_outputs():
    nb = read_notebook()
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    for c in nb.cells:
        assert not c.get("attachments"), c.id
        if c.cell_type == "code":
            assert c.outputs == [] and c.execution_count is None, f"cell {c.id} has outputs: clear them"
    ids = [c.id for c in nb.cells]
    assert len(set(ids)) == len(ids)
    # Every code cell is plain Python (no IPython magics): ruff lints it, and the slow test runs it.
    for c in nb.cells:
        if c.cell_type == "code":
            ast.parse(c.source)


def test_the_notebook_states_its_python_version_and_what_to_do_on_a_newer_one():
    intro = read_notebook().cells[0]
    assert intro.cell_type == "markdown"
    checked = re.search(r"Checked with Python (3\.\d+)\.\d+", intro.source)
    assert checked, "the first cell names the Python version the notebook was checked with"
    assert f"python{checked.group(1)} -m venv" in (REPO / ".ci/run").read_text()  # CI's version
    assert "3.11" in intro.source and "last digits" in intro.source


def test_the_install_cell_installs_requirements_txt_and_the_clone_cell_has_a_placeholder():
    nb = read_notebook()
    assert ["<expr>", "-m", "pip", "install", "-q", "-r", "requirements.txt"] in commands(nb)  # sys.executable
    assert "pip" in cell(nb, "install").source and "requirements.txt" in cell(nb, "install").source
    setup = cell(nb, "setup").source
    assert re.search(r'^REPO_URL = ""', setup, re.M), "REPO_URL is a placeholder the user sets"
    assert '"git", "clone", REPO_URL' in setup


def test_the_pipeline_cell_runs_the_readme_commands_behind_the_offline_switch():
    nb = read_notebook()
    detect = cell(nb, "detect").source
    assert 'os.environ.get("SKINLESION_OFFLINE") == "1"' in detect
    assert "www.kaggle.com" in detect and "list_physical_devices('GPU')" in detect
    ran = commands(nb)
    assert ["dvc", "repro"] in ran
    (exp,) = [c for c in ran if c[:3] == ["dvc", "exp", "run"]]
    # The README's "Real data" Kaggle command: same settings, native sizes included.
    assert settings(exp) == settings(readme_kaggle_command())
    assert {"mobilenet.image_size=224", "vgg19.image_size=224", "inceptionv3.image_size=299"} <= settings(exp)


def test_the_notebook_reads_the_headline_shows_the_plots_and_explains_predictions():
    from skinlesion.deploy.predict import parse_args

    nb = read_notebook()
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    for path in (layout.HEADLINE_METRICS, layout.SUMMARY_JSON, layout.split_csv("test")):
        assert f'"{path.as_posix()}"' in code, path
    for plot in (layout.COMPARISON, layout.RECALL, layout.GRADCAM):
        assert plot.stem in cell(nb, "plots").source
    assert "display(Image(" in cell(nb, "plots").source and "display(Image(" in cell(nb, "overlays").source
    (predict,) = [c for c in commands(nb) if c[0] == "skinlesion-predict"]
    args = parse_args(predict[1:])  # the command's own parser accepts the flags
    assert args.model == (layout.HEADLINE_MODEL / layout.MODEL_FILE).as_posix()
    assert args.format == "json" and args.explain and args.output


# --- Fast: the set-up cells, executed ----------------------------------------------------------------------


def test_in_a_checkout_the_setup_cells_clone_nothing_install_nothing_and_stay_offline(tmp_path: Path):
    """The cells before the pipeline run in a kernel of this interpreter, in a copy, under SKINLESION_OFFLINE=1."""
    root = project_copy(tmp_path / "project")
    nb = read_notebook(root / NOTEBOOK)
    nb.cells = [c for c in nb.cells if c.id in ("setup", "install", "detect")]
    report = (
        'import json\nprint(json.dumps({"root": str(ROOT), "cwd": os.getcwd(), "missing": missing, "real": REAL_DATA, '
        '"probed": [NETWORK, GPUS], "pythonpath": os.environ["PYTHONPATH"].split(os.pathsep)[0]}))'
    )
    nb.cells.append(nbformat.v4.new_code_cell(report, id="report"))
    executed = execute(nb, root, tmp_path / "kernels", timeout=120)
    assert errors(executed) == []
    state = json.loads(stream(executed, "report"))
    assert state == {
        "root": str(root),  # found from notebooks/, without cloning
        "cwd": str(root),
        "missing": [],  # a complete environment: pip is not run
        "real": False,  # SKINLESION_OFFLINE=1: the embedded data, and neither network nor TensorFlow probed
        "probed": [False, 0],
        "pythonpath": str(root),  # the stages import the copy's package
    }
    assert "nothing to install" in stream(executed, "install")
    status = subprocess.run(["git", "status", "--porcelain"], cwd=root, check=True, capture_output=True, text=True)
    assert status.stdout == ""  # the set-up cells write nothing into the checkout


# --- Slow: the whole notebook ------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_notebook_runs_top_to_bottom_on_the_embedded_data(tmp_path: Path):
    """Fast checks: test_in_a_checkout_the_setup_cells_clone_nothing_install_nothing_and_stay_offline and the
    structure tests above (test_the_pipeline_cell_runs_the_readme_commands_behind_the_offline_switch,
    test_the_notebook_reads_the_headline_shows_the_plots_and_explains_predictions).

    The full default `dvc repro` (3 backbones x 2 seeds) in a copy: about 7 minutes on 2 cores.
    """
    root = project_copy(tmp_path / "project")
    executed = execute(read_notebook(root / NOTEBOOK), root, tmp_path / "kernels", timeout=3600)
    assert errors(executed) == []
    assert "$ dvc repro" in stream(executed, "pipeline")  # offline: the embedded data, not `dvc exp run`
    # The headline cell printed the test balanced accuracy with its interval: metrics.json's numbers.
    metrics = json.loads((root / layout.HEADLINE_METRICS).read_text())
    summary = json.loads((root / layout.SUMMARY_JSON).read_text())
    text = stream(executed, "headline")
    assert f"headline: {summary['headline']['model']}" in text and f"data: {summary['settings']['source']}" in text
    ba, level, low, high = HEADLINE_LINE.search(text).groups()
    ci = metrics["ci"]["balanced_accuracy"]
    assert (float(ba), float(low), float(high)) == tuple(
        round(v, 3) for v in (metrics["test"]["balanced_accuracy"], ci["low"], ci["high"])
    )
    assert float(low) <= float(ba) <= float(high) and int(level) == round(100 * summary["settings"]["confidence"])
    assert any("text/html" in o.get("data", {}) for o in outputs(executed, "headline"))  # the pandas table
    # The three plots, then one Grad-CAM overlay per predicted test image (one per class, up to six).
    assert sum("image/png" in o.get("data", {}) for o in outputs(executed, "plots")) == 3
    classes = json.loads((root / layout.DATA_SUMMARY).read_text())["classes"]
    assert sum("image/png" in o.get("data", {}) for o in outputs(executed, "overlays")) == min(classes, 6)
