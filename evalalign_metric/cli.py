"""Judge text-to-image outputs with a multimodal LLM: score image folders, rank models, check agreement.

The ``evalalign`` command. Each subcommand lives in ``evalalign_metric.commands.<name>`` and exposes
``register(subparsers)``; errors of this library print one line and exit 2, without a traceback.

Example:
    >>> main(["--version"])  # doctest: +ELLIPSIS
    evalalign-metric ...
    0
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from evalalign_metric.errors import EvalAlignError

# Subcommand modules under evalalign_metric.commands, in the order `evalalign --help` lists them.
COMMANDS = ["demo", "score", "rank", "agree", "elements", "convert", "train", "serve", "judges"]


def build_parser() -> argparse.ArgumentParser:
    from evalalign_metric import __version__

    parser = argparse.ArgumentParser(prog="evalalign", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"evalalign_metric.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"evalalign_metric.commands.{name}":
                continue  # not part of this build
            raise
        module.register(subparsers)
    parser.set_defaults(version_string=f"evalalign-metric {__version__}")
    return parser


def _warning_line(command: str):
    """``warnings.showwarning`` for the command line: this library's warnings as one
    ``evalalign CMD: warning: ...`` line on stderr (no file name, line or source), others as usual."""
    from evalalign_metric.judge.protocols import UntrainedProtocolWarning
    from evalalign_metric.registry import DemoJudgeWarning

    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, (UntrainedProtocolWarning, DemoJudgeWarning)):
            print(f"evalalign {command}: warning: {message}", file=sys.stderr)
        else:
            default(message, category, filename, lineno, file, line)

    return show


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        print(args.version_string)
        return 0
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _warning_line(args.command)
            return int(args.func(args) or 0)
    except EvalAlignError as exc:
        print(f"evalalign {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and closed: not an error of ours
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print(f"evalalign {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
