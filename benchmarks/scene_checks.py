"""Check a scene judge on held-out scenes: under each drawing variation, and on iMatch's questions.

``variations``: for every variation of :data:`evalalign_metric.training.scenes.VARIATIONS` (clean, grey or
coloured background, half or 1.5x size, outline, 4-5 shapes), new scenes with that one variation, each asked
EvalAlign's alignment questions for its true prompt and for one prompt per aspect with exactly the thing that
aspect checks changed (``scenes.aspect_change``: a shape swapped for an absent one, a count, a colour, the
relation reversed). Per aspect: ROC-AUC of the aspect's expectation, true prompt against changed prompt
(0.5 is chance, 1.0 a judge that always scores the truth higher), through the metric's scoring.

``imatch``: scenes (classic, or drawn with the variations with ``--varied``) and prompts true, perturbed or
with one thing changed, scored through ``EvalAlignScore(protocol="imatch")``'s scoring: the overall
15-level question against the share of the prompt's claims that hold (``scenes.imatch_truth``; SRCC and PLCC),
each element's yes/no question against whether it holds (ROC-AUC per category: shape, color, counting,
spatial) and the NTIRE 2025 track-1 score (``evalalign_metric.agreement.ntire2025_track1_score``).

Example:
    python benchmarks/scene_checks.py evalalign_metric/assets/judge --threads 1
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import numpy as np

VARIATION_SEEDS = 7 * 10 ** 6  # first seed of the variation scenes (never a training or held-out seed)
IMATCH_SEEDS = 8 * 10 ** 6


def roc_auc(positive, negative) -> float:
    """P(a positive scores above a negative), ties counted half (the Mann-Whitney U statistic / n1 n0).

    Example:
        >>> roc_auc([0.9, 0.8], [0.1, 0.8])
        0.875
    """
    from scipy import stats

    return float(stats.mannwhitneyu(positive, negative).statistic / (len(positive) * len(negative)))


def variation_items(variation: str, n_scenes: int, *, max_count: int) -> list[tuple]:
    """(scene, prompt, elements, (aspect, is_true)) for ``n_scenes`` new scenes with one variation: the true
    prompt asked every aspect, and per aspect a prompt with that aspect's thing changed."""
    from evalalign_metric.training import scenes

    offset = VARIATION_SEEDS + 10 ** 5 * scenes.VARIATIONS.index(variation)
    items = []
    for seed in range(offset, offset + n_scenes):
        rng = random.Random(seed)
        scene = scenes.vary(scenes.random_scene(scenes.random_state(seed), level=scenes.MAX_LEVEL), variation, rng)
        prompt, elements = scenes.claims_prompt(scene.claims())
        for aspect in scenes.ALIGNMENT_ASPECTS:
            changed = scenes.aspect_change(scene, aspect, rng, max_count=max_count)
            if changed is None:
                continue
            items.append((scene, prompt, elements, (aspect, True)))
            other, other_elements = scenes.claims_prompt(changed)
            items.append((scene, other, other_elements, (aspect, False)))
    return items


def score_variations(judge, *, n_scenes: int = 120, max_count: int = 4, variations=None) -> dict[str, dict]:
    """Per variation, per aspect: ``{"auc": ..., "n": pairs}``."""
    from diagnose_scene_judge import score_in_batches

    from evalalign_metric.protocol import load_protocol
    from evalalign_metric.training import scenes

    protocol = load_protocol("evalalign")
    out = {}
    for variation in variations or scenes.VARIATIONS:
        values: dict[str, dict[bool, list[float]]] = {}
        for (aspect, is_true), result in score_in_batches(judge, protocol,
                                                          variation_items(variation, n_scenes, max_count=max_count)):
            for q in result.questions:
                if q.aspect == f"alignment/{aspect}":
                    values.setdefault(aspect, {True: [], False: []})[is_true].append(q.expectation)
        out[variation] = {aspect: {"auc": roc_auc(v[True], v[False]), "n": len(v[False])}
                          for aspect, v in sorted(values.items())}
    return out


def imatch_items(n_scenes: int, *, varied: bool, max_count: int) -> list[tuple]:
    """(scene, prompt, element keys, (overall truth, element truths)) for the true prompt, two perturbed and
    two one-change prompts of each new scene."""
    from evalalign_metric.training import scenes

    items = []
    for seed in range(IMATCH_SEEDS, IMATCH_SEEDS + n_scenes):
        scene = scenes.random_scene(scenes.random_state(seed), varied=varied)
        for claims in scenes.scene_claims(scene, random.Random(seed), prompts=3, one_changes=2, max_count=max_count):
            prompt, _ = scenes.claims_prompt(claims)
            elements = scenes.imatch_elements(scene, claims)
            items.append((scene, prompt, list(elements), (scenes.imatch_truth(scene, claims), elements)))
    return items


