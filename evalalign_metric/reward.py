"""The judge as a reward for RL fine-tuning of T2I models: ``reward(images, prompts, metadata) -> (scores, info)``.

The contract is the one Flow-GRPO-style trainers call their reward functions with:

- ``images``: a float ``(N, 3, H, W)`` tensor in [0, 1], a uint8 ``(N, 3, H, W)`` tensor, a uint8
  ``(N, H, W, C)`` numpy array, a PIL image, or a list of PIL images / ``(C, H, W)`` tensors /
  ``(H, W, C)`` uint8 arrays;
- ``prompts``: one string per image; ``metadata``: ``None`` or one mapping (or ``None``) per image, whose
  ``"elements"`` entry, when present, gives that prompt's alignment elements (``{"Object": "cat;"}`` for
  EvalAlign, ``["cat (animal)", ...]`` for iMatch); prompts without get them as the metric does (official
  set, then the offline parser);
- ``scores``: a list of one float per image, **always in [0, 1]**: the weighted mean, over the chosen keys
  that apply to the image, of each key's value normalised to [0, 1] (``(s - min) / (max - min)`` with the
  aspect's option range; a dimension or ``"overall"`` as :func:`~evalalign_metric.functional.aggregate`
  normalises them). Keys: ``"overall"`` (the default), a dimension (``"alignment"``, ``"imatch"``), an
  aspect key (``"alignment/Color"``, ``"imatch/overall"``) or a per-category key
  (``"element/match/animal"``). A key that does not apply to an image (never asked, or N/A) drops out of
  that image's mean and the other weights are renormalised;
- ``info``: ``{"aspects": {key: [per-image value]}, "judge": {...}}`` with every key
  :func:`~evalalign_metric.functional.aggregate` reports, each in its own units (EvalAlign's faithfulness
  0-4, alignment 0-2, iMatch's overall 1-5, element match 0-1; NaN where not asked or N/A); for protocols
  with per-element questions (``"imatch"``) also ``"elements"``: per image, ``{element key: score}``.

Answers are read with ``scoring="expectation"`` by default (the probability-weighted score: a continuous
reward); ``"argmax"`` gives EvalAlign's discrete answers. A reward that is not finite (no chosen key applies
to the image, or the judge returned non-finite probabilities) raises :class:`NonFiniteRewardError`, or with
``on_nonfinite=<float>`` is replaced by that value, warned about and listed in ``info["nonfinite"]``.

Example:
    >>> import torch
    >>> from evalalign_metric.reward import EvalAlignReward
    >>> reward = EvalAlignReward(weights={"alignment": 2.0, "faithfulness": 1.0})   # the embedded judge
    >>> images = torch.rand(2, 3, 64, 64)                                           # float NCHW in [0, 1]
    >>> scores, info = reward(images, ["a red square", "two blue circles"])
    >>> len(scores), all(0.0 <= s <= 1.0 for s in scores), len(info["aspects"]["alignment/Color"])
    (2, True, 2)
"""

from __future__ import annotations

import math
import os
import warnings
from typing import Any, Mapping, Sequence

from evalalign_metric.errors import EvalAlignError, InputError
from evalalign_metric.functional import SCORING_MODES, AspectTotals, ImageResult, aggregate, category_keys, \
    score_images
from evalalign_metric.protocol import Protocol, load_protocol

DEFAULT_SCORING = "expectation"
NAN = float("nan")


class NonFiniteRewardError(EvalAlignError, ValueError):
    """A reward came out NaN or infinite (no chosen aspect applies to the image, or the judge's numbers are
    not finite)."""


class NonFiniteRewardWarning(UserWarning):
    """Non-finite rewards were replaced by ``on_nonfinite``."""


def reward_keys(protocol: Protocol | str) -> list[str]:
    """Every key a reward can weight: ``"overall"``, the dimensions, the aspect keys, the per-category keys.

    Example:
        >>> reward_keys("imatch")[:4]
        ['overall', 'imatch', 'element', 'imatch/overall']
    """
    protocol = load_protocol(protocol)
    return ["overall", *protocol.dimensions, *(a.key for a in protocol.aspects), *category_keys(protocol)]


