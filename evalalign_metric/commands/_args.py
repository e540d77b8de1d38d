"""Command-line pieces shared by the ``evalalign`` subcommands, so each common option is defined once.

Example:
    >>> import argparse
    >>> parser = add_command(argparse.ArgumentParser().add_subparsers(), "demo", help="try it",
    ...                      doc="What it does.\\n\\nExample:\\n    >>> ...")
    >>> parser.description
    'What it does.'
    >>> add_device_option(parser); add_progress_options(parser); add_format_option(parser)
    >>> args = parser.parse_args(["--no-progress", "--format", "json"])
    >>> args.device, args.progress, args.format
    (None, False, 'json')
"""

from __future__ import annotations

import argparse


def add_command(subparsers, name: str, *, help: str, doc: str) -> argparse.ArgumentParser:
    """``subparsers.add_parser(name)`` described by ``doc`` (a command module's docstring) up to Example."""
    return subparsers.add_parser(
        name,
        help=help,
        description=doc.split("\n\nExample:")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def positive_int(text: str) -> int:
    """An argparse ``type``: a whole number >= 1.

    Example:
        >>> positive_int("8")
        8
        >>> positive_int("0")
        Traceback (most recent call last):
        ...
        argparse.ArgumentTypeError: expected a positive integer, got '0'
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def add_device_option(parser: argparse.ArgumentParser) -> None:
    """``--device`` (default ``None``: CUDA when available, else CPU)."""
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: CUDA if available)")


def add_progress_options(parser: argparse.ArgumentParser) -> None:
    """``--progress`` / ``--no-progress``: ``args.progress`` is ``True``, ``False`` or ``None`` (auto)."""
    progress = parser.add_mutually_exclusive_group()
    progress.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="always show the progress bar (default: only on a terminal)",
    )
    progress.add_argument("--no-progress", dest="progress", action="store_false", help="never show it")


def add_format_option(parser: argparse.ArgumentParser) -> None:
    """``--format table|json``: what the command prints (default ``table``)."""
    parser.add_argument(
        "--format", choices=["table", "json"], default="table", help="what to print (default table)"
    )
