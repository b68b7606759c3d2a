"""`--postprocess NAME=VALUE`, shared by `try-on`, `serve` and `eval pipeline`: any field of the post-processing's
`PostProcessConfig` (`fipviton.postprocess`), e.g. `restore_identity=false` (the paper's ablation of the conditional
block) or `backdrop_tolerance=0`. A bad name or value is a usage error (exit 2). No `register`: the leading
underscore keeps `fipviton.cli.build_parser` from importing it.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fipviton.postprocess import PostProcessConfig


def _override(text: str) -> str:
    """One NAME=VALUE text, checked now so that argparse refuses it with exit 2; kept as text for the command line."""
    from fipviton.postprocess import config_from_overrides

    try:
        config_from_overrides([text])
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return text


def add_postprocess_option(parser: argparse.ArgumentParser, purpose: str) -> None:
    """Add the repeatable `--postprocess NAME=VALUE` (stored as a list of texts in `args.postprocess`)."""
    parser.add_argument(
        "--postprocess",
        type=_override,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help=f"set a field of the post-processing's PostProcessConfig, {purpose} (repeatable), e.g. "
        "restore_identity=false, backdrop_tolerance=0, blend=feather",
    )


def postprocess_config(overrides: list[str]) -> PostProcessConfig | None:
    """The config the overrides ask for, or None (the pipeline's default) when there are none."""
    from fipviton.postprocess import config_from_overrides

    return config_from_overrides(overrides) if overrides else None