def resolve_weights(protocol: Protocol | str, aspects: Sequence[str] | None = None,
                    weights: Mapping[str, float] | None = None) -> dict[str, float]:
    """The reward's ``{key: weight}``: ``weights`` as given, else equal weights over ``aspects``, else
    ``{"overall": 1.0}``; weights are renormalised to sum to 1.

    Raises:
        InputError: an unknown key, both or neither of ``aspects``/``weights`` empty, a negative or
            non-finite weight, or weights summing to 0.

    Example:
        >>> resolve_weights("evalalign", weights={"alignment": 3, "faithfulness": 1})
        {'alignment': 0.75, 'faithfulness': 0.25}
        >>> resolve_weights("imatch", aspects=["imatch/overall"])
        {'imatch/overall': 1.0}
    """
    protocol = load_protocol(protocol)
    if aspects is not None and weights is not None:
        raise InputError("pass aspects= (equal weights) or weights= ({key: weight}), not both")
    if weights is None:
        if isinstance(aspects, str):
            aspects = [aspects]
        weights = {key: 1.0 for key in (aspects if aspects is not None else ["overall"])}
    if not isinstance(weights, Mapping) or not weights:
        raise InputError(f"weights must be a non-empty mapping of reward key to weight; got {weights!r}")
    known = reward_keys(protocol)
    out = {}
    for key, w in weights.items():
        if key not in known:
            raise InputError(f"reward key {key!r} is not one of protocol {protocol.name!r}'s: {known}")
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
            raise InputError(f"weights[{key!r}] must be a finite number >= 0; got {w!r}")
        out[key] = float(w)
    total = sum(out.values())
    if total <= 0:
        raise InputError(f"weights must not all be 0; got {dict(weights)}")
    return {key: w / total for key, w in out.items()}


def _normalised(protocol: Protocol, key: str, values: Mapping[str, float], totals: AspectTotals) -> float:
    """``key``'s value for one image on [0, 1] (NaN when it does not apply)."""
    if key == "overall":
        return values["overall"]
    if key in protocol.dimensions:
        # aggregate()'s overall over this dimension's answers alone is the dimension's normalised micro-average.
        keys = [a.key for a in protocol.aspects if a.dimension == key]
        return aggregate(protocol, {k: v for k, v in totals.sums.items() if k in keys},
                         {k: v for k, v in totals.counts.items() if k in keys})["overall"]
    aspect = protocol.aspect("/".join(key.split("/")[:2]))  # a category key is its aspect's key + "/<category>"
    return (values[key] - aspect.min_score) / (aspect.max_score - aspect.min_score)


def image_reward(protocol: Protocol, result: ImageResult, weights: Mapping[str, float], scoring: str
                 ) -> tuple[float, dict[str, float]]:
    """One image's reward and every aggregate key's value (:func:`aggregate` over its answers alone).

    Example:
        >>> from evalalign_metric.functional import QuestionResult
        >>> p = load_protocol("evalalign")
        >>> r = ImageResult("a cat", [QuestionResult("alignment/Object", "q", ("0", "1", "2"), [0, 0, 1], 0.0,
        ...                                          2.0, 1.5), QuestionResult("faithfulness/body", "q",
        ...                  ("-1", "0", "1", "2", "3", "4"), [0, 0, 0, 0, 0, 1], 0.0, 4.0, 3.0)])
        >>> reward, values = image_reward(p, r, {"alignment": 0.5, "faithfulness/body": 0.5}, "expectation")
        >>> reward, values["alignment/Object"], values["faithfulness/body"]    # (0.75 + 0.75) / 2
        (0.75, 1.5, 3.0)
    """
    totals = AspectTotals()
    for q in result.questions:
        totals.add_result(q, scoring)
    values = aggregate(protocol, totals.sums, totals.counts)
    if any(not math.isfinite(p) for q in result.questions for p in q.probs):
        return NAN, values
    parts = [(w, _normalised(protocol, key, values, totals)) for key, w in weights.items()]
    parts = [(w, v) for w, v in parts if not math.isnan(v) and w > 0]
    total = sum(w for w, _ in parts)
    if not parts or total <= 0:
        return NAN, values
    return sum(w * v for w, v in parts) / total, values


