"""`dvc plots show` / `dvc plots diff` write a page that draws without network, and the chart specs are right.

Each test copies what the plots need (dvc.yaml, params.yaml, .dvc/config, .dvc/plots, plots/) into a fresh
git repository, runs DVC there in a subprocess, and reads the page it writes.
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import REPO

VENDOR = REPO / ".dvc" / "plots" / "vendor"
LIBRARIES = {"vega.min.js": "5.33.1", "vega-lite.min.js": "5.23.0", "vega-embed.min.js": "6.29.0"}
SOURCES = (VENDOR / "SOURCES.md").read_text(encoding="utf-8")
PLOT_DEFS = yaml.safe_load((REPO / "dvc.yaml").read_text())["plots"]
TITLES = [next(iter(d)) for d in PLOT_DEFS if isinstance(d, dict)]
IMAGES = [d for d in PLOT_DEFS if isinstance(d, str)]
ENV = {
    **os.environ,
    "DVC_NO_ANALYTICS": "1",
    "GIT_AUTHOR_NAME": "test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
}


def run(cwd: Path, *args: str) -> None:
    proc = subprocess.run(args, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{args} exited {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"


@pytest.fixture(scope="module")
def plots_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git + DVC repository holding only what the plots need, committed once (for `plots diff HEAD`)."""
    repo = tmp_path_factory.mktemp("plots_repo")
    for name in ("dvc.yaml", "params.yaml", ".dvc/config"):
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, repo / name)
    shutil.copytree(REPO / ".dvc" / "plots", repo / ".dvc" / "plots")
    shutil.copytree(REPO / "plots", repo / "plots")
    run(repo, "git", "init", "-q")
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-q", "-m", "plots")
    return repo


def specs(page: str) -> dict[str, dict]:
    """Each chart's Vega-Lite spec, by title, from the `var spec = {...}; vegaEmbed(...)` blocks DVC writes."""
    found = [json.loads(m) for m in re.findall(r"var spec = (\{.*?\});\s*vegaEmbed\(", page, re.S)]
    by_title = {}
    for spec in found:
        title = spec["title"]
        by_title[title["text"] if isinstance(title, dict) else title] = spec
    assert len(by_title) == len(found)
    return by_title


def check_offline(page: str) -> str:
    """No script is loaded from anywhere: vega, vega-lite and vega-embed are inlined, verbatim and complete.

    Returns the page without the inlined libraries (DVC's part of it: plot divs, pictures).
    """
    rest, ends = page, []
    for name, version in LIBRARIES.items():
        code = (VENDOR / name).read_text(encoding="utf-8")
        assert f'"{version}"' in code, f"vendor/{name} is not version {version}"
        block = f"<script>\n{code}</script>"
        copies = page.count(block)
        assert copies == 1, f"vendor/{name} inlined {copies} times"
        ends.append(page.index(block) + len(block))
        rest = rest.replace(block, "")
    # Loaded in order (vega-lite needs the global `vega`, vega-embed both) and before the first chart.
    assert ends == sorted(ends) and ends[-1] < page.index("var spec = ")
    script_tags = re.findall(r"<script\b[^>]*>", rest, re.I)
    assert len(script_tags) == len(TITLES), script_tags  # one per chart: `vegaEmbed('#id', spec)`
    assert not [tag for tag in script_tags if re.search(r"\bsrc\s*=", tag, re.I)], script_tags
    assert not re.search(r"""\b(src|href)\s*=\s*["']?(https?:)?//""", rest, re.I), "a remote resource"
    assert '<meta charset="utf-8">' in rest  # the libraries hold non-ASCII characters
    return rest


def layer_scale_domains(spec: dict) -> set[tuple]:
    """(channel, domain) of every x/y encoding of the data layer(s), the one(s) fed DVC's rows."""
    data_layers = [layer for layer in spec["layer"] if layer["data"]["values"] and "rev" in layer["data"]["values"][0]]
    assert data_layers
    return {
        (channel, tuple(layer["encoding"][channel]["scale"]["domain"]))
        for layer in data_layers
        for channel in ("x", "y")
    }


def expected_titles(cwd: Path) -> set[str]:
    """The chart titles DVC gives the plots of dvc.yaml: its key, or for a folder each file's path.

    A file's path is as dvc.yaml names it, prefixed from a subfolder with the way back up (``../``).
    """
    prefix = "" if cwd == REPO else f"{os.path.relpath(REPO, cwd)}/"
    titles = set()
    for title in TITLES:
        folder = REPO / title
        files = sorted(folder.glob("*.csv")) if folder.is_dir() else []
        titles |= {prefix + f.relative_to(REPO).as_posix() for f in files} or {title}
    return titles


