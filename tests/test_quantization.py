"""Quantized, sharded and offloaded judges (CPU): probabilities against the fp32 judge, the engines agreeing on
each, the bitsandbytes configs for CUDA users, and the options threaded through every entry point.

Quantization is checked on the embedded (trained) judge: a random tiny judge has huge confident logits or
near-uniform ones, and either way int8 rounding moves its probabilities by up to 0.17 (measured), which says
nothing about a trained judge.
"""

from __future__ import annotations

import json
import warnings

import pytest
import torch

from evalalign_metric.cli import main
from evalalign_metric.errors import InputError, JudgeLoadError, MissingExtraError
from evalalign_metric.judge import load_judge
from evalalign_metric.judge.placement import from_pretrained_options, is_placed
from evalalign_metric.judge.quantization import (
    KEEP_UNQUANTIZED,
    bitsandbytes_config,
    quantization_config,
    quantized_linear_names,
)
from evalalign_metric.protocol import load_protocol
from evalalign_metric.runs.defaults import embedded_judge_dir

pytest.importorskip("torchao", reason="the CPU quantization backend (extra 'quantize')")
warnings.filterwarnings("ignore", message=".*register_constant.*")

PROTOCOL = load_protocol("evalalign")
# Stated tolerances (max |p_quantized - p_fp32| over every option of every question). Measured on the
# embedded judge, 523 questions: int8 0.011, 4bit 0.083; argmax agreement 522 and 518 of 523.
TOLERANCE = {"int8": 0.03, "4bit": 0.15}
MIN_AGREEMENT = 0.99


@pytest.fixture(scope="module")
def scene_questions():
    """60 synthetic scenes (what the embedded judge was trained on, unseen seeds) and their questions."""
    from evalalign_metric.training import scenes

    images, questions = [], []
    for k in range(60):
        scene = scenes.random_scene(scenes.random_state(9_100_000 + k), level=scenes.MAX_LEVEL)
        _, elements = scenes.claims_prompt(scene.claims())
        images.append(scenes.render(scene))
        questions.append([(text, aspect.labels) for aspect, text in PROTOCOL.questions_for(elements)])
    assert sum(map(len, questions)) >= 200
    return images, questions


def _probs(judge, images, questions) -> list[torch.Tensor]:
    return [d.probs for per in judge.answer(images, questions) for d in per]


@pytest.fixture(scope="module")
def fp32_probs(scene_questions):
    return _probs(load_judge(embedded_judge_dir("evalalign"), device="cpu", cache=False), *scene_questions)


def _lm_linear_names(model) -> list[str]:
    return [name for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and not name.startswith(KEEP_UNQUANTIZED)]


@pytest.mark.parametrize("mode", ["int8", "4bit"])
def test_quantized_judge_stays_within_tolerance_of_fp32(mode, scene_questions, fp32_probs):
    judge = load_judge(embedded_judge_dir("evalalign"), device="cpu", quantize=mode, cache=False)
    quantized = quantized_linear_names(judge.model)
    n_layers = judge.model.config.text_config.num_hidden_layers
    assert len(quantized) == 7 * n_layers  # q, k, v, o, gate, up, down of every decoder layer
    assert sorted(quantized) == sorted(_lm_linear_names(judge.model))
    assert not any(name.startswith(KEEP_UNQUANTIZED) for name in quantized)
    probs = _probs(judge, *scene_questions)
    worst = max(float((q - f).abs().max()) for q, f in zip(probs, fp32_probs))
    agree = sum(int(q.argmax() == f.argmax()) for q, f in zip(probs, fp32_probs)) / len(probs)
    assert 0 < worst <= TOLERANCE[mode]  # > 0: the weights really changed
    assert agree >= MIN_AGREEMENT


