"""HTTP serving: a REST API (`POST /v1/try-on`, `GET /healthz`, OpenAPI at /openapi.json) and a web page at `/`.

`create_app(pipelines, config)` builds the FastAPI app around already-loaded pipelines; `fipviton serve` loads
the shipped models once and runs it with uvicorn. Limits (upload size, pixels, queue, timeout) are in
`ServeConfig`; try-ons run on a bounded `WorkerPool`, never on the event loop.
"""

from __future__ import annotations

import importlib
from typing import Any

from fipviton.serve.config import ServeConfig
from fipviton.serve.pool import JobTimeoutError, QueueFullError, WorkerPool

__all__ = ["ApiError", "JobTimeoutError", "QueueFullError", "ServeConfig", "WorkerPool", "create_app"]


def __getattr__(name: str) -> Any:
    # The app (FastAPI) is imported on first use only: the CLI registers `serve` with ServeConfig alone, so
    # every other command also runs where the web stack is not installed (a lent GPU machine's image).
    if name in ("ApiError", "create_app"):
        return getattr(importlib.import_module("fipviton.serve.app"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
