"""Per-question scores and aggregation against hand-computed values and the reference README."""

from __future__ import annotations

import math

import pytest
import torch

from evalalign_metric.errors import InputError
from evalalign_metric.functional import aggregate, question_scores
from evalalign_metric.protocol import load_protocol
from evalalign_metric.scoring import ImageResult, QuestionResult, _compute, _update, score_keys

FAITH = (None, 0.0, 1.0, 2.0, 3.0, 4.0)


def test_argmax_and_expectation_by_hand():
    probs = torch.tensor([0.05, 0.05, 0.1, 0.2, 0.4, 0.2], dtype=torch.float64)
    discrete, expected = question_scores(probs, FAITH)
    assert discrete == 3.0
    # 0*0.05 + 1*0.1 + 2*0.2 + 3*0.4 + 4*0.2 = 2.5, over the 0.95 of scored mass
    assert expected == pytest.approx(2.5 / 0.95, abs=1e-12)


def test_not_applicable_decided_by_p_minus_one():
    argmax_na, expected_na = question_scores(torch.tensor([0.6, 0.1, 0.1, 0.1, 0.05, 0.05]), FAITH)
    assert math.isnan(argmax_na) and math.isnan(expected_na)
    # -1 is the single most likely option but holds under half the mass: argmax says N/A, the expectation
    # (over 0..4 renormalised) does not.
    argmax_na, expected = question_scores(torch.tensor([0.4, 0.3, 0.3, 0.0, 0.0, 0.0]), FAITH)
    assert math.isnan(argmax_na)
    assert expected == pytest.approx(0.5)


def test_three_level_alignment_expectation():
    discrete, expected = question_scores(torch.tensor([0.2, 0.3, 0.5]), (0.0, 1.0, 2.0))
    assert discrete == 2.0 and expected == pytest.approx(1.3)


def test_probs_shape_is_checked():
    with pytest.raises(InputError, match="probs has shape"):
        question_scores(torch.tensor([0.5, 0.5]), FAITH)


def test_reference_readme_faithfulness_example():
    # Reference README: body 2.17, Hand 0.674, face 1.691, object 2.5, common 1.05 -> avg 1.636.
    # Counts consistent with every printed figure over 100 images: N/A answers reduce body/Hand/face counts.
    sums = {"faithfulness/body": 217, "faithfulness/Hand": 60, "faithfulness/face": 137,
            "faithfulness/object": 250, "faithfulness/common": 105}
    counts = {"faithfulness/body": 100, "faithfulness/Hand": 89, "faithfulness/face": 81,
              "faithfulness/object": 100, "faithfulness/common": 100}
    out = aggregate("evalalign", sums, counts)
    assert round(out["faithfulness/body"], 3) == 2.17
    assert round(out["faithfulness/Hand"], 3) == 0.674
    assert round(out["faithfulness/face"], 3) == 1.691
    assert out["faithfulness/object"] == 2.5 and out["faithfulness/common"] == 1.05
    assert round(out["faithfulness"], 3) == 1.636  # micro-average, not the mean of aspect means (1.617)
    assert out["faithfulness"] == pytest.approx(769 / 470)
    assert math.isnan(out["alignment"]) and math.isnan(out["alignment/Object"])
    assert out["overall"] == pytest.approx(769 / 470 / 4)


def test_alignment_reference_total_and_overall():
    # 3 images: alignment answers Object 2,1,2 ; Count 1,1 ; Style 2 -> total 9 over 3 images.
    sums = {"alignment/Object": 5, "alignment/Count": 2, "alignment/Style": 2, "faithfulness/object": 6}
    counts = {"alignment/Object": 3, "alignment/Count": 2, "alignment/Style": 1, "faithfulness/object": 3}
    out = aggregate("evalalign", sums, counts, num_alignment_images=3)
    assert out["alignment/Object"] == pytest.approx(5 / 3)
    assert out["alignment"] == pytest.approx(9 / 6)
    assert out["alignment_total_per_image"] == pytest.approx(3.0)
    assert math.isnan(out["alignment/Color"])
    # overall = mean(faithfulness 2/4, alignment 1.5/2)
    assert out["overall"] == pytest.approx((0.5 + 0.75) / 2)


def test_update_and_compute_by_hand():
    def answer(aspect, argmax, expectation, element=None, outside=0.0):
        return QuestionResult(aspect, "?", ("A", "B"), [0.5, 0.5], outside, argmax, expectation, element)

    results = [
        ImageResult("p1", [answer("imatch/overall", 5.0, 4.0, outside=0.25),
                           answer("element/match", 1.0, 0.75, "cat (animal)"),
                           answer("element/match", 0.0, 0.25, "mat (object)")], "caller"),
        ImageResult("p2", [answer("imatch/overall", math.nan, math.nan),
                           answer("element/match", 1.0, 0.5, "dog (animal)", outside=0.5)], "file"),
    ]
    keys = score_keys("imatch")
    protocol = load_protocol("imatch")
    batch = _update(results, protocol, "expectation", keys)
    columns = zip(keys, batch.score_sum.tolist(), batch.score_count.tolist(), batch.asked.tolist())
    by_key = {k: (s, n, a) for k, s, n, a in columns}
    assert by_key["imatch/overall"] == (4.0, 1.0, 2.0)  # the N/A answer is asked but not counted
    assert by_key["element/match"] == (1.5, 3.0, 3.0)
    assert by_key["element/match/animal"] == (1.25, 2.0, 2.0)
    assert by_key["element/match/object"] == (0.25, 1.0, 1.0)
    assert by_key["element/match/food"] == (0.0, 0.0, 0.0)
    assert float(batch.num_images) == 2 and float(batch.num_without_elements) == 0
    assert float(batch.outside_mass_sum) == 0.75
    assert batch.elements_from.tolist() == [1.0, 1.0, 0.0, 0.0, 0.0]  # caller, file, official, extractor, parser
    out = _compute(protocol, keys, batch.score_sum, batch.score_count, batch.num_alignment_images)
    assert out["imatch/overall"] == 4.0 and out["element/match"] == 0.5
    assert out["element/match/animal"] == 0.625 and math.isnan(out["element/match/food"])
    # overall: mean of imatch normalised (4 - 1) / 4 and element (0.5 - 0) / 1
    assert out["overall"] == pytest.approx((0.75 + 0.5) / 2)
    argmax = _update(results, protocol, "argmax", keys)
    assert argmax.score_sum[keys.index("element/match")] == 2.0