@pytest.mark.parametrize("mode", ["int8", "4bit"])
def test_prefix_engine_equals_plain_engine_on_a_quantized_judge(mode, tiny_judge_factory, colour_images):
    path = tiny_judge_factory(hidden_size=64, confident=True)
    elements = {"Object": "cat; mat;", "Count": "cat: a;", "Color": "cat: black;"}
    asked = [(text, aspect.labels) for aspect, text in PROTOCOL.questions_for(elements)]
    images = colour_images[:4]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a fallback to the plain engine would warn
        out = {engine: _probs(load_judge(path, device="cpu", quantize=mode, engine=engine, cache=False),
                              images, [asked] * len(images)) for engine in ("prefix", "plain")}
    for a, b in zip(out["prefix"], out["plain"]):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def _offload_map(n_layers: int) -> dict[str, str]:
    """Layers alternately in memory and on disk, the output head on disk."""
    device_map = {"model.vision_tower": "cpu", "model.multi_modal_projector": "cpu",
                  "model.language_model.embed_tokens": "disk", "model.language_model.norm": "cpu",
                  "model.language_model.rotary_emb": "cpu", "lm_head": "disk"}
    device_map.update({f"model.language_model.layers.{i}": "disk" if i % 2 else "cpu" for i in range(n_layers)})
    return device_map


@pytest.mark.parametrize("engine", ["prefix", "plain"])
@pytest.mark.parametrize("how", ["device_map", "max_memory"])
def test_offloaded_judge_gives_the_plain_loads_probabilities(how, engine, tiny_judge_factory, colour_images,
                                                             tmp_path):
    path = tiny_judge_factory(hidden_size=64, num_layers=4, confident=True)
    elements = {"Object": "cat; mat;", "Spatial": "cat on mat;"}
    asked = [(text, aspect.labels) for aspect, text in PROTOCOL.questions_for(elements)]
    images = colour_images
    plain = _probs(load_judge(path, device="cpu", engine=engine, cache=False), images, [asked] * len(images))
    options = {"device_map": _offload_map(4)} if how == "device_map" else {"max_memory": {"cpu": 200_000}}
    judge = load_judge(path, device="cpu", engine=engine, cache=False, offload_folder=tmp_path, **options)
    assert "disk" in judge.model.hf_device_map.values()  # part of the judge really is offloaded
    assert any(p.device.type == "meta" for p in judge.model.parameters())
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        offloaded = _probs(judge, images, [asked] * len(images))
    for a, b in zip(offloaded, plain):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=0)


def test_a_placed_judge_is_not_moved_and_says_so(tiny_judge_factory, tmp_path):
    judge = load_judge(tiny_judge_factory(hidden_size=64, num_layers=4), device="cpu", cache=False,
                       device_map=_offload_map(4), offload_folder=tmp_path)
    assert is_placed(judge.model) and judge.device == torch.device("cpu")
    with pytest.warns(UserWarning, match="stays there"):
        judge.to(dtype=torch.float16)
    assert judge.model.dtype == torch.float32


@pytest.mark.parametrize("mode, bits", [("int8", 8), ("4bit", 4)])
def test_bitsandbytes_config_for_cuda(mode, bits):
    config = bitsandbytes_config(mode, torch.bfloat16)
    assert (config.load_in_8bit, config.load_in_4bit) == (bits == 8, bits == 4)
    assert config.llm_int8_skip_modules == list(KEEP_UNQUANTIZED)
    if bits == 4:
        assert config.bnb_4bit_quant_type == "nf4" and config.bnb_4bit_use_double_quant
        assert config.bnb_4bit_compute_dtype == torch.bfloat16
    # What load_judge hands from_pretrained on a GPU: the config, and the whole judge on that GPU.
    options = from_pretrained_options(device=torch.device("cuda:1"), dtype=torch.bfloat16, quantize=mode) \
        if _has_bitsandbytes() else None
    if options is not None:
        assert options["device_map"] == {"": "cuda:1"}
        assert options["quantization_config"].to_dict() == config.to_dict()


def _has_bitsandbytes() -> bool:
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(_has_bitsandbytes(), reason="checks the message shown without bitsandbytes")
def test_cuda_quantization_without_bitsandbytes_names_the_extra():
    with pytest.raises(MissingExtraError, match=r"quantize-cuda"):
        quantization_config("int8", device=torch.device("cuda"), dtype=torch.float16)


