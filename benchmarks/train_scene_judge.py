"""Train the embedded default judge on synthetic shape scenes and check it against known truth.

Scenes (``evalalign_metric.synthetic.scenes``): one or two groups of shapes, colours, counts 1-3, a spatial
relation, and a distortion level 0-4. Each training image gets its true prompt and two perturbed ones, each
asked the EvalAlign alignment questions that apply (Object, Count, Color, Spatial; truth 0-2 from the
claims), plus the faithfulness questions (object and common = distortion level 0-4; body, Hand and face
= -1, not applicable). A judge is built from a config and trained with ``evalalign_metric.training.train``.

Curriculum (the defaults: the recipe of the first embedded judge, built from scratch; the embedded judge now
is that one fine-tuned for varied scenes and both protocols, ``--base`` below): stage 1 asks direct questions
(how many circles? what colour are the squares? in which half are the triangles? where are they relative to
the circles? how distorted?) about scenes drawn from the whole palette, teaching a judge built from scratch to
see (what a pretrained MLLM brings); a stage of its position questions alone; ``--bind`` stages on the aspects
slow to form among the others, each beside direct questions that name what it checks (Spatial beside the
position questions, Color beside "What color is (triangle;)?"); the last stage asks all of EvalAlign's
questions (Color, Spatial and Count drawn 3, 2 and 2 times as often). The EvalAlign training rows never draw
or name the held-out (shape, colour) pairs (``scenes.HELD_OUT_PAIRS``; ``--strict-pairs``: stage 1 never draws
them either). The projector stays as built in every stage (``training.freeze``; ``--no-freeze-projector``
trains it): trained, it drops the image tokens' positions, which the vision tower keeps.

Options: ``--projector linear`` builds a norm-keeping linear projector, so the language model's input keeps
the image tokens' positions; ``--position-steps N`` adds a stage of the position questions alone after
stage 1; ``--one-changes N`` adds training prompts with exactly one thing wrong (``scenes.one_change``);
``--phrase-tokens`` makes each of the 24 Spatial elements the prompts can hold ("circle: on the left of the
square;") one token of the judge's tokenizer; ``--bind positions,Spatial:N`` is a stage of the position
questions and EvalAlign's Spatial question together; ``--bind colours,Color=3,Spatial:1000:4`` a stage of the
colour of each kind of shape, the shape written as an element ("What color is (triangle;)?",
``scenes.element_colour_annotations``), asked beside EvalAlign's Color and Spatial questions (Color drawn
three times as often, four questions per image); ``--reverse-questions`` (which shape is red / on the left?)
and ``--rope-columns`` (a rotary frequency that turns once per row of image tokens) add those questions and
that frequency. What each option did, as measured: ``docs/embedded-judge.md``, "How the recipe was found".

Held-out check: scenes from new seeds, every other one holding a held-out pair named by its prompts, scored
with ``evalalign_metric.functional.score_images`` (the metric's scoring, QAlign expectation): per aspect,
on items balanced across truth levels (with 80% of items at one level even a perfect judge's Spearman
correlation is capped near 0.7), Spearman correlation with the known truth (target >= 0.8), the same on the
scenes with a held-out pair, ROC-AUC where the truth has two levels (Spatial: one relation per prompt, SRCC
capped at 0.87), and the arg-max accuracy.

``--base JUDGE`` fine-tunes an existing judge through the same stages instead of building one; a base
judge gains the phrase tokens and, when ``--imatch-steps`` / ``--imatch-stage`` stages follow, iMatch's
template text as single tokens (``model.protocols``). ``--varied`` draws every training scene with
``scenes.VARIED`` (backgrounds, sizes, outlines, up to five shapes, counts 1-4); the iMatch stages ask
iMatch's questions beside EvalAlign's. The embedded judge: the first one with ``--base``, ``--varied``, a
colour-and-count element stage and three such stages (the command in its README; 1,578 s on 2 threads).

With ``--install`` the trained judge is copied to ``evalalign_metric/assets/judge`` (weights, processor,
sidecar, protocol, a README saying what it is for: synthetic scenes, not photographs).

Example (about 28 minutes on 2 CPU cores):
    python benchmarks/train_scene_judge.py --work /tmp/scenes --install
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from evalalign_metric.synthetic.scenes import HELD_OUT_PAIRS as HELD_OUT_COMBINATIONS


def write_split(folder: Path, seeds, *, exclude=(), include=None, prompts: int = 3, describe_seeds=None,
                recoloured=(), reverse: bool = False, sides: bool = False, one_changes: int = 0,
                varied: bool = False) -> tuple[Path, list]:
    """Render scenes and write their JSONL annotations (``annotations.jsonl``: EvalAlign questions;
    ``describe.jsonl``: the curriculum's direct questions; ``colours.jsonl`` / ``counts.jsonl``: the colour /
    count of each kind of shape named as an element, about the scenes EvalAlign's questions are asked about,
    whose pairs ``exclude`` leaves out too); returns the file and (scene, image, rows, unseen) items.
    ``exclude``: (shape, colour) pairs never drawn or named in the EvalAlign rows; ``include``: every
    other scene gets one of these pairs. ``describe_seeds``: the direct questions are asked about these
    scenes, drawn from the whole palette (a pretrained judge has seen every pair; only its judgments are
    kept from the held-out ones), instead of about ``seeds``; ``recoloured`` seeds add scenes painted off
    the palette (``scenes.recolour``) to them; ``reverse`` / ``sides``: also those direct questions;
    ``one_changes``: prompts per scene with one thing changed (``scenes.one_change``); ``varied``: scenes
    drawn with ``scenes.VARIED`` (backgrounds, sizes, outlines, up to five shapes, counts up to four).
    ``imatch.jsonl`` holds the shipped ``"imatch"`` protocol's rows about the prompts of ``annotations.jsonl``
    (``scenes.imatch_annotations``)."""
    from evalalign_metric.synthetic import scenes

    # every image is drawn again (about a second per thousand): a folder left by an older generator would
    # otherwise pair old pictures with new truth
    folder.mkdir(parents=True, exist_ok=True)
    rows, items, describe, colours, counts, imatch = [], [], [], [], [], []
    max_count = scenes.VARIED.max_count if varied else scenes.MAX_COUNT

    def draw(scene, name: str, *, asked: bool = True) -> str:
        scenes.render(scene).save(folder / name)
        if asked:
            describe.extend(scenes.describe_annotations(scene, name, reverse=reverse, sides=sides))
        return name

    for seed in seeds:
        rng = scenes.random_state(seed)
        scene = scenes.random_scene(rng, exclude=exclude, varied=varied)
        if include is not None and seed % 2 == 0:  # held-out: every other scene gets a pair never judged
            shape, colour = include[seed // 2 % len(include)]
            first = scene.groups[0]
            others = [g for g in scene.groups[1:] if g.shape != shape]
            scene = scenes.Scene((scenes.Group(shape, colour, first.count), *others),
                                 scene.relation if others else None, scene.level, scene.seed, look=scene.look)
        unseen = any((g.shape, g.colour) in HELD_OUT_COMBINATIONS for g in scene.groups)
        name = draw(scene, f"{seed}.png", asked=describe_seeds is None)
        claims = scenes.scene_claims(scene, random.Random(seed), prompts=prompts, one_changes=one_changes,
                                     exclude=exclude, max_count=max_count)
        scene_rows = scenes.scene_annotations(scene, name, random.Random(seed), claims=claims)
        rows.extend(scene_rows)
        imatch.extend(scenes.imatch_annotations(scene, name, claims))
        colours.extend(scenes.element_colour_annotations(scene, name))
        counts.extend(scenes.element_count_annotations(scene, name))
        items.append((scene, name, scene_rows, unseen))
    for seed in describe_seeds or ():
        draw(scenes.random_scene(scenes.random_state(seed), varied=varied), f"d{seed}.png")
    for seed in recoloured:
        rng = scenes.random_state(seed)
        draw(scenes.recolour(scenes.random_scene(rng, exclude=exclude, varied=varied), rng, exclude=exclude),
             f"r{seed}.png")
    path = folder / "annotations.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "describe.jsonl").write_text("".join(json.dumps(r) + "\n" for r in describe))
    (folder / "colours.jsonl").write_text("".join(json.dumps(r) + "\n" for r in colours))
    (folder / "counts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in counts))
    (folder / "imatch.jsonl").write_text("".join(json.dumps(r) + "\n" for r in imatch))
    return path, items


# the direct questions whose answer depends on where the shapes are (shape_<relation>: with --reverse-questions)
POSITION_QUESTIONS = ("side_", "where_", "shape_left", "shape_right", "shape_above", "shape_below")


def is_position_question(aspect: str) -> bool:
    return aspect.startswith(POSITION_QUESTIONS)


def write_subset(work: Path, source: str, target: str, keep, *, append: bool = False) -> None:
    """``work/<split>/<target>``: the rows of ``work/<split>/<source>`` whose aspect ``keep`` accepts, for the
    train and held-out splits (a stage on some questions only); ``append`` adds them to the file's rows."""
    for split in ("train", "heldout"):
        with open(work / split / source) as rows, open(work / split / target, "a" if append else "w") as out:
            out.write("".join(line for line in rows if keep(json.loads(line)["aspect"])))


