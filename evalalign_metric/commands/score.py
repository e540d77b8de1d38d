"""``evalalign score IMAGES_DIR``: score a folder of generated images, resumably, on one or many processes.

Writes ``results.jsonl`` (one line per image and question, written as each image is scored) and
``results.summary.json`` (the aggregates, and every file that was not scored, with the reason). Rerunning
the same command continues where a previous run stopped (after a crash, Ctrl-C, SIGKILL or a full disk),
rescoring nothing already written, and says how many images were already scored. Files that could not be
scored make the command exit with status 2 after writing its outputs, unless ``--allow-skipped`` is given.
Images in subfolders (not searched) and prompts without an image are named in a note on stderr and listed
in the summary; two images of one prompt id (``p0.png`` and ``p0.jpg``) are refused. One run at a time
writes a results file: a second run on the same ``--out`` stops at once, naming the first one's pid and host.

Elements: official prompts bring their official elements, prompts-file entries their own; an entry with
neither gets the offline parser's (``--no-parse-elements``: faithfulness questions only), except prompts of
the official faithfulness set, which the reference asks no alignment questions. The summary's
``counts.elements_from`` (and a line of the output) says how many prompts' elements came from each source.

Several GPUs or machines: launch the same command with torchrun (or ``accelerate launch --multi_gpu``,
which runs torchrun); each process scores every N-th image on its own GPU (cuda:LOCAL_RANK) and rank 0
merges the parts into one results file, identical to a one-process run:

  one machine, 4 GPUs:  torchrun --nproc_per_node 4 -m evalalign_metric.cli score IMAGES_DIR
  two machines with 4 GPUs each, the same command on both (R = 0 on HOST0, 1 on the other), one line:
      torchrun --nnodes 2 --node_rank R --nproc_per_node 4 --master_addr HOST0 --master_port 29500
               -m evalalign_metric.cli score IMAGES_DIR --out SHARED/results.jsonl
  CPU only:             OMP_NUM_THREADS=1 torchrun --nproc_per_node 2 -m evalalign_metric.cli score ...

Across machines, IMAGES_DIR and --out must be the same paths on a shared file system. An interrupted
multi-process run resumes with any number of processes.

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser(); register(parser.add_subparsers())
    >>> args = parser.parse_args(["score", "images/", "--prompts", "prompts.jsonl", "--batch-size", "4"])
    >>> args.prompts, args.batch_size, args.protocol, args.out, args.parse_elements
    ('prompts.jsonl', 4, 'evalalign', None, True)
    >>> parser.parse_args(["score", "images/", "--no-parse-elements"]).parse_elements
    False
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from evalalign_metric.commands._args import (
    add_command,
    add_device_option,
    add_format_option,
    add_progress_options,
    positive_int,
)
from evalalign_metric.commands._placement import add_placement_options, placement_kwargs
from evalalign_metric.errors import InputError

DEMO_JUDGE_NOTE = (
    "note: no trained judge is installed, so scores come from an UNTRAINED DEMO JUDGE (random "
    "weights): they exercise the pipeline and mean nothing; pass --model with a trained judge"
)


def add_scoring_arguments(parser: argparse.ArgumentParser) -> None:
    """The options shared by ``score`` and ``rank``."""
    parser.add_argument(
        "--prompts",
        default="official",
        metavar="FILE",
        help=(
            "official (default; the EvalAlign test sets, images named <prompt_id>.<ext>), "
            "official-alignment, official-faithfulness, a .json/.jsonl prompts file "
            "({prompt_id, prompt, elements?}) or a manifest ({image, prompt, elements?})"
        ),
    )
    parser.add_argument(
        "--protocol", default="evalalign", help="protocol name or .json/.yaml file (default evalalign)"
    )
    parser.add_argument(
        "--model",
        default=None,
        metavar="REF",
        help="judge checkpoint folder or reference (default: the embedded judge for --protocol)",
    )
    add_device_option(parser)
    parser.add_argument("--dtype", default=None, help="auto (default), float32, float16 or bfloat16")
    add_placement_options(parser)
    parser.add_argument(
        "--batch-size", type=positive_int, default=8, help="judge rows per forward pass (default 8)"
    )
    parser.add_argument(
        "--scoring",
        choices=["argmax", "expectation"],
        default=None,
        help="per-answer score used in the aggregates (default: the protocol's, argmax)",
    )
    parser.add_argument(
        "--no-parse-elements",
        dest="parse_elements",
        action="store_false",
        help=(
            "prompts-file entries without elements (and not official) are scored on faithfulness only; by "
            "default the offline parser extracts their elements (never for the official faithfulness set)"
        ),
    )
    parser.add_argument(
        "--allow-skipped",
        action="store_true",
        help="exit 0 even if some files were not scored (they are still listed in the summary)",
    )
    add_progress_options(parser)


def note(command: str):
    """A ``notify`` callback for :func:`~evalalign_metric.runs.score_folder`: ``evalalign CMD: note: ...`` on
    stderr."""

    def show(line: str) -> None:
        print(f"evalalign {command}: note: {line}", file=sys.stderr, flush=True)

    return show


def score_kwargs(args: argparse.Namespace) -> dict:
    """:func:`~evalalign_metric.runs.score_folder` keyword arguments from parsed options."""
    return {
        "notify": note(getattr(args, "command", None) or "score"),
        "prompts": args.prompts,
        "protocol": args.protocol,
        "model": args.model,
        "device": args.device,
        "dtype": args.dtype,
        "batch_size": args.batch_size,
        "scoring": args.scoring,
        "progress": args.progress,
        "parse_elements": args.parse_elements,
        **placement_kwargs(args),
    }


def quiet_transformers() -> None:
    """Hide transformers' own progress bars and info logs (the scoring bar is ours), and the warnings that
    importing torchao (the ``quantize`` extra; transformers imports it whenever it is installed) logs about
    kernels built for other machines."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    for name in ("torchao", "torch.utils._pytree"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:
        pass


