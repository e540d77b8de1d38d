"""Synthetic shape scenes whose truth is known, for training and checking judges without human labels.

A :class:`Scene` holds one or two groups of identical shapes (shape, colour, count 1-3), a spatial relation
between the groups and a distortion level (4 = clean, 0 = badly distorted outlines and torn pieces: a
faithfulness-like aspect), and how it is drawn (:class:`Look`: background, shape size, outline).
:func:`render` draws it; :func:`claims_prompt` writes a prompt for any set of claims, true or false, with its
EvalAlign elements (``result_info`` form); :func:`alignment_truth` scores claims against the scene the way
EvalAlign's alignment questions do (2 = all right, 1 = some wrong, 0 = all wrong) and :func:`imatch_truth` on
the 1-5 overall scale; :func:`perturb` makes mismatched claims at every level; :func:`scene_annotations`
produces the training annotations of one image, :func:`imatch_annotations` its iMatch rows. Drawn with
``varied=True`` (:data:`VARIED`), scenes vary the look and hold up to five shapes, counts 1-4 per group;
:func:`vary` applies one variation at a time, to measure a judge under each.

What these scenes are not: photographs. A judge trained on them knows shapes, colours, counts, left/right
and distorted outlines, nothing else.

Example:
    >>> scene = random_scene(random_state(0))
    >>> prompt, elements = claims_prompt(scene.claims())
    >>> all(v == 2 for v in alignment_truth(scene, scene.claims()).values())
    True
    >>> render(scene).size
    (64, 64)
"""

from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass
from typing import Sequence

from PIL import Image, ImageColor, ImageDraw

SHAPES = ("circle", "square", "triangle")
PLURAL = {"circle": "circles", "square": "squares", "triangle": "triangles"}
COLOURS = {"red": (215, 40, 40), "green": (40, 160, 60), "blue": (45, 75, 215), "yellow": (235, 200, 35),
           "purple": (140, 60, 180), "black": (25, 25, 25)}
COUNT_WORDS = {1: "a", 2: "two", 3: "three", 4: "four"}
RELATIONS = {"left": "on the left of", "right": "on the right of", "above": "above", "below": "below"}
OPPOSITE = {"left": "right", "right": "left", "above": "below", "below": "above"}
HALVES = {"left": "left", "right": "right", "above": "top", "below": "bottom"}  # the half a group keeps to
MAX_LEVEL = 4  # distortion: 4 clean .. 0 worst
MAX_SHAPES = 3  # per scene: few enough that each shape is drawn large (about a third of the image across)
MAX_COUNT = 3  # per group, in classic scenes (``varied`` scenes: VARIED.max_count)
RADIUS = (0.12, 0.155)  # shape radius, as a fraction of the image size
BAND = (0.1, 0.9)  # groups in a relation: the range across it (a fraction of the image) both keep to
# (shape, colour) pairs the embedded judge never saw in training (benchmarks/train_scene_judge.py), to check
# that it generalises to new combinations of what it knows
HELD_OUT_PAIRS = (("triangle", "purple"), ("circle", "yellow"), ("square", "green"))
ALIGNMENT_ASPECTS = ("Object", "Count", "Color", "Spatial")
NOT_APPLICABLE_ASPECTS = ("body", "Hand", "face")
FAITHFULNESS_ASPECTS = ("object", "common")


NEAR_HELD_OUT = 100  # RGB distance: a free colour this close to a held-out pair's colour counts as that colour


def random_state(seed: int) -> random.Random:
    return random.Random(f"scene:{seed}")


@dataclass(frozen=True)
class Look:
    """How a scene is drawn: ``background`` RGB (``None``: a light one drawn from the scene's seed), shape
    size as a multiple of the classic size, and a dark ``outline`` around every shape."""

    background: tuple[int, int, int] | None = None
    scale: float = 1.0
    outline: bool = False


@dataclass(frozen=True)
class Variation:
    """What varied scenes may hold: up to ``max_shapes`` shapes, ``max_count`` per group, backgrounds of the
    ``backgrounds`` kinds, sizes ``scale`` (a range of multiples), an outline with chance ``outline``."""

    max_shapes: int = 5
    max_count: int = 4
    backgrounds: tuple[str, ...] = ("light", "grey", "colour")
    scale: tuple[float, float] = (0.5, 1.5)
    outline: float = 1 / 3


VARIED = Variation()
# one change from a classic scene at a time: what train_scene_judge.py measures a judge under, one row each
VARIATIONS = ("clean", "grey background", "coloured background", "half size", "1.5x size", "outline",
              "4-5 shapes")
CROWDED_SCALE = 1.2  # the largest size of a scene with MAX_SHAPES shapes or more, scaled down with their number
MIN_BACKGROUND_DISTANCE = 110  # RGB distance of a coloured background from every palette colour


