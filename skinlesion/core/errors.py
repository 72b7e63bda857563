"""User-facing errors, and the entry-point wrapper of every stage and command.

The wrapper turns those errors into one-line messages, and pins the numerics of TensorFlow before any
code imports it (:data:`PINNED_ENVIRONMENT`), so results do not depend on which CPU TensorFlow detects.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable

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
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr)
            return 130

    return wrapper
