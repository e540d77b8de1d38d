"""Scoring maths: option probabilities -> question scores -> aspect totals -> aggregates.

Per question (:func:`question_scores`):
- **argmax** (EvalAlign): the score of the option the judge answers; an answer on a not-applicable option
  (``-1``) makes the question N/A. :func:`~evalalign_metric.functional.score_images` takes the option greedy
  decoding reaches over the options' token tree, as EvalAlign's code reads the judge (``choice``); without
  ``choice`` it is the most probable option (the product of its tokens' probabilities), which differs for
  multi-token options (docs/scoring.md).
- **expectation** (QAlign / iMatch): N/A when the not-applicable options hold at least half the option
  mass; otherwise ``sum_i p_i * score_i`` over the scored options, renormalised.

Aggregates (:func:`aggregate`), from per-aspect sums and counts of applicable answers:
- aspect mean = sum / count (NaN when never asked or always N/A — never 0/0);
- dimension score = micro-average over its applicable (image, aspect) answers: the reference's
  faithfulness ``avg_score`` (0-4) and, for alignment, the mean over asked questions (0-2);
- ``alignment_total_per_image`` = alignment total / images with alignment questions (the reference's
  unnormalised ``total_avgerage``);
- ``overall`` (this project's choice, the paper averages the two dimensions): the mean over dimensions of
  the dimension's micro-average of per-answer normalised scores ``(s - min) / (max - min)``, in [0, 1];
- per-element aspects (``"imatch"``) also report the mean per element category, keyed
  ``"<aspect key>/<category>"`` (``"element/match/animal"``) for every EvalMuse category.

For ``"imatch"`` the keys are ``imatch/overall`` (the QAlign expectation over 15 levels, on 1-5),
``element/match`` (mean renormalised P(Yes) over all elements), ``element/match/<category>``, the
dimension means ``imatch`` and ``element`` (equal to their single aspect) and ``overall``.

:func:`_update` (per-image results -> one batch of sum/count tensors) and :func:`_compute` (sum/count tensors
-> aggregates) are the one path shared by :class:`~evalalign_metric.EvalAlignScore` (which keeps the tensors as
its states) and :func:`~evalalign_metric.functional.evalalign_score`, as torchmetrics' metrics share them with
their functional twins.

Example:
    >>> import torch
    >>> question_scores(torch.tensor([0.1, 0.0, 0.2, 0.7], dtype=torch.float64), (None, 0.0, 1.0, 2.0))
    (2.0, 1.777777777777778)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, NamedTuple, Sequence

import torch

from evalalign_metric.elements import SOURCES
from evalalign_metric.errors import InputError
from evalalign_metric.evalmuse import category_key, category_keys
from evalalign_metric.protocol import Protocol, load_protocol
from evalalign_metric.protocol.schema import SCORING_MODES

__all__ = ["SCORING_MODES", "AspectTotals", "ImageResult", "QuestionResult", "ScoreBatch", "aggregate",
           "check_scoring", "question_scores", "score_keys"]

NAN = float("nan")


def check_scoring(scoring: str, name: str = "scoring") -> str:
    """Return ``scoring`` if it is one of :data:`SCORING_MODES`.

    Raises:
        InputError: naming ``name`` and the modes expected.

    Example:
        >>> check_scoring("argmax")
        'argmax'
    """
    if scoring not in SCORING_MODES:
        raise InputError(f"{name}={scoring!r}; expected one of {SCORING_MODES}")
    return scoring


def question_scores(probs: torch.Tensor, scores: Sequence[float | None], choice: int | None = None
                    ) -> tuple[float, float]:
    """(argmax score, expected score) of one answer; NaN marks not applicable.

    Args:
        probs: the probabilities of the options, shape ``(len(scores),)``.
        scores: each option's score, ``None`` for a not-applicable option.
        choice: the index of the option the judge answers (its greedy reading,
            :attr:`~evalalign_metric.judge.OptionDistribution.greedy_index`); None takes the most probable option.

    Raises:
        InputError: ``probs`` does not have one entry per option, or ``choice`` is not an option's index.
    """
    probs = probs.double()
    if probs.shape != (len(scores),):
        raise InputError(f"probs has shape {tuple(probs.shape)}; expected ({len(scores)},) for the options")
    if choice is not None and not 0 <= choice < len(scores):
        raise InputError(f"choice={choice} is not the index of one of the {len(scores)} options")
    best = int(torch.argmax(probs)) if choice is None else choice
    discrete = NAN if scores[best] is None else float(scores[best])
    scored = torch.tensor([s is not None for s in scores])
    p_scored = probs[scored]
    p_na = float(probs[~scored].sum())
    total = float(p_scored.sum())
    if p_na >= 0.5 * (p_na + total) and p_na > 0:
        expected = NAN
    else:
        values = torch.tensor([s for s in scores if s is not None], dtype=torch.float64)
        expected = float((p_scored * values).sum() / total)
    return discrete, expected


@dataclass
class QuestionResult:
    """One (image, aspect) answer."""

    aspect: str  # "<dimension>/<name>"
    question: str
    labels: tuple[str, ...]
    probs: list[float]
    outside_mass: float
    argmax: float  # NaN = not applicable
    expectation: float  # NaN = not applicable
    element: str | None = None  # the element key a per-element question names ("puffin (animal)")

    def score(self, scoring: str) -> float:
        return self.argmax if scoring == "argmax" else self.expectation

    @property
    def keys(self) -> list[str]:
        """The result keys this answer counts towards: its aspect, and its element category if any."""
        if self.element is None:
            return [self.aspect]
        return [self.aspect, category_key(self.aspect, self.element)]


@dataclass
class ImageResult:
    """All answers about one image, and where its alignment elements came from."""

    prompt: str
    questions: list[QuestionResult] = field(default_factory=list)
    # "caller", "file", "official", "extractor", "parser", or None (faithfulness only)
    elements_source: str | None = None


@dataclass
class AspectTotals:
    """Sums and counts of applicable answers per aspect key, as dicts (for results read back from files)."""

    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, aspect: str, score: float) -> None:
        if not math.isnan(score):
            self.sums[aspect] = self.sums.get(aspect, 0.0) + score
            self.counts[aspect] = self.counts.get(aspect, 0) + 1

    def add_result(self, question: QuestionResult, scoring: str) -> None:
        """Count one answer towards its aspect and, for per-element answers, its element category."""
        for key in question.keys:
            self.add(key, question.score(scoring))


def score_keys(protocol: Protocol | str) -> list[str]:
    """The keys summed per answer: every aspect, then every per-category key of the per-element aspects.

    Example:
        >>> score_keys("imatch")[:3]
        ['imatch/overall', 'element/match', 'element/match/object']
    """
    protocol = load_protocol(protocol)
    return [a.key for a in protocol.aspects] + category_keys(protocol)


def aggregate(
    protocol: Protocol | str,
    sums: Mapping[str, float],
    counts: Mapping[str, float],
    *,
    num_alignment_images: float | None = None,
) -> dict[str, float]:
    """Aspect means, dimension micro-averages, the reference alignment total and the normalised overall.

    ``sums``/``counts`` are keyed by aspect key (``"faithfulness/body"``) and hold applicable answers only;
    per-category keys (``"element/match/animal"``, see :func:`category_keys`) are reported as given and do not
    enter the dimension or overall figures (their answers already count under their aspect).

    Example (the reference README's faithfulness figures, counts per aspect out of 100 images):
        >>> out = aggregate("evalalign",
        ...     {"faithfulness/body": 217.0, "faithfulness/common": 105.0},
        ...     {"faithfulness/body": 100, "faithfulness/common": 100})
        >>> out["faithfulness/body"], out["faithfulness"], round(out["overall"], 4)
        (2.17, 1.61, 0.4025)
    """
    protocol = load_protocol(protocol)
    out: dict[str, float] = {}
    dim_sum: dict[str, float] = {}
    dim_count: dict[str, float] = {}
    dim_norm: dict[str, float] = {}
    for aspect in protocol.aspects:
        s, n = float(sums.get(aspect.key, 0.0)), float(counts.get(aspect.key, 0))
        out[aspect.key] = s / n if n > 0 else NAN
        span = aspect.max_score - aspect.min_score
        dim_sum[aspect.dimension] = dim_sum.get(aspect.dimension, 0.0) + s
        dim_count[aspect.dimension] = dim_count.get(aspect.dimension, 0.0) + n
        dim_norm[aspect.dimension] = dim_norm.get(aspect.dimension, 0.0) + (s - n * aspect.min_score) / span
    normalised = []
    for dim in protocol.dimensions:
        n = dim_count[dim]
        out[dim] = dim_sum[dim] / n if n > 0 else NAN
        if n > 0:
            normalised.append(dim_norm[dim] / n)
    out["overall"] = sum(normalised) / len(normalised) if normalised else NAN
    for key in category_keys(protocol):
        n = float(counts.get(key, 0))
        out[key] = float(sums.get(key, 0.0)) / n if n > 0 else NAN
    if num_alignment_images is not None and "alignment" in dim_sum:
        out["alignment_total_per_image"] = (
            dim_sum["alignment"] / num_alignment_images if num_alignment_images > 0 else NAN
        )
    return out


class ScoreBatch(NamedTuple):
    """Float64 sums and counts of one batch, what :class:`~evalalign_metric.EvalAlignScore` keeps as states.

    ``score_sum``, ``score_count`` and ``asked`` have one entry per :func:`score_keys` key (applicable answers'
    score sum and count, answers asked); ``elements_from`` one per element source (``elements.SOURCES``).
    """

    score_sum: torch.Tensor
    score_count: torch.Tensor
    asked: torch.Tensor
    num_images: torch.Tensor
    num_alignment_images: torch.Tensor
    num_without_elements: torch.Tensor
    elements_from: torch.Tensor
    outside_mass_sum: torch.Tensor


def _update(results: Sequence[ImageResult], protocol: Protocol, scoring: str, keys: Sequence[str]) -> ScoreBatch:
    """Per-image results -> one :class:`ScoreBatch` (``keys``: :func:`score_keys` of ``protocol``)."""
    index = {key: i for i, key in enumerate(keys)}
    sums, counts, asked = [0.0] * len(keys), [0.0] * len(keys), [0.0] * len(keys)
    outside = 0.0
    for result in results:
        for q in result.questions:
            outside += q.outside_mass
            score = q.score(scoring)
            for key in q.keys:
                i = index[key]
                asked[i] += 1
                if not math.isnan(score):
                    sums[i] += score
                    counts[i] += 1
    has_element_aspects = any(a.needs_elements for a in protocol.aspects)
    without = sum(1 for r in results if has_element_aspects and r.elements_source is None)
    with_alignment = sum(1 for r in results if any(q.aspect.startswith("alignment/") for q in r.questions))

    def f64(values) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.float64)

    return ScoreBatch(
        score_sum=f64(sums), score_count=f64(counts), asked=f64(asked), num_images=f64(float(len(results))),
        num_alignment_images=f64(float(with_alignment)), num_without_elements=f64(float(without)),
        elements_from=f64([float(sum(1 for r in results if r.elements_source == s)) for s in SOURCES]),
        outside_mass_sum=f64(outside),
    )


def _compute(protocol: Protocol, keys: Sequence[str], score_sum: torch.Tensor, score_count: torch.Tensor,
             num_alignment_images: torch.Tensor | float) -> dict[str, float]:
    """Summed states -> :func:`aggregate`'s figures."""
    return aggregate(protocol, dict(zip(keys, score_sum.tolist())), dict(zip(keys, score_count.tolist())),
                     num_alignment_images=float(num_alignment_images))


def _diagnostics(protocol: Protocol, batch: ScoreBatch) -> dict[str, float]:
    """The metric's extra figures: images, prompts without elements, per-source counts, mean outside mass."""
    total_asked = float(batch.asked[: len(protocol.aspects)].sum())
    values = {"num_images": float(batch.num_images), "num_without_elements": float(batch.num_without_elements)}
    for source, n in zip(SOURCES, batch.elements_from.tolist()):
        values[f"elements_from/{source}"] = n
    values["mean_outside_mass"] = float(batch.outside_mass_sum) / total_asked if total_asked else math.nan
    return values