def random_background(rng: random.Random, kind: str) -> tuple[int, int, int]:
    """A background of one kind: ``light`` (as classic scenes), mid-``grey`` (110-200, barely tinted) or a
    ``colour`` at least ``MIN_BACKGROUND_DISTANCE`` from every palette colour, so a shape never melts into it.

    Example:
        >>> rng = random.Random(0)
        >>> all(min(math.dist(random_background(rng, "colour"), c) for c in COLOURS.values()) >= 110
        ...     for _ in range(50))
        True
    """
    if kind == "light":
        return tuple(rng.randint(215, 250) for _ in range(3))
    if kind == "grey":
        level = rng.randint(110, 200)
        return tuple(max(0, min(255, level + rng.randint(-6, 6))) for _ in range(3))
    if kind != "colour":
        raise ValueError(f"background kind {kind!r}; expected light, grey or colour")
    while True:
        rgb = tuple(rng.randint(60, 255) for _ in range(3))
        if max(rgb) - min(rgb) >= 60 and all(math.dist(rgb, c) >= MIN_BACKGROUND_DISTANCE for c in COLOURS.values()):
            return rgb


def random_look(rng: random.Random, variation: Variation = VARIED) -> Look:
    """A look drawn from ``variation``: its background kinds equally often, a size in its range."""
    kind = rng.choice(variation.backgrounds)
    return Look(random_background(rng, kind) if kind != "light" else None, rng.uniform(*variation.scale),
                rng.random() < variation.outline)


@dataclass(frozen=True)
class Group:
    """``count`` shapes of one kind and colour."""

    shape: str
    colour: str
    count: int


@dataclass(frozen=True)
class Claims:
    """What a prompt says: its groups (shape, colour, count) and how the first relates to the second."""

    groups: tuple[Group, ...]
    relation: str | None = None


@dataclass(frozen=True)
class Scene:
    """One image's content: groups, the first group's relation to the second, distortion level, seed."""

    groups: tuple[Group, ...]
    relation: str | None
    level: int
    seed: int
    size: int = 64
    look: Look = Look()

    def claims(self) -> Claims:
        """The claims that describe this scene exactly."""
        return Claims(self.groups, self.relation)


def random_scene(rng: random.Random, *, size: int = 64, level: int | None = None,
                 exclude: Sequence[tuple[str, str]] = (), varied: Variation | bool = False,
                 min_shapes: int = 1) -> Scene:
    """A random scene: one or two groups of different shapes (at most ``MAX_SHAPES`` in all, counts up to
    ``MAX_COUNT``); ``exclude`` lists (shape, colour) pairs never drawn (to hold combinations out of
    training). ``varied`` (``True`` for :data:`VARIED`, or a :class:`Variation`): more shapes, larger counts
    and a :func:`random_look`; ``min_shapes``: at least this many shapes (two groups when more than the
    largest count)."""
    variation = VARIED if varied is True else varied or None
    max_shapes = variation.max_shapes if variation else MAX_SHAPES
    max_count = variation.max_count if variation else MAX_COUNT
    n_groups = 2 if min_shapes > max_count else rng.choice((1, 2, 2))
    shapes = rng.sample(SHAPES, n_groups)
    groups = []
    for shape in shapes:
        colour = rng.choice([c for c in COLOURS if (shape, c) not in exclude])
        groups.append(Group(shape, colour, 1))
    budget = max_shapes
    for i, g in enumerate(groups):
        others = len(groups) - i - 1
        low = max(1, min_shapes - sum(x.count for x in groups[:i]) - max_count * others)
        count = rng.randint(min(low, max_count), min(max_count, budget - others))
        budget -= count
        groups[i] = dataclasses.replace(g, count=count)
    relation = rng.choice(sorted(RELATIONS)) if n_groups == 2 else None
    level = rng.randint(0, MAX_LEVEL) if level is None else level
    seed = rng.randrange(2 ** 31)
    look = random_look(rng, variation) if variation else Look()
    shapes_drawn = sum(g.count for g in groups)
    if shapes_drawn > MAX_SHAPES:  # more shapes than classic scenes hold: no larger than still leaves them apart
        look = dataclasses.replace(look, scale=min(look.scale, CROWDED_SCALE * MAX_SHAPES / shapes_drawn))
    return Scene(tuple(groups), relation, level, seed, size, look)


