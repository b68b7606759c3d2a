"""The FastAPI app: `POST /v1/try-on`, `GET /healthz`, the bundled examples, the web page and a plain API page.

Every error is JSON `{"error": CODE, "detail": MESSAGE}` with a 4xx status when the request is at fault:

| status | error | when |
|---|---|---|
| 413 | upload_too_large | request body or one image file over the upload limit |
| 422 | missing_field, not_a_file, invalid_category, invalid_image, no_person, invalid_input | bad input |
| 422 | invalid_request | a query parameter out of range |
| 400 | bad_request | malformed multipart body |
| 404, 405 | not_found, method_not_allowed | unknown path or method |
| 503 | busy | every worker busy and the queue full (with Retry-After) |
| 504 | timeout | the request took longer than the configured timeout (queue wait included) |
| 500 | internal_error, server_misconfigured | a bug or missing weights: never caused by the upload alone |
"""

from __future__ import annotations

import html
import io
import logging
import queue
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from http import HTTPStatus
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from PIL import Image
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Message

from fipviton import __version__
from fipviton.data.sample import Category
from fipviton.errors import FipvitonError, ImageInputError, NoPersonError, WeightsError
from fipviton.imageio import load_image
from fipviton.serve.config import ServeConfig
from fipviton.serve.encode import encode_png, result_json, server_timing
from fipviton.serve.pool import JobTimeoutError, QueueFullError, WorkerPool

log = logging.getLogger("fipviton.serve")

WEB_DIR = Path(__file__).resolve().parents[1] / "web"
CATEGORIES = tuple(c.value for c in Category)


class TryOnOutput(Protocol):
    """What the API needs from `fipviton.pipeline.TryOnResult`."""

    image: np.ndarray
    warnings: list[str]
    timings: dict[str, float]
    frame: tuple[int, int, int, int] | None

    def maps(self) -> dict[str, np.ndarray]: ...


class TryOnCallable(Protocol):
    """What the API needs from `fipviton.pipeline.TryOnPipeline`: (person, garment, category) -> result, and the
    modes a call gets when it does not choose them."""

    sharp_garment: bool
    mirror_average: bool

    def __call__(
        self,
        person: np.ndarray,
        garment: np.ndarray,
        category: str = ...,
        sharp_garment: bool | None = ...,
        mirror_average: bool | None = ...,
    ) -> TryOnOutput: ...


class ApiError(Exception):
    """An error answered as JSON `{"error": code, "detail": detail}` with `status`."""

    def __init__(self, status: int, code: str, detail: Any, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = dict(headers or {})


class _BodyTooLarge(Exception):
    """Raised from inside the multipart parser's receive() once the body passes the limit."""


def error_response(status: int, code: str, detail: Any, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """The one shape of every error body."""
    return JSONResponse({"error": code, "detail": detail}, status_code=status, headers=dict(headers or {}))


# OpenAPI description of the multipart body: the handler parses the form itself (to bound its size while it
# streams in and to word every error), so FastAPI cannot infer it from parameters.
TRY_ON_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["person", "garment"],
                    "properties": {
                        "person": {"type": "string", "format": "binary", "description": "photo of a person"},
                        "garment": {"type": "string", "format": "binary", "description": "product photo"},
                        "category": {"type": "string", "enum": list(CATEGORIES), "default": "upper_body"},
                        "sharp_garment": {
                            "type": "boolean",
                            "description": "keep the garment's fine detail that the try-on network blurs (crisper "
                            "prints; default: the server's `serve --sharp-garment`)",
                        },
                        "mirror_average": {
                            "type": "boolean",
                            "description": "average the try-on of the photo and of its mirror image (a little "
                            "closer to the photo on average, a softer picture, about 1.2x the time; default: the "
                            "server's `serve --mirror-average`)",
                        },
                    },
                }
            }
        },
    },
    "responses": {
        "200": {
            "description": "PNG of the person wearing the garment (person's resolution), or JSON with ?format=json",
            "content": {
                "image/png": {},
                "application/json": {
                    "example": {
                        "image": "<base64 PNG>",
                        "width": 768,
                        "height": 1024,
                        "category": "upper_body",
                        "maps": {"parsing": "<base64 PNG>"},
                        "warnings": [],
                        "timings": {"total": 0.74},
                        "frame": {"top": 96, "left": 252, "height": 648, "width": 486},
                    }
                },
            },
        },
        "413": {"description": "upload too large"},
        "422": {"description": "bad input: missing field, wrong category, unusable image, no person"},
        "503": {"description": "server busy (Retry-After says when to retry)"},
        "504": {"description": "timeout"},
    },
}


