"""The `fipviton` command line.

Every module in this package that defines `register(groups)` adds its commands. `groups` maps "" to the
top-level subparsers and "data", "train", "eval" to those groups' subparsers. A command stores its handler
as `func(args) -> int` (the exit code). Heavy imports (torch, mediapipe) happen inside handlers, so that
`fipviton --help` stays fast.

Exit codes: 0 success, 1 the input or data had problems, 2 usage errors (argparse's own convention).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from fipviton import __version__
from fipviton.cli._usage import USAGE_ERROR, UsageError
from fipviton.errors import FipvitonError

GROUPS = {
    "data": "dataset tools",
    "train": "train a model",
    "eval": "evaluate a model or the pipeline",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fipviton", description="Fast, identity-consistent virtual try-on.")
    parser.add_argument("--version", action="version", version=f"fipviton {__version__}")
    top = parser.add_subparsers(dest="command", metavar="COMMAND")
    top.required = True
    groups: dict[str, argparse._SubParsersAction] = {"": top}
    for name, help_text in GROUPS.items():
        group = top.add_parser(name, help=help_text)
        sub = group.add_subparsers(dest="subcommand", metavar="SUBCOMMAND")
        sub.required = True
        groups[name] = sub
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):  # __main__ runs the CLI when imported
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(groups)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except FipvitonError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
