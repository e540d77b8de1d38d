"""``evalalign judges [--model REF]``: the judges this installation knows, their weights' size and the memory
each needs per dtype, quantization and batch size, before anything is downloaded.

Lists the judges of :func:`evalalign_metric.registry.list_judges` (the Hub judges' figures ship with the
package); ``--model`` shows one judge instead: a registered name or a local judge folder (read from its
``config.json``). The memory is an estimate of scoring with the prefix engine (weights + KV cache + the
largest forward's activations; the formula: :mod:`evalalign_metric.judge.memory`), not counting the framework
itself (CUDA context, allocator caches). Quantized sizes are those of bitsandbytes on CUDA (``--device cuda``,
the default) or of torchao on CPU (``--device cpu``).

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser(); register(parser.add_subparsers())
    >>> args = parser.parse_args(["judges", "--model", "evalalign-13b", "--batch-size", "1", "8"])
    >>> args.model, args.batch_size, args.device
    ('evalalign-13b', [1, 8], 'cuda')
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from evalalign_metric.commands._args import add_command, add_format_option, positive_int

# (label, dtype, quantize) rows of the table; bf16 takes what fp16 takes.
PRECISIONS = (("fp32", "float32", None), ("fp16/bf16", "float16", None), ("int8", "float16", "int8"),
              ("4bit", "float16", "4bit"))
GIB = 2 ** 30


def register(subparsers) -> None:
    parser = add_command(subparsers, "judges", doc=__doc__,
                         help="list judges with their size and estimated memory (no download)")
    parser.add_argument("--model", default=None, metavar="REF",
                        help="one judge: a registered name or a local judge folder (default: all known judges)")
    parser.add_argument("--batch-size", type=positive_int, nargs="+", default=[1, 8], metavar="N",
                        help="images per forward to estimate for (default 1 8)")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda",
                        help="quantized sizes of bitsandbytes (cuda, default) or torchao (cpu)")
    add_format_option(parser)
    parser.set_defaults(func=run)


def _known_judges() -> list[tuple[str, str]]:
    """(name, reference) of every judge in :func:`evalalign_metric.registry.list_judges`."""
    from evalalign_metric.registry import judge_entry, list_judges

    return [(name, judge_entry(name).reference) for name in list_judges()]


def describe(name: str, reference: str, batch_sizes: list[int], device: str) -> dict:
    """One judge's row: source, parameters, weights' size, and estimates per precision and batch size."""
    from evalalign_metric.errors import JudgeLoadError
    from evalalign_metric.hub.registry import judge_spec
    from evalalign_metric.judge.memory import (
        estimate_memory,
        shape_from_folder,
        shape_from_registry,
        shipped_shapes,
        weights_on_disk,
    )

    from evalalign_metric.registry import local_reference

    reference = local_reference(reference) or reference  # an embedded or user-registered name: its folder
    spec = judge_spec(reference)
    if spec is not None and reference not in shipped_shapes():
        return {"name": name, "source": f"{spec.repo_id}@{spec.revision}", "parameters": None,
                "memory_bytes": None, "note": "no figures ship for this judge: download it and pass its folder "
                                              "to --model (LLaVA-style judges)"}
    if spec is not None:
        shape = shape_from_registry(reference)
        source, weight_bytes = f"{spec.repo_id}@{spec.revision}", weights_on_disk(shape)
    elif Path(reference).expanduser().is_dir():
        folder = Path(reference).expanduser()
        shape = shape_from_folder(folder)
        source, weight_bytes = os.fspath(folder), sum(f.stat().st_size for f in folder.glob("*.safetensors"))
    else:
        raise JudgeLoadError(f"--model {reference!r} is neither a registered judge nor a local judge folder "
                             "(`evalalign judges` lists the registered ones)")
    estimates = {}
    for label, dtype, quantize in PRECISIONS:
        estimates[label] = {str(b): estimate_memory(shape, dtype=dtype, quantize=quantize, batch_size=b,
                                                    device=device).total for b in batch_sizes}
    return {"name": name, "source": source, "parameters": shape.parameters, "weights_bytes": weight_bytes,
            "checkpoint_dtype": shape.checkpoint_dtype, "image_tokens": shape.image_tokens,
            "memory_bytes": estimates}


def _size(n: int) -> str:
    return f"{n / GIB:.1f} GiB" if n >= GIB / 10 else f"{n / 2 ** 20:.1f} MiB"


def format_table(rows: list[dict], batch_sizes: list[int], device: str) -> str:
    """The rows as text: one block per judge, one line per precision, one column per batch size."""
    lines = []
    for row in rows:
        lines.append(f"{row['name']}  ({row['source']})")
        if row["memory_bytes"] is None:
            lines += [f"  {row['note']}", ""]
            continue
        count = f"{row['parameters'] / 1e9:.2f} B" if row["parameters"] >= 1e9 else f"{row['parameters'] / 1e6:.2f} M"
        lines.append(f"  {count} parameters; weights {_size(row['weights_bytes'])} "
                     f"({row['checkpoint_dtype']}); {row['image_tokens']} image tokens")
        header = "".join(f"{'batch ' + str(b):>14}" for b in batch_sizes)
        lines.append(f"  {'memory (' + device + ')':<16}{header}")
        for label, per_batch in row["memory_bytes"].items():
            lines.append(f"  {label:<16}" + "".join(f"{_size(per_batch[str(b)]):>14}" for b in batch_sizes))
        lines.append("")
    lines.append("Estimates of scoring (weights + KV cache + activations), without the framework's own memory; "
                 "see docs/judges.md#memory-quantization-and-sharding.")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from evalalign_metric.commands.score import quiet_transformers

    quiet_transformers()
    judges = [(args.model, args.model)] if args.model else _known_judges()
    rows = [describe(name, ref, args.batch_size, args.device) for name, ref in judges]
    if args.format == "json":
        print(json.dumps(rows, indent=1))
    else:
        print(format_table(rows, args.batch_size, args.device))
    return 0
