"""LoRA: teach a trained judge a level scheme it was never trained on, saving only the adapter.

Default (``--data scene-levels``): the embedded scene judge (``evalalign_metric/assets/judge`` or ``--base``)
was trained on EvalAlign's faithfulness questions (how distorted the shapes are: options 0-4). A LoRA adapter
(peft; language-model attention and MLP, plus the output head as a saved module) learns a new question on a
new scheme: "How cleanly are the shapes drawn?" A / B / C (distortion levels 0-1 / 2-3 / 4). ``--data scenes``
asks iMatch's questions instead (the shipped ``"imatch"`` protocol: overall match on 15 levels A..O from the
prompt's text, truth 1 + 4 x the fraction of its claims that hold, and a Yes/No question per element with
its category); ``--data easyvqa`` re-scales the easy-vqa judge (``benchmarks/train_synthetic_judge.py``) to
no / partly / yes. Only the adapter folder is saved; ``EvalAlignScore(model=<adapter folder>, protocol=...)``
loads the base judge it names + the adapter, merged in memory, and scores the held-out set.

Target: Spearman correlation of the expectation (QAlign) with the held-out truth >= 0.8.

Example:
    nice python benchmarks/train_lora_adapter.py --work /tmp/lora --steps 300
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np


def write_split(folder: Path, seeds, prompts: int = 3):
    """Scenes + iMatch rows (overall and elements) in JSONL; returns the file and the pairs to score."""
    from evalalign_metric.synthetic import scenes

    folder.mkdir(parents=True, exist_ok=True)
    rows, pairs = [], []
    for seed in seeds:
        rng = scenes.random_state(seed)
        scene = scenes.random_scene(rng)
        name = f"{seed}.png"
        scenes.render(scene).save(folder / name)  # always: an older generator's picture would not fit the truth
        prng = random.Random(seed)
        for k in range(prompts):
            claims = scene.claims() if k == 0 else scenes.perturb(scene, prng)
            prompt, _ = scenes.claims_prompt(claims)
            overall = scenes.imatch_truth(scene, claims)
            elements = scenes.imatch_elements(scene, claims)
            rows.append({"image": name, "prompt": prompt, "aspect": "imatch/overall", "score": overall})
            rows.extend({"image": name, "prompt": prompt, "aspect": "element/match", "elements": key, "score": v}
                        for key, v in elements.items())
            pairs.append((folder / name, prompt, overall, elements))
    path = folder / "annotations.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path, pairs


def easyvqa_levels_protocol() -> dict:
    """The easy-vqa judge's own question, answered on a scheme it never saw: no / partly / yes."""
    sys.path.insert(0, os.fspath(Path(__file__).resolve().parent))
    from train_synthetic_judge import PROTOCOL

    match = dict(PROTOCOL["aspects"][0])
    match["options"] = [{"label": "no", "score": 0}, {"label": "partly", "score": 1}, {"label": "yes", "score": 2}]
    match["description"] = "image matches the prompt: no (colour and shape wrong), partly (one wrong), yes"
    return {"name": "easyvqa-match-levels", "version": "1", "default_scoring": "expectation",
            "description": "easy-vqa judgments on a three-level scheme", "aspects": [match]}


def scene_levels_protocol() -> dict:
    """The scene judge's distortion (trained as EvalAlign's faithfulness, 0-4 digits), asked on a scheme it
    never saw: a new question answered with letters A / B / C."""
    return {"name": "scene-drawn-levels", "version": "1", "default_scoring": "expectation",
            "description": "How cleanly synthetic shapes are drawn, on three letter levels",
            "aspects": [{"name": "Drawn", "dimension": "faithfulness",
                         "template": "<image>\nHow cleanly are the shapes drawn? Answer: A, torn and warped. "
                                     "B, a little warped. C, clean.",
                         "options": [{"label": "A", "score": 0}, {"label": "B", "score": 1},
                                     {"label": "C", "score": 2}]}]}