def vary(scene: Scene, variation: str, rng: random.Random) -> Scene:
    """``scene`` with one of :data:`VARIATIONS` applied ("clean" leaves it as it is; "4-5 shapes" redraws
    its groups with 4-5 shapes in all, counts up to 4, keeping its level and seed).

    Example:
        >>> scene = random_scene(random_state(0))
        >>> vary(scene, "half size", random.Random(0)).look.scale
        0.5
        >>> sum(g.count for g in vary(scene, "4-5 shapes", random.Random(0)).groups) >= 4
        True
    """
    looks = {"clean": Look(), "grey background": Look(random_background(rng, "grey")),
             "coloured background": Look(random_background(rng, "colour")), "half size": Look(scale=0.5),
             "1.5x size": Look(scale=1.5), "outline": Look(outline=True)}
    if variation in looks:
        return dataclasses.replace(scene, look=looks[variation])
    if variation != "4-5 shapes":
        raise ValueError(f"variation {variation!r}; expected one of {VARIATIONS}")
    many = random_scene(rng, varied=Variation(max_shapes=5, max_count=4, backgrounds=("light",), scale=(1, 1),
                                              outline=0.0), min_shapes=4, level=scene.level)
    return dataclasses.replace(many, seed=scene.seed, look=Look())


def free_colour(rng: random.Random, shape: str, exclude: Sequence[tuple[str, str]] = ()) -> str:
    """A random colour off the palette (``"#rrggbb"``), dark enough to stand out from the background and never
    within ``NEAR_HELD_OUT`` of a palette colour that ``exclude`` holds out for ``shape``."""
    held = [COLOURS[c] for s, c in exclude if s == shape]
    while True:
        rgb = tuple(rng.randint(0, 225) for _ in range(3))
        if min(rgb) < 150 and all(math.dist(rgb, h) >= NEAR_HELD_OUT for h in held):
            return "#%02x%02x%02x" % rgb


def recolour(scene: Scene, rng: random.Random, *, exclude: Sequence[tuple[str, str]] = ()) -> Scene:
    """The same scene with every group painted in a :func:`free_colour`: shapes seen in colours that no
    colour word names, so that a judge learns a shape apart from its colour (and recognises a circle in a
    colour it never saw on circles). Only shape, count, position and distortion questions suit it.

    Example:
        >>> scene = recolour(Scene((Group("circle", "red", 2),), None, 4, seed=0), random.Random(0))
        >>> scene.groups[0].colour.startswith("#"), render(scene).size
        (True, (64, 64))
    """
    groups = tuple(dataclasses.replace(g, colour=free_colour(rng, g.shape, exclude)) for g in scene.groups)
    return dataclasses.replace(scene, groups=groups)


# ---------------------------------------------------------------- drawing
def _region(relation: str | None, first: bool, size: int) -> tuple[float, float, float, float]:
    """Where a group's shapes may go (x0, y0, x1, y1): halves of the image make the relation hold."""
    if relation is None:
        return (0, 0, size, size)
    side = relation if first else OPPOSITE[relation]
    half, lo, hi = size / 2, size * BAND[0], size * BAND[1]
    # across the relation, both groups keep to a central band: a shape on the left is never also well above
    return {"left": (0, lo, half, hi), "right": (half, lo, size, hi), "above": (lo, 0, hi, half),
            "below": (lo, half, hi, size)}[side]


def _outline(shape: str, cx: float, cy: float, r: float, n: int = 36) -> list[tuple[float, float]]:
    if shape == "circle":
        return [(cx + r * math.cos(2 * math.pi * k / n), cy + r * math.sin(2 * math.pi * k / n)) for k in range(n)]
    corners = 4 if shape == "square" else 3
    start = -math.pi / 4 if shape == "square" else -math.pi / 2
    radius = r * (1.25 if shape == "square" else 1.35)
    pts = [(cx + radius * math.cos(start + 2 * math.pi * k / corners),
            cy + radius * math.sin(start + 2 * math.pi * k / corners)) for k in range(corners)]
    dense = []
    per_side = n // corners
    for k in range(corners):
        (x0, y0), (x1, y1) = pts[k], pts[(k + 1) % corners]
        dense.extend((x0 + (x1 - x0) * t / per_side, y0 + (y1 - y0) * t / per_side) for t in range(per_side))
    return dense


def _distort(points, severity: int, rng: random.Random, r: float):
    """Warp the outline: a smooth random radial wave plus a little jitter, both growing with severity."""
    if severity == 0:
        return points
    cx = sum(x for x, _ in points) / len(points)
    cy = sum(y for _, y in points) / len(points)
    waves = [(k, rng.uniform(-1.0, 1.0), rng.uniform(0, 2 * math.pi)) for k in (2, 3, 5)]
    out = []
    for x, y in points:
        theta = math.atan2(y - cy, x - cx)
        wave = sum(c * math.sin(k * theta + phase) for k, c, phase in waves) / len(waves)
        f = 1.0 + 0.035 * severity * wave + rng.uniform(-0.012, 0.012) * severity
        out.append((cx + (x - cx) * f, cy + (y - cy) * f))
    return out


