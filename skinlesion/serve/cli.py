"""Serve a model folder over HTTP: an API for a clinic's software and a page for people.

Usage::

    skinlesion-serve MODEL_DIR [--host 127.0.0.1] [--port 8000] [--workers 1] [--max-batch 16]
        [--batch-window-ms 5] [--queue 64] [--max-upload-mb 20] [--max-pixels N] [--min-side 8]
        [--token-file FILE] [--no-auth]

Binds to loopback unless ``--host`` says otherwise; on any other address every API call needs
``Authorization: Bearer <token>``, the token read from the environment variable ``SKINLESION_SERVE_TOKEN``
or from ``--token-file``, and the server refuses to start without one unless ``--no-auth`` (warned).
The folder is loaded and checked as ``skinlesion-predict`` checks it, before the port is opened: a
labels.json of another model is the same one-line error. README, "Serve the model", shows how to scale out.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys
from pathlib import Path

from skinlesion.core.errors import DataError, cli
from skinlesion.deploy.predict import MIN_SIDE, UsageParser, positive_int
from skinlesion.serve.app import Settings

TOKEN_ENV = "SKINLESION_SERVE_TOKEN"
# How --workers processes get the settings: each builds its own app from them (uvicorn's factory).
SETTINGS_ENV = "SKINLESION_SERVE_SETTINGS"
# --max-pixels's default: params.yaml's split.max_pixels (a test checks that they agree), the limit split
# refuses decompression bombs at; a model folder does not record it, so the command carries it.
MAX_PIXELS = 40_000_000


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a number > 0 (got {text!r})")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = UsageParser(prog="skinlesion-serve", description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", help="a model folder: model.keras with labels.json (and metadata.json)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback: this machine only)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=positive_int, default=1, help="processes, each with its own model")
    parser.add_argument("--max-batch", type=positive_int, default=16, help="images per model call, at most")
    parser.add_argument("--batch-window-ms", type=_positive_float, default=5.0, help="how long a batch waits")
    parser.add_argument("--queue", type=positive_int, default=64, help="images waiting, at most; then 503")
    parser.add_argument("--max-upload-mb", type=_positive_float, default=20.0, help="largest request body")
    parser.add_argument("--max-pixels", type=positive_int, default=MAX_PIXELS, help="decompression-bomb limit")
    parser.add_argument("--min-side", type=positive_int, default=MIN_SIDE, help="shortest image side accepted")
    parser.add_argument("--token-file", help=f"a file holding the bearer token (or set {TOKEN_ENV})")
    parser.add_argument("--no-auth", action="store_true", help="serve a non-loopback address without a token")
    return parser.parse_args(argv)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def read_token(args: argparse.Namespace) -> str | None:
    """The bearer token: required off loopback unless ``--no-auth``; None when none is needed or given.

    Raises:
        DataError: When the token file cannot be read or is empty, or none is given for a non-loopback address.
    """
    token = os.environ.get(TOKEN_ENV, "").strip() or None
    if args.token_file:
        try:
            token = Path(args.token_file).read_text(encoding="utf-8").strip() or None
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"--token-file {args.token_file}: cannot read it ({exc}); give a readable file") from None
        if token is None:
            raise DataError(f"--token-file {args.token_file} is empty; write the token into it")
    if token is None and not is_loopback(args.host):
        if not args.no_auth:
            raise DataError(
                f"--host {args.host} is reachable from other machines: set {TOKEN_ENV} or give --token-file, "
                "so every request needs the token (or --no-auth to serve without one, e.g. behind a proxy that checks)"
            )
        print(f"warning: --no-auth: anyone who can reach {args.host}:{args.port} can use the model", file=sys.stderr)
    return token


def settings_of(args: argparse.Namespace) -> Settings:
    """The server's settings, the token checked (:func:`read_token`)."""
    return Settings(
        model_dir=args.model_dir,
        max_batch=args.max_batch,
        window_ms=args.batch_window_ms,
        queue=args.queue,
        max_upload_mb=args.max_upload_mb,
        max_pixels=args.max_pixels,
        min_side=args.min_side,
        token=read_token(args),
    )


def worker_app():
    """The app of one ``--workers`` process, from the settings the command put in the environment."""
    _log_batches()
    return _app(Settings(**json.loads(os.environ[SETTINGS_ENV])))


def _log_batches() -> None:
    """The server's own lines (batch sizes and times, refusals by status) beside uvicorn's."""
    import logging

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
    logger = logging.getLogger("skinlesion.serve")
    logger.setLevel(logging.INFO)
    if not logger.handlers:
        logger.addHandler(handler)


def _app(settings: Settings, served=None):
    from skinlesion.serve.app import create_app

    return create_app(settings, served)


@cli
def main(argv: list[str] | None = None) -> int:
    """Run the server until interrupted; returns the exit status."""
    import uvicorn

    from skinlesion.serve.served import ServedModel

    args = parse_args(argv)
    settings = settings_of(args)
    _log_batches()
    served = ServedModel.load(settings.model_dir)  # refused here, one line, before any port is opened
    print(f"serving {served.info()['summary']}", file=sys.stderr)
    options = {"host": args.host, "port": args.port, "log_level": "info", "server_header": False}
    if args.workers == 1:
        uvicorn.run(_app(settings, served), **options)
        return 0
    del served  # each worker process loads its own
    os.environ[SETTINGS_ENV] = json.dumps(settings.to_dict())
    uvicorn.run("skinlesion.serve.cli:worker_app", factory=True, workers=args.workers, **options)
    return 0


if __name__ == "__main__":
    sys.exit(main())
