"""``--quantize``, ``--device-map`` and ``--max-memory``: how a command loads its judge (quantized, sharded or
offloaded; see :func:`evalalign_metric.judge.load_judge`).

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser(); add_placement_options(parser)
    >>> placement_kwargs(parser.parse_args(["--quantize", "int8", "--max-memory", "0=20GiB,cpu=60GiB"]))
    {'quantize': 'int8', 'device_map': None, 'max_memory': {0: '20GiB', 'cpu': '60GiB'}}
"""

from __future__ import annotations

import argparse

from evalalign_metric.errors import JudgeLoadError

# The values of evalalign_metric.judge.quantization.QUANTIZE_MODES and judge.placement.DEVICE_MAP_STRATEGIES,
# written out so that building the command line imports no torch (a test checks they agree).
QUANTIZE_CHOICES = ("int8", "4bit")
DEVICE_MAP_CHOICES = ("auto", "balanced", "balanced_low_0", "sequential")


def _max_memory(text: str) -> dict:
    from evalalign_metric.judge.placement import parse_max_memory

    try:
        return parse_max_memory(text)
    except JudgeLoadError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_placement_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--quantize``, ``--device-map`` and ``--max-memory`` to ``parser``."""
    parser.add_argument(
        "--quantize", choices=QUANTIZE_CHOICES, default=None,
        help="load the judge's language model in 8 or 4 bits (bitsandbytes on CUDA, torchao on CPU)",
    )
    parser.add_argument(
        "--device-map", choices=DEVICE_MAP_CHOICES, default=None,
        help="shard the judge over the GPUs (and offload what does not fit to CPU, then disk; accelerate)",
    )
    parser.add_argument(
        "--max-memory", type=_max_memory, default=None, metavar="DEV=SIZE,...",
        help="cap per device for --device-map, e.g. 0=20GiB,1=20GiB,cpu=60GiB (alone: --device-map auto)",
    )


def placement_kwargs(args: argparse.Namespace) -> dict:
    """The :func:`~evalalign_metric.judge.load_judge` keyword arguments of the parsed options."""
    return {"quantize": args.quantize, "device_map": args.device_map, "max_memory": args.max_memory}
