"""The judge's greedy reading of multi-token options, against transformers' own greedy ``generate``
restricted to the options' tokens (``prefix_allowed_tokens_fn``), an independent implementation."""

from __future__ import annotations

import math

import pytest
import torch
from PIL import Image

from evalalign_metric.functional import question_scores, score_images
from evalalign_metric.images import mean_colour, pad_to_square
from evalalign_metric.judge import load_judge
from evalalign_metric.protocol import load_protocol

PROTOCOL = load_protocol("evalalign")
FAITHFULNESS = [(a.template, a.labels) for a in PROTOCOL.aspects if a.dimension == "faithfulness"]


def _images(n: int) -> list[Image.Image]:
    gen = torch.Generator().manual_seed(0)
    return [Image.fromarray(torch.randint(0, 256, (16 + 3 * i, 20, 3), generator=gen, dtype=torch.uint8).numpy())
            for i in range(n)]


def _constrained_generate(judge, image, question, labels) -> str:
    """Greedy decoding that may only emit tokens continuing an option, until an option is complete."""
    options = [list(ids) for ids in judge.encode(question, labels).option_ids]
    padded = pad_to_square(image, mean_colour(judge.processor.image_processor.image_mean))
    inputs = judge.processor(images=[padded], text=[judge.prompt_text(question)], return_tensors="pt")
    start = inputs["input_ids"].shape[1]

    def allowed(_, ids):
        done = ids[start:].tolist()
        return sorted({o[len(done)] for o in options if o[: len(done)] == done and len(o) > len(done)}) or [0]

    with torch.no_grad():
        out = judge.model.generate(**inputs, max_new_tokens=max(map(len, options)), do_sample=False,
                                   prefix_allowed_tokens_fn=allowed, pad_token_id=judge.pad_token_id)
    generated = out[0, start:].tolist()
    [label] = [lab for lab, o in zip(labels, options) if generated[: len(o)] == o]
    return label


@pytest.mark.parametrize("engine", ["plain", "prefix"])
def test_greedy_label_is_what_constrained_greedy_decoding_answers(tiny_judge_factory, engine):
    judge = load_judge(tiny_judge_factory(tokenizer="llama"), engine=engine, cache=False)
    images = _images(3)
    answers = judge.answer(images, [FAITHFULNESS] * len(images))
    differs = 0
    for image, dists in zip(images, answers):
        for (question, labels), dist in zip(FAITHFULNESS, dists):
            assert dist.greedy_label == _constrained_generate(judge, image, question, labels)
            differs += dist.greedy_label != dist.argmax_label
    # "▁" (every digit) outweighs "▁-" while "-1" is the most probable single option: the two readings differ.
    assert differs > 0


def test_single_token_options_read_the_same_both_ways(tiny_judge_factory):
    judge = load_judge(tiny_judge_factory(tokenizer="bytelevel"), cache=False)
    images = _images(2)
    for dists in judge.answer(images, [FAITHFULNESS] * len(images)):
        for dist in dists:
            assert dist.greedy_label == dist.argmax_label


def test_argmax_scoring_takes_the_greedy_reading(tiny_judge_factory):
    judge = load_judge(tiny_judge_factory(tokenizer="llama"), cache=False)
    images = _images(3)
    results = score_images(judge, "evalalign", images, ["a cat"] * len(images), [{"Object": "cat;"}] * 3)
    dists = judge.answer(images, [[(q.question, q.labels) for q in r.questions] for r in results])
    checked = 0
    for result, row in zip(results, dists):
        for q, dist in zip(result.questions, row):
            aspect = PROTOCOL.aspect(q.aspect.split("/")[1])
            score = aspect.scores[q.labels.index(dist.greedy_label)]
            assert math.isnan(q.argmax) if score is None else q.argmax == score
            checked += dist.greedy_label != dist.argmax_label
    assert checked > 0


def test_question_scores_choice():
    probs = torch.tensor([0.4, 0.35, 0.25])  # -1 is the most probable option, greedy answered "0"
    assert question_scores(probs, [None, 0.0, 1.0], choice=1)[0] == 0.0
    assert math.isnan(question_scores(probs, [None, 0.0, 1.0])[0])  # the product's arg-max: N/A