def rewards_from_results(protocol: Protocol | str, results: Sequence[ImageResult], *,
                         weights: Mapping[str, float], scoring: str = DEFAULT_SCORING,
                         on_nonfinite: str | float | None = "raise") -> tuple[list[float], dict[str, Any]]:
    """``(scores, info)`` from :func:`~evalalign_metric.functional.score_images` results (see the module doc);
    ``on_nonfinite=None`` leaves non-finite scores as they are (the server's choice: its client decides).

    Raises:
        NonFiniteRewardError: a reward is NaN/inf and ``on_nonfinite="raise"``.
    """
    protocol = load_protocol(protocol)
    scores, per_image = [], []
    for result in results:
        score, values = image_reward(protocol, result, weights, scoring)
        scores.append(score)
        per_image.append(values)
    keys = list(per_image[0]) if per_image else reward_keys(protocol)
    info: dict[str, Any] = {"aspects": {k: [v.get(k, NAN) for v in per_image] for k in keys}}
    element_aspects = [a.key for a in protocol.aspects if a.per_element]
    if element_aspects:
        info["elements"] = [{q.element: q.score(scoring) for q in r.questions
                             if q.aspect in element_aspects and q.element is not None} for r in results]
    if on_nonfinite is not None:
        check_finite(scores, info, [r.prompt for r in results], weights, on_nonfinite)
    return scores, info


def check_finite(scores: list[float], info: dict[str, Any], prompts: Sequence[str], weights: Mapping[str, float],
                 on_nonfinite: str | float) -> None:
    """Raise on non-finite ``scores`` (``on_nonfinite="raise"``), or replace them in place by ``on_nonfinite``,
    warn, and list them in ``info["nonfinite"]``.

    Raises:
        NonFiniteRewardError: naming the images and the first one's prompt.
    """
    bad = [i for i, s in enumerate(scores) if not math.isfinite(s)]
    if not bad:
        return
    what = (f"{len(bad)} reward(s) are not finite (images {bad[:10]}, first prompt {prompts[bad[0]]!r}): none "
            f"of the weighted keys {sorted(weights)} applies to the image, or the judge returned non-finite "
            "probabilities")
    if on_nonfinite == "raise":
        raise NonFiniteRewardError(what + "; weight a key every image is asked (\"overall\"), or pass "
                                   "on_nonfinite=<value> to replace them")
    warnings.warn(f"{what}; replaced by {on_nonfinite}", NonFiniteRewardWarning, stacklevel=4)
    for i in bad:
        scores[i] = float(on_nonfinite)
    info["nonfinite"] = bad


def reward_images(images, name: str = "images"):
    """RGB PIL images from what RL trainers hand a reward (see the module doc for the accepted forms).

    Example:
        >>> import numpy as np
        >>> [im.size for im in reward_images(np.zeros((2, 8, 12, 3), dtype=np.uint8))]
        [(12, 8), (12, 8)]
    """
    import numpy as np
    import torch

    from evalalign_metric.images import to_pil_images

    def from_numpy(array, where):
        if array.dtype != np.uint8:
            raise InputError(f"{where} is a numpy array of {array.dtype}; expected uint8 (N, H, W, C) in [0, 255] "
                             "(or pass float images as a torch tensor (N, C, H, W) in [0, 1])")
        if array.ndim not in (3, 4) or array.shape[-1] not in (1, 3, 4):
            raise InputError(f"{where} has shape {array.shape}; numpy images are channels last: (N, H, W, C) "
                             "or (H, W, C) with C in 1, 3, 4")
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        return tensor.permute(0, 3, 1, 2) if array.ndim == 4 else tensor.permute(2, 0, 1)

    if isinstance(images, np.ndarray):
        images = from_numpy(images, name)
    if isinstance(images, torch.Tensor):
        return to_pil_images(images, normalize=images.is_floating_point(), name=name)
    if isinstance(images, (list, tuple)):
        items = [from_numpy(im, f"{name}[{i}]") if isinstance(im, np.ndarray) else im for i, im in enumerate(images)]
        out = []
        for i, im in enumerate(items):
            floating = isinstance(im, torch.Tensor) and im.is_floating_point()
            out.extend(to_pil_images([im], normalize=floating, name=f"{name}[{i}]") if isinstance(im, torch.Tensor)
                       else to_pil_images([im], name=f"{name}[{i}]"))
        return out
    return to_pil_images(images, name=name)


def elements_from_metadata(metadata, n: int) -> list | None:
    """Per-image elements from ``metadata`` (``None`` or one mapping or ``None`` per image, key ``"elements"``).

    Example:
        >>> elements_from_metadata([{"elements": {"Object": "cat;"}}, {"tag": "x"}], 2)
        [{'Object': 'cat;'}, None]
        >>> elements_from_metadata(None, 2) is None
        True
    """
    if metadata is None:
        return None
    if isinstance(metadata, Mapping) or not isinstance(metadata, Sequence) or isinstance(metadata, str):
        raise InputError(f"metadata must be None or a list with one mapping (or None) per image; got "
                         f"{type(metadata).__name__}")
    if len(metadata) != n:
        raise InputError(f"metadata ({len(metadata)}) and images ({n}) must have the same length")
    out = []
    for i, meta in enumerate(metadata):
        if meta is not None and not isinstance(meta, Mapping):
            raise InputError(f"metadata[{i}] must be a mapping or None; got {type(meta).__name__}")
        out.append(None if meta is None else meta.get("elements"))
    return out if any(e is not None for e in out) else None


