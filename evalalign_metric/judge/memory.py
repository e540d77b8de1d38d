"""How much memory a judge needs, from its config alone (nothing is downloaded or allocated).

The estimate for scoring with the prefix engine, ``batch_size`` images at a time, is the sum of

- **weights**: every parameter at the dtype's size, except the language model's linear weights when
  quantized: int8 = 1 byte + per output row a scale (and on CPU an int8 zero point); 4-bit on CUDA
  (bitsandbytes NF4, double quantization) = 1/2 byte + one 8-bit absolute maximum per 64 weights; 4-bit on
  CPU (torchao, int4 values stored one per byte) = 1 byte + a scale and a zero point per group of 32;
- **KV cache**: ``2 x layers x kv_heads x head_dim x dtype bytes`` per token, for each image's shared prefix
  (system text + image tokens) and one chunk of its questions (at most the prefix's length, see
  :mod:`evalalign_metric.judge.prefix_engine`);
- **activations** of the largest forward: the prefill of ``batch_size`` prefixes (per token four hidden-size
  tensors and the MLP's three intermediate ones) or the question chunk with its float32 log-probabilities
  over the vocabulary at each read position and its attention mask, whichever is larger; plus the vision
  tower's hidden states of every layer (LLaVA reads an inner layer) and the pixel inputs. Attention scores
  are not counted: PyTorch's ``sdpa`` kernels take the engine's mask without materialising them
  (``attn_implementation="eager"`` would add ``heads x tokens**2`` per forward).

Parameters are counted exactly by building the model on PyTorch's ``meta`` device. Not counted: the
framework itself (CUDA context, allocator caches, the Python process). How well the estimate matches measured
peak memory: ``benchmarks/bench_memory.py`` and docs/judges.md.

Example:
    >>> shape = shape_from_registry("evalalign-13b")
    >>> round(shape.parameters / 1e9, 2), shape.image_tokens
    (13.35, 576)
    >>> fp16 = estimate_memory(shape, dtype="float16", batch_size=1)
    >>> round(fp16.weights / 2**30, 1)
    24.9
    >>> round(estimate_memory(shape, dtype="float16", quantize="4bit", batch_size=1).weights / 2**30, 1)
    7.3
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from evalalign_metric.errors import InputError, JudgeLoadError
from evalalign_metric.judge.quantization import KEEP_UNQUANTIZED, check_quantize

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}
# A question's tokens after the shared prefix, and the system text + chat header before the image: typical
# figures for EvalAlign's questions with a Llama tokenizer (11 questions of ~90 tokens each).
DEFAULT_QUESTION_TOKENS = 1000
DEFAULT_PREFIX_TEXT_TOKENS = 40
DEFAULT_READS = 22  # logits read per image: one or two per question (multi-token options)


@dataclass(frozen=True)
class JudgeShape:
    """The figures of a judge the estimate needs.

    ``linear_shapes`` lists ``(in_features, out_features)`` of the language model's quantizable linear layers.
    """

    parameters: int
    linear_shapes: tuple[tuple[int, int], ...]
    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    image_tokens: int
    vision_layers: int
    vision_hidden: int
    vision_tokens: int
    image_size: int = 0
    checkpoint_dtype: str = "float32"

    @property
    def quantizable_parameters(self) -> int:
        return sum(i * o for i, o in self.linear_shapes)


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes needed by the weights, the KV cache and the largest forward's activations."""

    weights: int
    kv_cache: int
    activations: int

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.activations


def shape_from_config(config, *, image_tokens: int | None = None, checkpoint_dtype: str | None = None) -> JudgeShape:
    """The :class:`JudgeShape` of a transformers LLaVA-style ``config`` (parameters counted on ``meta``).

    ``image_tokens`` defaults to ``(image_size / patch_size)**2`` of the vision config.
    """
    from evalalign_metric.judge.families import family_for_model_type

    with torch.device("meta"):
        model = family_for_model_type(config.model_type).load_class()(config)
    text, vision = config.text_config, config.vision_config
    linears = tuple((m.in_features, m.out_features) for name, m in model.named_modules()
                    if isinstance(m, torch.nn.Linear) and not name.startswith(KEEP_UNQUANTIZED))
    side = getattr(vision, "image_size", 0) // max(1, getattr(vision, "patch_size", 1))
    vision_tokens = side * side + 1
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    return JudgeShape(
        parameters=sum(p.numel() for p in model.parameters()), linear_shapes=linears,
        layers=text.num_hidden_layers, hidden=text.hidden_size, intermediate=text.intermediate_size,
        heads=text.num_attention_heads, kv_heads=getattr(text, "num_key_value_heads", None) or text.num_attention_heads,
        head_dim=head_dim, vocab=text.vocab_size, image_tokens=image_tokens or side * side,
        vision_layers=getattr(vision, "num_hidden_layers", 0) or sum(getattr(vision, "depths", []) or [0]),
        vision_hidden=vision.hidden_size, vision_tokens=vision_tokens, image_size=getattr(vision, "image_size", 0),
        checkpoint_dtype=checkpoint_dtype or str(getattr(config, "dtype", None) or "float32").replace("torch.", ""),
    )


def _shapes_data() -> dict[str, Any]:
    return json.loads(resources.files("evalalign_metric.judge").joinpath("data/judge_shapes.json").read_text())


def shipped_shapes() -> list[str]:
    """Registered judges whose figures ship with the package (:func:`shape_from_registry` knows them)."""
    return sorted(k for k in _shapes_data() if not k.startswith("_"))