def render(scene: Scene) -> Image.Image:
    """Draw ``scene`` (deterministic in ``scene.seed``)."""
    rng = random.Random(scene.seed)
    size = scene.size
    look = scene.look
    background = look.background or tuple(rng.randint(215, 250) for _ in range(3))
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    severity = MAX_LEVEL - scene.level
    placed: list[tuple[float, float, float]] = []
    for gi, group in enumerate(scene.groups):
        x0, y0, x1, y1 = _region(scene.relation, gi == 0, size)
        for _ in range(group.count):
            for attempt in range(200):  # shapes shrink a little after each failed try: they never overlap
                r = rng.uniform(size * RADIUS[0], size * RADIUS[1]) * look.scale * 0.99 ** attempt
                pad = r * 1.4
                if x1 - x0 <= 2 * pad or y1 - y0 <= 2 * pad:
                    continue
                cx, cy = rng.uniform(x0 + pad, x1 - pad), rng.uniform(y0 + pad, y1 - pad)
                if all(math.hypot(cx - px, cy - py) > (r + pr) * 1.45 for px, py, pr in placed):
                    break
            placed.append((cx, cy, r))
            points = _distort(_outline(group.shape, cx, cy, r), severity, rng, r)
            fill = COLOURS.get(group.colour) or ImageColor.getrgb(group.colour)
            draw.polygon(points, fill=fill, outline=(40, 40, 40) if look.outline else None,
                         width=2 if look.outline and r >= 6 else 1)
            for _ in range(max(0, severity - 1)):  # torn: a background-coloured crack through the shape
                angle = rng.uniform(0, math.pi)
                dx, dy = math.cos(angle) * r * 1.4, math.sin(angle) * r * 1.4
                off = rng.uniform(-0.3, 0.3) * r
                draw.line([(cx - dx + off, cy - dy), (cx + dx + off, cy + dy)], fill=background, width=2)
    return image


# ---------------------------------------------------------------- prompts and truth
def _phrase(group: Group) -> str:
    noun = group.shape if group.count == 1 else PLURAL[group.shape]
    return f"{COUNT_WORDS[group.count]} {group.colour} {noun}"


def claims_prompt(claims: Claims) -> tuple[str, dict[str, str]]:
    """The prompt text and its EvalAlign elements (``result_info`` form).

    Example:
        >>> claims_prompt(Claims((Group("circle", "red", 2), Group("square", "blue", 1)), "left"))[0]
        'two red circles on the left of a blue square'
    """
    groups = claims.groups
    if len(groups) == 2 and claims.relation is not None:
        prompt = f"{_phrase(groups[0])} {RELATIONS[claims.relation]} {_phrase(groups[1])}"
    else:
        prompt = " and ".join(_phrase(g) for g in groups)
    elements = {
        "Object": "".join(f"{g.shape}; " for g in groups).strip(),
        "Count": "".join(f"{g.shape}: {COUNT_WORDS[g.count]}; " for g in groups).strip(),
        "Color": "".join(f"{g.shape}: {g.colour}; " for g in groups).strip(),
        "Style": "none", "Action": "none",
        "Spatial": (_spatial_element(groups[0].shape, claims.relation, groups[1].shape)
                    if len(groups) == 2 and claims.relation is not None else "none"),
    }
    return prompt, elements


def _spatial_element(shape: str, relation: str, other: str) -> str:
    return f"{shape}: {RELATIONS[relation]} the {other};"


def spatial_phrases() -> list[str]:
    """Every Spatial element these scenes' prompts can have (two shapes and a relation): a closed set that a
    small judge's tokenizer can hold as single tokens (``model.phrase_tokens``), so that its language model
    gets one token to check against the image rather than a relation to put together from words.

    Example:
        >>> phrases = spatial_phrases()
        >>> len(phrases), phrases[0]
        (24, 'circle: on the left of the square;')
    """
    return [_spatial_element(a, r, b) for a in SHAPES for b in SHAPES if a != b for r in RELATIONS]


def _level(rights: Sequence[bool]) -> int:
    return 2 if all(rights) else 0 if not any(rights) else 1


def claim_checks(scene: Scene, claims: Claims) -> dict[str, list[bool]]:
    """Each claim checked against the scene, per EvalAlign alignment aspect."""
    actual = {g.shape: g for g in scene.groups}
    checks: dict[str, list[bool]] = {"Object": [], "Count": [], "Color": []}
    for g in claims.groups:
        there = actual.get(g.shape)
        checks["Object"].append(there is not None)
        checks["Count"].append(there is not None and there.count == g.count)
        checks["Color"].append(there is not None and there.colour == g.colour)
    if len(claims.groups) == 2 and claims.relation is not None:
        a, b = claims.groups[0].shape, claims.groups[1].shape
        shapes = [g.shape for g in scene.groups]
        holds = scene.relation is not None and (
            (shapes == [a, b] and scene.relation == claims.relation)
            or (shapes == [b, a] and scene.relation == OPPOSITE[claims.relation]))
        checks["Spatial"] = [holds]
    return checks


