"""The reward callable: its contract (inputs, bounded scores, info), weights, and non-finite rewards."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from evalalign_metric import EvalAlignScore
from evalalign_metric.errors import InputError
from evalalign_metric.judge import OptionDistribution
from evalalign_metric.reward import EvalAlignReward, NonFiniteRewardError, NonFiniteRewardWarning


class OneOptionJudge:
    """Answers every question with all its mass on the option at ``index`` (exact probabilities 0 and 1), so
    every score is known by hand. With index 1: EvalAlign's body/Hand/face (labels -1, 0..4) score 0, its
    object/common (labels 0..4) score 1 of 4, every alignment question (0, 1, 2) scores 1 of 2."""

    identity = {"model": "one-option"}

    def __init__(self, index: int = 1):
        self.index = index
        self.asked = []

    def answer(self, images, questions):
        self.asked.append(len(images))
        out = []
        for asked in questions:
            row = []
            for _, labels in asked:
                log_probs = torch.full((len(labels),), -math.inf)
                log_probs[self.index] = 0.0
                row.append(OptionDistribution(tuple(labels), log_probs))
            out.append(row)
        return out


class NaNJudge(OneOptionJudge):
    def answer(self, images, questions):
        return [[OptionDistribution(tuple(labels), torch.full((len(labels),), math.nan)) for _, labels in asked]
                for asked in questions]


RED_CUBE = {"Object": "cube;", "Color": "cube: red;"}


def test_scores_known_by_hand_with_weights():
    images = [Image.new("RGB", (16, 16), "red")] * 2
    meta = [{"elements": RED_CUBE}, {"elements": {"Object": "cat;"}}]
    # faithfulness normalised: (0 + 0 + 0 + 0.25 + 0.25) / 5 = 0.1; alignment: 0.5
    scores, info = EvalAlignReward(judge=OneOptionJudge())(images, ["a red cube", "a cat"], meta)
    assert scores == pytest.approx([0.3, 0.3], abs=1e-12)   # overall: mean of the two dimensions
    scores, _ = EvalAlignReward(judge=OneOptionJudge(), weights={"alignment": 3, "faithfulness": 1})(
        images, ["a red cube", "a cat"], meta)
    assert scores == pytest.approx([0.75 * 0.5 + 0.25 * 0.1] * 2, abs=1e-12)
    # alignment/Color is not asked about "a cat": it drops out and faithfulness alone counts for that image
    scores, info = EvalAlignReward(judge=OneOptionJudge(), weights={"alignment/Color": 1, "faithfulness": 1})(
        images, ["a red cube", "a cat"], meta)
    assert scores == pytest.approx([(0.5 + 0.1) / 2, 0.1], abs=1e-12)
    assert info["aspects"]["alignment/Color"][0] == 1.0 and math.isnan(info["aspects"]["alignment/Color"][1])
    assert info["aspects"]["faithfulness/body"] == [0.0, 0.0] and info["aspects"]["faithfulness/object"] == [1, 1]
    assert info["judge"] == {"model": "one-option"}
    assert "elements" not in info


def test_nonfinite_rewards_raise_or_are_replaced_loudly():
    images = [Image.new("RGB", (16, 16))] * 2
    meta = [{"elements": RED_CUBE}, {"elements": {"Object": "cat;"}}]
    reward = EvalAlignReward(judge=OneOptionJudge(), aspects=["alignment/Color"])
    with pytest.raises(NonFiniteRewardError, match=r"images \[1\].*'a cat'"):
        reward(images, ["a red cube", "a cat"], meta)
    replaced = EvalAlignReward(judge=OneOptionJudge(), aspects=["alignment/Color"], on_nonfinite=0.0)
    with pytest.warns(NonFiniteRewardWarning, match="replaced by 0.0"):
        scores, info = replaced(images, ["a red cube", "a cat"], meta)
    assert scores == [0.5, 0.0] and info["nonfinite"] == [1]
    with pytest.raises(NonFiniteRewardError):  # NaN from the judge is not read as "not applicable"
        EvalAlignReward(judge=NaNJudge())(images, ["a red cube", "a cat"], meta)


def test_imatch_element_scores_and_overall_only():
    images = [Image.new("RGB", (16, 16))]
    meta = [{"elements": ["cube (object)", "red (color)"]}]
    # index 0 everywhere: iMatch's first level and "Yes" (1) for every element
    reward = EvalAlignReward(protocol="imatch", judge=OneOptionJudge(index=0), aspects=["imatch/overall"])
    scores, info = reward(images, ["a red cube"], meta)
    level = info["aspects"]["imatch/overall"][0]
    assert scores == [(level - 1.0) / 4.0]
    assert info["elements"] == [{"cube (object)": 1.0, "red (color)": 1.0}]
    assert info["aspects"]["element/match/color"] == [1.0]


@pytest.fixture(scope="module")
def real_reward():
    return EvalAlignReward()  # the embedded judge


def test_every_image_form_gives_the_same_scores(real_reward):
    g = torch.Generator().manual_seed(0)
    uint8 = torch.randint(0, 256, (3, 3, 32, 40), dtype=torch.uint8, generator=g)
    prompts = ["a red square", "two blue circles", "a green triangle"]
    reference, info = real_reward(uint8, prompts)
    nhwc = uint8.permute(0, 2, 3, 1).numpy()
    forms = {
        "float NCHW": uint8.float() / 255.0,
        "uint8 NHWC numpy": nhwc,
        "PIL list": [Image.fromarray(a) for a in nhwc],
        "numpy list": list(nhwc),
        "tensor list": list(uint8.float() / 255.0),
    }
    for name, images in forms.items():
        assert real_reward(images, prompts)[0] == reference, name
    assert all(0.0 <= s <= 1.0 for s in reference)
    assert set(info["aspects"]) >= {"overall", "faithfulness", "alignment", "alignment/Color"}


def test_reward_matches_the_metric_per_image(real_reward, tmp_path):
    """Per image, each aspect in info and the overall reward equal EvalAlignScore's compute() on that image alone
    (the same judge, expectation scoring)."""
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8, generator=g)
    prompts = ["a red square above a blue circle", "three yellow stars"]
    scores, info = real_reward(images, prompts)
    metric = EvalAlignScore(judge=real_reward.judge, scoring="expectation")
    for i in range(2):
        metric.reset()
        metric.update(images[i:i + 1], prompts[i:i + 1])
        out = metric.compute()
        assert scores[i] == pytest.approx(float(out["overall"]), abs=1e-6)
        for key in ("faithfulness/common", "alignment/Color", "alignment"):
            ours, theirs = info["aspects"][key][i], float(out[key])
            assert (math.isnan(ours) and math.isnan(theirs)) or ours == pytest.approx(theirs, abs=1e-6), key


@pytest.mark.parametrize("kwargs, call, match", [
    ({"weights": {"alignment/Colour": 1}}, None, "reward key 'alignment/Colour'"),
    ({"weights": {"alignment": -1}}, None, r"weights\['alignment'\] must be a finite number >= 0"),
    ({"weights": {"alignment": 0}}, None, "must not all be 0"),
    ({"aspects": ["overall"], "weights": {"overall": 1}}, None, "not both"),
    ({"scoring": "mean"}, None, "scoring='mean'"),
    ({"on_nonfinite": "zero"}, None, "on_nonfinite"),
    ({}, (np.zeros((1, 8, 8, 3), dtype=np.float32), ["a cat"], None), "numpy array of float32"),
    ({}, (np.zeros((1, 3, 8, 8), dtype=np.uint8), ["a cat"], None), "channels last"),
    ({}, (torch.full((1, 3, 8, 8), 2.0), ["a cat"], None), r"values in \[2, 2\]"),
    ({}, (torch.zeros(2, 3, 8, 8), ["a cat"], None), r"images \(2\) and prompts \(1\)"),
    ({}, (torch.zeros(1, 3, 8, 8), ["a cat"], [{}, {}]), r"metadata \(2\) and images \(1\)"),
    ({}, (torch.zeros(1, 3, 8, 8), ["a cat"], {"elements": None}), "metadata must be None or a list"),
    ({}, (torch.zeros(1, 3, 8, 8), ["a cat"], ["cat"]), r"metadata\[0\] must be a mapping"),
])
def test_bad_input_is_named(kwargs, call, match):
    with pytest.raises(InputError, match=match):
        reward = EvalAlignReward(judge=OneOptionJudge(), **kwargs)
        reward(*call)