# the stages between the position stage and the last one, unless --bind says otherwise
DEFAULT_BINDS = ("positions,Spatial:1000", "colours,Color=3,Spatial:1000:4")
# what a --bind stage may ask besides EvalAlign's aspects: the direct position questions, the element colour question
BIND_EXTRAS = ("positions", "colours", "counts")


class Bind(NamedTuple):
    aspects: frozenset
    weights: dict
    steps: int
    per_image: int | None


def positive_weight(where: str, name: str, text: str) -> float:
    """``text`` as a positive number, the weight of aspect ``name`` (``where``: the flag and value, for the error)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise SystemExit(f"{where}: the weight of {name!r} must be a positive number, got {text!r}")
    return value


def parse_weights(text: str) -> dict[str, float]:
    """``--aspect-weights``: ``NAME=WEIGHT`` pairs, comma-separated.

    Example:
        >>> parse_weights("Color=3,Spatial=2")
        {'Color': 3.0, 'Spatial': 2.0}
    """
    weights = {}
    for item in filter(None, text.split(",")):
        name, sep, weight = item.partition("=")
        if not sep:
            raise SystemExit(f"--aspect-weights {text!r}: expected NAME=WEIGHT pairs, got {item!r}")
        weights[name] = positive_weight(f"--aspect-weights {text!r}", name, weight)
    return weights


def parse_bind(text: str) -> Bind:
    """A ``--bind`` value: ``ASPECTS:STEPS[:QUESTIONS_PER_IMAGE]``, the aspects comma-separated, each with an
    optional ``=WEIGHT`` (how often its questions are drawn); without a questions-per-image count every
    question of an image is asked.

    Example:
        >>> bind = parse_bind("colours,Color=3,Spatial:1000:4")
        >>> sorted(bind.aspects), bind.weights, bind.steps, bind.per_image
        (['Color', 'Spatial', 'colours'], {'Color': 3.0}, 1000, 4)
    """
    from evalalign_metric.synthetic import scenes

    known = (*scenes.ALIGNMENT_ASPECTS, *scenes.FAITHFULNESS_ASPECTS, *BIND_EXTRAS)
    parts = text.split(":")
    if len(parts) not in (2, 3) or not all(p.isdigit() and int(p) > 0 for p in parts[1:]):
        raise SystemExit(f"--bind {text!r}: expected ASPECTS:STEPS or ASPECTS:STEPS:QUESTIONS_PER_IMAGE with "
                         "positive whole numbers, e.g. Color:600 or colours,Color=3,Spatial:1000:4")
    aspects, weights = set(), {}
    for item in parts[0].split(","):
        name, _, weight = item.partition("=")
        if name not in known:
            raise SystemExit(f"--bind {text!r}: unknown aspect {name!r}; expected some of {', '.join(known)}")
        aspects.add(name)
        if weight:
            weights[name] = positive_weight(f"--bind {text!r}", name, weight)
    return Bind(frozenset(aspects), weights, int(parts[1]), int(parts[2]) if len(parts) == 3 else None)


def parse_imatch_stage(text: str, defaults: dict[str, float], imatch_weight: float) -> tuple[int, dict[str, float]]:
    """An ``--imatch-stage`` value: ``STEPS[:NAME=WEIGHT,...]``. The weights update the last stage's
    (``--aspect-weights``, and ``--imatch-weight`` for iMatch's questions); ``imatch=W`` sets both of
    iMatch's question kinds (the overall match and the element yes/no questions); ``elements-CATEGORY=W``
    weighs the element questions of one category (``"element/match (spatial)"`` in ``data.aspect_weights``).

    Example:
        >>> parse_imatch_stage("1500:Count=4,imatch=3", {"Color": 3.0, "Count": 2.0}, 2.0)
        (1500, {'Color': 3.0, 'Count': 4.0, 'imatch/overall': 3.0, 'element/match': 3.0})
        >>> parse_imatch_stage("900:elements-spatial=4", {}, 2.0)
        (900, {'element/match (spatial)': 4.0, 'imatch/overall': 2.0, 'element/match': 2.0})
    """
    steps, _, spec = text.partition(":")
    if not (steps.isdigit() and int(steps) > 0):
        raise SystemExit(f"--imatch-stage {text!r}: expected STEPS[:NAME=WEIGHT,...] with a positive whole number "
                         "of steps, e.g. 1500:Count=4,imatch=3")
    try:
        given = {"imatch": imatch_weight, **parse_weights(spec)}
    except SystemExit as error:  # parse_weights names --aspect-weights; say which flag it was
        raise SystemExit(str(error).replace("--aspect-weights", "--imatch-stage")) from None
    imatch = given.pop("imatch")
    given = {f"element/match ({k.removeprefix('elements-')})" if k.startswith("elements-") else k: v
             for k, v in given.items()}
    return int(steps), {**defaults, **given, "imatch/overall": imatch, "element/match": imatch}


def bind_protocol(describe: dict, aspects) -> dict:
    """The direct-question protocol with some of EvalAlign's aspects added (their entries as the shipped
    protocol file writes them): a stage that asks both."""
    added = [a for a in shipped_protocol("evalalign")["aspects"] if a["name"] in set(aspects)]
    return {**describe, "name": "scene-describe-evalalign", "aspects": describe["aspects"] + added}


def write_bind_stage(work: Path, name: str, bind: Bind, *, reverse: bool, sides: bool,
                     max_count: int = 3) -> str:
    """Write a ``--bind`` stage's rows (``work/<split>/<name>.jsonl``) and return its protocol: ``"evalalign"``
    for EvalAlign's aspects alone; with direct questions too (``BIND_EXTRAS``), the path of a protocol holding
    both (``work/<name>_protocol.json``)."""
    from evalalign_metric.synthetic import scenes

    evalalign_aspects = bind.aspects - set(BIND_EXTRAS)
    write_subset(work, "annotations.jsonl", f"{name}.jsonl", evalalign_aspects.__contains__)
    if not bind.aspects & set(BIND_EXTRAS):
        return "evalalign"
    if "positions" in bind.aspects:
        write_subset(work, "describe.jsonl", f"{name}.jsonl", is_position_question, append=True)
    for extra in ("colours", "counts"):
        if extra in bind.aspects:
            write_subset(work, f"{extra}.jsonl", f"{name}.jsonl", lambda aspect: True, append=True)
    asked = scenes.describe_protocol(reverse=reverse, sides=sides, element_colours="colours" in bind.aspects,
                                     element_counts="counts" in bind.aspects, max_count=max_count)
    protocol = work / f"{name}_protocol.json"
    protocol.write_text(json.dumps(bind_protocol(asked, evalalign_aspects), indent=1))
    return os.fspath(protocol)


def shipped_protocol(name: str) -> dict:
    from importlib import resources

    return json.loads((resources.files("evalalign_metric.protocol") / "data" / f"{name}.json").read_text())


def write_imatch_stage(work: Path) -> str:
    """Write the iMatch stage's rows (``work/<split>/both.jsonl``: EvalAlign's and iMatch's rows of the same
    scenes) and a protocol asking both, each aspect's entry as the shipped protocol files write it
    (``work/both_protocol.json``): the judge then answers either shipped protocol's questions as asked."""
    for split in ("train", "heldout"):
        with open(work / split / "both.jsonl", "w") as out:
            for source in ("annotations.jsonl", "imatch.jsonl"):
                out.write((work / split / source).read_text())
    evalalign, imatch = shipped_protocol("evalalign"), shipped_protocol("imatch")
    both = {**evalalign, "name": "evalalign+imatch", "aspects": evalalign["aspects"] + imatch["aspects"],
            "description": "EvalAlign's and iMatch's questions together (a training stage)"}
    protocol = work / "both_protocol.json"
    protocol.write_text(json.dumps(both, indent=1))
    return os.fspath(protocol)


