"""The `evaluate` module in adapters/evaluate/evalalign, loaded through the real `evaluate.load(path)`."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

evaluate = pytest.importorskip("evaluate", reason="the 'evaluate' extra is not installed")
pytest.importorskip("datasets", reason="the 'evaluate' extra (datasets) is not installed")

from evalalign_metric import EvalAlignScore, InputError  # noqa: E402
from evalalign_metric.official import alignment_prompts  # noqa: E402

MODULE_DIR = Path(__file__).resolve().parents[1] / "adapters" / "evaluate" / "evalalign"


@pytest.fixture(scope="module")
def judge_dir(tiny_judge_factory):
    # Chosen because its answers move with the image (per-image std of expected scores ~0.02-0.07): a wrong
    # image/prompt pairing or a lost image shows far above the tolerance.
    return tiny_judge_factory(tokenizer="llama", architecture="llava", confident=True, seed=4,
                              confident_scale=0.5)


@pytest.fixture
def cache_dir(tmp_path):
    return str(tmp_path / "evaluate-cache")


def _data():
    gen = torch.Generator().manual_seed(11)
    arrays = torch.randint(0, 256, (6, 20, 28, 3), dtype=torch.uint8, generator=gen).numpy()
    images = [Image.fromarray(a) for a in arrays]
    official = [e["prompt"] for e in alignment_prompts()[:3]]
    prompts = official + ["a red cube on a blue sphere", "two cats", "a lighthouse at dusk"]
    elements = [None, None, None, {"Object": "cube; sphere;", "Color": "cube: red; sphere: blue;"},
                {"Object": "cat;", "Count": "cat: two;"}, None]
    return images, prompts, elements


def _reference(judge_dir, images, prompts, elements, **kwargs):
    metric = EvalAlignScore(model=judge_dir, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metric.update(images, prompts, elements)
    return {k: float(v) for k, v in metric.compute().items()}


def _assert_same(got: dict, expected: dict) -> None:
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert isinstance(got[key], float), key
        if math.isnan(value):
            assert math.isnan(got[key]), key
        else:
            assert got[key] == pytest.approx(value, abs=1e-6), key


@pytest.mark.parametrize("scoring", ["argmax", "expectation"])
def test_module_equals_metric(judge_dir, cache_dir, scoring):
    images, prompts, elements = _data()
    module = evaluate.load(str(MODULE_DIR), str(judge_dir), cache_dir=cache_dir, scoring=scoring)
    got = module.compute(predictions=images, references=prompts, elements=elements)
    expected = _reference(judge_dir, images, prompts, elements, scoring=scoring)
    _assert_same(got, expected)
    # The data is not degenerate: several aspects were answered, one prompt's elements came from the parser.
    assert sum(not math.isnan(v) for k, v in expected.items() if "/" in k) >= 6
    assert expected["num_images"] == 6 and expected["num_without_elements"] == 0
    assert [expected[f"elements_from/{s}"] for s in ("caller", "official", "parser")] == [2, 3, 1]


def test_model_as_init_kwarg_and_add_batch(judge_dir, cache_dir):
    images, prompts, elements = _data()
    module = evaluate.load(str(MODULE_DIR), model=str(judge_dir), cache_dir=cache_dir)
    module.add_batch(predictions=images[:4], references=prompts[:4])
    module.add_batch(predictions=images[4:], references=prompts[4:])
    got = module.compute(elements=elements)
    _assert_same(got, _reference(judge_dir, images, prompts, elements))


def test_image_paths_and_arrays_equal_pil(judge_dir, cache_dir, tmp_path):
    images, prompts, _ = _data()
    paths = []
    for i, image in enumerate(images[:3]):
        paths.append(str(tmp_path / f"{i}.png"))
        image.save(paths[-1])
    arrays = [np.asarray(image) for image in images[3:]]
    module = evaluate.load(str(MODULE_DIR), str(judge_dir), cache_dir=cache_dir)
    got = module.compute(predictions=paths + arrays, references=prompts)
    _assert_same(got, _reference(judge_dir, images, prompts, None))


def test_judge_loaded_once_per_process(judge_dir, cache_dir):
    first = evaluate.load(str(MODULE_DIR), str(judge_dir), cache_dir=cache_dir)
    second = evaluate.load(str(MODULE_DIR), model=str(judge_dir), cache_dir=cache_dir)
    assert first._judge() is second._judge()


def test_cache_stays_out_of_the_judge_folder(judge_dir, cache_dir):
    # evaluate joins config_name into its cache path: an absolute judge path must not redirect it.
    before = sorted(p.name for p in Path(judge_dir).iterdir())
    module = evaluate.load(str(MODULE_DIR), str(judge_dir), cache_dir=cache_dir)
    assert Path(module.data_dir).resolve().is_relative_to(Path(cache_dir).resolve())
    module.compute(predictions=[Image.new("RGB", (16, 16))], references=["a cat"])
    assert sorted(p.name for p in Path(judge_dir).iterdir()) == before


def test_install_hint_names_the_package_extra():
    imports = evaluate.loading.get_imports(str(MODULE_DIR / "evalalign.py"))
    assert ("library", "evalalign_metric", "evalalign-metric[evaluate]", None) in imports
    assert {name for kind, name, _, _ in imports if kind == "library"} == {
        "hashlib", "re", "datasets", "evaluate", "evalalign_metric"}


def test_bad_inputs_name_the_argument(judge_dir, cache_dir, tiny_judge_path):
    images, prompts, _ = _data()
    module = evaluate.load(str(MODULE_DIR), str(judge_dir), cache_dir=cache_dir)
    with pytest.raises(InputError, match=r"elements has 1 entries; expected one mapping \(or None\) per "
                                         r"image \(6\)"):
        module.compute(predictions=images, references=prompts, elements=[None])
    with pytest.raises(InputError, match="the judge was given twice"):
        evaluate.load(str(MODULE_DIR), str(judge_dir), model=str(tiny_judge_path), cache_dir=cache_dir)
    with pytest.raises(ValueError, match="Mismatch in the number of predictions"):
        evaluate.load(str(MODULE_DIR), str(judge_dir), cache_dir=cache_dir).compute(
            predictions=images[:2], references=prompts[:3])


def test_default_judge_warns_when_untrained(tmp_path, monkeypatch, cache_dir):
    from evalalign_metric.runs import defaults

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    # as in a source tree without the embedded judge: the default is then the untrained demo judge
    monkeypatch.setattr(defaults, "embedded_judge_dir", lambda protocol=None: tmp_path / "no-embedded-judge")
    assert not defaults.default_judge().trained
    module = evaluate.load(str(MODULE_DIR), cache_dir=cache_dir)
    with pytest.warns(UserWarning, match="untrained demo judge"):
        out = module.compute(predictions=[Image.new("RGB", (40, 40), "red")], references=["a cat"])
    assert out["num_images"] == 1.0 and 0.0 <= out["overall"] <= 1.0


def test_with_no_judge_named_the_module_loads_the_embedded_judge_of_its_protocol(cache_dir):
    module = evaluate.load(str(MODULE_DIR), cache_dir=cache_dir, protocol="imatch")
    assert Path(module._judge().identity["model"]).name == "judge-imatch"
    default = evaluate.load(str(MODULE_DIR), cache_dir=cache_dir)
    assert Path(default._judge().identity["model"]).name == "judge"
