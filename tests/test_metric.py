"""EvalAlignScore as a torchmetrics Metric: accumulation, forward, pickling, state, errors, plotting."""

from __future__ import annotations

import math
import pickle

import pytest
import torch
from PIL import Image

from evalalign_metric import EvalAlignScore, evalalign_score, load_judge
from evalalign_metric.errors import InputError
from evalalign_metric.official import alignment_prompts

OFFICIAL = alignment_prompts()[:3]


def _assert_same(a: dict, b: dict, atol=1e-5):
    assert a.keys() == b.keys()
    for key in a:
        if math.isnan(float(a[key])):
            assert math.isnan(float(b[key])), key
        else:
            assert float(a[key]) == pytest.approx(float(b[key]), abs=atol), key


@pytest.fixture
def metric(tiny_judge_path):
    return EvalAlignScore(model=tiny_judge_path)


def test_compute_keys_and_nan_for_never_asked(metric, random_uint8_images):
    metric.update(random_uint8_images[:2], ["a cat", "a dog"], elements=[{"Object": "cat;"}, {"Object": "dog;"}])
    out = metric.compute()
    for key in ["overall", "faithfulness", "alignment", "faithfulness/body", "alignment/Object", "num_images"]:
        assert key in out and isinstance(out[key], torch.Tensor)
    assert math.isnan(float(out["alignment/Count"]))  # never asked: NaN, not 0
    assert float(out["num_images"]) == 2 and float(out["num_without_elements"]) == 0
    assert 0.0 <= float(out["overall"]) <= 1.0
    assert 0.0 <= float(out["alignment/Object"]) <= 2.0


def test_metric_equals_functional_and_batched_equals_unbatched(
        tiny_judge_path, random_uint8_images, assert_same_scores):
    prompts = [e["prompt"] for e in OFFICIAL] + ["a cat"]
    together = EvalAlignScore(model=tiny_judge_path)
    together.update(random_uint8_images, prompts)
    one_by_one = EvalAlignScore(model=tiny_judge_path)
    for image, prompt in zip(random_uint8_images, prompts):
        one_by_one.update(image[None], [prompt])
    direct = evalalign_score(load_judge(tiny_judge_path), random_uint8_images, prompts)
    assert_same_scores(together.compute(), one_by_one.compute(), direct)


def test_images_are_converted_once_per_update(metric, random_uint8_images, monkeypatch):
    import evalalign_metric.functional
    import evalalign_metric.images
    import evalalign_metric.metric

    calls = []
    original = evalalign_metric.images.to_pil_images

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    for module in (evalalign_metric.images, evalalign_metric.functional, evalalign_metric.metric):
        monkeypatch.setattr(module, "to_pil_images", counting, raising=False)
    metric.update(random_uint8_images[:2], ["a cat", "a dog"])
    assert len(calls) == 1


def test_official_prompts_get_their_elements(tiny_judge_path, random_uint8_images):
    metric = EvalAlignScore(model=tiny_judge_path, parse_elements=False)  # the other prompt stays without
    with pytest.warns(UserWarning, match="no alignment elements .* the parser is off"):
        metric.update(random_uint8_images[:2], [OFFICIAL[0]["prompt"], "an unknown prompt"])
    out = metric.compute()
    assert float(out["num_without_elements"]) == 1
    n_official = len(OFFICIAL[0]["question_info"])
    assert int(metric.asked[5:].sum()) == n_official  # only the official prompt asked alignment questions


def test_forward_equals_update_then_compute(tiny_judge_path, random_uint8_images):
    prompts = [e["prompt"] for e in OFFICIAL] + ["x"]
    a = EvalAlignScore(model=tiny_judge_path)
    batch_value = a(random_uint8_images, prompts)
    b = EvalAlignScore(model=tiny_judge_path)
    b.update(random_uint8_images, prompts)
    _assert_same(batch_value, b.compute())
    _assert_same(a.compute(), b.compute())  # forward also accumulated


def test_reset_clone_pickle_and_state_dict(tiny_judge_path, random_uint8_images):
    metric = EvalAlignScore(model=tiny_judge_path)
    metric.update(random_uint8_images[:1], [OFFICIAL[0]["prompt"]])
    expected = metric.compute()
    clone = metric.clone()
    assert clone.judge is metric.judge  # shared, not copied
    _assert_same(clone.compute(), expected)
    restored = pickle.loads(pickle.dumps(metric))
    _assert_same(restored.compute(), expected)
    assert restored.judge is metric.judge  # reloaded through the per-process judge cache
    state = metric.state_dict()
    assert not any("model" in key or "judge" in key for key in state)
    assert not any(isinstance(v, torch.nn.Module) for v in metric.children())
    metric.reset()
    assert float(metric.num_images) == 0 and float(metric.score_count.sum()) == 0
    assert math.isnan(float(metric.compute()["overall"]))