def check_charts(page: str, out: Path, revs: set[str], cwd: Path = REPO) -> None:
    """Every plot of dvc.yaml is on the page (``page`` without the libraries), each with its fixes.

    ``cwd`` is where DVC ran, as the same place in this checkout (the titles of a folder's charts are paths).
    """
    charts = specs(page)
    assert set(charts) == expected_titles(cwd), "every plot of dvc.yaml is drawn, and nothing else"
    assert any("subgroups" in title for title in charts)  # the folder's charts: one per set
    for title, spec in charts.items():
        rows = json.dumps(spec)
        assert "<DVC_METRIC_" not in rows, f"{title}: unfilled anchor"
        for rev in revs:
            assert f'"rev": "{rev}"' in rows, f"{title}: no data from {rev}"
    # Pictures are copied beside the page (named <rev>_<path relative to the working directory>).
    sources = re.findall(r'<img src="([^"]+)">', page)
    assert len(sources) == len(IMAGES) * len(revs), sources
    assert all(src.startswith("static/") and (out / src).is_file() for src in sources), sources
    for image, rev in ((image, rev) for image in IMAGES for rev in revs):
        name = image.replace("/", "_")
        assert any(src.startswith(f"static/{rev}_") and src.endswith(name) for src in sources), (image, rev)

    for title, csv in (
        ("Macro ROC per backbone (mean over seeds)", "roc.csv"),
        ("Calibration per backbone (seeds pooled)", "calibration.csv"),
    ):
        spec = charts[title]
        rows = len((REPO / "plots" / csv).read_text().splitlines()) - 1
        assert sum(len(layer["data"]["values"]) for layer in spec["layer"]) == 1 + rows * len(revs), title
        assert layer_scale_domains(spec) == {("x", (0, 1)), ("y", (0, 1))}, title
        assert not [layer for layer in spec["layer"] if "shape" in layer["encoding"]], f"{title}: a shape legend"
        diagonal = [layer for layer in spec["layer"] if layer["mark"]["type"] == "rule"]
        assert diagonal and diagonal[0]["data"]["values"] == [{"from": 0, "to": 1}], title

    # Rows (y) are the actual class; confusion_normalized divides by the y value's total, so rows sum to 1.
    counts = charts["Confusion, headline run (rows actual, columns predicted)"]
    shares = charts["Confusion, headline run (row-normalised, each actual class sums to 1)"]
    for spec in (counts, shares):
        encoding = spec["spec"]["encoding"]
        assert (encoding["x"]["field"], encoding["y"]["field"]) == ("predicted", "actual")
    normalise = next(t for t in shares["spec"]["transform"] if "joinaggregate" in t)
    assert normalise["groupby"] == ["actual"]


def test_plots_show_page_is_self_contained(plots_repo: Path, tmp_path: Path):
    out = tmp_path / "elsewhere" / "report"  # outside the repository, as `dvc plots show -o DIR` allows
    run(plots_repo, sys.executable, "-m", "dvc", "plots", "show", "-o", str(out))
    page = check_offline((out / "index.html").read_text(encoding="utf-8"))
    check_charts(page, out, {"workspace"})


def test_plots_diff_default_output_is_self_contained(plots_repo: Path):
    # From a subfolder, without -o: DVC writes dvc_plots/ under the working directory and still finds the
    # template, whose relative path in .dvc/config is resolved against .dvc/.
    cwd = plots_repo / "plots"
    run(cwd, sys.executable, "-m", "dvc", "plots", "diff", "HEAD")
    out = cwd / "dvc_plots"
    page = check_offline((out / "index.html").read_text(encoding="utf-8"))
    check_charts(page, out, {"workspace", "HEAD"}, cwd=REPO / "plots")


def test_vendored_files_are_the_ones_sources_md_lists():
    rows = re.findall(r"^\| (\S+\.min\.js) \| (\S+) \| (\S+) \| .* \| ([0-9a-f]{64}) \|$", SOURCES, re.M)
    assert {name: version for name, _, version, _ in rows} == LIBRARIES
    for name, _, _, sha256 in rows:
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == sha256, name
    for licence in ("LICENSE-vega.txt", "LICENSE-vega-lite.txt", "LICENSE-vega-embed.txt", "THIRD-PARTY-NOTICES.txt"):
        assert (VENDOR / licence).stat().st_size > 1000, licence


def test_template_is_built_from_the_vendored_files():
    proc = subprocess.run(
        [sys.executable, str(REPO / "tools" / "plots_page.py"), "--check"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
