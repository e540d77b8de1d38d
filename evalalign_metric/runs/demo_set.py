"""The demo's image set, drawn at run time (no binary files ship): two pretend text-to-image models.

Ten prompts about synthetic shape scenes (``evalalign_metric.synthetic.scenes``, what the embedded judge
was trained on), each with its EvalAlign elements. ``painter`` draws each prompt as written, with clean
outlines; ``scribbler`` draws a scene that gets some of the prompt wrong (a colour, a count, a shape, the
relation), with distorted, torn outlines. The prompts go to ``<root>/prompts.json`` (a prompts file for
``evalalign score --prompts``), the same prompts with their iMatch element keys (``"red circle (color)"``)
to ``<root>/prompts-imatch.json`` (for ``--protocol imatch``), and the images to
``<root>/<model>/<prompt_id>.png``. Drawing is seeded,
so the files are byte-identical on every run and a rerun of the demo reuses its results files.

Example:
    >>> import tempfile
    >>> folders = write_demo_images(tempfile.mkdtemp())
    >>> sorted(folders), len(list(folders["painter"].glob("*.png")))
    (['painter', 'scribbler'], 10)
    >>> demo_prompts()[0]["prompt"]
    'a blue square on the right of a blue circle'
    >>> demo_prompts("imatch")[0]["elements"][:2]
    ['square (shape)', 'blue square (color)']
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import random
from pathlib import Path

from PIL import Image

from evalalign_metric.fileio import write_atomic
from evalalign_metric.synthetic import scenes

DEMO_MODELS = ("painter", "scribbler")
N_PROMPTS = 10
PROMPTS_FILE = "prompts.json"
PROMPTS_FILES = {"evalalign": PROMPTS_FILE, "imatch": "prompts-imatch.json"}  # per protocol the demo asks
_FIRST_SEED = 7_000_000  # far from the seeds the embedded judge was trained and checked on


def _demo_scenes() -> list[scenes.Scene]:
    out = []
    for k in range(N_PROMPTS):
        scene = scenes.random_scene(scenes.random_state(_FIRST_SEED + k), level=scenes.MAX_LEVEL,
                                    exclude=scenes.HELD_OUT_PAIRS)
        out.append(scene)
    return out


def demo_prompts(protocol: str = "evalalign") -> list[dict]:
    """The ten prompts the demo draws: ``{prompt_id, prompt, elements}``, the elements for ``protocol``
    (``"evalalign"``: ``result_info``; ``"imatch"``: the element keys of ``scenes.imatch_elements``)."""
    if protocol not in PROMPTS_FILES:
        raise ValueError(f"protocol={protocol!r}; the demo asks {sorted(PROMPTS_FILES)}")
    entries = []
    for k, scene in enumerate(_demo_scenes()):
        prompt, elements = scenes.claims_prompt(scene.claims())
        if protocol == "imatch":
            elements = list(scenes.imatch_elements(scene, scene.claims()))
        entries.append({"prompt_id": f"scene-{k:02d}", "prompt": prompt, "elements": elements})
    return entries


def _painter(scene: scenes.Scene, rng: random.Random) -> Image.Image:
    return scenes.render(scene)


def _scribbler(scene: scenes.Scene, rng: random.Random) -> Image.Image:
    claims = scenes.perturb(scene, rng, p=0.7, exclude=scenes.HELD_OUT_PAIRS)
    if claims == scene.claims():  # perturb may change nothing; the scribbler always gets something wrong
        first = scene.groups[0]
        other = next(c for c in scenes.COLOURS if c != first.colour and (first.shape, c) not in scenes.HELD_OUT_PAIRS)
        claims = scenes.Claims((dataclasses.replace(first, colour=other), *scene.groups[1:]), scene.relation)
    wrong = scenes.Scene(claims.groups, claims.relation, rng.choice((0, 1)), rng.randrange(2 ** 31), scene.size)
    return scenes.render(wrong)


def write_demo_images(root: str | os.PathLike) -> dict[str, Path]:
    """Draw the demo set into ``root/<model>/<prompt_id>.png`` and write ``root/prompts.json``.

    Returns ``{model: folder}``.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    entries = demo_prompts()
    for protocol, name in PROMPTS_FILES.items():
        write_atomic(root / name, json.dumps(demo_prompts(protocol), indent=1) + "\n")
    folders = {}
    for model, draw in zip(DEMO_MODELS, (_painter, _scribbler)):
        folder = root / model
        folder.mkdir(parents=True, exist_ok=True)
        for entry, scene in zip(entries, _demo_scenes()):
            image = draw(scene, random.Random(f"{model}/{entry['prompt_id']}"))
            png = io.BytesIO()
            image.save(png, format="PNG")
            write_atomic(folder / f"{entry['prompt_id']}.png", png.getvalue())
        folders[model] = folder
    return folders
