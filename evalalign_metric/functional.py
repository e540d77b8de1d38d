"""Scoring as plain functions: option probabilities -> scores -> aggregates, and one-call image scoring.

Per question (:func:`question_scores`):
- **argmax** (EvalAlign): the score of the option the judge answers; an answer on a not-applicable option
  (``-1``) makes the question N/A. :func:`score_images` takes the option greedy decoding reaches over the
  options' token tree, as EvalAlign's code reads the judge (``choice``); without ``choice`` it is the most
  probable option (the product of its tokens' probabilities), which differs for multi-token options
  (docs/scoring.md).
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
:func:`evalmuse_predictions` turns per-image results into an EvalMuse-40K submission.

Example:
    >>> import torch
    >>> question_scores(torch.tensor([0.1, 0.0, 0.2, 0.7], dtype=torch.float64), (None, 0.0, 1.0, 2.0))
    (2.0, 1.777777777777778)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import torch

from evalalign_metric.errors import InputError
from evalalign_metric.evalmuse import CATEGORIES, EvalMuseRecord, load_records, split_element
from evalalign_metric.protocol import Protocol, load_protocol

NAN = float("nan")
SCORING_MODES = ("argmax", "expectation")


def question_scores(probs: torch.Tensor, scores: Sequence[float | None], choice: int | None = None
                    ) -> tuple[float, float]:
    """(argmax score, expected score) of one answer; NaN marks not applicable.

    ``choice`` is the index of the option the judge answers (its greedy reading,
    :attr:`~evalalign_metric.judge.OptionDistribution.greedy_index`); None takes the most probable option.
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


def category_key(aspect_key: str, element: str) -> str:
    """The per-category result key of a per-element answer.

    Example:
        >>> category_key("element/match", "puffin (animal)")
        'element/match/animal'
    """
    return f"{aspect_key}/{split_element(element)[1]}"


def category_keys(protocol: Protocol | str) -> list[str]:
    """Every per-category key of the protocol's per-element aspects (empty for ``"evalalign"``)."""
    protocol = load_protocol(protocol)
    return [f"{a.key}/{c}" for a in protocol.aspects if a.per_element for c in CATEGORIES]


@dataclass
class ImageResult:
    """All answers about one image, and where its alignment elements came from."""

    prompt: str
    questions: list[QuestionResult] = field(default_factory=list)
    # "caller", "file", "official", "extractor", "parser", or None (faithfulness only)
    elements_source: str | None = None


@dataclass
class AspectTotals:
    """Sums and counts of applicable answers per aspect key; what the metric accumulates."""

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


def score_images(judge, protocol: Protocol | str, images, prompts: Sequence[str], elements=None, *,
                 extractor=None, use_official_elements: bool = True, element_table=None,
                 parse_elements: bool = True) -> list[ImageResult]:
    """Ask every applicable question of the protocol about each image; per-question results.

    Elements come from ``elements``, ``element_table``, the official set, ``extractor`` and last the parser
    (``parse_elements=False`` turns it off); see :func:`evalalign_metric.elements.resolve_elements`.

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> from evalalign_metric.judge import load_judge
        >>> from evalalign_metric.testing import build_tiny_judge
        >>> judge = load_judge(build_tiny_judge(tempfile.mkdtemp()))
        >>> [r] = score_images(judge, "evalalign", [Image.new("RGB", (16, 16))], ["a cat"],
        ...                    [{"Object": "cat;"}])
        >>> [q.aspect for q in r.questions][-2:], r.elements_source
        (['faithfulness/common', 'alignment/Object'], 'caller')
        >>> [r] = score_images(judge, "evalalign", [Image.new("RGB", (16, 16))], ["two cats"])
        >>> [q.aspect for q in r.questions][-2:], r.elements_source
        (['alignment/Object', 'alignment/Count'], 'parser')
    """
    from evalalign_metric.elements import resolve_elements
    from evalalign_metric.images import to_pil_images

    protocol = load_protocol(protocol)
    pil = to_pil_images(images)
    resolved = resolve_elements(protocol, prompts, elements, extractor=extractor,
                                use_official=use_official_elements, n_images=len(pil), table=element_table,
                                parse=parse_elements)
    asked = [protocol.asked_questions(found, prompt) for (found, _), prompt in zip(resolved, prompts)]
    answers = judge.answer(pil, [[(q.text, q.aspect.labels) for q in questions] for questions in asked])
    results = []
    for prompt, (_, source), questions, dists in zip(prompts, resolved, asked, answers):
        result = ImageResult(prompt=prompt, elements_source=source)
        for q, dist in zip(questions, dists):
            probs = dist.probs
            discrete, expected = question_scores(probs, q.aspect.scores, getattr(dist, "greedy_index", None))
            result.questions.append(QuestionResult(
                aspect=q.aspect.key, question=q.text, labels=dist.labels, probs=probs.tolist(),
                outside_mass=dist.outside_mass, argmax=discrete, expectation=expected, element=q.element))
        results.append(result)
    return results


