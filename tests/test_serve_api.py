"""REST API tests: `fipviton.serve.create_app` around the real pipeline, called in-process (httpx TestClient).

The pipeline is the real one with the shipped weights.
"""

from __future__ import annotations

import argparse
import base64
import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from fipviton.examples import example_pairs
from fipviton.serve import JobTimeoutError, QueueFullError, ServeConfig, WorkerPool, create_app

if TYPE_CHECKING:
    import httpx

    from fipviton.pipeline import TryOnPipeline

PAIR = example_pairs()[0]
MAP_NAMES = {"pose", "parsing", "body_parts", "person_mask", "garment_mask", "agnostic", "warped", "generated"}


@pytest.fixture(scope="module")
def pipeline() -> TryOnPipeline:
    from fipviton.cli.serve_commands import load_pipelines

    return load_pipelines(1, None, None, None)[0]


def make_client(pipeline: TryOnPipeline, **limits: float) -> TestClient:
    return TestClient(create_app([pipeline], ServeConfig(**limits)), raise_server_exceptions=False)


@pytest.fixture(scope="module")
def client(pipeline: TryOnPipeline) -> Iterator[TestClient]:
    # Small limits, so that "too large" inputs stay small in the test.
    with make_client(pipeline, max_upload_mb=1.0, max_pixels=4_000_000) as client:
        yield client


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def files(person: bytes | None = None, garment: bytes | None = None) -> dict[str, tuple[str, bytes, str]]:
    """Multipart files: the example pair unless replaced; None values drop nothing (see `post`)."""
    return {
        "person": ("person.jpg", PAIR.person.read_bytes() if person is None else person, "image/jpeg"),
        "garment": ("garment.jpg", PAIR.garment.read_bytes() if garment is None else garment, "image/jpeg"),
    }


def assert_error(response: httpx.Response, status: int, code: str, mentions: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "detail"}, body
    assert body["error"] == code, body
    assert mentions in str(body["detail"]), body