def drawn_level(level: int) -> int:
    """Distortion level 0-4 (4 clean) on the three-level scheme: 0-1 -> A (0), 2-3 -> B (1), 4 -> C (2)."""
    return 0 if level <= 1 else 1 if level <= 3 else 2


def write_split_scene_levels(folder: Path, seeds):
    """Scenes with one row each on the three-level scheme; pairs (image, its true prompt, truth)."""
    from evalalign_metric.synthetic import scenes

    folder.mkdir(parents=True, exist_ok=True)
    rows, pairs = [], []
    for seed in seeds:
        scene = scenes.random_scene(scenes.random_state(seed))
        name = f"{seed}.png"
        scenes.render(scene).save(folder / name)  # always: an older generator's picture would not fit the truth
        rows.append({"image": name, "aspect": "Drawn", "score": drawn_level(scene.level)})
        pairs.append((folder / name, scenes.claims_prompt(scene.claims())[0], drawn_level(scene.level)))
    path = folder / "annotations.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path, pairs


def write_split_easyvqa(folder: Path, items, offset: int):
    """easy-vqa rows on the three-level scheme: per image its true description (2) and two wrong ones
    (colour wrong or shape wrong: 1; both: 0)."""
    sys.path.insert(0, os.fspath(Path(__file__).resolve().parent))
    from train_synthetic_judge import COLOURS, SHAPES

    folder.mkdir(parents=True, exist_ok=True)
    rows, pairs = [], []
    colours = list(COLOURS)
    for k, (image, shape, colour) in enumerate(items):
        rng = random.Random(offset + k)
        kinds = [(True, True)] + rng.sample([(False, True), (True, False), (False, False)], 2)
        for colour_ok, shape_ok in kinds:
            said_colour = colour if colour_ok else rng.choice([c for c in colours if c != colour])
            said_shape = shape if shape_ok else rng.choice([s for s in SHAPES if s != shape])
            prompt = f"a {said_colour} {said_shape}"
            truth = int(colour_ok) + int(shape_ok)
            rows.append({"image": image, "prompt": prompt, "aspect": "Match", "score": truth})
            pairs.append((Path(image), prompt, truth))
    path = folder / "annotations.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path, pairs


def score_levels(model: str, protocol: str, pairs, batch: int = 64, key: str = "alignment/Match") -> dict[str, float]:
    """SRCC of the expectation with the three-level truth, arg-max accuracy, and EvalAlignScore's mean."""
    from PIL import Image
    from scipy import stats

    from evalalign_metric import EvalAlignScore
    from evalalign_metric.functional import score_images

    metric = EvalAlignScore(model=model, protocol=protocol, scoring="expectation")
    predicted, truth, correct = [], [], []
    for start in range(0, len(pairs), batch):
        chunk = pairs[start:start + batch]
        images = [Image.open(p).convert("RGB") for p, _, _ in chunk]
        prompts = [c[1] for c in chunk]
        metric.update(images, prompts)
        for (_, _, t), result in zip(chunk, score_images(metric.judge, metric.protocol, images, prompts)):
            q = result.questions[0]
            predicted.append(q.expectation)
            truth.append(t)
            correct.append(q.argmax == t)
    out = metric.compute()
    srcc = stats.spearmanr(predicted, truth)[0] if np.ptp(predicted) > 0 else float("nan")
    return {"overall_srcc": float(srcc), "accuracy": float(np.mean(correct)),
            "metric_match": float(out[key]), "mean_outside_mass": float(out["mean_outside_mass"]),
            "n_pairs": len(predicted)}


