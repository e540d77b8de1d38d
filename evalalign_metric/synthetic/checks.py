"""A scene judge checked on new scenes: under each drawing variation, and on iMatch's questions.

``variations`` (:func:`score_variations`): for every variation of :data:`.scenes.VARIATIONS` (clean, grey or
coloured background, half or 1.5x size, outline, 4-5 shapes), new scenes with that one variation, each asked
EvalAlign's alignment questions for its true prompt and for one prompt per aspect with exactly the thing that
aspect checks changed (``scenes.aspect_change``: a shape swapped for an absent one, a count, a colour, the
relation reversed). Per aspect: ROC-AUC of the aspect's expectation, true prompt against changed prompt
(0.5 is chance, 1.0 a judge that always scores the truth higher), through the metric's scoring.

``imatch`` (:func:`score_imatch`): scenes (classic, or drawn with the variations with ``varied=True``) and
prompts true, perturbed or with one thing changed, scored through ``EvalAlignScore(protocol="imatch")``'s
scoring: the overall 15-level question against the share of the prompt's claims that hold
(``scenes.imatch_truth``; SRCC and PLCC), each element's yes/no question against whether it holds (ROC-AUC
per category: shape, color, counting, spatial) and the NTIRE 2025 track-1 score
(``evalalign_metric.agreement.ntire2025_track1_score``).

The command line is ``python benchmarks/scene_checks.py JUDGE --threads 1``.

Example:
    >>> items = variation_items("clean", 1, max_count=4)
    >>> sorted({aspect for *_, (aspect, _) in items}) <= sorted(scenes.ALIGNMENT_ASPECTS)
    True
"""

from __future__ import annotations

import random

import numpy as np

from evalalign_metric.functional import score_images
from evalalign_metric.synthetic import scenes

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


def score_in_batches(judge, protocol, items, batch: int = 32):
    """``items``: (scene, prompt, elements, payload); yields (payload, result) through the metric's scoring."""
    for start in range(0, len(items), batch):
        chunk = items[start:start + batch]
        results = score_images(judge, protocol, [scenes.render(c[0]) for c in chunk], [c[1] for c in chunk],
                               [c[2] for c in chunk])
        yield from zip((c[3] for c in chunk), results)


def variation_items(variation: str, n_scenes: int, *, max_count: int) -> list[tuple]:
    """(scene, prompt, elements, (aspect, is_true)) for ``n_scenes`` new scenes with one variation: the true
    prompt asked every aspect, and per aspect a prompt with that aspect's thing changed."""
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
    from evalalign_metric.protocol import load_protocol
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
