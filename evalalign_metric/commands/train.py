"""``evalalign train --config FILE``: fine-tune (or train from scratch) a judge on annotations.

The configuration (JSON or YAML, see :mod:`evalalign_metric.training.config`) names the data, the protocol,
the starting judge (or the sizes of a new one), LoRA or full fine-tuning, the schedule, augmentations,
pseudo-labelling and an optional Hub upload. A rerun with the same output folder resumes from its latest
checkpoint. Several GPUs: ``accelerate launch -m evalalign_metric.commands.train --config FILE``.

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser(); register(parser.add_subparsers())
    >>> args = parser.parse_args(["train", "--config", "run.yaml", "--max-steps", "10", "--no-resume"])
    >>> args.config, args.max_steps, args.resume
    ('run.yaml', 10, False)
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from evalalign_metric.commands._args import add_command, add_progress_options


def register(subparsers) -> None:
    parser = add_command(subparsers, "train",
                         help="train or fine-tune a judge on annotations (LoRA or full; resumable)", doc=__doc__)
    parser.add_argument("--config", required=True, help="training configuration (.json, .yaml or .yml)")
    parser.add_argument("--output-dir", default=None, help="override the config's output_dir")
    parser.add_argument("--max-steps", type=int, default=None, help="override training.max_steps")
    parser.add_argument("--no-resume", dest="resume", action="store_false", default=True,
                        help="start over even if the output folder holds checkpoints")
    add_progress_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import os

    from evalalign_metric.errors import InputError
    from evalalign_metric.training.config import load_config
    from evalalign_metric.training.trainer import Trainer

    config = load_config(args.config)
    if args.output_dir is not None:
        config = dataclasses.replace(config, output_dir=os.path.abspath(os.path.expanduser(args.output_dir)))
    training = config.training
    if args.max_steps is not None:
        if args.max_steps < 1:
            raise InputError(f"--max-steps must be >= 1; got {args.max_steps}")
        training = dataclasses.replace(training, max_steps=args.max_steps)
    if not args.resume:
        training = dataclasses.replace(training, resume=False)
    config = dataclasses.replace(config, training=training)
    try:
        result = Trainer(config, progress=args.progress).run()
    finally:
        _end_process_group()
    if result.is_main_process:
        print(result.summary())
    return 0


def _end_process_group() -> None:
    """Tear down the process group a ``torchrun`` / ``accelerate launch`` run started (this command owns its
    process): left to interpreter shutdown, gloo's threads can outlive it and abort the process (SIGABRT)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def main(argv: list[str] | None = None) -> int:
    """Entry point for ``python -m evalalign_metric.commands.train`` (and ``accelerate launch -m ...``)."""
    from evalalign_metric.cli import main as cli_main

    return cli_main(["train", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