class EvalAlignReward:
    """A judge as a reward: ``reward(images, prompts, metadata=None) -> (scores, info)`` (see the module doc).

    Args:
        model: judge folder or reference (a Hub id, a registered name); default the embedded judge of
            ``protocol``. Ignored when ``judge`` is given.
        protocol: ``"evalalign"`` (default), ``"imatch"``, a protocol file or a ``Protocol``.
        judge: an already loaded judge (anything with the :class:`~evalalign_metric.judge.Judge` ``answer``
            method, a :class:`~evalalign_metric.serve.client.RemoteJudge` included).
        aspects: keys with equal weights (``["alignment"]``; ``["imatch/overall"]``); or
        weights: ``{key: weight}`` (see :func:`resolve_weights`); default ``{"overall": 1}``.
        scoring: ``"expectation"`` (default, continuous) or ``"argmax"``.
        on_nonfinite: ``"raise"`` (default) or a float that replaces non-finite rewards (with a warning).
        use_official_elements, parse_elements, element_extractor: where prompts without elements in
            ``metadata`` get theirs (as in :class:`~evalalign_metric.EvalAlignScore`).
        device, dtype, batch_size, judge_kwargs: passed to :func:`~evalalign_metric.judge.load_judge`.

    Raises:
        InputError: bad images, prompts, metadata or weights (naming which).
        NonFiniteRewardError: a non-finite reward with ``on_nonfinite="raise"``.
    """

    def __init__(self, model: str | os.PathLike | None = None, protocol: str | os.PathLike | Protocol = "evalalign",
                 *, judge=None, aspects: Sequence[str] | None = None, weights: Mapping[str, float] | None = None,
                 scoring: str = DEFAULT_SCORING, on_nonfinite: str | float = "raise",
                 use_official_elements: bool = True, parse_elements: bool = True, element_extractor=None,
                 device=None, dtype=None, batch_size: int = 8, judge_kwargs: Mapping[str, Any] | None = None):
        from evalalign_metric.judge.protocols import warn_if_untrained

        self.protocol = load_protocol(protocol)
        if scoring not in SCORING_MODES:
            raise InputError(f"scoring={scoring!r}; expected one of {SCORING_MODES}")
        if on_nonfinite != "raise" and not (isinstance(on_nonfinite, (int, float))
                                            and math.isfinite(on_nonfinite)):
            raise InputError(f"on_nonfinite must be 'raise' or a finite number; got {on_nonfinite!r}")
        self.scoring = scoring
        self.on_nonfinite = on_nonfinite
        self.weights = resolve_weights(self.protocol, aspects, weights)
        self.use_official_elements = use_official_elements
        self.parse_elements = parse_elements
        self.element_extractor = element_extractor
        if judge is None:
            from evalalign_metric.judge import load_judge

            if model is None:
                from evalalign_metric.registry import judge_when_none_named

                model = judge_when_none_named(self.protocol)
            judge = load_judge(model, device=device, dtype=dtype, batch_size=batch_size, **dict(judge_kwargs or {}))
        self.judge = judge
        warn_if_untrained(judge.identity, self.protocol)

    def __call__(self, images, prompts: Sequence[str], metadata: Sequence[Mapping[str, Any] | None] | None = None,
                 **kwargs: Any) -> tuple[list[float], dict[str, Any]]:
        """Score ``images`` against ``prompts``; extra keyword arguments trainers pass are ignored."""
        pil = reward_images(images)
        elements = elements_from_metadata(metadata, len(pil))
        results = score_images(self.judge, self.protocol, pil, prompts, elements, extractor=self.element_extractor,
                               use_official_elements=self.use_official_elements, parse_elements=self.parse_elements)
        scores, info = rewards_from_results(self.protocol, results, weights=self.weights, scoring=self.scoring,
                                            on_nonfinite=self.on_nonfinite)
        info["judge"] = dict(self.judge.identity)
        return scores, info