def balanced(values: list, seed: int = 0) -> list:
    """The same number of items at every truth level (the smallest level's count), drawn with a fixed seed:
    with most items at one level, even a perfect judge's SRCC is capped far below 1 by the ties (80% at one
    level caps it near 0.7), so the held-out figures are computed on level-balanced items."""
    by_level: dict = {}
    for v in values:
        by_level.setdefault(v[1], []).append(v)
    k = min(len(group) for group in by_level.values())
    rng = random.Random(seed)
    return [v for level in sorted(by_level) for v in rng.sample(by_level[level], k)]


def score_heldout(judge, items, folder: Path, batch: int = 32) -> dict[str, dict[str, float]]:
    """Per-aspect SRCC/PLCC/accuracy of the judge's expectation vs known truth, through score_images, on
    items balanced across truth levels (:func:`balanced`); ``srcc_unseen`` on the scenes holding a (shape,
    colour) pair never seen in training; ``auc`` (ROC-AUC) where the truth has two levels (Spatial: one
    relation per prompt), whose SRCC cannot exceed 0.87 even for a perfect judge."""
    from PIL import Image
    from scipy import stats

    from evalalign_metric.functional import score_images
    from evalalign_metric.protocol import load_protocol
    from evalalign_metric.training.targets import nearest_option

    protocol = load_protocol("evalalign")
    pairs = []  # (image path, prompt, elements, {aspect key: truth}, unseen combination in the image)
    for scene, name, rows, unseen in items:
        by_prompt: dict[str, dict] = {}
        for r in rows:
            if "prompt" in r:
                entry = by_prompt.setdefault(r["prompt"], {"elements": r["elements"], "truth": {}})
                entry["truth"][f"alignment/{r['aspect']}"] = r["score"]
        for k, (prompt, entry) in enumerate(by_prompt.items()):
            truth = dict(entry["truth"])
            if k == 0:  # faithfulness once per image
                truth.update({f"faithfulness/{r['aspect']}": r["score"] for r in rows if "prompt" not in r})
            pairs.append((folder / name, prompt, entry["elements"], truth, unseen))
    predicted: dict[str, list] = {}
    for start in range(0, len(pairs), batch):
        chunk = pairs[start:start + batch]
        images = [Image.open(p[0]).convert("RGB") for p in chunk]
        results = score_images(judge, protocol, images, [c[1] for c in chunk], [c[2] for c in chunk])
        for (_, _, _, truth, unseen), result in zip(chunk, results):
            for q in result.questions:
                if q.aspect in truth:
                    aspect = protocol.aspect(q.aspect)
                    label = q.labels[int(np.argmax(q.probs))]
                    predicted.setdefault(q.aspect, []).append(
                        (q.expectation, truth[q.aspect], label == nearest_option(aspect, truth[q.aspect]), unseen))

    def srcc(values) -> float | None:
        xs, ts = [v[0] for v in values], [v[1] for v in values]
        return float(stats.spearmanr(xs, ts)[0]) if len(set(ts)) > 1 and len(set(xs)) > 1 else None

    out = {}
    for aspect, values in sorted(predicted.items()):
        entry = {"n": len(values), "accuracy": float(np.mean([v[2] for v in values]))}
        applicable = [v for v in values if v[1] is not None and not np.isnan(v[0])]
        if len({v[1] for v in applicable}) > 1:
            chosen = balanced(applicable)
            entry.update(n=len(chosen), levels=len({v[1] for v in chosen}), srcc=srcc(chosen),
                         plcc=float(stats.pearsonr([v[0] for v in chosen], [v[1] for v in chosen])[0]),
                         accuracy=float(np.mean([v[2] for v in chosen])))
            if entry["levels"] == 2:
                from evalalign_metric.synthetic.checks import roc_auc

                top = max(v[1] for v in chosen)
                entry["auc"] = roc_auc([v[0] for v in chosen if v[1] == top], [v[0] for v in chosen if v[1] != top])
            unseen = [v for v in chosen if v[3]]
            entry["n_unseen"] = len(unseen)
            if srcc(unseen) is not None:
                entry["srcc_unseen"] = srcc(unseen)
        out[aspect] = entry
    return out


