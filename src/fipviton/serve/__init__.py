"""HTTP serving: a REST API (`POST /v1/try-on`, `GET /healthz`, OpenAPI at /openapi.json) and a web page at `/`.

`create_app(pipelines, config)` builds the FastAPI app around already-loaded pipelines; `fipviton serve` loads
the shipped models once and runs it with uvicorn. Limits (upload size, pixels, queue, timeout) are in
`ServeConfig`; try-ons run on a bounded `WorkerPool`, never on the event loop.
"""

from fipviton.serve.app import ApiError, create_app
from fipviton.serve.config import ServeConfig
from fipviton.serve.pool import JobTimeoutError, QueueFullError, WorkerPool

__all__ = ["ApiError", "JobTimeoutError", "QueueFullError", "ServeConfig", "WorkerPool", "create_app"]