def alignment_truth(scene: Scene, claims: Claims) -> dict[str, int]:
    """EvalAlign alignment scores (0-2) of a prompt making ``claims`` about ``scene``."""
    return {aspect: _level(rights) for aspect, rights in claim_checks(scene, claims).items()}


def imatch_truth(scene: Scene, claims: Claims) -> float:
    """Overall match on EvalMuse's 1-5 scale: 1 + 4 x the fraction of the prompt's claims that hold."""
    rights = [r for values in claim_checks(scene, claims).values() for r in values]
    return 1.0 + 4.0 * sum(rights) / len(rights)


def imatch_elements(scene: Scene, claims: Claims) -> dict[str, int]:
    """EvalMuse-style element keys of the prompt (``"circle (shape)"``, ``"red circle (color)"``,
    ``"two circles (counting)"``, ``"circle on the left of the square (spatial)"``) and whether each holds (1)
    or not (0). The relation names both shapes (:func:`imatch_spatial_phrases`): EvalMuse's bare
    ``"on (spatial)"`` leaves which shapes to the prompt's text."""
    checks = claim_checks(scene, claims)
    out = {}
    for i, g in enumerate(claims.groups):
        noun = g.shape if g.count == 1 else PLURAL[g.shape]
        out[f"{g.shape} (shape)"] = int(checks["Object"][i])
        out[f"{g.colour} {g.shape} (color)"] = int(checks["Color"][i])
        out[f"{COUNT_WORDS[g.count]} {noun} (counting)"] = int(checks["Count"][i])
    if "Spatial" in checks:
        a, b = claims.groups[0].shape, claims.groups[1].shape
        out[f"{a} {RELATIONS[claims.relation]} the {b} (spatial)"] = int(checks["Spatial"][0])
    return out


def imatch_spatial_phrases() -> list[str]:
    """The relation element names :func:`imatch_elements` can write (24): phrase tokens for a small judge.

    Example:
        >>> phrases = imatch_spatial_phrases()
        >>> len(phrases), phrases[0]
        (24, 'circle on the left of the square')
    """
    return [f"{a} {RELATIONS[r]} the {b}" for a in SHAPES for b in SHAPES if a != b for r in RELATIONS]


def imatch_annotations(scene: Scene, image: str, claims: Sequence[Claims]) -> list[dict]:
    """JSONL rows of the shipped ``"imatch"`` protocol for one image and the claims of its prompts: the overall
    match (:func:`imatch_truth`, 1-5; the reader bins it into iMatch's 15 levels) and one yes/no row per
    element (:func:`imatch_elements`).

    Example:
        >>> scene = Scene((Group("circle", "red", 2),), None, 4, seed=0)
        >>> [(r["aspect"], r.get("elements"), r["score"]) for r in imatch_annotations(scene, "0.png", [scene.claims()])]
        ... # doctest: +NORMALIZE_WHITESPACE
        [('imatch/overall', None, 5.0), ('element/match', 'circle (shape)', 1),
         ('element/match', 'red circle (color)', 1), ('element/match', 'two circles (counting)', 1)]
    """
    rows = []
    for c in claims:
        prompt, _ = claims_prompt(c)
        rows.append({"image": image, "prompt": prompt, "aspect": "imatch/overall", "score": imatch_truth(scene, c)})
        rows.extend({"image": image, "prompt": prompt, "aspect": "element/match", "elements": key, "score": v}
                    for key, v in imatch_elements(scene, c).items())
    return rows


def perturb(scene: Scene, rng: random.Random, p: float = 0.5, *,
            exclude: Sequence[tuple[str, str]] = (), max_count: int = MAX_COUNT) -> Claims:
    """Claims derived from the scene's own, each part changed with probability ``p``: a colour, a count
    (1 to ``max_count``), a shape swapped for an absent one, the relation reversed, a group dropped.
    ``exclude`` lists (shape, colour) pairs a claim never names (combinations held out of training stay out
    of its prompts too)."""
    groups = list(scene.groups)
    for i, g in enumerate(groups):
        if rng.random() < p:
            colours = [c for c in COLOURS if c != g.colour and (g.shape, c) not in exclude]
            if colours:
                g = dataclasses.replace(g, colour=rng.choice(colours))
        if rng.random() < p:
            g = dataclasses.replace(g, count=rng.choice([c for c in range(1, max_count + 1) if c != g.count]))
        if rng.random() < p * 0.6:
            used = {x.shape for x in groups}
            free = [s for s in SHAPES if s not in used and (s, g.colour) not in exclude]
            if free:
                g = dataclasses.replace(g, shape=rng.choice(free))
        groups[i] = g
    relation = scene.relation
    if relation is not None and rng.random() < p:
        relation = OPPOSITE[relation]
    if len(groups) == 2 and rng.random() < p * 0.3:
        groups = [groups[rng.randrange(2)]]
        relation = None
    return Claims(tuple(groups), relation)