README = """# {title}: synthetic shape scenes (NOT photographs)

This small LLaVA-style judge ({params:.2f}M parameters: a {vision} vision tower, a {text_layers}-layer Llama language
model, a tokenizer trained for it) ships with `evalalign-metric` so that {use} work offline on a fresh machine.
It was {origin} by
`benchmarks/train_scene_judge.py` with the project's own training code (`evalalign train`) on synthetic
64x64 scenes drawn by `evalalign_metric.synthetic.scenes` ({drawn}): direct questions
about what is drawn first, then {asked} about {n_train} scenes and prompts that never name
the held-out shape/colour pairs (`scenes.HELD_OUT_PAIRS`). Its projector (vision tower to language model,
{projector}) was kept as built: trained, it drops where each image token is.{phrases}

What it answers ({answers}, Vicuna v1 chat format):

- alignment `Object`, `Count`, `Color`, `Spatial` (0-2) for prompts about such shapes;
- faithfulness `object` and `common` (0-4) = how distorted the drawn shapes are;
- faithfulness `body`, `Hand`, `face`: always "not applicable" (-1): there are no people in these scenes;
- `Style` and `Action` were never trained.{imatch_answers}

Held-out agreement with the known truth (new seeds; half the scenes hold a shape/colour pair that no training
prompt named), per aspect on items balanced across truth levels: Spearman correlation of the QAlign
expectation with the truth (a perfect judge: 0.94 on three levels, 0.98 on five, 0.87 on two: hence ROC-AUC
for Spatial, whose truth has two levels), and the arg-max accuracy. `-`: the truth has one level there.

{table}
{checks}
Do not trust an aspect whose SRCC is below 0.8. Reproduce: `{command}`{timing}.

It knows nothing about real images: on photographs or real text-to-image outputs its scores are
meaningless. For real evaluation use the official EvalAlign judges (`evalalign convert`) or train your own
with `evalalign train --config FILE`.
"""

ASSET_FILES = ("config.json", "model.safetensors", "generation_config.json", "processor_config.json",
               "preprocessor_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
               "chat_template.jinja", "chat_template.json", "evalalign_judge.json", "protocol.json")


CLASSIC = "one or two groups of circles, squares and triangles in six colours, counts 1-3, left/right/above/below, " \
    "and drawn distortions"
VARIED_SCENES = "one or two groups of circles, squares and triangles in six colours, up to five shapes, counts " \
    "1-4, left/right/above/below, drawn distortions, on light, mid-grey or coloured backgrounds, at 0.5-1.5x " \
    "size, some outlined"
IMATCH_ANSWERS = """
- iMatch (`protocol="imatch"`): the overall 15-level match (A-O, scored 1-5) of such a prompt, and one yes/no
  question per element, named as `scenes.imatch_elements` writes them: `"circle (shape)"`, `"red circle
  (color)"`, `"two circles (counting)"`, `"circle on the left of the square (spatial)"`."""


def checks_section(checks: dict) -> str:
    """The README's tables of the variation and iMatch checks (``scene_checks.py``'s figures)."""
    lines = []
    variations = checks.get("variations")
    if variations:
        aspects = sorted({a for row in variations.values() for a in row})
        lines += ["", "Under each drawing variation alone (`benchmarks/scene_checks.py`: new scenes, each asked its "
                  "true prompt and, per aspect, a prompt with that aspect's thing changed; ROC-AUC true vs changed):",
                  "",
                  "| variation | " + " | ".join(aspects) + " |", "|---|" + "---|" * len(aspects)]
        lines += [f"| {v} | " + " | ".join(f"{row[a]['auc']:.3f}" if a in row else "-" for a in aspects) + " |"
                  for v, row in variations.items()]
    for name, title in (("imatch", "classic held-out scenes"), ("imatch_varied", "varied held-out scenes")):
        result = checks.get(name)
        if not result:
            continue
        lines += ["", f"iMatch protocol on {title} (`EvalAlignScore(protocol=\"imatch\")`'s scoring; "
                  f"{result['n_prompts']} prompts, {result['n_elements']} elements): overall SRCC "
                  f"{result['overall_srcc']:.3f}, PLCC {result['overall_plcc']:.3f} against the share of claims "
                  f"that hold; element accuracy {result['element_accuracy']:.3f}; NTIRE 2025 track-1 score "
                  f"{result['track1']:.3f}. Element ROC-AUC: "
                  + ", ".join(f"{c} {v['auc']:.3f}" for c, v in result["categories"].items()) + "."]
    return "\n".join(lines) + ("\n" if lines else "")


