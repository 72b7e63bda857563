"""User-facing errors, and the entry-point wrapper of every stage and command.

The wrapper turns those errors into one-line messages, and pins the numerics of TensorFlow before any
code imports it (:data:`PINNED_ENVIRONMENT`), so results do not depend on which CPU TensorFlow detects.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator

# Set before TensorFlow is imported (library code imports it lazily, inside functions). oneDNN's
# custom operations, which TensorFlow switches on by itself on some CPUs and not on others, change
# floats in their last digits: a model trained on one machine would differ from the committed one.
# Off everywhere, a machine with them and one without compute the same floats, and `dvc repro` on either
# reproduces dvc.lock byte for byte.
# Its cost in speed: BENCHMARKS.md (benchmarks/bench_onednn.py).
PINNED_ENVIRONMENT = {"TF_ENABLE_ONEDNN_OPTS": "0"}


class SkinLesionError(Exception):
    """An error caused by the user's input (params, data, environment), not a bug.

    The message must name the offending file or parameter and say how to fix it; stages print it as
    one line instead of a traceback.
    """


class ConfigError(SkinLesionError):
    """A params.yaml key is missing, unknown, of the wrong type or out of range."""


class DataError(SkinLesionError):
    """Input data cannot be used as it is (unsafe archive, too few images, unreachable source)."""


def cli(main: Callable[..., int | None]) -> Callable[..., int]:
    """Wrap a stage's ``main``: pinned numerics, and a :class:`SkinLesionError` ends it with one line, exit status 2.

    Args:
        main: The stage's entry point.

    Returns:
        The wrapped entry point, returning the process exit status.

    """

    @functools.wraps(main)
    def wrapper(*args, **kwargs) -> int:
        os.environ.update(PINNED_ENVIRONMENT)
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # readable stage logs
        try:
            return main(*args, **kwargs) or 0
        except SkinLesionError as exc:
            say(f"error: {exc}{restore_hint()}")
            return 2
        except KeyboardInterrupt:
            say(f"error: interrupted{restore_hint()}")
            return 130

    return wrapper


def say(line: str) -> None:
    """Print one line on standard error below any progress bar still drawn, on a terminal and in a log file.

    A bar left open (its loop stopped by the error) would take the line into its own; closed first, it ends
    with its newline. ``tqdm._instances`` is tqdm's registry of open bars (the one its own ``write`` uses).
    Bars are drawn on terminals only (``disable=None`` wherever the package makes one): a log file gets the
    stages' own lines, not a bar redrawn a hundred times.
    """
    tqdm = sys.modules.get("tqdm")
    for bar in list(getattr(getattr(tqdm, "tqdm", None), "_instances", ())):
        bar.close()
    print(line, file=sys.stderr)


def restore_hint() -> str:
    """Under ``dvc repro``: how to bring back the outputs DVC removed before running the failed stage."""
    stage = os.environ.get("DVC_STAGE")  # DVC names the stage it runs (dvc/stage/run.py)
    if not stage:
        return ""
    return f" (DVC removed the previous outputs of {stage} before running it: `dvc checkout {stage}` restores them)"


@contextlib.contextmanager
def workers_ignore_interrupt() -> Iterator[None]:
    """Start worker processes inside this block: they ignore Ctrl-C, and only the stage's own process stops.

    Ctrl-C sends SIGINT to every process of the terminal's foreground group: each worker would print its
    own traceback above the stage's one line. A process started while SIGINT is ignored keeps ignoring
    it (a forked one inherits the setting, and Python leaves an ignored SIGINT ignored at start-up), so the
    workers go quietly when the stage, interrupted, ends its pool.
    """
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
