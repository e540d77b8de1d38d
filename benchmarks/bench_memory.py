"""Judge memory on CPU: fp32 vs int8 vs 4-bit, the memory estimate against measured peaks, and the validation
callback's ``offload_judge``; every configuration in its own subprocess, in one run.

Each child process imports everything and draws its inputs, then takes its resident memory as the baseline,
loads the judge and scores; the peak resident memory (Linux ``VmHWM``, reset through ``/proc/self/clear_refs``
after the load, so the figure is the peak while scoring with the judge loaded) minus the baseline is what
the judge took (after a warm-up run of a tiny judge, so the framework's own memory is in the baseline).
Printed:

1. ``precision``: a random LLaVA with real proportions (336 px images -> 576 image tokens, the 11 EvalAlign
   questions with a 4k-token BPE vocabulary; ``bench_engine.build_judge_folder``) loaded in fp32, int8 and
   4-bit (torchao weight-only): peak memory and images/s, as ratios to fp32;
2. ``estimate``: :func:`evalalign_metric.judge.memory.estimate_memory` (fed the judge's real token counts)
   against the measured peak, for that judge, the embedded judge and a tiny test judge (these two at
   ``--small-batch`` images drawn at their own image size);
3. ``offload_judge``: peak memory of two :class:`~evalalign_metric.callbacks.EvalAlignValidation` calls with
   ``offload_judge=False`` and ``True`` (on a CPU-only machine both keep the judge on the CPU).

Example:
    OMP_NUM_THREADS=1 python benchmarks/bench_memory.py --threads 1
"""

from __future__ import annotations

import argparse
import ctypes
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{key} not in /proc/self/status")


def _reset_peak() -> None:
    import gc

    gc.collect()
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # VmHWM := VmRSS


