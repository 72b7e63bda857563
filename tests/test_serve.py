"""skinlesion-serve through FastAPI's TestClient: predict's answer, every bad input, the 503 path, the token."""

import io
import json
import logging
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import yaml
from fastapi.testclient import TestClient
from PIL import Image

from skinlesion.core.errors import DataError
from skinlesion.serve.app import Settings, create_app
from skinlesion.serve.cli import MAX_PIXELS, main, parse_args, read_token
from skinlesion.serve.served import TARGET_SPECIFICITY, ServedModel, summary_line

from .conftest import REPO, corrupt_jpeg
from .test_predict import CLASSES, save_model

PATIENT_NAME = "jane-doe-1970-01-01.jpg"


def settings(folder: Path, **changes) -> Settings:
    base = Settings(str(folder), 16, 5.0, 64, 20.0, MAX_PIXELS, 8, None)
    return Settings(**(base.to_dict() | changes))


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    return save_model(tmp_path_factory.mktemp("served"))


@pytest.fixture(scope="module")
def served(model_path: Path) -> ServedModel:
    return ServedModel.load(model_path.parent)


def client(served: ServedModel, **changes) -> TestClient:
    return TestClient(create_app(settings(served.folder, **changes), served))


def jpeg(size=(40, 30), seed=0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=95)
    return out.getvalue()


def post(c: TestClient, data: bytes, name: str = "x.jpg", field: str = "file", **kwargs):
    return c.post("/predict", files={field: (name, data, "image/jpeg")}, **kwargs)


def test_an_upload_gets_exactly_the_row_predict_writes(served: ServedModel, model_path: Path, ham_dir: Path, capsys):
    from skinlesion.deploy.predict import main as predict

    image = sorted(ham_dir.rglob("*.jpg"))[0]
    assert predict([str(model_path), str(image), "--format", "json"]) == 0
    expected = json.loads(capsys.readouterr().out)["predictions"][0]
    with client(served) as c:
        got = post(c, image.read_bytes(), image.name)
        assert got.status_code == 200
        row = got.json()
        assert set(row) == set(expected)
        assert {k: v for k, v in row.items() if k != "path"} == {k: v for k, v in expected.items() if k != "path"}
        assert row["path"] == image.name  # the name the client gave; predict's is the path it was given
        explained = post(c, image.read_bytes(), image.name, params={"explain": "true"}).json()
        overlay = explained.pop("gradcam_png")
        assert explained == row and overlay.startswith("data:image/png;base64,")
        assert c.get("/health").json()["status"] == "ready"
        assert c.get("/model").json()["classes"] == CLASSES


def test_health_model_schema_and_no_cdn_docs(served: ServedModel):
    with client(served) as c:
        assert c.get("/docs").status_code == 404 and c.get("/redoc").status_code == 404
        schema = c.get("/openapi.json").json()
        body = schema["paths"]["/predict"]["post"]["requestBody"]["content"]
        assert body["multipart/form-data"]["schema"]["required"] == ["file"]
        page = c.get("/")
        assert page.status_code == 200 and "default-src 'none'" in page.headers["content-security-policy"]
        for remote in ("http://", "https://", "//cdn", "@import"):
            assert remote not in page.text, remote


def bomb_png(side: int) -> bytes:
    """A real PNG header of ``side`` x ``side`` pixels, a few hundred bytes: decoding it would allocate side**2 * 3."""
    out = io.BytesIO()
    Image.new("L", (side, side)).save(out, format="PNG", optimize=True)
    return out.getvalue()


