"""The memory estimate's arithmetic against hand computations and real models, and ``evalalign judges``.

Measured peak memory against the estimate is in benchmarks/bench_memory.py (peak RSS is no test's business).
"""

from __future__ import annotations

import json

import pytest
import torch

from evalalign_metric.cli import main
from evalalign_metric.errors import InputError
from evalalign_metric.judge.memory import estimate_memory, shape_from_folder, shape_from_registry, weights_on_disk


def _clip_parameters(hidden, intermediate, layers, image, patch):
    tokens = (image // patch) ** 2 + 1
    embeddings = 3 * patch * patch * hidden + hidden + tokens * hidden  # patch conv (no bias), CLS, positions
    layer = 4 * (hidden * hidden + hidden) + (hidden * intermediate + intermediate) \
        + (intermediate * hidden + hidden) + 2 * 2 * hidden
    return embeddings + 2 * hidden + layers * layer + 2 * hidden  # pre and post layer norms


def _llama_parameters(vocab, hidden, intermediate, layers, heads, kv_heads):
    head_dim = hidden // heads
    attention = 2 * hidden * hidden + 2 * hidden * kv_heads * head_dim
    return 2 * vocab * hidden + layers * (attention + 3 * hidden * intermediate + 2 * hidden) + hidden


@pytest.mark.parametrize("name, vocab, hidden, intermediate, layers, heads, kv_heads", [
    ("evalalign-13b", 32000, 5120, 13824, 40, 40, 40),
    ("evalalign-34b", 64000, 7168, 20480, 60, 56, 8),
])
def test_registered_judges_parameters_by_hand(name, vocab, hidden, intermediate, layers, heads, kv_heads):
    shape = shape_from_registry(name)
    projector = 1024 * hidden + hidden + hidden * hidden + hidden
    expected = (_llama_parameters(vocab, hidden, intermediate, layers, heads, kv_heads)
                + _clip_parameters(1024, 4096, 24, 336, 14) + projector)
    assert shape.parameters == expected
    assert shape.quantizable_parameters == layers * (2 * hidden * hidden + 2 * hidden * kv_heads * (hidden // heads)
                                                     + 3 * hidden * intermediate)
    assert shape.image_tokens == 576
    assert weights_on_disk(shape) == 2 * expected  # float16 checkpoints


def test_kv_cache_and_weights_by_hand():
    shape = shape_from_registry("evalalign-13b")
    estimate = estimate_memory(shape, dtype="bfloat16", batch_size=3, question_tokens=500, prefix_text_tokens=24)
    prefix, chunk = 576 + 24, 500  # the chunk is the questions' tokens, as they are fewer than the prefix's
    assert estimate.kv_cache == 2 * 40 * 40 * 128 * 2 * 3 * (prefix + chunk)
    assert estimate.weights == 2 * shape.parameters
    assert estimate.total == estimate.weights + estimate.kv_cache + estimate.activations
    longer = estimate_memory(shape, dtype="bfloat16", batch_size=3, question_tokens=5000, prefix_text_tokens=24)
    assert longer.kv_cache == 2 * 40 * 40 * 128 * 2 * 3 * (2 * prefix)  # chunks never exceed the prefix


def test_cuda_4bit_weights_by_hand():
    shape = shape_from_registry("evalalign-34b")
    q = shape.quantizable_parameters
    four = estimate_memory(shape, dtype="float16", quantize="4bit").weights
    per_layer_blocks = sum(4 * (i * o // (64 * 256) + 1) for i, o in shape.linear_shapes)
    assert four == 2 * (shape.parameters - q) + q // 2 + sum(i * o // 64 for i, o in shape.linear_shapes) \
        + per_layer_blocks
    eight = estimate_memory(shape, dtype="float16", quantize="int8").weights
    assert eight == 2 * (shape.parameters - q) + q + 4 * sum(o for _, o in shape.linear_shapes)


def _stored_bytes(model) -> int:
    """Bytes a loaded model's weights hold, quantized tensors by their inner data (torchao)."""
    total = 0
    for param in model.parameters():
        names = getattr(param, "tensor_data_names", None)
        if names:
            names = list(names) + [n for n in getattr(param, "optional_tensor_data_names", None) or []
                                   if getattr(param, n, None) is not None]
            total += sum(getattr(param, n).numel() * getattr(param, n).element_size() for n in names)
        else:
            total += param.numel() * param.element_size()
    return total


@pytest.mark.parametrize("quantize", [None, "int8", "4bit"])
def test_cpu_weight_estimate_equals_a_loaded_judges_bytes(quantize, tiny_judge_factory):
    if quantize:
        pytest.importorskip("torchao")
    from evalalign_metric.judge import load_judge

    path = tiny_judge_factory(hidden_size=64)
    judge = load_judge(path, device="cpu", quantize=quantize, cache=False)
    shape = shape_from_folder(path)
    assert shape.parameters == sum(p.numel() for p in load_judge(path, device="cpu").model.parameters())
    estimate = estimate_memory(shape, dtype="float32", quantize=quantize, device="cpu")
    assert estimate.weights == _stored_bytes(judge.model)


def test_image_tokens_come_from_the_processor(tiny_judge_path):
    from PIL import Image

    from evalalign_metric.judge import load_judge

    _, n_tokens = load_judge(tiny_judge_path).prepare_image(Image.new("RGB", (16, 16)))
    assert shape_from_folder(tiny_judge_path).image_tokens == n_tokens


def test_bad_estimate_inputs_are_named():
    shape = shape_from_registry("evalalign-13b")
    with pytest.raises(InputError, match="dtype='int8'"):
        estimate_memory(shape, dtype="int8")
    with pytest.raises(InputError, match="batch_size must be >= 1"):
        estimate_memory(shape, batch_size=0)


def test_judges_command_lists_registered_and_embedded_judges(capsys):
    assert main(["judges", "--format", "json", "--batch-size", "1", "4"]) == 0
    rows = json.loads(capsys.readouterr().out)
    names = [r["name"] for r in rows]
    from evalalign_metric import list_judges

    assert names == list_judges() and {"evalalign-13b", "evalalign-34b", "embedded", "embedded-imatch"} <= set(names)
    by_name = {r["name"]: r for r in rows}
    unknown = [r for r in rows if r["memory_bytes"] is None]  # registered judges without shipped figures
    assert all(r["name"] not in ("evalalign-13b", "evalalign-34b") and "--model" in r["note"] for r in unknown)
    shape = shape_from_registry("evalalign-13b")
    assert by_name["evalalign-13b"]["weights_bytes"] == 2 * shape.parameters
    assert by_name["evalalign-13b"]["memory_bytes"]["4bit"]["4"] == estimate_memory(
        shape, dtype="float16", quantize="4bit", batch_size=4).total
    fp32 = by_name["evalalign-34b"]["memory_bytes"]["fp32"]
    assert fp32["1"] < fp32["4"]


def test_judges_command_one_model_table(capsys, tiny_judge_path):
    assert main(["judges", "--model", str(tiny_judge_path), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert str(tiny_judge_path) in out and "4bit" in out and "batch 8" in out
    assert main(["judges", "--model", "no-such-judge"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "neither a registered judge nor a local judge folder" in err


def test_float16_and_bfloat16_take_the_same_memory():
    shape = shape_from_registry("evalalign-13b")
    assert estimate_memory(shape, dtype="float16").total == estimate_memory(shape, dtype="bfloat16").total
    assert estimate_memory(shape, dtype="float32").weights == 2 * estimate_memory(shape, dtype="float16").weights
    assert torch.float16.itemsize == torch.bfloat16.itemsize