def one_change(scene: Scene, rng: random.Random, *, exclude: Sequence[tuple[str, str]] = (),
               max_count: int = MAX_COUNT) -> Claims:
    """The scene's own claims with exactly one thing changed: one group's colour, one group's count, or the
    relation (reversed, or the two groups named the other way round with it, which keeps it true). A colour
    change with no other colour left to name (all held out) gives the scene's own claims.

    :func:`perturb` changes several things at once, and a prompt naming an absent shape already fails
    Color and Spatial: a judge can then score those aspects from which shapes are drawn alone. These claims
    differ from the truth only where the aspect must look (a colour, a count, a direction).

    Example:
        >>> scene = Scene((Group("circle", "red", 2), Group("square", "blue", 1)), "left", 4, seed=0)
        >>> truths = [alignment_truth(scene, one_change(scene, random.Random(i))) for i in range(40)]
        >>> sorted({k for t in truths for k, v in t.items() if v < 2})  # one aspect off at a time
        ['Color', 'Count', 'Spatial']
        >>> all(sum(v < 2 for v in t.values()) <= 1 for t in truths)
        True
    """
    groups = list(scene.groups)
    changes = ["colour", "count"] + (["relation"] if scene.relation is not None and len(groups) == 2 else [])
    change = rng.choice(changes)
    if change == "relation":
        if rng.random() < 0.5:  # "B <opposite> A" says the same thing: true, in the other order
            return Claims((groups[1], groups[0]), OPPOSITE[scene.relation])
        return Claims(tuple(groups), OPPOSITE[scene.relation])
    i = rng.randrange(len(groups))
    g = groups[i]
    if change == "colour":
        colours = [c for c in COLOURS if c != g.colour and (g.shape, c) not in exclude]
        if not colours:
            return scene.claims()
        groups[i] = dataclasses.replace(g, colour=rng.choice(colours))
    else:
        groups[i] = dataclasses.replace(g, count=rng.choice([c for c in range(1, max_count + 1) if c != g.count]))
    return Claims(tuple(groups), scene.relation)


def aspect_change(scene: Scene, aspect: str, rng: random.Random, *, max_count: int = MAX_COUNT) -> Claims | None:
    """The scene's own claims with one thing changed that ``aspect`` checks: a shape swapped for one not
    drawn (Object), a count (Count), a colour (Color), the relation reversed (Spatial); ``None`` where the
    scene offers no such change (Spatial without a relation). A judge's true-vs-changed ROC-AUC per aspect
    is what ``benchmarks/train_scene_judge.py`` reports under each variation (:func:`vary`).

    Example:
        >>> scene = Scene((Group("circle", "red", 2), Group("square", "blue", 1)), "left", 4, seed=0)
        >>> {a: alignment_truth(scene, aspect_change(scene, a, random.Random(0)))[a] for a in ALIGNMENT_ASPECTS}
        {'Object': 1, 'Count': 1, 'Color': 1, 'Spatial': 0}
    """
    groups = list(scene.groups)
    if aspect == "Spatial":
        return Claims(tuple(groups), OPPOSITE[scene.relation]) if scene.relation is not None else None
    i = rng.randrange(len(groups))
    g = groups[i]
    if aspect == "Object":
        g = dataclasses.replace(g, shape=rng.choice([s for s in SHAPES if s not in {x.shape for x in groups}]))
    elif aspect == "Count":
        g = dataclasses.replace(g, count=rng.choice([c for c in range(1, max_count + 1) if c != g.count]))
    elif aspect == "Color":
        g = dataclasses.replace(g, colour=rng.choice([c for c in COLOURS if c != g.colour]))
    else:
        raise ValueError(f"aspect {aspect!r}; expected one of {ALIGNMENT_ASPECTS}")
    groups[i] = g
    return Claims(tuple(groups), scene.relation)


