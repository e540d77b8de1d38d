"""Judge speed per family: a reference loop vs the plain engine vs the shared-prefix engine, in one run.

For each judge family (LLaVA, LLaVA-NeXT, Qwen2-VL, Qwen2.5-VL, Qwen3-VL, Idefics3) a small random judge is built
with :func:`evalalign_metric.testing.build_tiny_judge` and asked EvalAlign's 11 questions about the same
images of several sizes. It times, per family:

(a) ``reference``: per (image, question) the image is processed again (the family's own inputs) and
    ``generate`` runs greedily at batch 1 for the answer's tokens plus one (what a trained judge emits);
(b) ``plain b8``: :class:`~evalalign_metric.judge.PlainEngine`, one teacher-forced forward per option row;
(c) ``prefix b8``: :class:`~evalalign_metric.judge.prefix_engine.PrefixEngine`, 8 images per group.

It prints images/s (median of repeats, round-robin over methods), the speed-up over (a), the language-model
tokens per image (counted by a hook on the LM) against the floor (each image's shared prefix once, each
question's remaining tokens once, each option prefix once), and the worst |log-prob| gap of (c) vs (b).

Example:
    python benchmarks/bench_families.py --images 4 --repeats 3 --threads 1
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from evalalign_metric.judge import PlainEngine, load_judge
from evalalign_metric.judge.prefix_engine import PrefixEngine
from evalalign_metric.testing import build_tiny_judge

from bench_engine import evalalign_questions as questions, make_images  # a sibling script

# (architecture, build options, image options): image token counts of a few hundred, as real judges have.
FAMILIES = {
    "llava": ({"image_size": 224, "patch_size": 14}, {}),
    "llava_next": ({"image_size": 224, "patch_size": 14}, {}),
    "qwen2_vl": ({"patch_size": 14}, {"min_pixels": 56 * 56, "max_pixels": 448 * 448}),
    "qwen2_5_vl": ({"patch_size": 14}, {"min_pixels": 56 * 56, "max_pixels": 448 * 448}),
    "qwen3_vl": ({"patch_size": 16}, {"min_pixels": 64 * 64, "max_pixels": 512 * 512}),
    "idefics3": ({"image_size": 128, "patch_size": 8}, {}),
}


def language_model(model):
    inner = model.model
    return getattr(inner, "language_model", None) or inner.text_model


def reference_loop(judge, images, asked, answer_tokens):
    """(a): per (image, question): the image's inputs again, then greedy ``generate`` at batch 1."""
    model, family = judge.model, judge.family
    with torch.inference_mode():
        for image in images:
            for (text, labels), n_new in zip(asked, answer_tokens):
                inputs = judge.image_inputs(image)
                ids = torch.tensor([judge.prompt_ids(judge.encode(text, labels), inputs)])
                extra = family.row_inputs(ids, judge.image_token_id)
                model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **inputs.pixels, **extra,
                               do_sample=False, max_new_tokens=n_new, min_new_tokens=n_new,
                               pad_token_id=judge.pad_token_id)


def bench_family(architecture: str, args, work: Path) -> dict:
    build, image_options = FAMILIES[architecture]
    path = build_tiny_judge(work / architecture, architecture=architecture, hidden_size=args.hidden,
                            num_layers=args.layers, seed=args.seed, **build)
    judge = load_judge(path, device="cpu", dtype="float32", cache=False, image_options=image_options)
    images = make_images(args.images, args.seed)
    asked = questions()
    answer_tokens = [max(len(ids) for ids in judge.encode(t, l).option_ids) + 1 for t, l in asked]
    engines = {"(b) plain b8": PlainEngine(batch_size=8), "(c) prefix b8": PrefixEngine(batch_size=8)}

    def run_engine(engine):
        judge.engine = engine
        return judge.answer(images, [asked] * len(images))

    methods = {"(a) reference": lambda: reference_loop(judge, images, asked, answer_tokens)}
    for name, engine in engines.items():
        methods[name] = (lambda e: lambda: run_engine(e))(engine)
    tokens, outputs = {}, {}
    for name, fn in methods.items():  # untimed pass: warm-up and LM token counts
        counted = [0]

        def hook(module, a, kw, counted=counted):
            embeds = kw.get("inputs_embeds")
            shape = embeds.shape if embeds is not None else kw["input_ids"].shape
            counted[0] += int(shape[0]) * int(shape[1])
        handle = language_model(judge.model).register_forward_pre_hook(hook, with_kwargs=True)
        outputs[name] = fn()
        handle.remove()
        tokens[name] = counted[0] / len(images)
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(args.repeats):
        for name, fn in methods.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    stats = engines["(c) prefix b8"].last_stats
    gap = max(float((p.log_probs - e.log_probs).abs().max())
              for per_p, per_e in zip(outputs["(b) plain b8"], outputs["(c) prefix b8"]) for p, e in zip(per_p, per_e))
    counts = sorted({judge.image_inputs(im).n_image_tokens for im in images})
    return {"seconds": {k: statistics.median(v) for k, v in times.items()}, "tokens": tokens,
            "floor": stats.floor_tokens / len(images), "gap": gap, "image_tokens": counts,
            "fallback": stats.fallback_images, "images": len(images)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--families", nargs="*", default=list(FAMILIES), choices=list(FAMILIES))
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}; "
          f"{args.images} images of 4 sizes, EvalAlign's 11 questions, LM {args.layers} layers x {args.hidden}, fp32")
    print(f"{'family':<11} {'img tokens':>12} {'(a) img/s':>10} {'(b) x(a)':>9} {'(c) x(a)':>9} {'(c) x(b)':>9} "
          f"{'(b) tok/floor':>14} {'(c) tok/floor':>14} {'max |dlogp|':>12}")
    work = Path(tempfile.mkdtemp(prefix="bench_families_"))
    for architecture in args.families:
        r = bench_family(architecture, args, work)
        s, t = r["seconds"], r["tokens"]
        a, b, c = s["(a) reference"], s["(b) plain b8"], s["(c) prefix b8"]
        print(f"{architecture:<11} {str(r['image_tokens']):>12} {r['images'] / a:>10.2f} {a / b:>9.2f} "
              f"{a / c:>9.2f} {b / c:>9.2f} {t['(b) plain b8'] / r['floor']:>14.2f} "
              f"{t['(c) prefix b8'] / r['floor']:>14.2f} {r['gap']:>12.1e}", flush=True)
        assert r["fallback"] == 0, f"{architecture}: the prefix engine fell back"
    print(f"median of {args.repeats} timed repeats after one untimed pass; (a) generates the answer's tokens + 1")
    return 0


if __name__ == "__main__":
    sys.exit(main())