def test_image_formats_agree(tiny_judge_path):
    gen = torch.Generator().manual_seed(1)
    uint8 = torch.randint(0, 256, (2, 3, 20, 20), dtype=torch.uint8, generator=gen)
    as_float = uint8.float() / 255.0
    pil = [Image.fromarray(img.permute(1, 2, 0).numpy()) for img in uint8]
    results = []
    for images, normalize in [(uint8, False), (as_float, True), (pil, False)]:
        metric = EvalAlignScore(model=tiny_judge_path, normalize=normalize)
        metric.update(images, ["a", "b"])
        results.append(metric.compute())
    _assert_same(results[0], results[1])
    _assert_same(results[0], results[2])


def test_grayscale_and_rgba_are_converted(metric):
    metric.update(torch.zeros(1, 1, 16, 16, dtype=torch.uint8), ["gray"])
    metric.update(torch.zeros(1, 4, 16, 16, dtype=torch.uint8), ["rgba"])
    assert float(metric.compute()["num_images"]) == 2


@pytest.mark.parametrize("images, prompts, elements, kwargs, message", [
    (torch.zeros(2, 3, 16, 16, dtype=torch.uint8), ["one"], None, {}, r"images \(2\) and prompts \(1\)"),
    (torch.zeros(1, 3, 16, 16), ["p"], None, {}, "pass uint8 images"),
    (torch.full((1, 3, 16, 16), 2.0), ["p"], None, {"normalize": True}, r"normalize=True expects \[0, 1\]"),
    (torch.zeros(1, 3, 16, 16, dtype=torch.uint8), ["p"], None, {"normalize": True}, "expects float"),
    (torch.zeros(1, 2, 16, 16, dtype=torch.uint8), ["p"], None, {}, r"images\[0\] has 2 channels"),
    (torch.zeros(16, 16, dtype=torch.uint8), ["p"], None, {}, r"\(N, C, H, W\)"),
    (torch.zeros(1, 3, 16, 16, dtype=torch.int32), ["p"], None, {}, "dtype torch.int32"),
    (torch.zeros(1, 3, 16, 16, dtype=torch.uint8), ["  "], None, {}, r"prompts\[0\] must be a non-empty string"),
    (torch.zeros(1, 3, 16, 16, dtype=torch.uint8), "p", None, {}, "prompts must be a list"),
    (torch.zeros(1, 3, 16, 16, dtype=torch.uint8), ["p"], [{"Shape": "x;"}], {}, "unknown aspect 'Shape'"),
    (torch.zeros(1, 3, 16, 16, dtype=torch.uint8), ["p"], [{"Object": 3}], {}, r"elements\[0\]\['Object'\]"),
    (torch.zeros(1, 3, 16, 16, dtype=torch.uint8), ["p"], [{}, {}], {}, r"elements \(2\) and prompts \(1\)"),
    (torch.zeros(1, 3, 16, 16, dtype=torch.uint8), ["p"], {"Object": "x;"}, {}, "one mapping"),
    (torch.zeros(1, 3, 2, 2, dtype=torch.uint8), ["p"], None, {}, r"images\[0\] is 2x2"),
    (["not an image"], ["p"], None, {}, r"images\[0\] must be a PIL image"),
])
def test_bad_input_errors_name_the_argument(tiny_judge_path, images, prompts, elements, kwargs, message):
    metric = EvalAlignScore(model=tiny_judge_path, **kwargs)
    with pytest.raises(InputError, match=message):
        metric.update(images, prompts, elements=elements)


def test_constructor_errors(tiny_judge_path):
    with pytest.raises(InputError, match="scoring='mode'"):
        EvalAlignScore(model=tiny_judge_path, scoring="mode")


def test_expectation_scoring_differs_from_argmax(tiny_judge_path, random_uint8_images):
    prompts = [e["prompt"] for e in OFFICIAL] + ["p"]
    argmax = EvalAlignScore(model=tiny_judge_path)
    argmax.update(random_uint8_images, prompts)
    expectation = EvalAlignScore(model=tiny_judge_path, scoring="expectation")
    expectation.update(random_uint8_images, prompts)
    a, e = argmax.compute(), expectation.compute()
    assert float(a["faithfulness/object"]) == round(float(a["faithfulness/object"]) * 4) / 4  # whole answers /4 imgs
    assert float(e["faithfulness/object"]) != float(a["faithfulness/object"])


