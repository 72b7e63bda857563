"""Wall time of the test suite (what `.ci/run` runs after `ruff check`), with the machine it ran on.

Usage: python benchmarks/bench_tests.py [pytest arguments]
"""

import os
import platform
import subprocess
import sys
import time


def main() -> None:
    """Run pytest and print its closing line, the wall time and the machine."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *sys.argv[1:]], capture_output=True, text=True
    )
    wall = time.perf_counter() - start
    closing = [line for line in proc.stdout.splitlines() if " passed" in line or " failed" in line][-1:]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"pytest: {closing[0] if closing else 'no summary line'}; wall {wall:.0f} s; exit {proc.returncode}")


if __name__ == "__main__":
    main()