def score(model: str, pairs, batch: int = 32) -> dict[str, float]:
    """Held-out agreement of the judge at ``model`` (a judge folder, or an adapter folder on its base)."""
    from PIL import Image
    from scipy import stats

    from evalalign_metric import EvalAlignScore
    from evalalign_metric.functional import score_images

    metric = EvalAlignScore(model=model, protocol="imatch")
    judge = metric.judge
    overall_pred, overall_truth, elem_pred, elem_truth = [], [], [], []
    for start in range(0, len(pairs), batch):
        chunk = pairs[start:start + batch]
        images = [Image.open(p).convert("RGB") for p, _, _, _ in chunk]
        prompts = [c[1] for c in chunk]
        elements = [{"elements": list(c[3])} for c in chunk]
        results = score_images(judge, "imatch", images, prompts, elements)
        metric.update(images, prompts, elements)
        for (_, _, truth, etruth), result in zip(chunk, results):
            for q in result.questions:
                if q.aspect == "imatch/overall":
                    overall_pred.append(q.expectation)
                    overall_truth.append(truth)
                else:
                    elem_pred.append(q.expectation)
                    elem_truth.append(etruth[q.element])
    out = metric.compute()
    srcc = stats.spearmanr(overall_pred, overall_truth)[0] if np.ptp(overall_pred) > 0 else float("nan")
    plcc = stats.pearsonr(overall_pred, overall_truth)[0] if np.ptp(overall_pred) > 0 else float("nan")
    acc = float(np.mean([(p >= 0.5) == (t >= 0.5) for p, t in zip(elem_pred, elem_truth)]))
    return {"overall_srcc": float(srcc), "overall_plcc": float(plcc), "element_accuracy": acc,
            "element_srcc": float(stats.spearmanr(elem_pred, elem_truth)[0]) if np.ptp(elem_pred) > 0 else float("nan"),
            "metric_overall": float(out["imatch/overall"]), "metric_element": float(out["element/match"]),
            "mean_outside_mass": float(out["mean_outside_mass"]), "n_pairs": len(overall_pred),
            "n_elements": len(elem_pred)}


