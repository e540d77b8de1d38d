"""Proof that the training code learns: a LLaVA judge trained from scratch on easy-vqa, scored by the metric.

`easy-vqa` (PyPI, not written here: 4,000 train + 1,000 test 64x64 scenes of one coloured shape, with
ground-truth questions) becomes an alignment task: does the image match "a red circle"? Each image gets its
true description and a mismatched one (wrong colour, wrong shape, or both, in turn). Every image's shape
and colour come from the dataset's own answers; where its questions leave one open, from the pixels
(palette colour; fill ratio of the bounding box: rectangle ~1, circle ~0.79, triangle ~0.5), and the two
sources are checked against each other where both exist.

A judge is built from a config (Swin vision tower, Llama LM, tokenizer trained here), trained with
``evalalign_metric.training.train`` on a JSONL file and a one-aspect yes/no protocol, and scored on the
easy-vqa TEST split with ``evalalign_metric.functional.score_images`` (the metric's own scoring) and
``EvalAlignScore``: yes/no accuracy of the arg-max answer and ROC-AUC of the continuous score (P(yes)),
before and after training. Targets: accuracy >= 0.90, ROC-AUC >= 0.95.

Example:
    nice python benchmarks/train_synthetic_judge.py --work /tmp/easyvqa
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from evalalign_metric.synthetic.checks import roc_auc

SHAPES = ("circle", "rectangle", "triangle")
COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255), "black": (0, 0, 0),
           "gray": (135, 135, 135), "teal": (30, 140, 140), "brown": (175, 70, 70), "yellow": (255, 255, 0)}
PROTOCOL = {
    "name": "easyvqa-match", "version": "1", "default_scoring": "expectation",
    "description": "One yes/no question: does the image match the prompt?",
    "aspects": [{"name": "Match", "dimension": "alignment", "description": "image matches the prompt",
                 "template": "<image>\nDoes the image match the description \"{prompt}\"? Answer yes or no.",
                 "options": [{"label": "yes", "score": 1}, {"label": "no", "score": 0}]},
                # auxiliary training questions (easy-vqa's own kind): they ground colour and shape words
                {"name": "Colour", "dimension": "describe", "description": "the shape's colour",
                 "template": "<image>\nWhat color is the shape?",
                 "options": [{"label": c, "score": i} for i, c in enumerate(COLOURS)]},
                {"name": "Shape", "dimension": "describe", "description": "the shape",
                 "template": "<image>\nWhat shape is in the image?",
                 "options": [{"label": s, "score": i} for i, s in enumerate(SHAPES)]}],
}


def from_questions(split: str) -> tuple[dict[int, str], dict[int, dict[str, set]]]:
    """Image paths and, per image, the shapes/colours its questions and answers allow."""
    import easy_vqa

    if split == "train":
        questions, answers, ids = easy_vqa.get_train_questions()
        paths = easy_vqa.get_train_image_paths()
    else:
        questions, answers, ids = easy_vqa.get_test_questions()
        paths = easy_vqa.get_test_image_paths()
    allowed = {i: {"shape": set(SHAPES), "colour": set(COLOURS)} for i in paths}
    for q, a, i in zip(questions, answers, ids):
        words = re.findall(r"[a-z]+", q)
        negated = "not" in words or "no" in words
        said = {"shape": [w for w in words if w in SHAPES], "colour": [w for w in words if w in COLOURS]}
        for kind in ("shape", "colour"):
            values = SHAPES if kind == "shape" else COLOURS
            if a in values:
                allowed[i][kind] &= {a}
            if a in ("yes", "no"):
                present = (a == "yes") != negated
                for w in said[kind]:
                    allowed[i][kind] = allowed[i][kind] & {w} if present else allowed[i][kind] - {w}
            elif a in SHAPES or a in COLOURS:
                for w in said[kind]:  # "what colour is the circle?" names the shape
                    allowed[i][kind] &= {w}
    return paths, allowed


def from_pixels(path: str) -> tuple[str, str]:
    a = np.asarray(Image.open(path).convert("RGB")).astype(int)
    background = np.median(a.reshape(-1, 3), axis=0)
    mask = np.abs(a - background).sum(-1) > 60
    ys, xs = np.nonzero(mask)
    colour = np.median(a[mask], axis=0)
    name = min(COLOURS, key=lambda c: float(((colour - np.array(COLOURS[c])) ** 2).sum()))
    fill = mask.sum() / ((ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1))
    shape = "triangle" if fill < 0.68 else "circle" if fill < 0.92 else "rectangle"
    return shape, name


def truth(split: str) -> tuple[list[tuple[str, str, str]], dict[str, int]]:
    paths, allowed = from_questions(split)
    out, stats = [], {"from_questions": 0, "from_pixels": 0, "checked": 0, "agree": 0}
    for i in sorted(paths):
        shape_px, colour_px = from_pixels(paths[i])
        shape, colour = allowed[i]["shape"], allowed[i]["colour"]
        known = len(shape) == 1 and len(colour) == 1
        if known:
            stats["checked"] += 1
            stats["agree"] += (next(iter(shape)), next(iter(colour))) == (shape_px, colour_px)
        s = next(iter(shape)) if len(shape) == 1 else shape_px
        c = next(iter(colour)) if len(colour) == 1 else colour_px
        stats["from_questions" if known else "from_pixels"] += 1
        out.append((paths[i], s, c))
    return out, stats


def prompts_for(index: int, shape: str, colour: str) -> tuple[str, str]:
    """(matched, mismatched) prompts; the mismatch kind cycles colour, shape, both."""
    kind = index % 3
    wrong_shape = SHAPES[(SHAPES.index(shape) + 1 + index // 3 % 2) % 3] if kind in (1, 2) else shape
    names = list(COLOURS)
    wrong_colour = names[(names.index(colour) + 1 + index // 3 % 7) % 8] if kind in (0, 2) else colour
    return f"a {colour} {shape}", f"a {wrong_colour} {wrong_shape}"


def write_jsonl(path: Path, items, aspects=("Match",)) -> int:
    rows = []
    for k, (image, shape, colour) in enumerate(items):
        good, bad = prompts_for(k, shape, colour)
        if "Match" in aspects:
            rows.append({"image": image, "prompt": good, "aspect": "Match", "score": 1})
            rows.append({"image": image, "prompt": bad, "aspect": "Match", "score": 0})
        if "Colour" in aspects:
            rows.append({"image": image, "aspect": "Colour", "score": list(COLOURS).index(colour)})
        if "Shape" in aspects:
            rows.append({"image": image, "aspect": "Shape", "score": SHAPES.index(shape)})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return len(rows)


def score_test(judge, protocol_path: str, items, batch: int = 64) -> dict[str, float]:
    """Accuracy and ROC-AUC on the test pairs with the metric's scoring, and EvalAlignScore means."""
    from evalalign_metric import EvalAlignScore
    from evalalign_metric.functional import score_images
    from evalalign_metric.protocol import load_protocol

    full = load_protocol(protocol_path)
    protocol = dataclasses.replace(full, aspects=(full.aspect("Match"),))  # the test asks the judgment only
    labels, scores, correct = [], [], []
    matched = EvalAlignScore(judge=judge, protocol=protocol, scoring="expectation")
    mismatched = EvalAlignScore(judge=judge, protocol=protocol, scoring="expectation")
    for start in range(0, len(items), batch):
        chunk = items[start:start + batch]
        images = [Image.open(p).convert("RGB") for p, _, _ in chunk]
        pairs = [prompts_for(start + k, s, c) for k, (_, s, c) in enumerate(chunk)]
        for which, metric in ((0, matched), (1, mismatched)):
            prompts = [pair[which] for pair in pairs]
            results = score_images(judge, protocol, images, prompts)
            for r in results:
                q = r.questions[0]
                labels.append(which == 0)
                scores.append(q.expectation)
                correct.append((q.argmax == 1.0) == (which == 0))
            metric.update(images, prompts)
    auc = roc_auc([v for v, y in zip(scores, labels) if y], [v for v, y in zip(scores, labels) if not y])
    return {"accuracy": float(np.mean(correct)), "roc_auc": auc, "n": len(labels),
            "metric_matched": float(matched.compute()["alignment/Match"]),
            "metric_mismatched": float(mismatched.compute()["alignment/Match"]),
            "outside_mass": float(matched.compute()["mean_outside_mass"])}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default="/tmp/evalalign-easyvqa", help="work folder (data, checkpoints, judge)")
    parser.add_argument("--describe-steps", type=int, default=1000,
                        help="stage 1: optimizer steps on the colour/shape questions only (0: skip the stage)")
    parser.add_argument("--steps", type=int, default=3000, help="stage 2: optimizer steps on judgments + questions")
    parser.add_argument("--batch-size", type=int, default=32, help="images per step in stage 1 (half in stage 2)")
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--vision", choices=("swin", "clip"), default="clip")
    parser.add_argument("--patch-size", type=int, default=8)
    parser.add_argument("--vision-heads", type=int, default=4)
    parser.add_argument("--vision-hidden", type=int, default=128)
    parser.add_argument("--vision-layers", type=int, default=3)
    parser.add_argument("--text-hidden", type=int, default=64)
    parser.add_argument("--text-layers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--fresh", action="store_true", help="delete earlier checkpoints (default: resume)")
    parser.add_argument("--architecture", default="llava",
                        choices=("llava", "qwen2_vl", "qwen2_5_vl", "qwen3_vl", "idefics3"),
                        help="judge family of the model trained from scratch (non-LLaVA: build_tiny_judge's "
                             "model with --text-hidden, --text-layers, --patch-size)")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from curriculum import run_stages

    from evalalign_metric.judge import load_judge
    from evalalign_metric.training import load_trained_judge

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    train_items, train_stats = truth("train")
    test_items, test_stats = truth("test")
    print(f"easy-vqa truth: train {train_stats}, test {test_stats}")
    (work / "protocol.json").write_text(json.dumps(PROTOCOL, indent=1))
    n_describe = write_jsonl(work / "describe.jsonl", train_items, aspects=("Shape",))
    n_train = write_jsonl(work / "train.jsonl", train_items, aspects=("Match", "Colour", "Shape"))
    # eval during training: a slice of the TEST split (its images are never trained on)
    write_jsonl(work / "heldout-describe.jsonl", test_items[:150], aspects=("Shape",))
    write_jsonl(work / "heldout.jsonl", test_items[:150])
    print(f"train rows: stage 1 {n_describe}, stage 2 {n_train} ({len(train_items)} images); "
          f"test pairs: {2 * len(test_items)}")
    build = {"image_size": 64, "vision": args.vision, "patch_size": args.patch_size,
             "vision_hidden": args.vision_hidden, "vision_layers": args.vision_layers,
             "vision_heads": args.vision_heads, "window_size": 4, "text_hidden": args.text_hidden,
             "text_layers": args.text_layers, "text_heads": 4, "text_kv_heads": 2, "vocab_size": 500,
             "compact_tokens": True}
    # Stage 1 (curriculum): learn to see shapes, from easy-vqa's own kind of question ("what shape is in the
    # image?"). Trained from the start on judgments ("does it match 'a red circle'?"), or on shape and colour
    # questions together, a judge this small learns colour first and stays near 0.83: colour mismatches only.
    # Stage 2: the judgments, with the colour and shape questions kept in the mix.
    stages = []
    if args.describe_steps:
        stages.append(("describe", "describe.jsonl", "heldout-describe.jsonl", args.describe_steps, args.batch_size,
                       args.lr, {}))
    stages.append(("judge", "train.jsonl", "heldout.jsonl", args.steps, max(1, args.batch_size // 2), args.lr * 0.6,
                   {"lighting": True, "lighting_strength": 0.1}))
    configs = [(name, {
        "protocol": os.fspath(work / "protocol.json"),
        "data": {"train": [{"format": "jsonl", "path": os.fspath(work / data)}],
                 "eval": [{"format": "jsonl", "path": os.fspath(work / heldout)}]},
        "training": {"max_steps": steps, "batch_size": batch, "lr": lr, "warmup_steps": 50,
                     "weight_decay": 0.01, "scheduler": "cosine", "min_lr_ratio": 0.05,
                     "checkpoint_every": 200, "eval_every": 400, "log_every": 50, "seed": 0,
                     "resume": not args.fresh},
        "augment": augment,
    }) for name, data, heldout, steps, batch, lr, augment in stages]
    first_model = {"build": build}
    if args.architecture != "llava":
        from evalalign_metric.testing import build_tiny_judge

        scratch = work / f"scratch-{args.architecture}"
        if not (scratch / "config.json").is_file():
            build_tiny_judge(scratch, architecture=args.architecture, hidden_size=args.text_hidden,
                             num_layers=args.text_layers, patch_size=args.patch_size, image_size=64)
        first_model = {"base": os.fspath(scratch)}
    results, judge_dir = run_stages(work, configs, first_model=first_model)
    base = os.fspath(judge_dir)
    train_seconds = sum(r.seconds for r in results)
    steps = sum(r.steps for r in results)
    first = work / stages[0][0] / "base" if args.architecture == "llava" else first_model["base"]
    before = score_test(load_judge(first, cache=False), os.fspath(work / "protocol.json"), test_items)
    after = score_test(load_trained_judge(base), os.fspath(work / "protocol.json"), test_items)
    n_params = sum(p.numel() for p in load_judge(base, cache=False).model.parameters())
    print(f"\njudge: {n_params / 1e6:.2f}M parameters, trained {steps} steps in {train_seconds:.0f} s "
          f"({args.threads} threads)")
    print(f"easy-vqa TEST ({after['n']} image-prompt pairs, half matched):")
    for name, r in (("before", before), ("after", after)):
        print(f"  {name:6s} accuracy {r['accuracy']:.4f}  ROC-AUC {r['roc_auc']:.4f}  "
              f"EvalAlignScore matched {r['metric_matched']:.3f} / mismatched {r['metric_mismatched']:.3f}  "
              f"outside mass {r['outside_mass']:.3f}")
    ok = after["accuracy"] >= 0.90 and after["roc_auc"] >= 0.95
    print(f"targets (accuracy >= 0.90, ROC-AUC >= 0.95): {'MET' if ok else 'NOT MET'}; "
          f"total {time.time() - t0:.0f} s")
    (work / "result.json").write_text(json.dumps({"before": before, "after": after, "steps": steps,
                                                  "train_seconds": train_seconds, "params": n_params}, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