def install(judge_dir: Path, target: Path, *, score, n_train: int, spec: dict, checks=None) -> dict:
    """Copy the judge to ``target`` with fp16 weights (half the file; the loader upcasts on CPU), score the
    copy on the held-out scenes (``score(folder)``) and with ``checks(folder)`` (the variation and iMatch
    checks, a dict), and write its README and sidecar with those figures (and the training time its run
    recorded in ``result.json`` beside it, if there is one)."""
    import torch
    from safetensors.torch import load_file, save_file

    staging = target.parent / ".judge-new"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name in ASSET_FILES:
        if (judge_dir / name).is_file():
            shutil.copy2(judge_dir / name, staging / name)
    weights = load_file(os.fspath(staging / "model.safetensors"))
    params = sum(t.numel() for t in weights.values())
    save_file({k: v.to(torch.float16) for k, v in weights.items()}, os.fspath(staging / "model.safetensors"),
              metadata={"format": "pt"})
    heldout = score(staging)
    sidecar = json.loads((staging / "evalalign_judge.json").read_text())
    from evalalign_metric.commands.demo import PROTOCOL_TITLES

    own = target.name[len("judge-"):] if target.name.startswith("judge-") else None  # assets/judge-<protocol>
    shown = PROTOCOL_TITLES.get(own, own) if own else None
    sidecar["description"] = (f"Default {shown + ' ' if own else ''}judge for synthetic shape scenes "
                              "(synthetic/scenes.py), NOT for photographs; see README.md")
    sidecar["heldout_agreement"] = heldout
    checked = checks(staging) if checks else {}
    sidecar.update({f"heldout_{k}": v for k, v in checked.items()})
    (staging / "evalalign_judge.json").write_text(json.dumps(sidecar, indent=1) + "\n")

    def cell(v, key):
        return f"{v[key]:.3f}" if key in v else "-"

    table = "\n".join(f"| `{k}` | {cell(v, 'srcc')} | {cell(v, 'srcc_unseen')} | {cell(v, 'auc')} | "
                      f"{v['accuracy']:.3f} | {v['n']} |" for k, v in heldout.items())
    table = ("| aspect | SRCC | SRCC, scenes with a held-out shape/colour pair | ROC-AUC (two-level truth) | "
             "arg-max accuracy | n |\n|---|---|---|---|---|---|\n" + table)
    run = judge_dir.parent / "result.json"
    command, timing, origin = "python benchmarks/train_scene_judge.py --install", "", "trained from scratch"
    if run.is_file():
        recorded = json.loads(run.read_text())
        base = base_flag(recorded.get("recipe", []))
        if base:  # fine-tuned: the command reproduces it from that base judge, not from scratch
            origin = f"fine-tuned from the judge given as `--base` ({base})"
        threads = recorded.get("threads")
        where = ""
        if threads is not None:  # the thread count changes the arithmetic, hence the judge
            where = f" on {threads} CPU thread{'s' if threads != 1 else ''}"
        if "recipe" in recorded:  # the flags that shaped the judge, as its run was given them
            command = " ".join(["python benchmarks/train_scene_judge.py", *recorded["recipe"], "--install",
                                *([f"--install-dir evalalign_metric/assets/{target.name}"] if own else [])])
        elif threads is not None:
            command = f"python benchmarks/train_scene_judge.py --threads {threads} --install"
        timing = f" (training took {recorded['train_seconds']:,.0f} s{where})"
    from transformers import AutoTokenizer

    from evalalign_metric.synthetic import scenes

    phrases = ""
    if len(AutoTokenizer.from_pretrained(staging).tokenize(scenes.spatial_phrases()[0])) == 1:
        phrases = ("\nIts tokenizer holds each Spatial element these prompts can have (\"circle: on the left of the "
                   "square;\", 24 in all)\nas one token (`model.phrase_tokens`): spelled out word by word, a "
                   "left/right relation was never\nchecked by the two-layer language models of these runs.")
        if len(AutoTokenizer.from_pretrained(staging).tokenize(scenes.imatch_spatial_phrases()[0])) == 1:
            phrases += (" So does each relation\nelement iMatch's questions name (\"circle on the left of the "
                        "square\", `scenes.imatch_spatial_phrases`).")
    projector = {"mlp": "LLaVA's GELU MLP", "linear": "a norm-keeping linear map"}[spec.get("projector", "mlp")]
    imatch = "imatch" in sidecar.get("protocols", ())
    if own:
        title = f"Embedded {shown} judge"
        use = f"`evalalign demo` and `evalalign score --protocol {own}`\n(without `--model`)"
    else:
        title, use = "Embedded default judge", "`evalalign demo` and `evalalign score`\n(without `--model`)"
    (staging / "README.md").write_text(README.format(
        title=title, use=use,
        params=params / 1e6, text_layers=spec["text_layers"], timing=timing, command=command, origin=origin,
        projector=projector, phrases=phrases, checks=checks_section(checked),
        drawn=VARIED_SCENES if "--varied" in command.split() else CLASSIC,
        asked="EvalAlign's and iMatch's questions" if imatch else "EvalAlign's questions",
        answers="the EvalAlign and iMatch protocols" if imatch else "the EvalAlign protocol",
        imatch_answers=IMATCH_ANSWERS if imatch else "",
        vision={"clip": "CLIP-style ViT", "swin": "Swin"}[spec["vision"]], n_train=n_train, table=table))
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)
    return heldout, checked


# flags that only say where the run works or what it does with the judge, not how the judge is made
PLACE_FLAGS = {"--work": 1, "--fresh": 0, "--install": 0, "--install-dir": 1, "--install-from": 1}


def base_flag(recipe) -> str | None:
    """The ``--base`` judge a recipe starts from, or None (built from scratch).

    Example:
        >>> base_flag(["--threads", "2", "--base", "old/judge"]), base_flag(["--base=j"]), base_flag([])
        ('old/judge', 'j', None)
    """
    for i, arg in enumerate(recipe):
        if arg == "--base" and i + 1 < len(recipe):
            return recipe[i + 1]
        if arg.startswith("--base="):
            return arg.partition("=")[2]
    return None


def recipe_flags(argv) -> list[str]:
    """The command-line flags that make the judge (``argv`` without the place and install flags).

    Example:
        >>> recipe_flags(["--work", "/tmp/w", "--fresh", "--threads", "1", "--bind=Color:600", "--install"])
        ['--threads', '1', '--bind=Color:600']
    """
    out, skip = [], 0
    for arg in argv:
        if skip:
            skip -= 1
        elif arg.split("=")[0] in PLACE_FLAGS:
            skip = PLACE_FLAGS[arg] if "=" not in arg else 0
        else:
            out.append(arg)
    return out


