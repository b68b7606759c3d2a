"""`fipviton serve [--host 127.0.0.1] [--port 8000] ...`: the REST API and the web page (uvicorn).

The models are loaded, and run once on a bundled example pair (warm-up), before the server listens: missing
weights end the command with `error: ...` and exit code 1 instead of failing requests, and the first user does
not pay for the lazy initialisation (MediaPipe graphs, torch kernels). Try-ons run on `--workers` threads, each
with its own pipeline; `--queue-size` more requests may wait, further ones get 503 + Retry-After.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from fipviton.cli._postprocess_option import add_postprocess_option, postprocess_config
from fipviton.cli._usage import UsageError
from fipviton.errors import WeightsError

if TYPE_CHECKING:
    from fipviton.pipeline import TryOnPipeline
    from fipviton.postprocess import PostProcessConfig


# (flag, ServeConfig field, type, help): the server's limits, one option each.
LIMIT_OPTIONS = [
    ("--workers", "workers", int, "inference threads, each with its own models; 1 suits torch, which uses every core"),
    ("--queue-size", "queue_size", int, "requests that may wait for a worker; more get 503 + Retry-After"),
    ("--timeout", "timeout_s", float, "seconds a request may take, queue wait included; 504 after it"),
    ("--max-upload-mb", "max_upload_mb", float, "largest image file accepted, MiB per image; 413 above"),
    ("--max-pixels", "max_pixels", int, "largest image accepted, width x height; 422 above"),
    ("--map-size", "map_size", int, "longest side of the maps in JSON answers (0: full size)"),
]


def register(groups: dict[str, argparse._SubParsersAction]) -> None:
    from fipviton.serve.config import ServeConfig

    defaults = ServeConfig()
    parser = groups[""].add_parser(
        "serve",
        help="serve the REST API and the web page",
        description=(
            "Serve POST /v1/try-on (multipart person, garment, category), GET /healthz, /openapi.json, a plain "
            "API page at /docs and the try-on web page at /. Listens on loopback unless --host says otherwise."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    for flag, field, kind, text in LIMIT_OPTIONS:
        default = getattr(defaults, field)
        parser.add_argument(
            flag, dest=field, type=kind, default=default, metavar="N", help=f"{text} (default {default:,})"
        )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--parser", type=Path, default=None, metavar="DIR", help="human parser weights")
    parser.add_argument("--warp", type=Path, default=None, metavar="DIR", help="warping-module weights")
    parser.add_argument("--tryon", type=Path, default=None, metavar="DIR", help="try-on module weights")
    parser.add_argument("--no-warmup", action="store_true", help="skip the warm-up try-on at start-up")
    parser.add_argument(
        "--sharp-garment",
        action="store_true",
        help="keep the warped garment's fine detail that the try-on network blurs (try-on --sharp-garment)",
    )
    parser.add_argument(
        "--mirror-average",
        action="store_true",
        help="average the try-on of each photo and of its mirror image (try-on --mirror-average; ~1.2x the time)",
    )
    add_postprocess_option(parser, "for every request")
    parser.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"], help="uvicorn log"
    )
    parser.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from fipviton.serve import ServeConfig, create_app

    try:
        config = ServeConfig(**{field: getattr(args, field) for _, field, _, _ in LIMIT_OPTIONS})
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.threads is not None:
        import torch

        torch.set_num_threads(max(1, args.threads))
    pipelines = load_pipelines(
        args.workers,
        args.parser,
        args.warp,
        args.tryon,
        warmup=not args.no_warmup,
        sharp_garment=args.sharp_garment,
        mirror_average=args.mirror_average,
        postprocess=postprocess_config(args.postprocess),
    )
    app = create_app(pipelines, config)
    print(f"serving on http://{args.host}:{args.port}/ (API: /v1/try-on, /healthz, /openapi.json, /docs)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


def load_pipelines(
    count: int,
    parser: Path | None,
    warp: Path | None,
    tryon: Path | None,
    warmup: bool = True,
    sharp_garment: bool = False,
    mirror_average: bool = False,
    postprocess: PostProcessConfig | None = None,
) -> list[TryOnPipeline]:
    """`count` independent `TryOnPipeline`s (None folders: shipped weights; `sharp_garment`, `mirror_average`:
    those modes of the pipeline, the default of every request; `postprocess`: None for the default
    post-processing), each warmed up on an example pair.

    Raises `WeightsError` naming the missing weights: a server without models is a misconfiguration.
    """
    from fipviton.examples import example_pairs
    from fipviton.pipeline import TryOnPipeline

    pipelines = []
    for index in range(count):
        start = time.perf_counter()
        try:
            pipeline = TryOnPipeline.from_pretrained(
                parser=parser,
                warp=warp,
                tryon=tryon,
                sharp_garment=sharp_garment,
                mirror_average=mirror_average,
                postprocess=postprocess,
            )
        except WeightsError as exc:
            raise WeightsError(f"cannot serve without model weights: {exc} (see --parser, --warp, --tryon)") from exc
        if warmup:
            pair = example_pairs()[0]
            pipeline(pair.person, pair.garment, category=pair.category)
        print(f"pipeline {index + 1}/{count} ready in {time.perf_counter() - start:.1f} s", flush=True)
        pipelines.append(pipeline)
    return pipelines
