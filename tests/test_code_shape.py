"""The code keeps the shape the house rules ask for: small modules and functions, one home per fact."""

import ast
import dataclasses
from pathlib import Path

import pytest

from skinlesion.core import config

from .conftest import REPO

SOURCES = sorted(p for folder in ("skinlesion", "stages", "benchmarks") for p in (REPO / folder).rglob("*.py"))
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
MAX_PARAMETERS = 8
MAX_FOLDER_MODULES = 12  # a package folder with more is several folders
# Parameters whose value is a param of params.yaml (evaluate.*): a library default would be a second home.
PARAM_NAMES = {"confidence", "resamples", "bootstrap", "alpha", "seed", "target_specificity", "min_size", "malignant"}
# The layers that compute and show the evaluation: they take every such value from their caller.
STATS_LAYERS = {("skinlesion", s) for s in ("stats", "evaluation", "render", "cv")}
# What an output or cache path starts with; only core/layout.py may spell one in code.
OUTPUT_ROOTS = (
    "runs/",
    "metrics/",
    "reports/",
    "plots/",
    "models/",
    "data/splits",
    "data/raw",
    "data/folds",
    ".cache/",
)


def functions(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def parameters(node: ast.FunctionDef) -> int:
    args = node.args
    names = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
    return len([n for n in names if n not in ("self", "cls")])


def too_big(paths, root: Path = REPO) -> list[str]:
    found = []
    for path in paths:
        rel = path.relative_to(root).as_posix()
        lines = len(path.read_text().splitlines())
        if lines > MAX_MODULE_LINES:
            found.append(f"{rel}: {lines} lines")
        for node in functions(path):
            length = node.end_lineno - node.lineno + 1
            if length > MAX_FUNCTION_LINES or parameters(node) > MAX_PARAMETERS:
                found.append(f"{rel}:{node.lineno} {node.name}: {length} lines, {parameters(node)} parameters")
    return found


def test_no_module_over_400_lines_and_no_function_over_60_lines_or_8_parameters():
    assert too_big(SOURCES) == []


def test_the_size_check_catches_a_long_function_and_many_parameters(tmp_path: Path):
    long = "def f(a, b, c, d, e, f, g, h, i):\n" + "    x = 1\n" * 61
    (tmp_path / "m.py").write_text(long)
    assert too_big([tmp_path / "m.py"], tmp_path) == ["m.py:1 f: 62 lines, 9 parameters"]


def test_no_package_folder_holds_more_than_12_modules():
    folders = {p.parent for p in SOURCES if p.parts[len(REPO.parts)] == "skinlesion"}
    counts = {f.name: len([m for m in f.glob("*.py") if m.name != "__init__.py"]) for f in folders}
    assert {"stats", "render", "evaluation"} <= set(counts)
    assert {f: n for f, n in counts.items() if n > MAX_FOLDER_MODULES} == {}


def defaulted_params(paths) -> list[str]:
    """Functions that give a params.yaml value (``confidence``, ``alpha``, ``seed``...) a default of their own."""
    found = []
    for path in paths:
        for node in functions(path):
            args = node.args
            plain = args.posonlyargs + args.args
            positional = plain[len(plain) - len(args.defaults) :]
            keyword = [a for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d is not None]
            found += [f"{path.name}:{node.name}({a.arg}=)" for a in positional + keyword if a.arg in PARAM_NAMES]
    return found


def test_statistics_and_stage_logic_take_the_params_from_the_caller_not_from_defaults():
    layers = [p for p in SOURCES if p.parts[len(REPO.parts) : len(REPO.parts) + 2] in STATS_LAYERS]
    assert len(layers) > 15 and defaulted_params(layers) == []


def test_the_default_check_sees_a_repeated_param(tmp_path: Path):
    (tmp_path / "m.py").write_text("def f(y, *, confidence=0.95, groups=None):\n    return y\n")
    assert defaulted_params([tmp_path / "m.py"]) == ["m.py:f(confidence=)"]


def path_literals(path: Path) -> list[str]:
    """String constants in code (docstrings, which document paths, left out) that spell an output path."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
        and any(root in node.value for root in OUTPUT_ROOTS)
    ]


@pytest.mark.parametrize("path", [p for p in SOURCES if p != REPO / "skinlesion" / "core" / "layout.py"], ids=str)
def test_no_output_path_is_spelt_outside_the_layout_module(path: Path):
    assert path_literals(path) == []


def test_the_path_check_sees_a_path_in_code_but_not_in_a_docstring(tmp_path: Path):
    module = tmp_path / "m.py"
    module.write_text('"""Writes ``metrics/x.json``."""\nOUT = "metrics/x.json"\n')
    assert path_literals(module) == ["metrics/x.json"]


def test_params_yaml_is_the_only_home_of_the_defaults():
    from skinlesion.core import data_params, evaluation_params

    modules = (config, data_params, evaluation_params)
    sections = [
        cls
        for module in modules
        for cls in vars(module).values()
        if dataclasses.is_dataclass(cls) and cls.__module__ == module.__name__
    ]
    assert len(sections) >= 12
    for cls in sections:
        defaulted = [
            f.name
            for f in dataclasses.fields(cls)
            if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        ]
        # An external set is an entry the user adds (params.yaml's map is empty): a key left out means none.
        allowed = ["classes", "metadata"] if cls is evaluation_params.ExternalConfig else []
        assert defaulted == allowed, f"{cls.__name__} has defaults for {defaulted}: they belong in params.yaml"
