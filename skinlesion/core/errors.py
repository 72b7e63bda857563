"""User-facing errors and the stage entry-point wrapper that turns them into one-line messages."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable


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
    """Wrap a stage's ``main`` so that a :class:`SkinLesionError` ends it with one line and exit status 2.

    Args:
        main: The stage's entry point.

    Returns:
        The wrapped entry point, returning the process exit status.

    """

    @functools.wraps(main)
    def wrapper(*args, **kwargs) -> int:
        # Set before any stage imports TensorFlow (library code imports it lazily): readable stage logs.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        try:
            return main(*args, **kwargs) or 0
        except SkinLesionError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr)
            return 130

    return wrapper
