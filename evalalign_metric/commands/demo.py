"""``evalalign demo``: the whole pipeline on a small image set drawn on the spot, offline, in a minute.

Draws ten synthetic shape scenes for each of two pretend text-to-image models (``painter`` draws each
prompt as written; ``scribbler`` gets part of it wrong and draws torn, distorted shapes), scores them under
both shipped protocols, each with its default judge, prints the two leaderboards and writes ``report.html``
and ``report.png`` (EvalAlign's questions, the embedded judge ``assets/judge``) and ``imatch/report.html``
and ``imatch/report.png`` (iMatch's overall 15-level match and per-element yes/no questions, the embedded
iMatch judge ``assets/judge-imatch``). The embedded judges were trained on such scenes (their
``README.md``); they know nothing about photographs. Without them (a source tree where they were removed),
the default judge is a tiny untrained one and the output says so. Without a progress bar (stderr not a
terminal, or ``--no-progress``), one line per stage on stderr says what the demo is doing and on how many
images.

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser(); register(parser.add_subparsers())
    >>> parser.parse_args(["demo", "--out-dir", "here"]).out_dir
    'here'
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from evalalign_metric.commands._args import add_command, add_device_option, add_progress_options
from evalalign_metric.commands.score import DEMO_JUDGE_NOTE, quiet_transformers

PROTOCOL_TITLES = {"evalalign": "EvalAlign", "imatch": "iMatch"}  # the protocols scored, in order, as printed


def register(subparsers) -> None:
    parser = add_command(
        subparsers, "demo", doc=__doc__,
        help="score a small bundled image set and write a report (offline; start here)",
    )
    parser.add_argument(
        "--out-dir",
        default="evalalign_demo",
        help="where images, results and report go (default evalalign_demo)",
    )
    add_device_option(parser)
    parser.add_argument("--n-resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")
    add_progress_options(parser)
    parser.set_defaults(func=run)


def stage_printer(progress: bool | None):
    """``say(text)``: ``evalalign demo: text`` on stderr when no progress bar shows the demo at work (``progress``
    ``False``, or ``None`` with stderr not a terminal, as tqdm decides); silent otherwise.

    Example:
        >>> import contextlib, io
        >>> with contextlib.redirect_stderr(io.StringIO()) as err:
        ...     stage_printer(False)("drawing 20 images"); stage_printer(True)("hidden")
        >>> err.getvalue()
        'evalalign demo: drawing 20 images\\n'
    """
    shown = sys.stderr.isatty() if progress is None else progress

    def say(text: str) -> None:
        if not shown:
            print(f"evalalign demo: {text}", file=sys.stderr, flush=True)

    return say


def run(args: argparse.Namespace) -> int:
    say = stage_printer(args.progress)
    # Said before the imports below: importing torch and transformers takes seconds on a small machine.
    say("starting: importing torch and transformers, loading the embedded judges")
    from evalalign_metric.errors import InputError
    from evalalign_metric.report import build_leaderboard, format_leaderboard, load_run, write_report
    from evalalign_metric.runs import default_judge, score_folder
    from evalalign_metric.runs.demo_set import N_PROMPTS, PROMPTS_FILES, write_demo_images
    from evalalign_metric.runs.identity import model_fingerprint

    quiet_transformers()
    out_dir = Path(args.out_dir).expanduser()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--out-dir {args.out_dir!r} cannot be created: {exc.strerror or exc}") from None
    if args.n_resamples < 0:
        raise InputError(f"--n-resamples must be >= 0; got {args.n_resamples}")
    judges = {protocol: default_judge(protocol) for protocol in PROTOCOL_TITLES}
    untrained = any(not judge.trained for judge in judges.values())
    if untrained:
        print(f"evalalign demo: {DEMO_JUDGE_NOTE}", file=sys.stderr)
    say(f"drawing {N_PROMPTS} scenes for each of 2 pretend text-to-image models into {out_dir / 'images'}")
    folders = write_demo_images(out_dir / "images")
    for protocol, judge in judges.items():
        tag = model_fingerprint(judge.path)[:10]  # a new judge starts new results files, not refusing the old
        report_dir = out_dir if protocol == "evalalign" else out_dir / protocol
        suffix = "" if protocol == "evalalign" else f"-{protocol}"
        runs, results = [], []
        for name, folder in folders.items():
            named = judge.path.name if judge.trained else "the untrained demo judge"
            say(f"{PROTOCOL_TITLES[protocol]} protocol: scoring {name}'s {N_PROMPTS} images (judge: {named})")
            result = score_folder(
                folder,
                prompts=out_dir / "images" / PROMPTS_FILES[protocol],
                model=judge.path,
                protocol=protocol,
                out=out_dir / "results" / f"{name}-{tag}{suffix}.jsonl",
                device=args.device,
                progress=args.progress,
            )
            runs.append(load_run(result.results_path, name, keys=result.scored_images))
            results.append(str(result.results_path))
        say(f"{PROTOCOL_TITLES[protocol]} protocol: leaderboard of {len(runs)} models over "
            f"{sum(r.num_images for r in runs)} images ({args.n_resamples} bootstrap resamples), report into "
            f"{report_dir}")
        board = build_leaderboard(
            runs, n_resamples=args.n_resamples, seed=0, demo_judge=not judge.trained, results=results
        )
        paths = write_report(board, report_dir)
        print(f"{PROTOCOL_TITLES[protocol]} protocol (judge: {named})\n{format_leaderboard(board)}")
        print(f"report: {paths['html']}\nchart:  {paths['png']}\n")
    print(f"images: {out_dir / 'images'}")
    if untrained:
        print(
            "These scores come from an UNTRAINED DEMO JUDGE (random weights): they show the pipeline and the "
            "report, not the quality of the images."
        )
    return 0