def test_each_bad_input_is_a_one_line_4xx_and_the_server_goes_on(served: ServedModel):
    whole = jpeg((64, 64))
    cases = [
        (post, (b"\x00" * 300_000,), 413, "over the limit of 0.25 MB"),  # announced by Content-Length
        (post, (b"this is a text file, named like a JPEG",), 422, "not_an_image"),
        (post, (whole[: len(whole) // 2],), 422, "truncated"),
        (post, (corrupt_jpeg(whole),), 422, "corrupt"),
        (post, (bomb_png(8000),), 413, "too_large"),  # 64 M pixels, over the limit of 40 M
        (post, (b"",), 400, "empty"),
        (post, (whole, "x.jpg", "image"), 400, "no field 'file'"),
        (post, (jpeg((4, 40)),), 422, "too_small"),
    ]
    with client(served, max_upload_mb=0.25) as c:
        for send, args, status, words in cases:
            answer = send(c, *args)
            assert answer.status_code == status, (words, answer.text)
            assert list(answer.json()) == ["error"] and words in answer.json()["error"]
            assert "\n" not in answer.text
            assert post(c, whole).status_code == 200  # still serving
        assert c.post("/predict", content=b"raw bytes").status_code == 415
        two = c.post("/predict", files=[("file", ("a.jpg", whole)), ("file", ("b.jpg", whole))])
        assert two.status_code == 400 and "one image per request" in two.json()["error"]


def test_the_size_limit_holds_while_the_body_streams_without_a_length(served: ServedModel):
    import asyncio

    from skinlesion.serve.upload import UploadError, read_upload

    read = []

    async def chunks():  # no Content-Length (a chunked body): refused at the first chunk past the limit
        yield b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="x.jpg"\r\n\r\n'
        for _ in range(100):
            read.append(1)
            yield b"\xff" * 65536

    with pytest.raises(UploadError, match="over the limit of 0.25 MB") as info:
        asyncio.run(read_upload("multipart/form-data; boundary=b0undary", chunks(), 2**18))
    assert info.value.status == 413 and len(read) == 4  # 4 x 64 KiB read, not the 6.5 MB sent
    with client(served, max_upload_mb=0.25) as c:
        body = (b"--b0undary\r\n" + b"\xff" * 300_000 for _ in range(1))  # a generator: sent chunked
        answer = c.post("/predict", content=body, headers={"content-type": "multipart/form-data; boundary=b0undary"})
        assert answer.status_code == 413 and "0.25 MB" in answer.json()["error"]
        assert post(c, jpeg()).status_code == 200


def test_uploads_never_touch_the_disk_and_logs_hold_no_name_or_bytes(served: ServedModel, monkeypatch, caplog):
    def refuse(*args, **kwargs):
        raise AssertionError("an upload was about to be written to a temporary file")

    for name in ("SpooledTemporaryFile", "TemporaryFile", "NamedTemporaryFile", "mkstemp"):
        monkeypatch.setattr(tempfile, name, refuse)
    big = jpeg((1500, 1200))  # over the 1 MB Starlette spools to disk
    assert len(big) > 2**20
    caplog.set_level(logging.DEBUG)
    with client(served) as c:
        assert post(c, big, PATIENT_NAME).status_code == 200
        assert post(c, b"not an image", PATIENT_NAME).status_code == 422
        assert PATIENT_NAME not in post(c, b"not an image", PATIENT_NAME).text  # the error does not echo it
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "batch of 1" in logged and "jane" not in logged and "\\xff" not in logged


def test_a_full_queue_answers_503_with_retry_after_and_the_waiting_ones_finish(served: ServedModel):
    entered, release = threading.Event(), threading.Event()

    def blocked(uploads):
        entered.set()
        assert release.wait(30)
        return served.run_batch(uploads)

    with client(served, queue=2, max_batch=1) as c, ThreadPoolExecutor(3) as pool:
        batcher = c.app.state.batcher
        batcher.run_batch = blocked
        first = pool.submit(post, c, jpeg())
        assert entered.wait(30)  # taken by the model thread: the queue is empty again
        waiting = [pool.submit(post, c, jpeg(seed=i)) for i in (1, 2)]
        deadline = time.monotonic() + 30
        while batcher.waiting < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        refused = post(c, jpeg())
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert "busy" in refused.json()["error"]
        release.set()
        assert [f.result().status_code for f in [first, *waiting]] == [200, 200, 200]


def test_concurrent_requests_share_one_model_call(served: ServedModel):
    sizes = []
    images = [jpeg(seed=i) for i in range(8)]
    with client(served, window_ms=300.0, max_batch=8) as c, ThreadPoolExecutor(8) as pool:
        c.app.state.batcher.run_batch = lambda uploads: sizes.append(len(uploads)) or served.run_batch(uploads)
        together = list(pool.map(lambda data: post(c, data).json(), images))
        alone = [post(c, data).json() for data in images]
    assert sum(sizes) == 16 and max(sizes) > 1  # the 8 sent together went in fewer than 8 calls
    for a, b in zip(together, alone, strict=True):
        assert a["predicted"] == b["predicted"]
        np.testing.assert_allclose([a[f"p_{k}"] for k in CLASSES], [b[f"p_{k}"] for k in CLASSES], atol=1e-5)


def test_the_token_guards_the_api_but_not_the_page_or_health(served: ServedModel):
    with client(served, token="s3cret") as c:
        assert c.get("/health").status_code == 200 and c.get("/").status_code == 200
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret"}):
            answer = post(c, jpeg(), headers=headers)
            assert answer.status_code == 401 and answer.json() == {"error": "missing or wrong bearer token"}
            assert c.get("/model", headers=headers).status_code == 401
        ok = {"Authorization": "Bearer s3cret"}
        assert post(c, jpeg(), headers=ok).status_code == 200 and c.get("/model", headers=ok).status_code == 200


def test_off_loopback_a_token_is_required_unless_no_auth(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.delenv("SKINLESION_SERVE_TOKEN", raising=False)
    assert read_token(parse_args(["m"])) is None  # loopback: none needed
    with pytest.raises(DataError, match="reachable from other machines"):
        read_token(parse_args(["m", "--host", "0.0.0.0"]))
    assert read_token(parse_args(["m", "--host", "0.0.0.0", "--no-auth"])) is None
    assert "warning: --no-auth" in capsys.readouterr().err
    (tmp_path / "token").write_text("from-file\n")
    assert read_token(parse_args(["m", "--host", "10.0.0.5", "--token-file", str(tmp_path / "token")])) == "from-file"
    monkeypatch.setenv("SKINLESION_SERVE_TOKEN", "from-env")
    assert read_token(parse_args(["m", "--host", "::"])) == "from-env"
    (tmp_path / "empty").write_text("")
    with pytest.raises(DataError, match="is empty"):
        read_token(parse_args(["m", "--token-file", str(tmp_path / "empty")]))


def test_a_labels_json_of_another_model_refuses_to_start_with_predicts_error(model_path: Path, tmp_path: Path, capsys):
    from skinlesion.core.labels import LabelMap

    folder = tmp_path / "wrong"
    folder.mkdir()
    (folder / "model.keras").write_bytes(model_path.read_bytes())
    LabelMap(tuple(reversed(CLASSES)), 32).write(folder)
    from skinlesion.deploy.predict import main as predict

    (tmp_path / "x.jpg").write_bytes(jpeg())
    assert predict([str(folder / "model.keras"), str(tmp_path / "x.jpg")]) == 2
    predicts = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert main([str(folder)]) == 2  # before any port is opened
    serves = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert serves == predicts and "does not belong to" in serves[0]


def test_the_model_summary_and_operating_point_come_from_the_description(model_path: Path, tmp_path: Path):
    from skinlesion.deploy.description import SCHEMA_ID, write_description

    folder = tmp_path / "described"
    folder.mkdir()
    for name in ("model.keras", "labels.json"):
        (folder / name).write_bytes((model_path.parent / name).read_bytes())
    fixed = {"threshold": 0.3, "test": {"sensitivity": {"value": 0.8}, "specificity": {"value": 0.85}}}
    write_description(
        folder,
        {
            "schema": SCHEMA_ID,
            "model": {"name": "mobilenet", "backbone": "mobilenet", "seed": 0},
            "version": {"skinlesion": "0", "tensorflow": "2", "keras": "3"},
            "classes": CLASSES,
            "data": {"source": "synthetic"},
            "temperature": 1.5,
            "evaluation": {
                "metrics": {"test": {"balanced_accuracy": 0.7}, "ci": {"balanced_accuracy": {"low": 0.6, "high": 0.8}}},
                "operating_points": {
                    "malignant_vs_benign": {
                        "classes": ["mel", "bcc"],
                        "fixed": {f"sensitivity_at_specificity_{TARGET_SPECIFICITY}": fixed},
                    }
                },
                "selection": {"rule": "auto", "candidates": []},
            },
        },
    )
    info = ServedModel.load(folder).info()
    assert info["operating_point"]["threshold"] == 0.3 and info["operating_point"]["classes"] == ["mel", "bcc"]
    assert info["backbone"] == "mobilenet" and info["seed"] == 0 and info["temperature"] == 1.5
    assert info["summary"] == (
        "mobilenet seed 0 (single run, 7 classes), trained on synthetic data; "
        "test balanced accuracy 0.700 (0.600–0.800)."
    )
    assert summary_line({}, "old") == "old: no metadata.json (a folder from before models described themselves)"


def test_the_command_defaults_are_the_params_yaml_values():
    from skinlesion.deploy.predict import MIN_SIDE

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    assert MAX_PIXELS == params["split"]["max_pixels"] and MIN_SIDE == params["split"]["min_side"]
    assert TARGET_SPECIFICITY == params["evaluate"]["target_specificity"]


def test_console_script_runs_the_server_cli():
    import importlib
    import tomllib

    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, attribute = scripts["skinlesion-serve"].partition(":")
    assert getattr(importlib.import_module(module), attribute) is main


def test_uploads_waiting_to_be_decoded_are_bounded_too(served: ServedModel, monkeypatch):
    """--queue bounds the images ahead of the model; uploads being read or decoded before it are capped at
    the queue, the batch on the model and the decoder threads, so they cannot pile up in memory."""
    from skinlesion.serve import app as app_module

    entered, release, decode = threading.Semaphore(0), threading.Event(), app_module._decode

    def slow_decode(*args):
        entered.release()
        assert release.wait(30)
        return decode(*args)

    monkeypatch.setattr(app_module, "_decode", slow_decode)
    with client(served, queue=1, max_batch=1) as c, ThreadPoolExecutor(4) as pool:
        limit = 1 + 1 + app_module.DECODE_THREADS  # queue + batch + decoders
        held = [pool.submit(post, c, jpeg(seed=i)) for i in range(limit)]
        for _ in range(app_module.DECODE_THREADS):
            assert entered.acquire(timeout=30)  # both decoder threads busy, the other uploads wait for them
        deadline = time.monotonic() + 30
        while c.app.state.batcher.waiting + app_module.DECODE_THREADS < limit and time.monotonic() < deadline:
            refused = post(c, jpeg(seed=9))
            if refused.status_code == 503:
                break
            time.sleep(0.01)
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        release.set()
        assert all(f.result().status_code in (200, 503) for f in held)
        assert post(c, jpeg()).status_code == 200  # and it goes on


def test_a_failing_model_call_is_a_json_500_and_a_failing_overlay_loses_only_the_overlay(served: ServedModel):
    with client(served) as c:
        batcher, run = c.app.state.batcher, c.app.state.batcher.run_batch

        def broken(_uploads):
            raise RuntimeError("out of memory")

        batcher.run_batch = broken
        failed = post(c, jpeg())
        assert (
            failed.status_code == 500 and list(failed.json()) == ["error"] and "RuntimeError" in failed.json()["error"]
        )
        batcher.run_batch = run
        assert post(c, jpeg()).status_code == 200
        cam = served._cam
        try:
            served._cam = lambda _images: (_ for _ in ()).throw(ValueError("no convolution to explain"))
            explained = post(c, jpeg(), params={"explain": "true"})
        finally:
            served._cam = cam
        assert explained.status_code == 200 and "explain_error" in explained.json()
        assert "gradcam_png" not in explained.json() and explained.json()["predicted"] in CLASSES
