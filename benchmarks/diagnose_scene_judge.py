"""What a scene judge gets wrong, split by cause (``benchmarks/train_scene_judge.py``'s judges).

``positions JUDGE PROTOCOL``: a curriculum-stage judge's answers to "in which half of the image are the
circles?" and "where are the circles relative to the squares?" on new two-group scenes, by axis (left/right
or top/bottom), with the direct-question protocol its stage was trained on (``describe_protocol.json``).

``causes JUDGE``: a finished judge's EvalAlign Spatial and Color expectations on the held-out scenes'
prompts, grouped by why the truth is what it is: Spatial true, relation reversed (the same shapes), or a
shape absent; Color by truth level and whether every named shape is drawn. A judge that checks the
relation scores "reversed" low; one that only sees which shapes are drawn scores it like "true".

``relations JUDGE``: a finished judge's yes-probability for iMatch's relation elements (``"circle on the left
of the square (spatial)"``) on new scenes' prompts (``evalalign_metric.synthetic.checks.imatch_items``),
grouped the same way: the relation true, wrong between the drawn shapes, or naming an absent shape; and whether
the prompt's other claims all hold.

Example:
    python benchmarks/diagnose_scene_judge.py relations evalalign_metric/assets/judge
    python benchmarks/diagnose_scene_judge.py positions /tmp/scenes/describe /tmp/scenes/describe_protocol.json
    python benchmarks/diagnose_scene_judge.py causes evalalign_metric/assets/judge
"""

from __future__ import annotations

import argparse
import random
import sys

import numpy as np

from evalalign_metric.synthetic import scenes
from evalalign_metric.synthetic.checks import imatch_items, score_in_batches

HELDOUT_SEEDS = range(10 ** 6, 10 ** 6 + 300)  # train_scene_judge.py's held-out scenes
NEW_SEEDS = range(5 * 10 ** 6, 5 * 10 ** 6 + 600)


def positions(judge, protocol) -> dict[str, list[bool]]:
    """Right answers to the side_/where_ questions, keyed ``<question kind>-<axis>``."""
    items = []
    for seed in NEW_SEEDS:
        scene = scenes.random_scene(scenes.random_state(seed))
        if len(scene.groups) == 2:
            truth = {r["aspect"]: r["score"] for r in scenes.describe_annotations(scene, "x.png", sides=True)}
            axis = "left/right" if scene.relation in ("left", "right") else "top/bottom"
            items.append((scene, "scene", {}, (truth, axis)))
    right: dict[str, list[bool]] = {}
    for (truth, axis), result in score_in_batches(judge, protocol, items):
        for q in result.questions:
            name = q.aspect.split("/")[-1]
            if name.startswith(("side_", "where_")) and truth.get(name, 0) != 0:  # both shapes drawn
                answer = protocol.aspect(q.aspect).options[int(np.argmax(q.probs))].score
                right.setdefault(f"{name.split('_')[0]}-{axis}", []).append(answer == truth[name])
    return right


def causes(judge) -> dict[str, list[float]]:
    """EvalAlign Spatial / Color expectations keyed by the cause of their truth."""
    from evalalign_metric.protocol import load_protocol
    items = []
    for seed in HELDOUT_SEEDS:
        scene = scenes.random_scene(scenes.random_state(seed))
        drawn = {g.shape for g in scene.groups}
        for row in scenes.scene_annotations(scene, "x.png", random.Random(seed), prompts=3, faithfulness=False):
            named = [part.split(":")[0].strip() for part in row["elements"]["Color"].split(";") if part.strip()]
            if row["aspect"] == "Spatial" and scene.relation is not None:
                axis = "left/right" if any(w in row["elements"]["Spatial"] for w in ("left", "right")) else "top/bottom"
                why = ("true" if row["score"] == 2 else "reversed" if set(named) == drawn else "shape absent")
                items.append((scene, row["prompt"], row["elements"], ("alignment/Spatial", f"{why}, {axis}")))
            elif row["aspect"] == "Color":
                where = "all named shapes drawn" if set(named) <= drawn else "a named shape absent"
                items.append((scene, row["prompt"], row["elements"],
                              ("alignment/Color", f"truth {row['score']}, {where}, {len(named)} named")))
    protocol = load_protocol("evalalign")
    out: dict[str, list[float]] = {}
    for (aspect, key), result in score_in_batches(judge, protocol, items):
        question = next(q for q in result.questions if q.aspect == aspect)
        out.setdefault(f"{aspect.split('/')[1]}: {key}", []).append(question.expectation)
    return out


def relations(judge, n_scenes: int = 100) -> dict[str, list[float]]:
    """iMatch relation-element expectations keyed by the cause of their truth."""
    from evalalign_metric.protocol import load_protocol

    items = imatch_items(n_scenes, varied=False, max_count=3)
    out: dict[str, list[float]] = {}
    scored = score_in_batches(judge, load_protocol("imatch"), items)
    for (scene, _, _, (_, truth)), (_, result) in zip(items, scored):
        drawn = {g.shape for g in scene.groups}
        others = "other claims hold" if all(v for k, v in truth.items() if not k.endswith("(spatial)")) else \
            "another claim false"
        for q in result.questions:
            if q.aspect == "element/match" and q.element.endswith("(spatial)"):
                words = q.element.split()
                why = ("true" if truth[q.element] else "wrong, a named shape absent"
                       if not {words[0], words[-2]} <= drawn else "wrong between the drawn shapes")
                out.setdefault(f"{why}, {others}", []).append(q.expectation)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("positions", help="side/where answers by axis (a curriculum-stage judge)")
    p.add_argument("judge")
    p.add_argument("protocol", help="the direct-question protocol file its stage was trained on")
    c = sub.add_parser("causes", help="EvalAlign Spatial / Color expectations by cause (a finished judge)")
    c.add_argument("judge")
    r = sub.add_parser("relations", help="iMatch relation-element yes-probabilities by cause (a finished judge)")
    r.add_argument("judge")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from evalalign_metric.judge import load_judge
    from evalalign_metric.protocol import load_protocol

    judge = load_judge(args.judge, cache=False)
    if args.command == "positions":
        for key, values in sorted(positions(judge, load_protocol(args.protocol)).items()):
            print(f"  {key:24s} right {np.mean(values):.3f}  (n={len(values)})")
    elif args.command == "relations":
        for key, values in sorted(relations(judge).items()):
            print(f"  {key:60s} mean yes-probability {np.mean(values):.2f}  (n={len(values)})")
    else:
        for key, values in sorted(causes(judge).items()):
            print(f"  {key:60s} mean expectation {np.mean(values):.2f}  (n={len(values)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
