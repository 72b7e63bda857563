"""dvc.yaml agrees with the code: every package module a stage imports is covered by that stage's deps."""

import ast
from pathlib import Path

import pytest
import yaml

from skinlesion.core import layout

from .conftest import REPO

PIPELINE = yaml.safe_load((REPO / "dvc.yaml").read_text())
STAGES = PIPELINE["stages"]


def imported_modules(path: Path) -> set[str]:
    """``skinlesion`` modules imported anywhere in a file, inside functions too (lazy imports count)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("skinlesion"):
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}  # `from skinlesion.core import layout`
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("skinlesion")}
    return found


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
        for name in imported_modules(todo.pop()):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__.py and a/b/__init__.py
                path = module_file(".".join(parts[:i]))
                if path and path not in seen:
                    seen.add(path)
                    todo.append(path)
    return {p.relative_to(REPO) for p in seen}


def inert(path: Path) -> bool:
    """A package marker with no code: only a docstring and constant assignments (``__version__``)."""
    body = ast.parse((REPO / path).read_text()).body
    return path.name == "__init__.py" and all(
        (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))
        or (isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant))
        for n in body
    )


def covered(path: Path, deps: list[str]) -> bool:
    return inert(path) or any(path == Path(d) or Path(d) in path.parents for d in deps)


def test_only_code_free_package_markers_may_be_left_out_of_deps(tmp_path: Path):
    assert inert(Path("skinlesion/__init__.py"))  # what lets stages leave it out of their deps
    assert not inert(Path("skinlesion/core/layout.py"))
    marker = tmp_path / "__init__.py"  # absolute: REPO / marker is marker
    marker.write_text((REPO / "skinlesion" / "__init__.py").read_text() + "from .core import layout\n")
    assert not inert(marker)  # an __init__ that imports (runs code) must be a dep


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_deps_cover_every_module_it_imports(stage: str):
    spec = STAGES[stage].get("do", STAGES[stage])  # a foreach stage's template is under `do`
    script = REPO / spec["cmd"].split()[1]
    deps = [d for d in spec["deps"] if "${" not in d]
    assert str(script.relative_to(REPO)) in deps
    missing = sorted(str(p) for p in closure(script) if not covered(p, deps))
    assert not missing, f"stage {stage} imports modules its deps do not cover: {missing}"


def test_coverage_check_catches_an_uncovered_import():
    # The check itself must be able to fail: evaluate imports evaluation code that train's deps lack.
    deps = STAGES["train"]["deps"]
    assert not all(covered(p, deps) for p in closure(REPO / "stages" / "evaluate.py"))


def test_training_does_not_depend_on_evaluation_code():
    assert not any(d.startswith("skinlesion/evaluation") for d in STAGES["train"]["deps"])


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
