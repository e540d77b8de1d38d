"""One-call scoring: a judge, images and prompts -> per-question results (:func:`score_images`) or aggregate
figures (:func:`evalalign_score`, the functional twin of :class:`~evalalign_metric.EvalAlignScore`).

The maths (question scores, totals, aggregates) is in :mod:`evalalign_metric.scoring`, the EvalMuse categories
and submission formatting in :mod:`evalalign_metric.evalmuse`; their names are re-exported here, where they
were first published.

Example:
    >>> import tempfile, torch
    >>> from evalalign_metric.judge import load_judge
    >>> from evalalign_metric.testing import build_tiny_judge
    >>> judge = load_judge(build_tiny_judge(tempfile.mkdtemp()))
    >>> out = evalalign_score(judge, torch.zeros(1, 3, 16, 16, dtype=torch.uint8), ["a cat"])
    >>> 0.0 <= out["overall"] <= 1.0
    True
"""

from __future__ import annotations

from typing import Sequence

from evalalign_metric.elements import resolve_elements
from evalalign_metric.evalmuse import category_key, category_keys, evalmuse_predictions
from evalalign_metric.images import to_pil_images
from evalalign_metric.protocol import Protocol, load_protocol
from evalalign_metric.scoring import (
    NAN,
    SCORING_MODES,
    AspectTotals,
    ImageResult,
    QuestionResult,
    _compute,
    _update,
    aggregate,
    check_scoring,
    question_scores,
    score_keys,
)

__all__ = [
    "NAN", "SCORING_MODES", "AspectTotals", "ImageResult", "QuestionResult", "aggregate", "category_key",
    "category_keys", "evalalign_score", "evalmuse_predictions", "question_scores", "score_images",
]


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
    return _score_pil(judge, load_protocol(protocol), to_pil_images(images), prompts, elements,
                      extractor=extractor, use_official_elements=use_official_elements, element_table=element_table,
                      parse_elements=parse_elements)


def _score_pil(judge, protocol: Protocol, pil, prompts: Sequence[str], elements=None, *, extractor=None,
               use_official_elements: bool = True, element_table=None, parse_elements: bool = True,
               ) -> list[ImageResult]:
    """:func:`score_images` on images already converted to RGB PIL (the metric converts them once)."""
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
    """One call: score ``images`` against ``prompts`` and aggregate (see :func:`~evalalign_metric.scoring.aggregate`).

    Args:
        judge: a loaded :class:`~evalalign_metric.judge.Judge`.
        images, prompts, elements, kwargs: as for :func:`score_images`.
        protocol: ``"evalalign"`` (default), ``"imatch"``, a protocol file or a ``Protocol``.
        scoring: ``"argmax"`` or ``"expectation"``; defaults to the protocol's choice.

    Returns:
        The figures :class:`~evalalign_metric.EvalAlignScore` computes over the same data, as floats
        (without its diagnostics ``num_images``, ``elements_from/...``, ...).

    Raises:
        InputError: bad images, prompts, elements or ``scoring``.
    """
    protocol = load_protocol(protocol)
    scoring = check_scoring(scoring or protocol.default_scoring)
    keys = score_keys(protocol)
    batch = _update(score_images(judge, protocol, images, prompts, elements, **kwargs), protocol, scoring, keys)
    return _compute(protocol, keys, batch.score_sum, batch.score_count, batch.num_alignment_images)