def describe_protocol(*, reverse: bool = True, sides: bool = True, element_colours: bool = False,
                      element_counts: bool = False, max_count: int = MAX_COUNT) -> dict:
    """A training-only protocol of direct questions about a scene (how many circles? what colour are the
    squares?): a first curriculum stage that teaches a judge built from scratch to see shapes, counts and
    colours before it learns EvalAlign's comparisons of an image with a prompt. ``sides`` adds in which half
    each kind of shape is; ``reverse`` questions the other way round, a colour or relation word in the
    question and a shape in the answer; ``element_colours`` the colour question with the shape as an
    element, written where EvalAlign writes its elements (:func:`element_colour_annotations`);
    ``element_counts`` the same for "how many?" (:func:`element_count_annotations`); ``max_count``: the largest
    answer to "how many?"."""
    aspects = []
    colours = [{"label": "none", "score": 0}] + [{"label": c, "score": i + 1} for i, c in enumerate(COLOURS)]
    for shape in SHAPES:
        noun = PLURAL[shape]
        aspects.append({"name": f"count_{shape}", "dimension": "describe",
                        "template": f"<image>\nHow many {noun} are in the image?",
                        "options": [{"label": str(n), "score": n} for n in range(max_count + 1)]})
        aspects.append({"name": f"colour_{shape}", "dimension": "describe",
                        "template": f"<image>\nWhat color are the {noun}?",
                        "options": colours})
    for a in SHAPES:
        for b in SHAPES:
            if a != b:
                aspects.append({"name": f"where_{a}_{b}", "dimension": "describe",
                                "template": f"<image>\nWhere are the {PLURAL[a]} relative to the {PLURAL[b]}?",
                                "options": [{"label": "none", "score": 0}]
                                + [{"label": r, "score": i + 1} for i, r in enumerate(RELATIONS)]})
    for shape in SHAPES if sides else ():  # one lookup (like its colour) tying each shape to its place
        aspects.append({"name": f"side_{shape}", "dimension": "describe",
                        "template": f"<image>\nIn which half of the image are the {PLURAL[shape]}?",
                        "options": [{"label": "none", "score": 0}]
                        + [{"label": h, "score": i + 1} for i, h in enumerate(HALVES.values())]})
    kinds = [{"label": "none", "score": 0}] + [{"label": shape, "score": i + 1} for i, shape in enumerate(SHAPES)]
    for colour in COLOURS if reverse else ():  # the other way round: a colour word asked, a shape answered
        aspects.append({"name": f"shape_{colour}", "dimension": "describe",
                        "template": f"<image>\nWhich shape is {colour}?", "options": kinds})
    for relation in RELATIONS if reverse else ():
        aspects.append({"name": f"shape_{relation}", "dimension": "describe",
                        "template": f"<image>\nWhich shape is {RELATIONS[relation]} the other?", "options": kinds})
    if element_colours:
        aspects.append({"name": "colour_element", "dimension": "describe", "elements_key": "Shape",
                        "template": "<image>\nWhat color is ({elements})?",
                        "options": colours})
    if element_counts:
        aspects.append({"name": "count_element", "dimension": "describe", "elements_key": "Shape",
                        "template": "<image>\nHow many ({elements}) are in the image?",
                        "options": [{"label": str(n), "score": n} for n in range(max_count + 1)]})
    aspects.append({"name": "distortion", "dimension": "describe",
                    "template": "<image>\nHow distorted are the shapes, from 0 (badly) to 4 (not at all)?",
                    "options": [{"label": str(n), "score": n} for n in range(MAX_LEVEL + 1)]})
    return {"name": "scene-describe", "version": "1", "default_scoring": "argmax",
            "description": "Direct questions about synthetic shape scenes (training curriculum)", "aspects": aspects}


def describe_annotations(scene: Scene, image: str, *, reverse: bool = True, sides: bool = True) -> list[dict]:
    """JSONL rows for :func:`describe_protocol`: every shape's count and colour, where each kind of shape
    is relative to each other kind ("none" unless both are drawn), in which half of the image each kind is
    (with ``sides``; scenes with a relation only: each group keeps to one half), which shape has each colour
    and which is on the left (right, above, below) of the other (with ``reverse``), and the distortion.
    Shapes painted off the palette (:func:`recolour`) get no question that names or answers a colour.

    Example:
        >>> scene = Scene((Group("circle", "red", 2), Group("square", "blue", 1)), "left", 3, seed=0)
        >>> {r["aspect"]: r["score"] for r in describe_annotations(scene, "0.png")}["where_square_circle"]
        2
    """
    present = {g.shape: g for g in scene.groups}
    rows = []
    for shape in SHAPES:
        g = present.get(shape)
        rows.append({"image": image, "aspect": f"count_{shape}", "score": g.count if g else 0})
        if g is None or g.colour in COLOURS:
            rows.append({"image": image, "aspect": f"colour_{shape}",
                         "score": list(COLOURS).index(g.colour) + 1 if g else 0})
    # where each kind keeps to (a relation puts each group in one half): every position question derives from it
    side = {}
    if scene.relation is not None and len(scene.groups) == 2:
        side = {scene.groups[0].shape: scene.relation, scene.groups[1].shape: OPPOSITE[scene.relation]}
    relations, halves = list(RELATIONS), list(HALVES)
    for a in SHAPES:
        for b in SHAPES:
            if a != b:
                rows.append({"image": image, "aspect": f"where_{a}_{b}",
                             "score": relations.index(side[a]) + 1 if a in side and b in side else 0})
    if sides and side:  # one group spreads over the image: not asked
        for shape in SHAPES:
            rows.append({"image": image, "aspect": f"side_{shape}",
                         "score": halves.index(side[shape]) + 1 if shape in side else 0})
    kinds = {shape: i + 1 for i, shape in enumerate(SHAPES)}
    if reverse and all(g.colour in COLOURS for g in scene.groups):
        for colour in COLOURS:
            shapes = [g.shape for g in scene.groups if g.colour == colour]
            if len(shapes) < 2:  # two groups of one colour have no single answer: not asked
                rows.append({"image": image, "aspect": f"shape_{colour}", "score": kinds[shapes[0]] if shapes else 0})
    for relation in RELATIONS if reverse else ():
        there = [shape for shape, where in side.items() if where == relation]
        rows.append({"image": image, "aspect": f"shape_{relation}", "score": kinds[there[0]] if there else 0})
    rows.append({"image": image, "aspect": "distortion", "score": scene.level})
    return rows