def main(argv=None) -> int:
    root = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", choices=("scene-levels", "scenes", "easyvqa"), default="scene-levels",
                        help="scene-levels: the embedded scene judge's distortion on a new three-letter scheme; "
                             "scenes: iMatch's 15-level overall match and element questions on scenes; easyvqa: "
                             "easy-vqa images, a three-level scheme (base: the judge "
                             "benchmarks/train_synthetic_judge.py trains; pass its folder as --base)")
    parser.add_argument("--base", default=os.fspath(root / "evalalign_metric" / "assets" / "judge"))
    parser.add_argument("--work", default="/tmp/evalalign-lora")
    parser.add_argument("--train-images", type=int, default=6000)
    parser.add_argument("--heldout-images", type=int, default=200)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--questions-per-image", type=int, default=6)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--r", type=int, default=8)
    parser.add_argument("--alpha", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--fresh", action="store_true")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from evalalign_metric.training.config import config_from_dict
    from evalalign_metric.training.trainer import Trainer

    work = Path(args.work)
    t0 = time.time()
    if args.data == "scenes":
        train_file, _ = write_split(work / "train", range(2 * 10 ** 6, 2 * 10 ** 6 + args.train_images))
        held_file, held_pairs = write_split(work / "heldout", range(3 * 10 ** 6, 3 * 10 ** 6 + args.heldout_images))
    elif args.data == "scene-levels":
        train_file, _ = write_split_scene_levels(work / "train", range(2 * 10 ** 6, 2 * 10 ** 6 + args.train_images))
        held_file, held_pairs = write_split_scene_levels(work / "heldout",
                                                         range(3 * 10 ** 6, 3 * 10 ** 6 + args.heldout_images))
        (work / "protocol.json").write_text(json.dumps(scene_levels_protocol(), indent=1))
    else:  # easy-vqa: train on its train split, check on its TEST split
        sys.path.insert(0, os.fspath(Path(__file__).resolve().parent))
        from train_synthetic_judge import truth

        train_items, _ = truth("train")
        test_items, _ = truth("test")
        train_file, _ = write_split_easyvqa(work / "train", train_items[:args.train_images], 0)
        held_file, held_pairs = write_split_easyvqa(work / "heldout", test_items[:args.heldout_images], 10 ** 6)
        (work / "protocol.json").write_text(json.dumps(easyvqa_levels_protocol(), indent=1))
    protocol = "imatch" if args.data == "scenes" else os.fspath(work / "protocol.json")
    n_train = sum(1 for _ in open(train_file))
    print(f"data ({args.data}): {n_train} training rows; {len(held_pairs)} held-out items")
    config = {
        "output_dir": os.fspath(work / "adapter"), "protocol": protocol, "model": {"base": args.base},
        "data": {"train": [{"format": "jsonl", "path": os.fspath(train_file)}],
                 "eval": [{"format": "jsonl", "path": os.fspath(held_file)}],
                 "questions_per_image": args.questions_per_image},
        "training": {"method": "lora", "max_steps": args.steps, "batch_size": args.batch_size, "lr": args.lr,
                     "lora": {"r": args.r, "alpha": args.alpha, "dropout": 0.0,
                              "target_modules": (r".*language_model.*\."
                                                 r"(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)$"),
                              "modules_to_save": ["lm_head"]},
                     "warmup_steps": 30, "scheduler": "cosine", "min_lr_ratio": 0.05, "checkpoint_every": 100,
                     "log_every": 25, "seed": 0, "resume": not args.fresh, "eval_max_images": 60},
        "augment": {"category_labels": True},
    }
    result = Trainer(config_from_dict(config), progress=sys.stderr.isatty()).run()
    print(result.summary())
    adapter = work / "adapter"
    saved = sorted(p.name for p in adapter.iterdir() if p.is_file())
    size = sum((adapter / n).stat().st_size for n in saved if n.startswith("adapter_model"))
    print(f"adapter folder: {saved}; adapter weights {size / 1e6:.2f} MB; "
          f"base judge named: {json.loads((adapter / 'adapter_config.json').read_text())['base_model_name_or_path']}")
    if args.data in ("easyvqa", "scene-levels"):
        key = "alignment/Match" if args.data == "easyvqa" else "faithfulness/Drawn"
        before = score_levels(args.base, protocol, held_pairs, key=key)
        after = score_levels(os.fspath(adapter), protocol, held_pairs, key=key)
        what = "easy-vqa TEST pairs" if args.data == "easyvqa" else "scenes"
        print(f"\nheld-out {what} on the three-level scheme ({after['n_pairs']} images or image-prompt pairs):")
        for name, r in (("before (base judge)", before), ("after (base + adapter)", after)):
            print(f"  {name:24s} SRCC {r['overall_srcc']:.3f}  arg-max accuracy {r['accuracy']:.3f}  "
                  f"EvalAlignScore {key} {r['metric_match']:.2f}  outside mass {r['mean_outside_mass']:.3f}")
    else:
        before = score(args.base, held_pairs)
        after = score(os.fspath(adapter), held_pairs)
        print(f"\nheld-out iMatch scenes ({after['n_pairs']} image-prompt pairs, {after['n_elements']} elements):")
        for name, r in (("before (base judge)", before), ("after (base + adapter)", after)):
            print(f"  {name:24s} overall SRCC {r['overall_srcc']:.3f} PLCC {r['overall_plcc']:.3f}  "
                  f"element accuracy {r['element_accuracy']:.3f}  EvalAlignScore imatch/overall "
                  f"{r['metric_overall']:.2f} element/match {r['metric_element']:.2f}  "
                  f"outside mass {r['mean_outside_mass']:.3f}")
    ok = after["overall_srcc"] >= 0.8
    print(f"target (SRCC >= 0.8): {'MET' if ok else 'NOT MET'}; train {result.seconds:.0f} s, "
          f"total {time.time() - t0:.0f} s")
    (work / "result.json").write_text(json.dumps({"before": before, "after": after, "steps": result.steps}, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