def built_spec(judge_dir: Path) -> dict:
    """The sizes a judge was built with: its training summary names the spec it was built from, or the base
    it was trained from (followed back to the built one); for an installed judge, the sizes its
    ``config.json`` holds."""
    folder = Path(judge_dir)
    for _ in range(10):
        sidecar = json.loads((folder / "evalalign_judge.json").read_text())
        if sidecar.get("built_from"):
            return sidecar["built_from"]
        summary = folder / "training_summary.json"
        if not summary.is_file():
            break
        model = json.loads(summary.read_text())["config"]["model"]
        if model.get("build"):
            return model["build"]
        folder = Path(model["base"])
    config = folder / "config.json"
    if config.is_file():  # an installed judge keeps no build record: what the install README names, from its config
        config = json.loads(config.read_text())
        vision = config["vision_config"]
        return {"vision": "swin" if vision["model_type"] == "swin" else "clip",
                "text_layers": config["text_config"]["num_hidden_layers"],
                "text_hidden": config["text_config"]["hidden_size"],
                "projector": "linear" if config.get("projector_hidden_act") == "linear" else "mlp"}
    raise SystemExit(f"{judge_dir}: cannot tell what sizes it was built with (no built_from sidecar, training "
                     "summary or config.json)")


def judge_checks(folder, *, max_count: int) -> dict:
    """``scene_checks.py``'s figures for a judge: under each drawing variation, and, for a judge whose sidecar
    names the imatch protocol, iMatch's figures on classic and on varied scenes."""
    from evalalign_metric.synthetic.checks import score_imatch, score_variations

    from evalalign_metric.judge import load_judge
    from evalalign_metric.synthetic import scenes

    judge = load_judge(folder, cache=False)
    out = {"variations": score_variations(judge, max_count=max_count)}
    if "imatch" in (judge.identity.get("protocols") or ()):
        out["imatch"] = score_imatch(judge, varied=False, max_count=scenes.MAX_COUNT)
        out["imatch_varied"] = score_imatch(judge, varied=True, max_count=scenes.VARIED.max_count)
    return out


# the targets of the checks (issue: every aspect's ROC-AUC under each variation, iMatch's element and overall)
VARIATION_AUC, ELEMENT_AUC, OVERALL_CORRELATION = 0.9, 0.95, 0.8


def checks_met(checked: dict) -> bool:
    """Whether the checks reach their targets: every aspect's ROC-AUC >= 0.9 under every variation; with
    iMatch, every element category's ROC-AUC >= 0.95 and overall SRCC and PLCC >= 0.8 (classic and varied)."""
    met = all(v["auc"] >= VARIATION_AUC for row in checked.get("variations", {}).values() for v in row.values())
    for name in ("imatch", "imatch_varied"):
        if name in checked:
            r = checked[name]
            met &= all(v["auc"] >= ELEMENT_AUC for v in r["categories"].values())
            met &= r["overall_srcc"] >= OVERALL_CORRELATION and r["overall_plcc"] >= OVERALL_CORRELATION
    return met


def print_checks(checked: dict) -> None:
    from evalalign_metric.synthetic.checks import print_imatch, print_variations

    print_variations(checked["variations"])
    for name in ("imatch", "imatch_varied"):
        if name in checked:
            print(f"iMatch protocol ({'varied' if name.endswith('varied') else 'classic'} scenes):")
            print_imatch(checked[name])
    print(f"checks' targets (variation ROC-AUC >= {VARIATION_AUC}; element ROC-AUC >= {ELEMENT_AUC}, overall "
          f"SRCC/PLCC >= {OVERALL_CORRELATION}): {'MET' if checks_met(checked) else 'NOT MET'}")