def test_plot(metric, random_uint8_images):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    metric.update(random_uint8_images[:1], [OFFICIAL[0]["prompt"]])
    fig, ax = metric.plot()
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert "faithfulness/body" in labels and "overall" in labels


def test_edited_elements_file_overrides_official_elements(tiny_judge_path, random_uint8_images, tmp_path):
    import json

    entry = dict(OFFICIAL[0])
    official_asked = len(entry["question_info"])
    edited = {k: "none" for k in entry["result_info"]}
    edited["Color"] = "girl: blue;"  # reviewed by hand: one aspect only
    (tmp_path / "elements.json").write_text(json.dumps([{"prompt": entry["prompt"], "result_info": edited}]))
    metric = EvalAlignScore(model=tiny_judge_path, elements_file=tmp_path / "elements.json")
    metric.update(random_uint8_images[:2], [entry["prompt"], OFFICIAL[1]["prompt"]])
    keys = metric.aspect_keys
    asked = dict(zip(keys, metric.asked[: len(keys)].tolist()))
    assert asked["alignment/Color"] == 1 + ("Color" in OFFICIAL[1]["question_info"])
    # The edited prompt asked only Color; the second prompt (not in the file) kept its official questions.
    assert sum(v for k, v in asked.items() if k.startswith("alignment/")) == 1 + len(OFFICIAL[1]["question_info"])
    assert official_asked > 1


def test_merge_state_adds_up_metrics_of_one_judge(tiny_judge_path, random_uint8_images):
    prompts = [e["prompt"] for e in OFFICIAL] + ["a cat"]
    whole = EvalAlignScore(model=tiny_judge_path)
    whole.update(random_uint8_images, prompts)
    first, second = EvalAlignScore(model=tiny_judge_path), EvalAlignScore(model=tiny_judge_path, batch_size=2)
    first.update(random_uint8_images[:2], prompts[:2])
    second.update(random_uint8_images[2:], prompts[2:])
    first.merge_state(second)
    _assert_same(first.compute(), whole.compute())


def test_merge_state_refuses_other_judges_protocols_and_scoring(tiny_judge_factory, tiny_judge_path,
                                                                random_uint8_images):
    other_path = tiny_judge_factory(tokenizer="llama", architecture="llava", seed=1)
    mine = EvalAlignScore(model=tiny_judge_path)
    mine.update(random_uint8_images[:1], ["a cat"])
    before = mine.metric_state
    other = EvalAlignScore(model=other_path)
    other.update(random_uint8_images[1:2], ["a dog"])
    with pytest.raises(InputError, match=f"different judges: model='{tiny_judge_path}'.* and model='{other_path}'"):
        mine.merge_state(other)
    imatch = EvalAlignScore(model=tiny_judge_path, protocol="imatch")
    with pytest.raises(InputError, match="different protocols: 'evalalign' .* and 'imatch'"):
        mine.merge_state(imatch)
    with pytest.raises(InputError, match="different scoring modes: 'argmax' and 'expectation'"):
        mine.merge_state(EvalAlignScore(model=tiny_judge_path, scoring="expectation"))
    for key, value in mine.metric_state.items():  # nothing was added before refusing
        assert torch.equal(value, before[key]), key


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True])
def test_batch_size_is_checked_whatever_the_judge_source(tiny_judge_path, batch_size):
    judge = load_judge(tiny_judge_path)
    with pytest.raises(InputError, match=f"batch_size={batch_size!r}; expected a whole number >= 1"):
        EvalAlignScore(judge=judge, batch_size=batch_size)
    with pytest.raises(InputError, match=f"batch_size={batch_size!r}"):
        EvalAlignScore(model=tiny_judge_path, batch_size=batch_size)


def test_truncated_lazy_png_is_reported_with_its_index(metric, tmp_path):
    import io

    noise = torch.randint(0, 256, (24, 24, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    buffer = io.BytesIO()
    Image.fromarray(noise.numpy()).save(buffer, format="PNG")
    (tmp_path / "cut.png").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    (tmp_path / "whole.png").write_bytes(buffer.getvalue())
    whole, cut = Image.open(tmp_path / "whole.png"), Image.open(tmp_path / "cut.png")  # lazily: not decoded yet
    with pytest.raises(InputError, match=r"images\[1\] \(.*cut\.png\) could not be decoded: image file is truncated"):
        metric.update([whole, cut], ["a cat", "a dog"])
    assert int(metric.num_images) == 0
