"""Write the HTML page template of ``dvc plots show``/``diff`` with vega, vega-lite and vega-embed inlined.

DVC's own page loads the three libraries from a CDN (dvc_render's ``VegaRenderer.SCRIPTS``), so without
network every chart is blank. ``.dvc/config`` sets ``plots.html_template = plots/offline.html``; DVC resolves
a relative path against ``.dvc/`` and fills the page with ``str.replace`` of three placeholders: the plots
one (the only one it requires), the refresh one (``--open`` auto refresh), and the scripts one. The page
written here has no scripts placeholder: that is where DVC would put its CDN ``<script src>`` tags. The
libraries are inlined instead, so every ``index.html`` DVC writes, wherever ``-o`` puts it, is
self-contained.

The libraries are the files in ``.dvc/plots/vendor/``, byte for byte as the npm registry ships them
(``SOURCES.md`` there: versions, checksums, licences). After replacing one, update ``LIBRARIES`` and run::

    python tools/plots_page.py          # rewrite .dvc/plots/offline.html
    python tools/plots_page.py --check  # exit 1 when it is out of date (tests/test_plots_offline.py checks too)
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import NamedTuple

REPO = Path(__file__).resolve().parents[1]
VENDOR = REPO / ".dvc" / "plots" / "vendor"
PAGE = REPO / ".dvc" / "plots" / "offline.html"

# dvc_render.html.HTML replaces these (with str.replace) anywhere in the page, inlined code included.
PLOTS_PLACEHOLDER = "{plot_divs}"
REFRESH_PLACEHOLDER = "{refresh_tag}"
SCRIPTS_PLACEHOLDER = "{scripts}"


class Library(NamedTuple):
    """One vendored build: its file in ``vendor/``, npm package, pinned version and licence file."""

    file: str
    package: str
    version: str
    licence: str


# Load order matters: vega-lite's UMD build reads the global ``vega``, vega-embed both globals.
# Majors as dvc-render 1.0.2's own page (vega@5, vega-lite@5, vega-embed@6): its plot divs call
# ``vegaEmbed('#id', spec)`` on Vega-Lite v5 specs.
LIBRARIES = (
    Library("vega.min.js", "vega", "5.33.1", "LICENSE-vega.txt"),
    Library("vega-lite.min.js", "vega-lite", "5.23.0", "LICENSE-vega-lite.txt"),
    Library("vega-embed.min.js", "vega-embed", "6.29.0", "LICENSE-vega-embed.txt"),
)

HEAD = """<!DOCTYPE html>
<html>
<head>
    <meta charset="utf-8">
    {refresh_tag}
    <title>DVC Plot</title>
    <!-- Written by tools/plots_page.py; do not edit. DVC's CDN scripts are left out on purpose:
         the libraries below are inlined, so this page draws its charts without network. -->
"""

TAIL = """    <style>
        table {
            border-spacing: 15px;
        }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""

# Inside <script>, the HTML parser ends the element at the first "</script" and treats "<!--" specially.
_UNSAFE_IN_SCRIPT = re.compile(r"</script|<!--", re.IGNORECASE)


def check_library(lib: Library, code: str) -> None:
    """Refuse a build that could not be inlined verbatim, or whose version is not the pinned one.

    Args:
        lib: The library's pin.
        code: The vendored file's text.

    Raises:
        ValueError: The code would end the ``<script>`` element early, contains a DVC placeholder (DVC would
            replace it), or does not carry ``lib.version`` (the file and the pin disagree).
    """
    if _UNSAFE_IN_SCRIPT.search(code):
        raise ValueError(f"{lib.file}: contains '</script' or '<!--', cannot be inlined verbatim")
    for placeholder in (PLOTS_PLACEHOLDER, REFRESH_PLACEHOLDER, SCRIPTS_PLACEHOLDER):
        if placeholder in code:
            raise ValueError(f"{lib.file}: contains DVC's placeholder {placeholder}")
    if f'"{lib.version}"' not in code:
        raise ValueError(f'{lib.file}: version string "{lib.version}" not found; is LIBRARIES up to date?')


def render_page(vendor: Path = VENDOR) -> str:
    """The template's text: DVC's page layout with the three libraries inlined in load order.

    Args:
        vendor: Folder holding the vendored builds.

    Returns:
        The page, with the plots and refresh placeholders and without the scripts one.
    """
    parts = [HEAD]
    for lib in LIBRARIES:
        code = (vendor / lib.file).read_text(encoding="utf-8")
        check_library(lib, code)
        parts.append(
            f"    <!-- {lib.package} {lib.version} from npm, build/{lib.file} verbatim; "
            f"licence: .dvc/plots/vendor/{lib.licence} -->\n"
            f"    <script>\n{code}{'' if code.endswith(chr(10)) else chr(10)}</script>\n"
        )
    parts.append(TAIL)
    return "".join(parts)


def main(argv: list[str] | None = None) -> int:
    """Write (or with ``--check``, compare) ``.dvc/plots/offline.html``.

    Args:
        argv: Command-line arguments; ``sys.argv[1:]`` when ``None``.

    Returns:
        The exit status: 1 when ``--check`` finds the page out of date.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 when out of date")
    args = parser.parse_args(argv)
    page = render_page()
    if args.check:
        current = PAGE.read_text(encoding="utf-8") if PAGE.exists() else None
        if current != page:
            print(f"{PAGE.relative_to(REPO)} is out of date: run python tools/plots_page.py", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(page, encoding="utf-8")
    print(f"wrote {PAGE.relative_to(REPO)} ({len(page.encode()):,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