def _bench_engine():
    spec = importlib.util.spec_from_file_location("bench_engine", HERE / "bench_engine.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _token_figures(judge, images, questions) -> tuple[int, int, int, int]:
    """(shared prefix text tokens, question tokens after the prefix, reads, widest chunk) for the first image;
    chunks packed as the prefix engine packs them (whole questions, up to the prefix's length)."""
    from evalalign_metric.judge.engine import expand_image_tokens
    from evalalign_metric.judge.prefix_engine import shared_prefix_length

    _, n_image = judge.prepare_image(images[0])
    encoded = [judge.encode(text, labels) for text, labels in questions[0]]
    prompts = [expand_image_tokens(q.prompt_ids, judge.image_token_id, n_image) for q in encoded]
    prefix = shared_prefix_length(prompts)
    pieces = [len(p) - prefix + sum(len(row) for row, _ in q.rows()) for p, q in zip(prompts, encoded)]
    widths: list[int] = []
    for piece in pieces:
        if widths and widths[-1] + piece <= prefix:
            widths[-1] += piece
        else:
            widths.append(piece)
    rows = sum(1 + sum(len(p) for p, _ in q.rows()) for q in encoded)
    return prefix - n_image, sum(len(p) - prefix for p in prompts), rows, max(widths)


def _warm_up(config: dict, images, questions) -> None:
    """Load and run the tiny judge once (same options) so that the framework's own memory (lazily imported
    modules, kernel workspaces, tokenizer caches) is in the baseline, not in the judge's figure."""
    from evalalign_metric.judge import load_judge

    judge = load_judge(config["warm_up"], device="cpu", quantize=config.get("quantize"), cache=False)
    judge.answer(images[:1], questions[:1])
    del judge


def child(config: dict) -> dict:
    import torch

    torch.set_num_threads(config["threads"])
    libc = ctypes.CDLL("libc.so.6")
    for option in (-3, -1):  # M_MMAP_THRESHOLD, M_TRIM_THRESHOLD: freed blocks go back to the system
        libc.mallopt(option, 1 << 20)
    from evalalign_metric.judge import load_judge
    from evalalign_metric.judge.memory import estimate_memory, shape_from_folder

    be = _bench_engine()
    images = be.make_images(config["images"], seed=0)
    if config.get("image_side"):  # a small judge: images at its own size, so that they do not dominate
        images = [image.resize((config["image_side"],) * 2) for image in images]
    questions = [be.evalalign_questions()] * len(images)
    _warm_up(config, images, questions)
    if config["kind"] == "offload":
        return _child_offload(config, images, questions)
    _reset_peak()
    base, base_file = _status("VmRSS"), _status("RssFile")
    judge = load_judge(config["path"], device="cpu", quantize=config.get("quantize"), batch_size=config["batch"],
                       cache=False)
    loaded = _status("VmRSS") - base
    _reset_peak()
    start = time.perf_counter()
    for _ in range(config["repeats"]):
        judge.answer(images, questions)
    seconds = (time.perf_counter() - start) / config["repeats"]
    peak = _status("VmHWM") - base
    file_backed = _status("RssFile") - base_file
    text_tokens, question_tokens, reads, chunk = _token_figures(judge, images, questions)
    estimate = estimate_memory(shape_from_folder(config["path"]), dtype="float32", quantize=config.get("quantize"),
                               batch_size=min(config["batch"], len(images)), device="cpu",
                               question_tokens=question_tokens, prefix_text_tokens=text_tokens, reads=reads,
                               chunk_tokens=chunk)
    return {"loaded": loaded, "peak": peak, "file_backed": file_backed, "images_per_s": len(images) / seconds,
            "estimate": estimate.total, "estimate_parts": [estimate.weights, estimate.kv_cache, estimate.activations]}


def _child_offload(config: dict, images, questions) -> dict:
    from types import SimpleNamespace

    from accelerate import Accelerator

    from evalalign_metric.callbacks import EvalAlignValidation

    def pipeline(prompts, generator, output_type, **kwargs):
        return SimpleNamespace(images=images[: len(prompts)])

    _reset_peak()
    base = _status("VmRSS")
    validation = EvalAlignValidation(config["path"], num_prompts=len(images), offload_judge=config["offload"],
                                     log_images=False, batch_size=len(images))
    accelerator = Accelerator(cpu=True)
    for step in (1, 2):
        validation(pipeline, accelerator, step=step)
    return {"peak": _status("VmHWM") - base}


def _run(config: dict) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(config["threads"]), "TRANSFORMERS_VERBOSITY": "error",
           "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, __file__, "--child", json.dumps(config)], env=env, check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _mib(n: float) -> str:
    return f"{n / 2 ** 20:8.1f} MiB"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--batch", type=int, default=4, help="images per group (the engine's batch_size)")
    parser.add_argument("--repeats", type=int, default=2, help="timed passes over the images per configuration")
    parser.add_argument("--lm-hidden", type=int, default=768,
                        help="a multiple of 96, so the MLP width (8/3 x) splits into 4-bit groups of 32")
    parser.add_argument("--lm-layers", type=int, default=4)
    parser.add_argument("--small-batch", type=int, default=32,
                        help="images (and batch size) for the embedded and tiny judges, drawn at their image size")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    from evalalign_metric.runs.defaults import embedded_judge_dir
    from evalalign_metric.testing import build_tiny_judge

    root = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    from evalalign_metric.testing import build_tiny_tokenizer

    # A 4k BPE trained on the protocol texts: questions about 25% shorter than with Llama-2's vocabulary.
    judge = _bench_engine().build_judge_folder(root / "judge", build_tiny_tokenizer("llama", vocab_size=4000),
                                               lm_hidden=args.lm_hidden, lm_layers=args.lm_layers,
                                               vision_hidden=256, vision_layers=2, seed=0)
    tiny = build_tiny_judge(root / "tiny")
    common = {"threads": args.threads, "images": args.images, "batch": args.batch, "repeats": args.repeats,
              "kind": "score", "warm_up": str(tiny)}
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, torch threads {args.threads}; "
          f"{args.images} images x 11 EvalAlign questions, batch {args.batch}")
    print(f"\n1. precision (LLaVA, LM hidden {args.lm_hidden} x {args.lm_layers} layers, 576 image tokens)")
    results = {q: _run({**common, "path": str(judge), "quantize": q}) for q in (None, "int8", "4bit")}
    fp32 = results[None]
    print(f"{'':8}{'after load':>13}{'peak':>13}{'of it files':>13}{'images/s':>10}{'peak/fp32':>11}"
          f"{'speed/fp32':>11}")
    for q, r in results.items():
        print(f"{q or 'fp32':8}{_mib(r['loaded']):>13}{_mib(r['peak']):>13}{_mib(r['file_backed']):>13}"
              f"{r['images_per_s']:10.2f}"
              f"{r['peak'] / fp32['peak']:11.2f}{r['images_per_s'] / fp32['images_per_s']:11.2f}")
    print("\n2. estimate vs measured peak while scoring (judge loaded)")
    rows = [("llava fp32", fp32), ("llava int8", results["int8"]), ("llava 4bit", results["4bit"])]
    small = {**common, "images": args.small_batch, "batch": args.small_batch, "repeats": 1}
    rows += [("embedded", _run({**small, "path": str(embedded_judge_dir("evalalign")), "image_side": 64})),
             ("tiny", _run({**small, "path": str(tiny), "image_side": 16}))]
    for name, r in rows:
        parts = " + ".join(_mib(p).strip() for p in r["estimate_parts"])
        print(f"{name:12} estimate {_mib(r['estimate'])} ({parts})  measured {_mib(r['peak'])}  "
              f"estimate/measured {r['estimate'] / r['peak']:.2f}")
    print("\n3. validation callback, two calls (peak over both, judge loaded in the first)")
    for offload in (False, True):
        r = _run({**common, "kind": "offload", "path": str(judge), "offload": offload})
        print(f"offload_judge={offload!s:5}  peak {_mib(r['peak'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
