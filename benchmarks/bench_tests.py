"""Wall time of the test suite: the README's default run and the CI run (slow tests included), one after the other.

Usage: python benchmarks/bench_tests.py [--only default|ci] [extra pytest arguments]

Runs, from the repository root, ``python -m pytest`` (the README's command: every test but the ``slow``
ones, in one process per core) and then ``CI=true python -m pytest -m "slow or not slow"`` (what
``.ci/run`` runs after the linter), and prints pytest's closing line, the wall time and the load
average before and after each, so that a run beside other work shows as such, and then the time each
test module took (pytest's ``--durations=0``, summed per module: worker time, which the workers share).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUNS = {
    "default": ([], {}),
    "ci": (["-m", "slow or not slow"], {"CI": "true"}),
}


# A line of pytest's --durations report: "12.34s call     tests/test_x.py::test_y".
DURATION = re.compile(r"^\s*([\d.]+)s (?:setup|call|teardown)\s+tests/(\w+\.py)::")


def per_module(report: str, top: int = 8) -> str:
    """The ``top`` test modules by summed setup, call and teardown time, and the sum over all modules."""
    seconds: Counter = Counter()
    for match in filter(None, map(DURATION.match, report.splitlines())):
        seconds[match[2]] += float(match[1])
    listed = ", ".join(f"{module} {s:.0f}" for module, s in seconds.most_common(top))
    return f"  worker seconds per module: {listed}; all modules {sum(seconds.values()):.0f}"


def run(name: str, extra: list[str]) -> str:
    """One pytest run; returns its printed lines."""
    arguments, env = RUNS[name]
    load = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--durations=0", *arguments, *extra],
        cwd=REPO,
        env=os.environ | env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    closing = [line for line in proc.stdout.splitlines() if " passed" in line or " failed" in line][-1:]
    return (
        f"{name:8s} wall {wall:5.0f} s ({wall / 60:.1f} min), exit {proc.returncode}; "
        f"{closing[0].strip('= ') if closing else 'no summary line'}; "
        f"load average {load:.1f} before, {os.getloadavg()[0]:.1f} after\n{per_module(proc.stdout)}"
    )


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(RUNS))
    args, extra = parser.parse_known_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    umask = os.umask(0)
    os.umask(umask)
    onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "unset")
    print(f"umask {umask:03o}, TF_ENABLE_ONEDNN_OPTS {onednn}")
    for name in [args.only] if args.only else list(RUNS):
        print(run(name, extra), flush=True)


if __name__ == "__main__":
    main()
