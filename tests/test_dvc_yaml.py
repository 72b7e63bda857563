"""dvc.yaml agrees with the code: each stage depends on exactly the package files it loads, no more.

A stage's ``deps`` list its script, the package modules it imports (transitively, lazy imports too) and the
files those modules read (a module names them in a ``PACKAGE_DATA`` constant: templates, schemas), at the grain
of files or whole folders. Editing a module then reruns only the stages that load it.
"""

import ast
from pathlib import Path

import pytest
import yaml

from skinlesion.core import layout

from .conftest import REPO

PIPELINE = yaml.safe_load((REPO / "dvc.yaml").read_text())
STAGES = PIPELINE["stages"]
PACKAGE = "skinlesion"


def imported_modules(path: Path) -> set[str]:
    """``skinlesion`` modules imported anywhere in a file, inside functions too (lazy imports count)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PACKAGE):
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}  # `from skinlesion.core import layout`
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith(PACKAGE)}
    return found


def package_data(path: Path) -> set[Path]:
    """The files a module reads from the package: its module-level ``PACKAGE_DATA`` (names beside the module)."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "PACKAGE_DATA" for t in node.targets):
            names = ast.literal_eval(node.value)
            return {path.parent / name for name in ((names,) if isinstance(names, str) else names)}
    return set()


def module_file(name: str) -> Path | None:
    base = REPO / Path(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None  # a name imported from a module (a function), not a module


def closure(script: Path) -> set[Path]:
    """Every package file a stage script loads, following imports transitively (parents' __init__ too)."""
    todo, seen = [script], set()
    while todo:
        current = todo.pop()
        for name in imported_modules(current):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__.py and a/b/__init__.py
                path = module_file(".".join(parts[:i]))
                if path and path not in seen:
                    seen.add(path)
                    todo.append(path)
    data = {f for path in seen for f in package_data(path)}
    return {p.relative_to(REPO) for p in seen | data}


def inert(path: Path) -> bool:
    """A package marker with no code: only a docstring and constant assignments (``__version__``)."""
    if path.name != "__init__.py":
        return False
    body = ast.parse((REPO / path).read_text()).body
    return all(
        (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))
        or (isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant))
        for n in body
    )


def covered(path: Path, deps: list[str]) -> bool:
    return inert(path) or any(path == Path(d) or Path(d) in path.parents for d in deps)


def needless(deps: list[str], loaded: set[Path]) -> list[str]:
    """Package deps the stage does not load: a file it never imports or reads, a folder with such a file."""
    out = []
    for dep in (d for d in deps if Path(d).parts[0] == PACKAGE):
        target = REPO / dep
        files = [target] if target.is_file() else [f for f in target.rglob("*") if f.is_file()]
        files = [f.relative_to(REPO) for f in files if "__pycache__" not in f.parts]
        if any(not inert(f) and f not in loaded and not _inside_data(f, loaded) for f in files if f.suffix == ".py"):
            out.append(dep)
        elif not any(f in loaded or _inside_data(f, loaded) for f in files):
            out.append(dep)
    return out


def _inside_data(path: Path, loaded: set[Path]) -> bool:
    """Whether ``path`` lies in a folder that a loaded module reads whole (``PACKAGE_DATA = "templates"``)."""
    return any(folder in path.parents for folder in loaded)


def stage_spec(stage: str) -> tuple[Path, list[str]]:
    spec = STAGES[stage].get("do", STAGES[stage])  # a foreach stage's template is under `do`
    return REPO / spec["cmd"].split()[1], [d for d in spec["deps"] if "${" not in d]


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_deps_cover_every_module_it_imports_and_every_file_it_reads(stage: str):
    script, deps = stage_spec(stage)
    assert str(script.relative_to(REPO)) in deps
    missing = sorted(str(p) for p in closure(script) if not covered(p, deps))
    assert not missing, f"stage {stage} loads package files its deps do not cover: {missing}"


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_deps_name_nothing_the_stage_does_not_load(stage: str):
    script, deps = stage_spec(stage)
    assert needless(deps, closure(script)) == [], f"stage {stage}: a change there would rerun it for nothing"
    scripts = [d for d in deps if Path(d).parts[0] == "stages"]
    assert scripts == [str(script.relative_to(REPO))]


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_a_stage_docstring_says_what_it_does_and_points_at_dvc_yaml_for_its_files(stage: str):
    doc = " ".join(ast.get_docstring(ast.parse(stage_spec(stage)[0].read_text())).split())
    assert doc.startswith(f"{stage}: ") and f"the ``{stage}`` stage of ``dvc.yaml``" in doc
    assert "Inputs:" not in doc and "Outputs:" not in doc  # a second list of files would drift from dvc.yaml