@functools.lru_cache(maxsize=None)
def shape_from_registry(name: str) -> JudgeShape:
    """The shape of a registered Hub judge from the figures shipped with the package (no download)."""
    from transformers import LlavaConfig

    data = _shapes_data()
    if name not in data or name.startswith("_"):
        raise JudgeLoadError(f"no shipped shape for judge {name!r}; known: {sorted(k for k in data if k[0] != '_')}")
    entry = dict(data[name])
    image_tokens, checkpoint_dtype = entry.pop("image_tokens"), entry.pop("checkpoint_dtype")
    entry.pop("model_type")
    return shape_from_config(LlavaConfig(**entry), image_tokens=image_tokens, checkpoint_dtype=checkpoint_dtype)


def shape_from_folder(path: str | os.PathLike) -> JudgeShape:
    """The shape of a local judge folder from its ``config.json`` (and its processor's image token count)."""
    from transformers import AutoConfig

    path = Path(path)
    if not (path / "config.json").is_file():
        raise JudgeLoadError(f"{path} has no config.json: not a judge folder")
    config = AutoConfig.from_pretrained(path, trust_remote_code=False)
    return shape_from_config(config, image_tokens=_processor_image_tokens(path, config))


def _processor_image_tokens(path: Path, config) -> int | None:
    """What LlavaProcessor expands ``<image>`` into: (side / patch)**2 (+ extra tokens, - CLS by default)."""
    file = path / "processor_config.json"
    if not file.is_file():
        return None
    proc = json.loads(file.read_text())
    image = proc.get("image_processor", {})
    side = (image.get("crop_size") or {}).get("height") or (image.get("size") or {}).get("shortest_edge")
    patch = proc.get("patch_size")
    if not side or not patch:
        return None
    extra = proc.get("num_additional_image_tokens", 0)
    default = proc.get("vision_feature_select_strategy") == "default"
    return (side // patch) ** 2 + extra - (1 if default else 0)


def _quantized_bytes(shape: JudgeShape, quantize: str, dtype_bytes: int, device: str) -> int:
    total = 0
    for n_in, n_out in shape.linear_shapes:
        n = n_in * n_out
        if quantize == "int8":
            total += n + n_out * (4 if device == "cuda" else dtype_bytes + 1)  # torchao: scale + zero point
        elif device == "cuda":  # NF4 + 8-bit absmax per 64 weights (+ their fp32 scale per 256 blocks)
            total += n // 2 + n // 64 + 4 * (n // (64 * 256) + 1)
        else:  # torchao int4 in int8 storage, per-32 groups of scale + int8 zero point
            total += n + (n // 32) * (dtype_bytes + 1)
    return total


def estimate_memory(
    shape: JudgeShape,
    *,
    dtype: str = "float16",
    quantize: str | None = None,
    batch_size: int = 8,
    device: str = "cuda",
    question_tokens: int = DEFAULT_QUESTION_TOKENS,
    prefix_text_tokens: int = DEFAULT_PREFIX_TEXT_TOKENS,
    reads: int = DEFAULT_READS,
    chunk_tokens: int | None = None,
) -> MemoryEstimate:
    """Estimate the memory of scoring with the prefix engine (see the module doc for the formula).

    Args:
        shape: from :func:`shape_from_config`, :func:`shape_from_folder` or :func:`shape_from_registry`.
        dtype: ``"float32"``, ``"float16"`` or ``"bfloat16"``: weights and activations.
        quantize: None, ``"int8"`` or ``"4bit"``.
        batch_size: images per group (the engine's ``batch_size``).
        device: ``"cuda"`` (bitsandbytes sizes) or ``"cpu"`` (torchao sizes); only matters when quantized.
        question_tokens: tokens of all an image's questions after the shared prefix.
        prefix_text_tokens: text tokens of the shared prefix besides the image's.
        reads: positions per image whose vocabulary log-probabilities are kept.
        chunk_tokens: the widest question chunk the engine forms; default ``min(prefix, question_tokens)``
            (a question longer than the prefix makes its chunk wider).

    Raises:
        InputError: an unknown dtype or a batch size below 1.
    """
    if dtype not in DTYPE_BYTES:
        raise InputError(f"dtype={dtype!r} is not one of {sorted(DTYPE_BYTES)}")
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1; got {batch_size}")
    b = DTYPE_BYTES[dtype]
    quantize = check_quantize(quantize)
    weights = shape.parameters * b
    if quantize:
        weights += _quantized_bytes(shape, quantize, b, device) - shape.quantizable_parameters * b
    prefix = shape.image_tokens + prefix_text_tokens
    chunk = chunk_tokens or min(prefix, question_tokens)
    kv = 2 * shape.layers * shape.kv_heads * shape.head_dim * b * batch_size * (prefix + chunk)
    per_token = (4 * shape.hidden + 3 * shape.intermediate) * b
    prefill = batch_size * prefix * per_token
    # The chunk's 4-D additive mask (and the boolean tensors it is built from) spans prefix + chunk keys.
    mask = chunk * (prefix + chunk) * (b + 3)
    suffix = batch_size * (chunk * per_token + mask + 2 * reads * shape.vocab * 4)
    vision = batch_size * ((shape.vision_layers + 1) * shape.vision_tokens * shape.vision_hidden
                           + 3 * shape.image_size ** 2) * b
    return MemoryEstimate(weights=int(weights), kv_cache=int(kv), activations=int(max(prefill, suffix) + vision))


def weights_on_disk(shape: JudgeShape) -> int:
    """Bytes of the checkpoint's weights at its stored dtype (what a download of the converted judge takes)."""
    return shape.parameters * DTYPE_BYTES.get(shape.checkpoint_dtype, 4)