def check_skipped(runs, allow: bool, command: str) -> None:
    """Raise (exit 2) when files were not scored, unless allowed (then a warning line)."""
    messages = [m for m in (r.skipped_message() for r in runs) if m]
    if not messages:
        return
    if allow:
        for message in messages:
            print(f"evalalign {command}: warning: {message}", file=sys.stderr)
        return
    raise InputError(f"{' | '.join(messages)} (results were written; pass --allow-skipped to accept this)")


def register(subparsers) -> None:
    parser = add_command(
        subparsers, "score", doc=__doc__,
        help="score a folder of generated images (resumable; torchrun/accelerate for several GPUs)",
    )
    parser.add_argument("images_dir", metavar="IMAGES_DIR", help="folder of generated images")
    add_scoring_arguments(parser)
    parser.add_argument(
        "--out",
        default=None,
        metavar="RESULTS.jsonl",
        help=(
            "results file (default IMAGES_DIR/evalalign/results.jsonl); the summary goes beside "
            "it as <name>.summary.json"
        ),
    )
    add_format_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from evalalign_metric.protocol import load_protocol
    from evalalign_metric.report.text import format_scores
    from evalalign_metric.runs import DistContext, score_folder
    from evalalign_metric.runs.summary import elements_line

    quiet_transformers()
    ctx = DistContext.from_env()
    summary = score_folder(args.images_dir, out=args.out, **score_kwargs(args))
    if ctx.is_main:
        if args.format == "json":
            print(json.dumps(summary.data, indent=1))
        else:
            counts = summary.data["counts"]
            print(
                f"{counts['images_scored']} image(s) scored ({summary.data['scoring']}); results: "
                f"{summary.results_path}; summary: {summary.summary_path}"
            )
            line = elements_line(counts.get("elements_from", {}))
            if line:
                print(line)
            print(format_scores(summary.scores, load_protocol(args.protocol)))
    check_skipped([summary], args.allow_skipped, "score")
    return 0
