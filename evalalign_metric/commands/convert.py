"""``evalalign convert SRC DST``: turn an original-format LLaVA checkpoint (e.g. the official EvalAlign
judges) into a native transformers folder that ``EvalAlignScore(model=DST)`` loads directly.

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser(); sub = parser.add_subparsers()
    >>> register(sub)
    >>> args = parser.parse_args(["convert", "in", "out", "--allow-pickle"])
    >>> args.src, args.dst, args.allow_pickle
    ('in', 'out', True)
"""

from __future__ import annotations

import argparse

_DTYPES = ("float16", "bfloat16", "float32")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="convert an original-format LLaVA checkpoint into a native transformers judge folder",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("src", help="folder of the original checkpoint, or a Hub repo id")
    parser.add_argument("dst", help="folder to create (must not exist or be empty)")
    parser.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit) when SRC is a repo id")
    parser.add_argument("--vision-tower", default=None, metavar="PATH",
                        help="local CLIP tower folder for mm_vision_tower (default: looked up by name)")
    parser.add_argument("--no-image-newline", action="store_true",
                        help="for spatial_unpad checkpoints, drop image_newline and build plain Llava (the "
                             "reference's batched-tensor path) for every question, instead of single-tile "
                             "LlavaNext that adds it to faithfulness questions only, as EvalAlign's scripts do")
    parser.add_argument("--allow-pickle", action="store_true",
                        help="accept .bin/.pt weights (pickle can run code when loaded; trust the source)")
    parser.add_argument("--dtype", choices=_DTYPES, default=None, help="cast the weights (default: keep)")
    parser.set_defaults(func=run)


def _check_repo_id(text: str, path) -> None:
    """Raise a clear error when SRC, not a folder here, cannot be a Hub repo id either (``./nosuch``)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    from evalalign_metric.errors import InputError

    if path.exists():
        raise InputError(f"SRC {text!r} is a file; expected the folder of an original LLaVA checkpoint or a Hub "
                         "repo id ('org/name')")
    try:
        validate_repo_id(text)
    except HFValidationError:
        raise InputError(f"SRC {text!r}: no such folder (expected the folder of an original LLaVA checkpoint, "
                         "or a Hub repo id 'org/name')") from None


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch

    from evalalign_metric.convert import convert_llava_checkpoint

    src = Path(args.src).expanduser()
    tower_resolver = None
    if not src.is_dir():
        from evalalign_metric.hub import download_original, tower_downloader

        _check_repo_id(args.src, src)

        src = download_original(args.src, revision=args.revision, allow_pickle=args.allow_pickle)
        tower_resolver = tower_downloader(allow_pickle=args.allow_pickle)
    dst = convert_llava_checkpoint(
        src, args.dst, vision_tower=args.vision_tower, keep_image_newline=not args.no_image_newline,
        allow_pickle=args.allow_pickle, dtype=getattr(torch, args.dtype) if args.dtype else None,
        tower_resolver=tower_resolver,
    )
    print(dst)
    return 0