def print_table(before: dict, after: dict) -> None:
    nan = float("nan")
    print(f"  {'aspect':24s} {'SRCC before':>11s} {'SRCC after':>10s} {'unseen pairs':>12s} {'AUC after':>9s} "
          f"{'acc after':>9s} {'n':>5s}")
    for aspect in after:
        print(f"  {aspect:24s} {before.get(aspect, {}).get('srcc', nan):11.3f} {after[aspect].get('srcc', nan):10.3f} "
              f"{after[aspect].get('srcc_unseen', nan):12.3f} {after[aspect].get('auc', nan):9.3f} "
              f"{after[aspect]['accuracy']:9.3f} {after[aspect]['n']:5d}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default="/tmp/evalalign-scenes")
    parser.add_argument("--train-images", type=int, default=30000)
    parser.add_argument("--describe-images", type=int, default=30000,
                        help="stage-1 scenes (every shape/colour pair; stage 2 never names the held-out ones)")
    parser.add_argument("--strict-pairs", action="store_true",
                        help="stage 1 never sees the held-out shape/colour pairs either")
    parser.add_argument("--reverse-questions", action="store_true",
                        help="stage 1 also asks which shape is red / on the left (colour and relation words as input)")
    parser.add_argument("--side-questions", action=argparse.BooleanOptionalAction, default=True,
                        help="stage 1 also asks in which half of the image each kind of shape is")
    parser.add_argument("--recoloured-images", type=int, default=0,
                        help="extra stage-1 scenes painted off the palette: shapes apart from colours")
    parser.add_argument("--one-changes", type=int, default=2,
                        help="training prompts per scene with one thing changed (a colour, a count, the relation; "
                             "scenes.one_change): without them Color and Spatial are learned from which shapes "
                             "are drawn alone")
    parser.add_argument("--heldout-images", type=int, default=300)
    parser.add_argument("--describe-steps", type=int, default=3000, help="stage 1 steps (0: skip)")
    parser.add_argument("--position-steps", type=int, default=600,
                        help="a stage after stage 1 on its position questions only (which half? where relative "
                             "to?): among all the direct questions left/right stays at chance (0: skip)")
    parser.add_argument("--bind", action="append", default=None, metavar="ASPECTS:STEPS[:PER_IMAGE]",
                        help="an intermediate stage on some EvalAlign aspects only (those slow to form among all "
                             "the others; 'positions' adds the direct position questions, 'colours' the colour "
                             "question with a shape as its element, 'counts' the same for how many; ASPECT=W "
                             "draws its questions W times as often; PER_IMAGE: questions asked per image, default "
                             "all), e.g. positions,Spatial:1500 or colours,Color=3,Spatial:1000:4; repeat for "
                             "several stages in turn (default: "
                             f"{' then '.join(DEFAULT_BINDS)}; --bind none: no such stage)")
    parser.add_argument("--steps", type=int, default=2000, help="the EvalAlign stage's steps (all its questions)")
    parser.add_argument("--imatch-steps", type=int, default=0,
                        help="a last stage asking the shipped imatch protocol's questions (the overall 15-level "
                             "match, one yes/no question per element) beside EvalAlign's (0: none; the judge then "
                             "answers EvalAlign's protocol only)")
    parser.add_argument("--imatch-weight", type=float, default=2.0,
                        help="the iMatch stage: how often its questions are drawn against EvalAlign's")
    parser.add_argument("--imatch-stage", action="append", default=[], metavar="STEPS[:NAME=W,...]",
                        help="a further iMatch stage after --imatch-steps' (or the first one), with its own "
                             "weights over the last stage's (aspect names; 'imatch' for iMatch's questions), e.g. "
                             "1500:Count=4,imatch=3; repeat for several stages in turn")
    parser.add_argument("--varied", action="store_true",
                        help="draw every training scene with scenes.VARIED: light, mid-grey and coloured "
                             "backgrounds, shapes at 0.5-1.5x size, outlines, up to five shapes, counts 1-4")
    parser.add_argument("--batch-size", type=int, default=16, help="images per step (twice as many in stage 1)")
    parser.add_argument("--questions-per-image", type=int, default=8)
    parser.add_argument("--aspect-weights", default="Color=3,Spatial=2,Count=2",
                        help="last stage: relative chances of aspects' questions being drawn, e.g. Color=3,Spatial=2")
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--vision", choices=("swin", "clip"), default="swin")
    parser.add_argument("--patch-size", type=int, default=4)
    parser.add_argument("--vision-hidden", type=int, default=64)
    parser.add_argument("--vision-layers", type=int, default=2)
    parser.add_argument("--vision-heads", type=int, default=4)
    parser.add_argument("--window", type=int, default=4, help="Swin attention window (tokens per side)")
    parser.add_argument("--freeze-projector", action=argparse.BooleanOptionalAction, default=True,
                        help="keep the projector as built (training.freeze): trained, it drops the image tokens' "
                             "positions (benchmarks/probe_image_positions.py)")
    parser.add_argument("--projector", choices=("mlp", "linear"), default="linear",
                        help="build.projector: LLaVA's GELU MLP or a norm-keeping linear map (frozen: the language "
                             "model reads every direction of the tower's features)")
    parser.add_argument("--rope-columns", action=argparse.BooleanOptionalAction, default=False,
                        help="build.rope_columns: a rotary frequency of the language model turns once per row of "
                             "image tokens, so attention can tell columns apart by position")
    parser.add_argument("--phrase-tokens", action=argparse.BooleanOptionalAction, default=True,
                        help="model.phrase_tokens: each Spatial element the prompts can hold (scenes.spatial_phrases) "
                             "is one token of the built judge's tokenizer")
    parser.add_argument("--keep-cls", action="store_true", help="also hand the LM the ViT's CLS token")
    parser.add_argument("--text-hidden", type=int, default=96)
    parser.add_argument("--text-layers", type=int, default=2)
    parser.add_argument("--relations-like-evalalign", action="store_true",
                        help="with --base and iMatch stages: each iMatch relation token ('circle on the left of "
                             "the square') starts as the base's EvalAlign token of the same relation ('circle: "
                             "on the left of the square;'), which the base already checks against the image")
    parser.add_argument("--base", default=None,
                        help="start from this judge folder instead of building one (e.g. an earlier run's describe)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--fresh", action="store_true", help="delete earlier checkpoints (default: resume)")
    parser.add_argument("--install", action="store_true", help="copy the judge to evalalign_metric/assets/judge")
    parser.add_argument("--install-dir", default=None, help="with --install: copy it here instead")
    parser.add_argument("--install-from", default=None,
                        help="skip training: install this already trained judge folder (scored on the held-out set)")
    args = parser.parse_args(argv)
    if args.relations_like_evalalign and not (args.base and (args.imatch_steps or args.imatch_stage)
                                              and args.phrase_tokens):
        raise SystemExit("--relations-like-evalalign needs --base, --imatch-steps or --imatch-stage, and the "
                         "phrase tokens (no --no-phrase-tokens): it starts the iMatch relation tokens a base "
                         "judge gains")

    import torch

    torch.set_num_threads(args.threads)
    from curriculum import run_stages

    from evalalign_metric.judge import load_judge
    from evalalign_metric.official import alignment_prompts
    from evalalign_metric.synthetic import scenes
    from evalalign_metric.protocol import load_protocol

    work = Path(args.work)
    t0 = time.time()
    train_file, _ = write_split(
        work / "train", range(args.train_images), exclude=HELD_OUT_COMBINATIONS,
        describe_seeds=None if args.strict_pairs else range(3 * 10 ** 7, 3 * 10 ** 7 + args.describe_images),
        recoloured=range(2 * 10 ** 7, 2 * 10 ** 7 + args.recoloured_images), reverse=args.reverse_questions,
        sides=args.side_questions, one_changes=args.one_changes, varied=args.varied)
    max_count = scenes.VARIED.max_count if args.varied else scenes.MAX_COUNT
    held_file, held_items = write_split(work / "heldout", range(10 ** 6, 10 ** 6 + args.heldout_images),
                                        include=HELD_OUT_COMBINATIONS, reverse=args.reverse_questions,
                                        sides=args.side_questions)
    print(f"scenes: {args.train_images} train images -> {sum(1 for _ in open(train_file))} annotations; "
          f"{args.heldout_images} held-out images ({time.time() - t0:.0f} s)")
    if args.install_from:
        judge_dir = Path(args.install_from)
        spec = built_spec(judge_dir)
        target = Path(args.install_dir or Path(__file__).resolve().parents[1] / "evalalign_metric" / "assets" / "judge")
        installed, checked = install(judge_dir, target, n_train=args.train_images, spec=spec,
                                     score=lambda folder: score_heldout(load_judge(folder, cache=False), held_items,
                                                                        work / "heldout"),
                                     checks=lambda folder: judge_checks(folder, max_count=max_count))
        print(f"installed: {target} (fp16 weights); its held-out agreement:")
        print_table({}, installed)
        print_checks(checked)
        return 0 if all(v["srcc"] >= 0.8 for v in installed.values() if "srcc" in v) and checks_met(checked) else 1
    vocabulary = 3 * ([a.template for a in load_protocol("imatch").aspects]
                      + [e["prompt"] for e in alignment_prompts()])
    spec = {"image_size": 64, "vision": args.vision, "patch_size": args.patch_size,
            "vision_hidden": args.vision_hidden, "vision_layers": args.vision_layers,
            "vision_heads": args.vision_heads, "window_size": args.window, "text_hidden": args.text_hidden,
            "text_layers": args.text_layers, "text_heads": 4, "text_kv_heads": 2, "vocab_size": 1200,
            "compact_tokens": True, "keep_cls": args.keep_cls,
            "absolute_positions": True, "projector": args.projector,
            "rope_columns": args.rope_columns}
    describe = scenes.describe_protocol(reverse=args.reverse_questions, sides=args.side_questions,
                                        max_count=max_count)
    (work / "describe_protocol.json").write_text(json.dumps(describe, indent=1))
    # Stage 1 (curriculum): direct questions (how many circles? what colour are the squares? how distorted?)
    # teach the new judge to see; stage 2: EvalAlign's questions, which compare the image with a prompt.
    # The tokenizer is built in stage 1 for both protocols; it also learns the words of the other shipped
    # protocol and of the official prompts (a general vocabulary; their questions are never trained on here).
    stages = []
    if args.describe_steps:
        stages.append(("describe", os.fspath(work / "describe_protocol.json"), "describe.jsonl", args.describe_steps,
                       args.batch_size * 2, args.lr, None, {}))
    if args.position_steps:
        write_subset(work, "describe.jsonl", "positions.jsonl", is_position_question)
        stages.append(("positions", os.fspath(work / "describe_protocol.json"), "positions.jsonl",
                       args.position_steps, args.batch_size * 2, args.lr, None, {}))
    binds = [] if args.bind == ["none"] else [parse_bind(text) for text in args.bind or DEFAULT_BINDS]
    for number, bind in enumerate(binds):
        name = f"bind{number + 1}"
        protocol = write_bind_stage(work, name, bind, reverse=args.reverse_questions, sides=args.side_questions,
                                    max_count=max_count)
        batch = args.batch_size * (2 if protocol != "evalalign" else 1)  # direct questions: stage 1's batch
        stages.append((name, protocol, f"{name}.jsonl", bind.steps, batch, args.lr * 0.6, bind.per_image,
                       bind.weights))
    weights = parse_weights(args.aspect_weights)
    stages.append(("judge", "evalalign", "annotations.jsonl", args.steps, args.batch_size, args.lr * 0.6,
                   args.questions_per_image, weights))
    imatch_stages = ([f"{args.imatch_steps}"] if args.imatch_steps else []) + args.imatch_stage
    if imatch_stages:
        both = write_imatch_stage(work)
    for number, text in enumerate(imatch_stages):
        steps, stage_weights = parse_imatch_stage(text, weights, args.imatch_weight)
        stages.append((f"imatch{number + 1}" if number else "imatch", both, "both.jsonl", steps, args.batch_size,
                       args.lr * 0.6, args.questions_per_image, stage_weights))
    configs = [(name, {
        "protocol": protocol,
        "data": {"train": [{"format": "jsonl", "path": os.fspath(work / "train" / data)}],
                 "eval": [{"format": "jsonl", "path": os.fspath(work / "heldout" / data)}],
                 "questions_per_image": per_image, "aspect_weights": stage_weights},
        "training": {"max_steps": steps, "batch_size": batch, "lr": lr, "warmup_steps": 50,
                     "weight_decay": 0.01, "scheduler": "cosine", "min_lr_ratio": 0.05, "checkpoint_every": 200,
                     "eval_every": 500, "eval_max_images": 60, "log_every": 50, "seed": 0,
                     "resume": not args.fresh,
                     "freeze": ["model.multi_modal_projector.*"] if args.freeze_projector else []},
        "augment": {"lighting": True, "lighting_strength": 0.1},
    }) for name, protocol, data, steps, batch, lr, per_image, stage_weights in stages]
    if args.base:
        spec = built_spec(Path(args.base))
    phrases = scenes.spatial_phrases() + (scenes.imatch_spatial_phrases() if imatch_stages else [])
    # a base judge gains the phrase tokens and iMatch's template text its tokenizer lacks (build.add_phrase_tokens):
    # spelled out, an iMatch question is 60-96 tokens, as single tokens 12-21
    like = (dict(zip(scenes.imatch_spatial_phrases(), scenes.spatial_phrases()))
            if args.relations_like_evalalign else {})
    first = ({"base": args.base, "phrase_tokens": phrases if args.phrase_tokens else [],
              "protocols": ["imatch"] if imatch_stages else [], "phrase_tokens_like": like} if args.base else
             {"build": spec, "vocabulary": vocabulary,
              "protocols": ["evalalign", "imatch"] if imatch_stages else ["evalalign"],
              "phrase_tokens": phrases if args.phrase_tokens else []})
    results, judge_dir = run_stages(work, configs, first_model=first)
    train_seconds = sum(r.seconds for r in results)
    steps = sum(r.steps for r in results)
    before = score_heldout(load_judge(args.base or work / stages[0][0] / "base", cache=False), held_items,
                           work / "heldout")
    after = score_heldout(load_judge(judge_dir, cache=False), held_items, work / "heldout")
    print(f"\nheld-out scenes ({args.heldout_images} images, unseen shape/colour pairs included):")
    print_table(before, after)

    checked = judge_checks(judge_dir, max_count=max_count)
    print_checks(checked)
    scored = {k: v for k, v in after.items() if "srcc" in v}
    ok = all(v["srcc"] >= 0.8 for v in scored.values()) and checks_met(checked)
    print(f"target (every aspect SRCC >= 0.8; the variation and iMatch targets): {'MET' if ok else 'NOT MET'}; "
          f"trained {steps} steps in {train_seconds:.0f} s ({args.threads} threads), total {time.time() - t0:.0f} s")
    (work / "result.json").write_text(json.dumps({"before": before, "after": after, "steps": steps, **checked,
                                                  "recipe": recipe_flags(sys.argv[1:] if argv is None else argv),
                                                  "train_seconds": train_seconds, "threads": args.threads,
                                                  "total_seconds": time.time() - t0}, indent=1))
    if args.install:
        target = Path(args.install_dir or Path(__file__).resolve().parents[1] / "evalalign_metric" / "assets" / "judge")
        installed, checked = install(judge_dir, target, n_train=args.train_images, spec=spec,
                                     score=lambda folder: score_heldout(load_judge(folder, cache=False), held_items,
                                                                        work / "heldout"),
                                     checks=lambda folder: judge_checks(folder, max_count=max_count))
        print(f"installed: {target} (fp16 weights); its held-out agreement:")
        print_table(before, installed)
        print_checks(checked)
        ok = all(v["srcc"] >= 0.8 for v in installed.values() if "srcc" in v) and checks_met(checked)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