def element_colour_annotations(scene: Scene, image: str) -> list[dict]:
    """JSONL rows for the ``colour_element`` question of :func:`describe_protocol`: every kind of shape, named
    as an element ("triangle;") in the parentheses where EvalAlign's Color question names its elements, and the
    colour it is drawn in ("none" if it is not drawn). Asked beside EvalAlign's Color question, it ties the
    prompt's element text to what the judge sees: that question's colour check formed in every run with such a
    stage, where asked alone it formed in some runs and not in others (README, "Proofs"). Shapes painted off
    the palette (:func:`recolour`) are not asked.

    Example:
        >>> scene = Scene((Group("circle", "red", 2),), None, 4, seed=0)
        >>> [(r["elements"]["Shape"], r["score"]) for r in element_colour_annotations(scene, "0.png")]
        [('circle;', 1), ('square;', 0), ('triangle;', 0)]
    """
    present = {g.shape: g.colour for g in scene.groups}
    return [{"image": image, "aspect": "colour_element", "elements": {"Shape": f"{shape};"},
             "score": list(COLOURS).index(present[shape]) + 1 if shape in present else 0}
            for shape in SHAPES if shape not in present or present[shape] in COLOURS]


def element_count_annotations(scene: Scene, image: str) -> list[dict]:
    """JSONL rows for the ``count_element`` question of :func:`describe_protocol`: every kind of shape, named
    as an element ("triangle;") where EvalAlign's Count question names its elements, and how many are drawn
    (0 if none): what :func:`element_colour_annotations` does for Color, for Count.

    Example:
        >>> scene = Scene((Group("circle", "red", 2), Group("square", "blue", 1)), "left of", 4, seed=0)
        >>> [(r["elements"]["Shape"], r["score"]) for r in element_count_annotations(scene, "0.png")]
        [('circle;', 2), ('square;', 1), ('triangle;', 0)]
    """
    drawn = {g.shape: g.count for g in scene.groups}
    return [{"image": image, "aspect": "count_element", "elements": {"Shape": f"{shape};"},
             "score": drawn.get(shape, 0)} for shape in SHAPES]


def scene_claims(scene: Scene, rng: random.Random, *, prompts: int = 3, one_changes: int = 0,
                 exclude: Sequence[tuple[str, str]] = (), max_count: int = MAX_COUNT) -> list[Claims]:
    """What the prompts about one image claim: the truth, ``prompts - 1`` perturbed claims (:func:`perturb`)
    and ``one_changes`` with one thing changed (:func:`one_change`)."""
    return [scene.claims() if k == 0 else perturb(scene, rng, exclude=exclude, max_count=max_count) if k < prompts
            else one_change(scene, rng, exclude=exclude, max_count=max_count) for k in range(prompts + one_changes)]


def scene_annotations(scene: Scene, image: str, rng: random.Random, *, prompts: int = 3, one_changes: int = 0,
                      faithfulness: bool = True, exclude: Sequence[tuple[str, str]] = (),
                      max_count: int = MAX_COUNT, claims: Sequence[Claims] | None = None) -> list[dict]:
    """JSONL rows (:func:`evalalign_metric.training.readers.read_jsonl`) for one image: the true prompt,
    ``prompts - 1`` perturbed ones and ``one_changes`` prompts with one thing changed (:func:`one_change`),
    each with its alignment aspects, plus the faithfulness questions. ``claims``: those prompts' claims
    already drawn (:func:`scene_claims` with the same ``rng``), so that other rows can be written about the
    same prompts without drawing them twice."""
    rows = []
    if claims is None:
        claims = scene_claims(scene, rng, prompts=prompts, one_changes=one_changes, exclude=exclude,
                              max_count=max_count)
    for claimed in claims:
        prompt, elements = claims_prompt(claimed)
        for aspect, score in alignment_truth(scene, claimed).items():
            rows.append({"image": image, "prompt": prompt, "aspect": aspect, "score": score, "elements": elements})
    if faithfulness:
        rows.extend({"image": image, "aspect": a, "score": scene.level} for a in FAITHFULNESS_ASPECTS)
        rows.extend({"image": image, "aspect": a, "score": None} for a in NOT_APPLICABLE_ASPECTS)
    return rows