def test_only_code_free_package_markers_may_be_left_out_of_deps(tmp_path: Path):
    assert inert(Path("skinlesion/__init__.py"))  # what lets stages leave it out of their deps
    assert not inert(Path("skinlesion/core/layout.py"))
    marker = tmp_path / "__init__.py"  # absolute: REPO / marker is marker
    marker.write_text((REPO / "skinlesion" / "__init__.py").read_text() + "from .core import layout\n")
    assert not inert(marker)  # an __init__ that imports (runs code) must be a dep


def test_the_checks_catch_a_missing_and_a_needless_dependency():
    # evaluate imports evaluation code that train's deps lack; train loads no statistics.
    _, train = stage_spec("train")
    assert not all(covered(p, train) for p in closure(REPO / "stages" / "evaluate.py"))
    assert needless([*train, "skinlesion/stats"], closure(REPO / "stages" / "train.py")) == ["skinlesion/stats"]
    # A folder the stage loads only part of is needless too: its other modules would rerun it.
    assert needless(["skinlesion/core"], closure(REPO / "stages" / "fetch.py")) == ["skinlesion/core"]


def test_the_report_templates_are_read_by_aggregate_and_export_only():
    templates = Path("skinlesion/render/templates")
    loads = {stage: templates in closure(stage_spec(stage)[0]) for stage in STAGES}
    assert {stage for stage, yes in loads.items() if yes} == {"aggregate", "export"}


def test_training_does_not_depend_on_evaluation_code():
    # Of the statistics, training uses temperature scaling only (fitted on validation, built into the model).
    _, deps = stage_spec("train")
    assert not any(Path(d).parts[:2] in {("skinlesion", f) for f in ("evaluation", "render")} for d in deps)
    assert [d for d in deps if d.startswith("skinlesion/stats")] == ["skinlesion/stats/temperature.py"]


def test_dvc_yaml_uses_the_layout_paths():
    text = (REPO / "dvc.yaml").read_text()
    for path in (
        layout.RUNS,
        layout.SPLITS,
        layout.RAW,
        layout.DATA_SUMMARY,
        layout.HEADLINE_METRICS,
        layout.BACKBONE_METRICS,
        layout.EXPORT_METRICS,
        layout.HEADLINE_MODEL,
        layout.MODEL_CARD,
        layout.CURVES,
        layout.ROC,
        layout.CALIBRATION,
        layout.CONFUSION,
        layout.COMPARISON,
        layout.RECALL,
        layout.GRADCAM,
        layout.AUGMENT_PREVIEW,
        layout.CLASS_COUNTS,
    ):
        assert str(path) in text, path
    run = layout.RunPaths("${item.backbone}", "${item.seed}")
    for path in (run.model_dir, run.train_log, run.eval_dir, run.config):
        assert str(path) in text, path
    fold, pooled = (
        layout.RunPaths("${item.backbone}", "${item.seed}", "${item.fold}"),
        layout.CvPaths("${item.backbone}"),
    )
    for path in (layout.FOLDS, fold.model_dir, fold.train_log, fold.eval_dir, fold.config, pooled.metrics):
        assert str(path) in text, path
    for path in (pooled.predictions, pooled.estimate, pooled.confusion):
        assert str(path) in text, path


def test_outputs_a_clone_restores_are_cached_and_registered():
    """What `dvc checkout` after a failed rerun and `dvc pull` in a fresh clone restore (`slow` in test_pipeline.py)."""
    cached, in_git = set(), set()
    for stage in STAGES.values():
        for out in stage.get("do", stage).get("outs", []):
            path, options = next(iter(out.items())) if isinstance(out, dict) else (out, {})
            assert set(options) <= {"cache"}, (path, options)  # e.g. `push: false` would keep it from a clone
            (cached if options.get("cache", True) else in_git).add(path)
    assert not {p for p in in_git if Path(p).parts[0] in {layout.RUNS.parts[0], layout.RAW.parts[0]}}
    run = layout.RunPaths("${item.backbone}", "${item.seed}")
    assert {str(run.model_dir), str(layout.HEADLINE_MODEL), str(layout.EXPORT_DIR), str(layout.SPLITS)} <= cached
    artifact = PIPELINE["artifacts"]["skinlesion-classifier"]
    assert artifact["path"] == str(layout.HEADLINE_MODEL)
