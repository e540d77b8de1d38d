"""``evalalign rank DIR_A DIR_B ...``: rank text-to-image models by their generated images.

Each folder is scored as ``evalalign score`` would (into ``DIR/evalalign/results.jsonl``, reusing and
continuing what is already there); a results ``.jsonl`` file can be given instead of a folder. Models are
ranked on the prompts all of them were scored on: images of other prompts are left out, with a warning
saying how many per model (models sharing no prompt are refused). Prints the
leaderboard (overall, faithfulness, alignment and every aspect, with bootstrap 95% intervals over images)
and writes ``report.html``, ``report.png`` and ``leaderboard.json`` into ``--out-dir``.

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser(); register(parser.add_subparsers())
    >>> args = parser.parse_args(["rank", "sd15/", "sdxl/", "--names", "SD 1.5", "SDXL"])
    >>> args.sources, args.names, args.out_dir, args.n_resamples
    (['sd15/', 'sdxl/'], ['SD 1.5', 'SDXL'], 'evalalign_report', 2000)
"""

from __future__ import annotations

import argparse
import json
import sys

from evalalign_metric.commands._args import add_command, add_format_option, positive_int
from evalalign_metric.commands.score import (
    DEMO_JUDGE_NOTE,
    add_scoring_arguments,
    check_skipped,
    quiet_transformers,
    score_kwargs,
)
from evalalign_metric.errors import InputError


def _confidence(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number strictly between 0 and 1, got {text!r}")
    return value


def register(subparsers) -> None:
    parser = add_command(
        subparsers, "rank", doc=__doc__,
        help="rank text-to-image models from their image folders; writes report.html and report.png",
    )
    parser.add_argument(
        "sources",
        nargs="+",
        metavar="DIR",
        help="one images folder (or results .jsonl) per text-to-image model",
    )
    parser.add_argument(
        "--names", nargs="+", default=None, help="display names, one per DIR (default: folder names)"
    )
    parser.add_argument(
        "--out-dir", default="evalalign_report", help="where the report goes (default evalalign_report)"
    )
    add_scoring_arguments(parser)
    parser.add_argument(
        "--n-resamples", type=positive_int, default=2000, help="bootstrap resamples (default 2000)"
    )
    parser.add_argument("--confidence", type=_confidence, default=0.95, help="interval level (default 0.95)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("--no-plot", action="store_true", help="skip report.png (no matplotlib needed)")
    add_format_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from evalalign_metric.report.ranking import rank_models
    from evalalign_metric.report.text import format_leaderboard

    quiet_transformers()
    if args.names is not None and len(args.names) != len(args.sources):
        raise InputError(
            f"--names has {len(args.names)} name(s) for {len(args.sources)} folder(s); give one per folder"
        )
    outcome = rank_models(
        args.sources,
        names=args.names,
        out_dir=args.out_dir,
        score_kwargs=score_kwargs(args),
        n_resamples=args.n_resamples,
        confidence=args.confidence,
        seed=args.seed,
        plot=not args.no_plot,
    )
    if outcome.board is not None:
        if outcome.board.demo_judge:
            print(f"evalalign: {DEMO_JUDGE_NOTE}", file=sys.stderr)
        left_out = outcome.comparison.message()
        if left_out:
            print(f"evalalign rank: warning: {left_out}", file=sys.stderr)
        if args.format == "json":
            print(
                json.dumps(
                    {**outcome.board.as_dict(), "report": {k: str(v) for k, v in outcome.paths.items()}},
                    indent=1,
                )
            )
        else:
            print(format_leaderboard(outcome.board))
            print(f"compared on the {len(outcome.comparison.compared)} prompt(s) every model was scored on "
                  "(listed in leaderboard.json and report.html)")
            print("\nreport: " + ", ".join(str(p) for p in outcome.paths.values()))
    check_skipped(outcome.summaries.values(), args.allow_skipped, "rank")
    return 0