def test_cpu_quantization_uses_torchao_weight_only():
    int8 = quantization_config("int8", device=torch.device("cpu"), dtype=torch.float32)
    int4 = quantization_config("4bit", device=torch.device("cpu"), dtype=torch.float32)
    assert type(int8).__name__ == type(int4).__name__ == "TorchAoConfig"
    assert type(int8.quant_type).__name__ == "Int8WeightOnlyConfig"
    assert int4.quant_type.weight_dtype == torch.int4


@pytest.mark.parametrize("options, message", [
    ({"quantize": "fp8"}, "quantize='fp8' is not one of"),
    ({"device_map": "everywhere"}, "device_map='everywhere'"),
    ({"max_memory": {"gpu0": "2GiB"}}, "max_memory key 'gpu0'"),
    ({"max_memory": {"cpu": "lots"}}, r"max_memory\['cpu'\]='lots' is not a size"),
])
def test_bad_loading_options_are_named(options, message, tiny_judge_path):
    with pytest.raises(JudgeLoadError, match=message):
        load_judge(tiny_judge_path, device="cpu", cache=False, **options)


def test_offload_judge_excludes_a_placed_judge(tiny_judge_path):
    from evalalign_metric.callbacks import EvalAlignValidation

    with pytest.raises(InputError, match="offload_judge=True .* quantize"):
        EvalAlignValidation(tiny_judge_path, offload_judge=True, quantize="int8")


def test_metric_and_evaluate_module_pass_the_options_on(tiny_judge_factory):
    from evalalign_metric import EvalAlignScore

    path = tiny_judge_factory(hidden_size=64)
    metric = EvalAlignScore(model=path, device="cpu", quantize="int8")
    assert len(quantized_linear_names(metric.judge.model)) == 7 * 2
    evaluate = pytest.importorskip("evaluate")
    from pathlib import Path

    module = evaluate.load(str(Path(__file__).resolve().parents[1] / "adapters/evaluate/evalalign"), str(path),
                           quantize="4bit", device="cpu")
    assert len(quantized_linear_names(module._judge().model)) == 7 * 2


def test_score_quantize_is_recorded_and_not_mixed_with_fp32(tmp_path, capsys, tiny_judge_factory):
    from PIL import Image

    path = tiny_judge_factory(hidden_size=64)
    folder = tmp_path / "images"
    folder.mkdir()
    Image.new("RGB", (32, 32), "red").save(folder / "a.png")
    (tmp_path / "prompts.jsonl").write_text(json.dumps({"image": "a.png", "prompt": "a red cube"}) + "\n")
    argv = ["score", str(folder), "--model", str(path), "--prompts", str(tmp_path / "prompts.jsonl"),
            "--device", "cpu", "--no-progress", "--out", str(tmp_path / "r.jsonl")]
    assert main([*argv, "--quantize", "int8"]) == 0
    header = json.loads((tmp_path / "r.jsonl").read_text().splitlines()[0])
    assert header["dtype"] == "float32+int8"
    capsys.readouterr()
    assert main(argv) == 2
    assert "dtype 'float32+int8'; this run uses 'float32'" in capsys.readouterr().err


def test_score_rejects_a_bad_max_memory(capsys, tmp_path):
    with pytest.raises(SystemExit):
        main(["score", str(tmp_path), "--max-memory", "cpu"])
    assert "is not DEVICE=SIZE" in capsys.readouterr().err


def test_command_line_choices_are_the_librarys():
    from evalalign_metric.commands._placement import DEVICE_MAP_CHOICES, QUANTIZE_CHOICES
    from evalalign_metric.judge.placement import DEVICE_MAP_STRATEGIES
    from evalalign_metric.judge.quantization import QUANTIZE_MODES

    assert QUANTIZE_CHOICES == QUANTIZE_MODES and DEVICE_MAP_CHOICES == DEVICE_MAP_STRATEGIES