def score_imatch(judge, *, n_scenes: int = 200, varied: bool = False, max_count: int = 3) -> dict:
    """Overall SRCC / PLCC, per-category element ROC-AUC and accuracy, and the track-1 score."""
    from diagnose_scene_judge import score_in_batches

    from evalalign_metric.agreement import ntire2025_track1_score, plcc, srcc
    from evalalign_metric.evalmuse import split_element
    from evalalign_metric.protocol import load_protocol

    protocol = load_protocol("imatch")
    overall_pred, overall_truth, element_pred, element_truth, element_image = [], [], [], [], []
    by_category: dict[str, dict[int, list[float]]] = {}
    items = imatch_items(n_scenes, varied=varied, max_count=max_count)
    for (truth, elements), result in score_in_batches(judge, protocol, items):
        image = len(overall_pred)
        for q in result.questions:
            if q.aspect == "imatch/overall":
                overall_pred.append(q.expectation)
                overall_truth.append(truth)
        for q in result.questions:
            if q.aspect == "element/match":
                element_pred.append(q.expectation)
                element_truth.append(elements[q.element])
                element_image.append(image)
                by_category.setdefault(split_element(q.element)[1], {0: [], 1: []})[elements[q.element]].append(
                    q.expectation)
    track1 = ntire2025_track1_score(overall_pred, overall_truth, element_pred, element_truth,
                                    element_image=element_image)
    categories = {}
    for category, v in sorted(by_category.items()):
        categories[category] = {"auc": roc_auc(v[1], v[0]) if v[0] and v[1] else float("nan"),
                                "accuracy": float(np.mean([p >= 0.5 for p in v[1]] + [p < 0.5 for p in v[0]])),
                                "n_yes": len(v[1]), "n_no": len(v[0])}
    return {"overall_srcc": srcc(overall_pred, overall_truth).value,
            "overall_plcc": plcc(overall_pred, overall_truth).value,
            "element_accuracy": track1.accuracy.value, "track1": track1.score.value,
            "track1_plcc_fitted": track1.plcc.value, "n_prompts": len(overall_pred),
            "n_elements": len(element_pred), "categories": categories}


def print_variations(table: dict) -> None:
    aspects = sorted({a for row in table.values() for a in row})
    print(f"  {'variation (ROC-AUC true vs changed)':36s}" + "".join(f"{a:>9s}" for a in aspects))
    for variation, row in table.items():
        print(f"  {variation:36s}" + "".join(f"{row[a]['auc']:9.3f}" if a in row else f"{'-':>9s}"
                                             for a in aspects))


def print_imatch(result: dict) -> None:
    print(f"  overall: SRCC {result['overall_srcc']:.3f}, PLCC {result['overall_plcc']:.3f} "
          f"({result['n_prompts']} prompts); elements: accuracy {result['element_accuracy']:.3f} "
          f"({result['n_elements']}); NTIRE track-1 score {result['track1']:.3f}")
    for category, v in result["categories"].items():
        print(f"  element {category:10s} ROC-AUC {v['auc']:.3f}  accuracy {v['accuracy']:.3f}  "
              f"(yes {v['n_yes']}, no {v['n_no']})")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("judge", help="a scene judge folder, e.g. evalalign_metric/assets/judge")
    parser.add_argument("--check", choices=("variations", "imatch", "both"), default="both")
    parser.add_argument("--scenes", type=int, default=120, help="scenes per variation")
    parser.add_argument("--imatch-scenes", type=int, default=200)
    parser.add_argument("--varied", action="store_true", help="iMatch check on scenes drawn with the variations")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from evalalign_metric.judge import load_judge

    judge = load_judge(args.judge, cache=False)
    out = {}
    if args.check in ("variations", "both"):
        out["variations"] = score_variations(judge, n_scenes=args.scenes)
        print(f"{args.judge}: EvalAlign alignment under each variation ({args.scenes} scenes each)")
        print_variations(out["variations"])
    if args.check in ("imatch", "both"):
        out["imatch"] = score_imatch(judge, n_scenes=args.imatch_scenes, varied=args.varied,
                                     max_count=4 if args.varied else 3)
        print(f"{args.judge}: iMatch protocol ({args.imatch_scenes} {'varied' if args.varied else 'classic'} scenes)")
        print_imatch(out["imatch"])
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