def decode_png(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    image.load()
    return image


@pytest.mark.slow
def test_try_on_returns_png_at_person_size(client: TestClient) -> None:
    response = client.post("/v1/try-on", files=files(), data={"category": "upper_body"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert "total;dur=" in response.headers["server-timing"]
    image = decode_png(response.content)
    assert image.size == Image.open(PAIR.person).size
    assert image.mode == "RGB"


@pytest.mark.slow
@pytest.mark.parametrize("how", ["query", "accept"])
def test_try_on_json_has_image_maps_and_timings(client: TestClient, how: str) -> None:
    url, headers = ("/v1/try-on?format=json", {}) if how == "query" else ("/v1/try-on", {"Accept": "application/json"})
    response = client.post(url, files=files(), data={"category": "upper_body"}, headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    width, height = Image.open(PAIR.person).size
    assert (body["width"], body["height"], body["category"]) == (width, height, "upper_body")
    assert decode_png(base64.b64decode(body["image"])).size == (width, height)
    assert set(body["maps"]) >= MAP_NAMES
    for data in body["maps"].values():
        assert max(decode_png(base64.b64decode(data)).size) <= 512  # ServeConfig.map_size
    assert body["timings"]["total"] > 0
    assert isinstance(body["warnings"], list)
    assert body["frame"] is None  # the example photo is framed like the training photos: no crop


@pytest.mark.slow
def test_category_defaults_to_upper_body_and_map_size_is_a_query(client: TestClient) -> None:
    response = client.post("/v1/try-on?format=json&map_size=128", files=files())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["category"] == "upper_body"
    assert max(decode_png(base64.b64decode(body["maps"]["parsing"])).size) == 128


@pytest.mark.slow
@pytest.mark.parametrize("field", ["sharp_garment", "mirror_average"])
def test_pipeline_modes_are_form_fields(client: TestClient, field: str) -> None:
    """`sharp_garment` and `mirror_average` (true/false) switch that mode of the pipeline for one request; absent,
    the server's setting (off) holds; anything else is a 422. Either mode repaints the garment region only: the
    paste-back keeps most of the photo as it was."""
    results = {}
    for value in (None, "false", "true"):
        data = {"category": "upper_body"} | ({field: value} if value is not None else {})
        response = client.post("/v1/try-on", files=files(), data=data)
        assert response.status_code == 200, response.text
        results[value] = np.asarray(decode_png(response.content)).astype(int)
    assert np.array_equal(results[None], results["false"])
    changed = np.abs(results["true"] - results["false"]).max(axis=-1) > 0
    assert 0.001 < changed.mean() < 0.5, changed.mean()
    refused = client.post("/v1/try-on", files=files(), data={field: "maybe"})
    assert_error(refused, 422, "invalid_input", "maybe")


def truncated_jpeg() -> bytes:
    data = PAIR.person.read_bytes()
    return data[: len(data) // 3]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("case", "status", "code", "mentions"),
    [
        ("no person field", 422, "missing_field", "person"),
        ("no garment field", 422, "missing_field", "garment"),
        ("person as text", 422, "not_a_file", "person"),
        ("wrong category", 422, "invalid_category", "shoes"),
        ("not an image", 422, "invalid_image", "person: not an image"),
        ("truncated", 422, "invalid_image", "person: image data is truncated"),
        ("empty file", 422, "invalid_image", "garment: the file is empty"),
        ("tiny image", 422, "invalid_image", "person: image is too small"),
        ("too many pixels", 422, "invalid_image", "person: image has too many pixels"),
        ("file too large", 413, "upload_too_large", "garment"),
        ("no person in photo", 422, "no_person", "no person found"),
        ("bad format query", 422, "invalid_request", "query.format"),
        ("not multipart", 422, "missing_field", "multipart/form-data"),
    ],
)
def test_bad_input_is_a_4xx_json_error(client: TestClient, case: str, status: int, code: str, mentions: str) -> None:
    url, data, upload = "/v1/try-on", {"category": "upper_body"}, files()
    if case == "no person field":
        del upload["person"]
    elif case == "no garment field":
        del upload["garment"]
    elif case == "person as text":
        del upload["person"]
        data["person"] = "a photo of me"
    elif case == "wrong category":
        data["category"] = "shoes"
    elif case == "not an image":
        upload = files(person=b"%PDF-1.4 this is not a picture\n" * 20)
    elif case == "truncated":
        upload = files(person=truncated_jpeg())
    elif case == "empty file":
        upload = files(garment=b"")
    elif case == "tiny image":
        upload = files(person=png_bytes(np.zeros((10, 10, 3), np.uint8)))
    elif case == "too many pixels":
        upload = files(person=png_bytes(np.zeros((2000, 2500, 3), np.uint8)))  # 5 MP > the client's 4 MP
    elif case == "file too large":
        upload = files(garment=b"\xff" * (1024 * 1024 + 1))  # the client allows 1 MiB per image
    elif case == "no person in photo":
        upload = files(person=png_bytes(np.full((1024, 768, 3), 128, np.uint8)))
    elif case == "bad format query":
        url = "/v1/try-on?format=xml"
    elif case == "not multipart":
        response = client.post(url, json={"person": "x", "garment": "y"})
        assert_error(response, status, code, mentions)
        return
    assert_error(client.post(url, files=upload, data=data), status, code, mentions)


def test_body_over_the_limit_is_refused_from_its_length(client: TestClient) -> None:
    body = b"x" * (3 * 1024 * 1024)  # over 2 x 1 MiB + framing: refused before parsing
    response = client.post("/v1/try-on", content=body, headers={"Content-Type": "multipart/form-data; boundary=zzz"})
    assert_error(response, 413, "upload_too_large", "1 MiB")


def test_unknown_paths_and_methods_are_json_errors(client: TestClient) -> None:
    assert_error(client.get("/v1/nope"), 404, "not_found", "Not Found")
    assert_error(client.get("/v1/try-on"), 405, "method_not_allowed", "Method Not Allowed")
    assert_error(client.get("/v1/examples/person/..%2F..%2Fpipeline.py"), 404, "not_found", "")
    assert_error(client.get("/v1/examples/shoes/x.jpg"), 422, "invalid_request", "path.kind")


def test_health_openapi_docs_page_and_examples(client: TestClient) -> None:
    health = client.get("/healthz").json()
    assert health["status"] == "ok"
    assert (health["workers"], health["capacity"], health["in_flight"]) == (1, 1 + health["queue_size"], 0)
    assert health["defaults"] == {"sharp_garment": False, "mirror_average": False}

    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/v1/try-on"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert set(body["required"]) == {"person", "garment"}
    assert body["properties"]["category"]["enum"] == ["upper_body", "lower_body", "dresses"]

    docs = client.get("/docs")
    assert docs.status_code == 200 and "/v1/try-on" in docs.text and "/openapi.json" in docs.text
    assert "cdn" not in docs.text.lower()
    assert client.get("/redoc").status_code == 404

    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for asset in ("/static/app.js", "/static/style.css"):
        assert asset in page.text
        text = client.get(asset).text
        # Offline: the page may not load anything from another host.
        assert "http://" not in text and "https://" not in text, asset
    assert "https://" not in page.text and "http://" not in page.text

    pairs = client.get("/v1/examples").json()["pairs"]
    assert len(pairs) == len(example_pairs())
    for pair in pairs[:1]:
        for kind in ("person", "garment"):
            image = client.get(pair[kind])
            assert image.status_code == 200 and Image.open(io.BytesIO(image.content)).size[0] > 0


@pytest.mark.slow
def test_full_queue_is_503_with_retry_after(pipeline: TryOnPipeline) -> None:
    with make_client(pipeline, workers=1, queue_size=0) as client:
        release = threading.Event()
        blocker = client.app.state.pool.submit(release.wait)  # the only worker is now busy
        try:
            response = client.post("/v1/try-on", files=files())
            assert_error(response, 503, "busy", "capacity 1")
            assert int(response.headers["retry-after"]) >= 1
            assert client.get("/healthz").json()["in_flight"] == 1  # the health check still answers
        finally:
            release.set()
            blocker.result(timeout=10)
        assert client.post("/v1/try-on", files=files()).status_code == 200


@pytest.mark.slow
def test_request_over_the_timeout_is_504(pipeline: TryOnPipeline) -> None:
    with make_client(pipeline, workers=1, queue_size=1, timeout_s=0.3) as client:
        release = threading.Event()
        blocker = client.app.state.pool.submit(release.wait)
        try:
            start = time.perf_counter()
            response = client.post("/v1/try-on", files=files())
            assert_error(response, 504, "timeout", "0.3 s")
            assert time.perf_counter() - start < 5
        finally:
            release.set()
            blocker.result(timeout=10)


def test_pool_bounds_admission_and_frees_slots_when_jobs_end() -> None:
    pool = WorkerPool(workers=1, queue_size=1)
    release = threading.Event()
    try:
        running = pool.submit(release.wait)
        waiting = pool.submit(lambda: 42)
        assert pool.in_flight == 2
        with pytest.raises(QueueFullError) as full:
            pool.submit(lambda: 0)
        assert (full.value.in_flight, full.value.capacity) == (2, 2) and full.value.retry_after_s >= 1
        release.set()
        assert running.result(timeout=5) is True and waiting.result(timeout=5) == 42
        deadline = time.monotonic() + 5
        while pool.in_flight and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pool.in_flight == 0
    finally:
        release.set()
        pool.shutdown()


def test_pool_timeout_drops_a_waiting_job() -> None:
    import asyncio

    pool = WorkerPool(workers=1, queue_size=1)
    release = threading.Event()
    ran: list[bool] = []
    try:
        pool.submit(release.wait)
        with pytest.raises(JobTimeoutError):
            asyncio.run(pool.run(lambda: ran.append(True), timeout_s=0.1))
        assert pool.in_flight == 1  # the waiting job was cancelled and its slot freed; the blocker still runs
        release.set()
        time.sleep(0.2)
        assert ran == []
    finally:
        release.set()
        pool.shutdown()


def test_serve_without_weights_exits_with_a_clear_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fipviton.cli import main

    assert main(["serve", "--tryon", str(tmp_path / "missing"), "--port", "1"]) == 1
    err = capsys.readouterr().err
    assert "cannot serve without model weights" in err and "missing" in err
    assert main(["serve", "--workers", "0"]) == 2
    assert "workers must be at least 1" in capsys.readouterr().err


def test_serve_command_is_registered() -> None:
    from fipviton.cli import build_parser

    args = build_parser().parse_args(["serve", "--port", "9000", "--queue-size", "2", "--timeout", "5"])
    assert (args.port, args.queue_size, args.timeout_s, args.host) == (9000, 2, 5.0, "127.0.0.1")
    assert isinstance(args, argparse.Namespace) and not args.sharp_garment
    assert build_parser().parse_args(["serve", "--sharp-garment"]).sharp_garment
    assert not args.mirror_average and build_parser().parse_args(["serve", "--mirror-average"]).mirror_average


def test_served_pipelines_can_keep_the_garment_sharp() -> None:
    from fipviton.cli.serve_commands import load_pipelines

    (sharp,) = load_pipelines(1, None, None, None, warmup=False, sharp_garment=True)
    (plain,) = load_pipelines(1, None, None, None, warmup=False)
    assert sharp.sharp_garment and not plain.sharp_garment
    (mirror,) = load_pipelines(1, None, None, None, warmup=False, mirror_average=True)
    assert mirror.mirror_average and not plain.mirror_average and not mirror.sharp_garment
    # /healthz says what a request gets without the fields (the web page starts its checkboxes from it).
    with make_client(mirror) as client:
        assert client.get("/healthz").json()["defaults"] == {"sharp_garment": False, "mirror_average": True}


def test_result_json_sends_the_person_crop() -> None:
    import json

    from fipviton.serve.encode import result_json

    image = np.zeros((8, 6, 3), np.uint8)
    body = json.loads(result_json(image, {}, [], {"total": 0.1}, "upper_body", 0, (1, 2, 6, 4)))
    assert body["frame"] == {"top": 1, "left": 2, "height": 6, "width": 4}
    assert json.loads(result_json(image, {}, [], {}, "upper_body", 0))["frame"] is None