def evalalign_score(judge, images, prompts: Sequence[str], elements=None, *, protocol: Protocol | str = "evalalign",
                    scoring: str | None = None, **kwargs) -> dict[str, float]:
    """One call: score ``images`` against ``prompts`` and aggregate (see :func:`aggregate`)."""
    protocol = load_protocol(protocol)
    scoring = scoring or protocol.default_scoring
    totals = AspectTotals()
    results = score_images(judge, protocol, images, prompts, elements, **kwargs)
    for r in results:
        for q in r.questions:
            totals.add_result(q, scoring)
    n_align = sum(1 for r in results if any(q.aspect.startswith("alignment/") for q in r.questions))
    return aggregate(protocol, totals.sums, totals.counts, num_alignment_images=n_align)


def evalmuse_predictions(records, results: Sequence[ImageResult], *, scoring: str = "expectation",
                         overall_aspect: str = "imatch/overall", element_aspect: str = "element/match",
                         ) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Per-image predictions ``(total_scores, element_scores)`` for
    :func:`evalalign_metric.evalmuse.write_submission`, from :func:`score_images` results.

    Args:
        records: the EvalMuse records that were scored, in the order of ``results``
            (see :func:`evalalign_metric.elements.evalmuse_inputs`), or anything
            :func:`~evalalign_metric.evalmuse.load_records` reads.
        results: one :class:`ImageResult` per record, scored with the ``"imatch"`` protocol (or any protocol
            with an overall aspect ``overall_aspect`` and a per-element aspect ``element_aspect``).
        scoring: ``"expectation"`` (continuous, the challenge's choice) or ``"argmax"``.

    Returns:
        ``{img_path: overall score}`` and ``{img_path: {element key: element score}}``.

    Example:
        >>> from evalalign_metric.evalmuse import parse_records
        >>> recs = parse_records([{"img_path": "m/1.png", "prompt": "a cat",
        ...                        "element_score": {"cat (animal)": None}}])
        >>> res = [ImageResult("a cat", [
        ...     QuestionResult("imatch/overall", "...", ("A", "O"), [0.25, 0.75], 0.0, 5.0, 4.0),
        ...     QuestionResult("element/match", "...", ("Yes", "No"), [0.9, 0.1], 0.0, 1.0, 0.9,
        ...                    element="cat (animal)")])]
        >>> evalmuse_predictions(recs, res)
        ({'m/1.png': 4.0}, {'m/1.png': {'cat (animal)': 0.9}})
    """
    if scoring not in SCORING_MODES:
        raise InputError(f"scoring={scoring!r}; expected one of {SCORING_MODES}")
    if not (isinstance(records, Sequence) and all(isinstance(r, EvalMuseRecord) for r in records)):
        records = load_records(records, check_range=False)
    if len(records) != len(results):
        raise InputError(f"records ({len(records)}) and results ({len(results)}) must have the same length")
    totals: dict[str, float] = {}
    elements: dict[str, dict[str, float]] = {}
    for i, (record, result) in enumerate(zip(records, results)):
        where = f"results[{i}] (img_path {record.img_path!r})"
        if record.prompt is not None and result.prompt != record.prompt:
            raise InputError(f"{where} was scored against prompt {result.prompt!r}, not the record's "
                             f"{record.prompt!r}: results must follow the records' order")
        overall = [q.score(scoring) for q in result.questions if q.aspect == overall_aspect]
        if len(overall) != 1 or math.isnan(overall[0]):
            raise InputError(f"{where} has no {overall_aspect!r} score; score the images with a protocol "
                             "that asks it (protocol='imatch')")
        totals[record.img_path] = overall[0]
        found = {q.element: q.score(scoring) for q in result.questions
                 if q.aspect == element_aspect and q.element is not None}
        missing = [k for k in record.elements if k not in found]
        if missing:
            raise InputError(f"{where} has no {element_aspect!r} answer for element(s) {missing}; pass the "
                             "records' elements when scoring (evalmuse_inputs)")
        elements[record.img_path] = {k: found[k] for k in record.elements}
    return totals, elements
