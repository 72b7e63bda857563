"""The HTTP API and the page: ``POST /predict``, ``GET /health``, ``GET /model``, ``GET /`` (FastAPI).

Every error is one line of JSON, ``{"error": "..."}``, with a 4xx status for what the client sent, and the
server goes on serving. Nothing a client uploads is written to disk or logged: logs hold sizes, times and
statuses, never image bytes or file names.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from importlib import resources

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException

from skinlesion.core.images import ImageLoadError, decode_rgb, set_max_pixels
from skinlesion.deploy.forward import Forward
from skinlesion.serve.batcher import Batcher, Busy
from skinlesion.serve.served import ServedModel, Upload
from skinlesion.serve.upload import FIELD, UploadError, read_upload

LOG = logging.getLogger("skinlesion.serve")
# Threads that decode uploads (see _routes).
DECODE_THREADS = 2
# What a 503 tells the client to wait before trying again, in seconds.
RETRY_AFTER_S = 1
# Image problems that are the client's: 413 for an image over the pixel limit, 422 for the rest.
TOO_LARGE = "too_large"


@dataclass(frozen=True)
class Settings:
    """What a server runs with (the command's options); workers get it through the environment."""

    model_dir: str
    max_batch: int
    window_ms: float
    queue: int
    max_upload_mb: float
    max_pixels: int
    min_side: int
    token: str | None

    def to_dict(self) -> dict:
        """As plain JSON values."""
        return asdict(self)


PREDICT_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": [FIELD],
                "properties": {FIELD: {"type": "string", "format": "binary", "description": "one image"}},
            }
        }
    },
}


def create_app(settings: Settings, served: ServedModel | None = None) -> FastAPI:
    """The application; it loads ``settings.model_dir`` unless given the loaded model.

    FastAPI's ``/docs`` and ``/redoc`` pages load Swagger UI and ReDoc from a CDN: they are off (a page that
    breaks offline is worse than none); the schema they draw is served at ``/openapi.json``.
    """
    set_max_pixels(settings.max_pixels)  # the decompression-bomb limit split uses (split.max_pixels)
    served = served or ServedModel.load(settings.model_dir)
    served.warm_up()
    batcher = Batcher(served.run_batch, settings.max_batch, settings.window_ms / 1000, settings.queue)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(
        title="skinlesion-serve",
        # Not the model's summary: /openapi.json is open even where a token guards /model.
        description="Research software, not a diagnostic device. The model it serves: GET /model.",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.served, app.state.batcher, app.state.settings = served, batcher, settings
    _errors(app)
    _routes(app, served, batcher, settings)
    return app


def _errors(app: FastAPI) -> None:
    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()))
        return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid request')}"}, status_code=422)


def _authorise(request: Request, token: str | None) -> None:
    if token is None:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(given.strip().encode(), token.encode()):
        raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})


def _routes(app: FastAPI, served: ServedModel, batcher: Batcher, settings: Settings) -> None:
    page = resources.files("skinlesion.serve").joinpath("page.html").read_text(encoding="utf-8")
    # Decoding (Pillow, mostly without the GIL) in DECODE_THREADS threads of its own: asyncio's default pool
    # (cores + 4 threads) let 32 concurrent uploads crowd the event loop and the model thread off the GIL.
    decoder = ThreadPoolExecutor(max_workers=DECODE_THREADS, thread_name_prefix="decode")
    # Requests admitted at once: the queue, the batch on the model, and those being read or decoded. Checked
    # before reading a byte, so uploads waiting to be decoded cannot pile up in memory ahead of the queue.
    admitted = {"now": 0, "limit": settings.queue + settings.max_batch + DECODE_THREADS}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        # The page holds no data: it asks for the token itself when the API wants one.
        return HTMLResponse(page, headers={"Content-Security-Policy": CSP})

    @app.get("/health")
    async def health() -> dict:
        """Ready or not: the model is loaded and answering; how many images wait."""
        ready = batcher.task is not None and not batcher.task.done()
        return {"status": "ready" if ready else "not ready", "waiting": batcher.waiting, "queue": settings.queue}

    @app.get("/model")
    async def model(request: Request) -> dict:
        """Classes, input size, backbone, seed, temperature, the validated operating point, headline figures."""
        _authorise(request, settings.token)
        return served.info()

    @app.post("/predict", openapi_extra={"requestBody": PREDICT_BODY})
    async def predict(request: Request, explain: bool = False) -> JSONResponse:
        """One image (multipart field ``file``): exactly the row ``skinlesion-predict --format json`` gives for it.

        With ``explain=true`` the answer also has ``gradcam_png``, the Grad-CAM overlay as a PNG data URL.
        """
        _authorise(request, settings.token)
        limit = int(settings.max_upload_mb * 2**20)
        if admitted["now"] >= admitted["limit"]:
            return _busy(settings.queue)
        admitted["now"] += 1
        try:
            _check_length(request, limit)
            data, name = await read_upload(request.headers.get("content-type"), request.stream(), limit)
            job = functools.partial(_decode, data, name, served.forward, settings.min_side, explain)
            upload = await asyncio.get_running_loop().run_in_executor(decoder, job)
            del data
            row = await batcher.submit(upload)
        except UploadError as exc:
            return _error(exc.status, str(exc))
        except ImageLoadError as exc:
            return _error(413 if exc.reason == TOO_LARGE else 422, f"{exc.reason}: {exc.detail}")
        except Busy:
            return _busy(settings.queue)
        except Exception as exc:  # the model failed on the batch: this request fails, the server goes on
            LOG.error("the model failed on a batch (%s)", type(exc).__name__)  # no message: it can quote pixels
            return _error(500, f"the model failed on this image's batch ({type(exc).__name__}); retry or report it")
        finally:
            admitted["now"] -= 1
        return JSONResponse(row)


def _busy(queue: int) -> JSONResponse:
    headers = {"Retry-After": str(RETRY_AFTER_S)}
    return _error(503, f"busy: {queue} images already waiting (--queue); retry", headers)


def _check_length(request: Request, limit: int) -> None:
    """Refuse a body that announces itself over the limit before reading a byte of it."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise UploadError(413, f"upload over the limit of {limit / 2**20:g} MB (--max-upload-mb)")


def _decode(data: bytes, name: str, forward: Forward, min_side: int, explain: bool) -> Upload:
    """Decode in memory; error messages say "upload", never the client's file name."""
    import numpy as np

    image = decode_rgb(data, min_side)
    return Upload(name, forward.pixels(image), np.asarray(image) if explain else None, explain)


def _error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    LOG.info("refused with %d", status)  # the status only: a message can quote what the client sent
    return JSONResponse({"error": message}, status_code=status, headers=headers)


# The page runs its own inline script and style, and talks to this server only: nothing from the network.
CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data: blob:; "
    "connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
)