def create_app(pipelines: Sequence[TryOnCallable], config: ServeConfig | None = None) -> FastAPI:
    """Build the app around already-loaded pipelines, one per worker (`len(pipelines) == config.workers`).

    Loading happens before the app exists (see `fipviton.cli.serve_commands`), so that missing weights stop the
    command with a clear message instead of failing the first request.
    """
    config = config or ServeConfig(workers=len(pipelines))
    if len(pipelines) != config.workers:
        raise ValueError(f"need one pipeline per worker: {config.workers} workers, {len(pipelines)} pipelines")
    pool = WorkerPool(config.workers, config.queue_size)
    # Each worker thread takes a pipeline for the duration of a job: no two threads share one pipeline's state.
    free: queue.SimpleQueue[TryOnCallable] = queue.SimpleQueue()
    for pipeline in pipelines:
        free.put(pipeline)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        pool.shutdown()

    # /docs and /redoc of FastAPI load their scripts from a CDN; this app must work offline, so /docs is a
    # plain page rendered here from the same OpenAPI document.
    app = FastAPI(
        title="fipviton",
        version=__version__,
        description="Virtual try-on: a person photo and a garment photo in, the person wearing the garment out.",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.config = config
    app.state.pool = pool
    _install_error_handlers(app)

    @app.post("/v1/try-on", summary="Try a garment on a person", openapi_extra=TRY_ON_BODY)
    async def try_on(
        request: Request,
        format: Literal["png", "json"] | None = Query(
            None, description="png (default) or json (base64 PNG + intermediate maps); or send Accept"
        ),
        map_size: int | None = Query(
            None, ge=0, le=4096, description="longest side of the maps in JSON (0: full size; default 512)"
        ),
    ) -> Response:
        """Multipart `person` and `garment` files and a `category` field -> the try-on."""
        want_json = _wants_json(format, request.headers.get("accept", ""))
        form = await _read_form(request, config)
        try:
            person_bytes = await _read_upload(form, "person", config)
            garment_bytes = await _read_upload(form, "garment", config)
            category = _read_category(form)
            sharp_garment = _read_flag(form, "sharp_garment")
            mirror_average = _read_flag(form, "mirror_average")
        finally:
            await form.close()
        _check_pixels(person_bytes, "person", config.max_pixels)
        _check_pixels(garment_bytes, "garment", config.max_pixels)
        size = config.map_size if map_size is None else map_size

        def job() -> tuple[bytes, str, dict[str, str]]:
            # Decoding runs here, on a worker thread, so the event loop stays free for other requests.
            person = load_image(person_bytes, "person")
            garment = load_image(garment_bytes, "garment")
            pipeline = free.get()
            try:
                result = pipeline(
                    person, garment, category=category, sharp_garment=sharp_garment, mirror_average=mirror_average
                )
                maps = result.maps() if want_json else {}
            finally:
                free.put(pipeline)
            headers = {"Server-Timing": server_timing(result.timings)}
            if want_json:
                body = result_json(result.image, maps, result.warnings, result.timings, category, size, result.frame)
                return body, "application/json", headers
            if result.warnings:
                headers["X-Fipviton-Warnings"] = "; ".join(result.warnings).encode("ascii", "replace").decode()
            return encode_png(result.image), "image/png", headers

        body, media_type, headers = await _run(pool, job, config)
        return Response(content=body, media_type=media_type, headers=headers)

    # What a request gets when it leaves a mode's form field out (`serve --sharp-garment` / `--mirror-average`): the
    # pipelines' own settings, the same for every worker. The web page starts its checkboxes from them.
    defaults = {"sharp_garment": pipelines[0].sharp_garment, "mirror_average": pipelines[0].mirror_average}

    @app.get("/healthz", summary="Liveness, load and the server's defaults")
    async def healthz() -> dict[str, Any]:
        """`status` is "ok" whenever the server answers: models are loaded before it starts listening. `defaults`:
        the modes a request gets without their form fields."""
        return {
            "status": "ok",
            "version": __version__,
            "workers": config.workers,
            "queue_size": config.queue_size,
            "in_flight": pool.in_flight,
            "capacity": pool.capacity,
            "defaults": defaults,
        }

    @app.get("/v1/examples", summary="The bundled example pairs")
    async def examples() -> dict[str, Any]:
        """Each pair: its category and the URLs of its person and garment photos."""
        pairs = _example_files()[0]
        return {"pairs": pairs}

    @app.get("/v1/examples/{kind}/{filename}", summary="One bundled example photo")
    async def example_file(kind: Literal["person", "garment"], filename: str) -> FileResponse:
        path = _example_files()[1].get((kind, filename))
        if path is None:
            raise ApiError(404, "not_found", f"no bundled {kind} photo named {filename!r}")
        return FileResponse(path, headers={"Cache-Control": "public, max-age=3600"})

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(WEB_DIR / "index.html", media_type="text/html", headers={"Cache-Control": "no-cache"})

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(render_api_page(app.openapi()))

    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")
    return app


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.detail, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = [
            {"where": ".".join(str(part) for part in e.get("loc", ())), "problem": e.get("msg", "")}
            for e in exc.errors()
        ]
        return error_response(422, "invalid_request", detail)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}.get(
            exc.status_code, HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_")
        )
        return error_response(exc.status_code, code, exc.detail, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error", exc_info=exc)
        return error_response(500, "internal_error", "unexpected server error; the server log has the details")


def _wants_json(format: str | None, accept: str) -> bool:
    """?format= wins; otherwise JSON only when the client asks for it and not for PNG (browsers send */*)."""
    if format is not None:
        return format == "json"
    return "application/json" in accept and "image/png" not in accept


async def _read_form(request: Request, config: ServeConfig) -> FormData:
    """Parse the multipart body, refusing it (413) as soon as it passes `config.max_body_bytes`."""
    limit = config.max_body_bytes
    too_large = ApiError(
        413,
        "upload_too_large",
        f"request body over {limit:,} bytes: each image may be at most {config.max_upload_mb:g} MiB",
    )
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise too_large
    received = 0

    async def receive() -> Message:
        # Counting here bounds chunked uploads too, which carry no Content-Length.
        nonlocal received
        message = await request.receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise _BodyTooLarge
        return message

    try:
        return await Request(request.scope, receive).form(max_files=2, max_fields=4)
    except _BodyTooLarge:
        raise too_large from None


async def _read_upload(form: FormData, field: str, config: ServeConfig) -> bytes:
    value = form.get(field)
    if value is None:
        raise ApiError(
            422, "missing_field", f"{field}: missing; send it as a file in a multipart/form-data body (field {field!r})"
        )
    if not isinstance(value, UploadFile):
        raise ApiError(422, "not_a_file", f"{field}: must be a file upload, not a text field")
    data = await value.read()
    if len(data) > config.max_upload_bytes:
        raise ApiError(
            413, "upload_too_large", f"{field}: {len(data):,} bytes; the limit is {config.max_upload_mb:g} MiB an image"
        )
    if not data:
        raise ApiError(422, "invalid_image", f"{field}: the file is empty")
    return data


def _read_category(form: FormData) -> str:
    value = form.get("category", Category.UPPER_BODY.value)
    if not isinstance(value, str) or value.strip() not in CATEGORIES:
        shown = value if isinstance(value, str) else "a file"
        raise ApiError(422, "invalid_category", f"category: {shown!r} is not one of {', '.join(CATEGORIES)}")
    return value.strip()


_TRUE, _FALSE = ("true", "1", "on", "yes"), ("false", "0", "off", "no")


def _read_flag(form: FormData, field: str) -> bool | None:
    """An optional boolean form field (true/false, 1/0, on/off, yes/no); None when absent or empty."""
    value = form.get(field)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    text = value.strip().lower() if isinstance(value, str) else None
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    shown = value if isinstance(value, str) else "a file"
    raise ApiError(422, "invalid_input", f"{field}: {shown!r} is not true or false")


def _check_pixels(data: bytes, field: str, max_pixels: int) -> None:
    """Refuse an image over `max_pixels` from its header alone, before anything decodes it."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except Exception:
        # Not readable as an image: `load_image` says why, with its own wording, when the job decodes it.
        return
    if width * height > max_pixels:
        raise ApiError(
            422,
            "invalid_image",
            f"{field}: image has too many pixels ({width}x{height}; this server accepts at most {max_pixels:,})",
        )


async def _run(
    pool: WorkerPool, job: Callable[[], tuple[bytes, str, dict[str, str]]], config: ServeConfig
) -> tuple[bytes, str, dict[str, str]]:
    """Run a try-on job on the pool and turn every failure into an `ApiError`."""
    try:
        return await pool.run(job, config.timeout_s)
    except QueueFullError as exc:
        raise ApiError(
            503,
            "busy",
            f"server busy: {exc.in_flight} requests in progress or waiting (capacity {exc.capacity}); retry later",
            headers={"Retry-After": str(exc.retry_after_s)},
        ) from exc
    except JobTimeoutError as exc:
        raise ApiError(504, "timeout", f"the try-on took longer than {exc.timeout_s:g} s") from exc
    except ImageInputError as exc:
        raise ApiError(422, "invalid_image", str(exc)) from exc
    except NoPersonError as exc:
        raise ApiError(422, "no_person", str(exc)) from exc
    except WeightsError as exc:
        log.error("weights problem while serving: %s", exc)
        raise ApiError(500, "server_misconfigured", "the server's model weights are missing or broken") from exc
    except FipvitonError as exc:
        raise ApiError(422, "invalid_input", str(exc)) from exc


def _example_files() -> tuple[list[dict[str, str]], dict[tuple[str, str], Path]]:
    """The bundled pairs as JSON-ready dicts, and (kind, filename) -> path of every photo they use."""
    from fipviton.examples import example_pairs

    pairs: list[dict[str, str]] = []
    files: dict[tuple[str, str], Path] = {}
    for pair in example_pairs():
        files[("person", pair.person.name)] = pair.person
        files[("garment", pair.garment.name)] = pair.garment
        pairs.append(
            {
                "name": pair.name,
                "category": pair.category.value,
                "person": f"/v1/examples/person/{pair.person.name}",
                "garment": f"/v1/examples/garment/{pair.garment.name}",
            }
        )
    return pairs, files


def render_api_page(spec: Mapping[str, Any]) -> str:
    """A self-contained HTML page listing the API's operations from its OpenAPI document (no scripts, no CDN)."""
    rows = []
    for path, operations in spec.get("paths", {}).items():
        for method, operation in operations.items():
            params = ", ".join(p["name"] for p in operation.get("parameters", []))
            body = operation.get("requestBody", {}).get("content", {})
            fields = ""
            for media, content in body.items():
                props = content.get("schema", {}).get("properties", {})
                fields = f"{media}: {', '.join(props)}"
            rows.append(
                "<tr><td><code>{}</code></td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>".format(
                    method.upper(),
                    html.escape(path),
                    html.escape(operation.get("summary", "")),
                    html.escape(params),
                    html.escape(fields),
                )
            )
    title = html.escape(f"{spec.get('info', {}).get('title', 'API')} {spec.get('info', {}).get('version', '')}")
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{t} API</title>"
        "<link rel='stylesheet' href='/static/style.css'></head><body class='docs'><main>"
        "<h1>{t} API</h1><p>The machine-readable description is <a href='/openapi.json'>/openapi.json</a>. "
        'Errors are JSON <code>{{"error": CODE, "detail": MESSAGE}}</code>. '
        "<a href='/'>Back to the try-on page</a>.</p>"
        "<table><thead><tr><th>method</th><th>path</th><th>what</th><th>query</th><th>body</th></tr></thead>"
        "<tbody>{rows}</tbody></table></main></body></html>"
    ).format(t=title, rows="".join(rows))
