"""Quantized judges: ``quantize="int8" | "4bit"`` as a transformers quantization config.

The same option picks a backend by device:

- CUDA: bitsandbytes (``BitsAndBytesConfig``): LLM.int8() for ``"int8"``, NF4 with double quantization and
  the judge's dtype as compute dtype for ``"4bit"``. Needs the ``quantize-cuda`` extra (bitsandbytes).
- anything else (CPU): torchao weight-only (``TorchAoConfig``): per-row int8 weights for ``"int8"``, int4
  values in groups of :data:`CPU_4BIT_GROUP_SIZE` for ``"4bit"``. torchao 0.18 has no packed int4 layout for
  CPU, so a CPU ``"4bit"`` judge stores its int4 values one per byte: the accuracy of 4-bit weights with the
  memory of int8. Needs the ``quantize`` extra (torchao).

Only the language model's linear layers are quantized; the vision tower, the projector and the output head
(:data:`KEEP_UNQUANTIZED`, a few percent of a 13B judge's parameters) keep the judge's dtype, because the
option probabilities are read straight off the output head.

Example:
    >>> import torch
    >>> quantization_backend(torch.device("cuda")), quantization_backend(torch.device("cpu"))
    ('bitsandbytes', 'torchao')
    >>> config = bitsandbytes_config("4bit", dtype=torch.float16)  # what a CUDA load uses
    >>> type(config).__name__, config.bnb_4bit_quant_type, config.bnb_4bit_compute_dtype
    ('BitsAndBytesConfig', 'nf4', torch.float16)
    >>> quantization_config(None, device=torch.device("cpu"), dtype=torch.float32) is None
    True
"""

from __future__ import annotations

import torch

from evalalign_metric.errors import JudgeLoadError, require_extra

QUANTIZE_MODES = ("int8", "4bit")
# Module-name prefixes (as transformers 5 names the judge families' modules: LLaVA, Qwen-VL, Idefics3/SmolVLM)
# whose weights stay unquantized: vision towers, projectors, the output head.
KEEP_UNQUANTIZED = ("model.vision_tower", "model.multi_modal_projector", "model.visual", "model.vision_model",
                    "model.connector", "lm_head")
CPU_4BIT_GROUP_SIZE = 32


def check_quantize(quantize: str | None) -> str | None:
    """``quantize`` validated: ``None``, ``"int8"`` or ``"4bit"``.

    Example:
        >>> check_quantize("int8"), check_quantize(None)
        ('int8', None)
        >>> check_quantize("fp8")
        Traceback (most recent call last):
        ...
        evalalign_metric.errors.JudgeLoadError: quantize='fp8' is not one of 'int8', '4bit' (or None)
    """
    if quantize is None or quantize in QUANTIZE_MODES:
        return quantize
    raise JudgeLoadError(f"quantize={quantize!r} is not one of {', '.join(map(repr, QUANTIZE_MODES))} (or None)")


def quantization_backend(device: torch.device) -> str:
    """``"bitsandbytes"`` on CUDA, ``"torchao"`` elsewhere.

    Example:
        >>> quantization_backend(torch.device("cpu"))
        'torchao'
    """
    return "bitsandbytes" if torch.device(device).type == "cuda" else "torchao"


def bitsandbytes_config(quantize: str, dtype: torch.dtype):
    """The ``BitsAndBytesConfig`` for ``quantize`` with ``dtype`` as the 4-bit compute dtype (building it needs
    no GPU; loading with it does).

    Example:
        >>> bitsandbytes_config("int8", torch.float16).load_in_8bit
        True
    """
    from transformers import BitsAndBytesConfig

    skip = list(KEEP_UNQUANTIZED)
    if check_quantize(quantize) == "int8":
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=skip)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=dtype, llm_int8_skip_modules=skip)


def torchao_config(quantize: str):
    """The weight-only ``TorchAoConfig`` for ``quantize`` (needs the ``quantize`` extra).

    Example:
        >>> torchao_config("int8").modules_to_not_convert[:2]
        ['model.vision_tower', 'model.multi_modal_projector']
    """
    quantize = check_quantize(quantize)
    require_extra("torchao", "quantize", f"quantize={quantize!r} on a machine without CUDA")
    from torchao.quantization import Int8WeightOnlyConfig, IntxWeightOnlyConfig
    from torchao.quantization.granularity import PerGroup
    from transformers import TorchAoConfig

    if quantize == "int8":
        method = Int8WeightOnlyConfig()
    else:
        method = IntxWeightOnlyConfig(weight_dtype=torch.int4, granularity=PerGroup(CPU_4BIT_GROUP_SIZE))
    return TorchAoConfig(quant_type=method, modules_to_not_convert=list(KEEP_UNQUANTIZED))


def quantization_config(quantize: str | None, *, device: torch.device, dtype: torch.dtype):
    """The transformers quantization config for loading a judge on ``device`` (None when ``quantize`` is None).

    Raises:
        JudgeLoadError: ``quantize`` is not a known mode.
        MissingExtraError: the backend's package is not installed.
    """
    if check_quantize(quantize) is None:
        return None
    if quantization_backend(device) == "bitsandbytes":
        require_extra("bitsandbytes", "quantize-cuda", f"quantize={quantize!r} on CUDA")
        return bitsandbytes_config(quantize, dtype)
    return torchao_config(quantize)


def quantized_linear_names(model) -> list[str]:
    """Names of ``model``'s linear layers whose weight is a quantized tensor (bitsandbytes or torchao).

    Example:
        >>> from transformers import LlamaConfig, LlamaForCausalLM
        >>> quantized_linear_names(LlamaForCausalLM(LlamaConfig(hidden_size=16, intermediate_size=32,
        ...     num_hidden_layers=1, num_attention_heads=2, vocab_size=32)))
        []
    """
    names = []
    for name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        if not isinstance(module, torch.nn.Linear) and type(module).__module__.split(".")[0] != "bitsandbytes":
            continue
        if weight is not None and (type(weight) not in (torch.Tensor, torch.nn.Parameter)
                                   or weight.dtype in (torch.int8, torch.uint8)):
            names.append(name)
    return names


@torch.no_grad()
def own_unquantized_weights(model) -> None:
    """Give ``model``'s plain (unquantized) parameters their own memory.

    Loading maps the safetensors checkpoint, and unquantized weights read at the checkpoint's dtype stay views
    of that mapping; every page read while quantizing the other layers then stays resident as long as any
    view lives, so a CPU judge quantized from an fp32 checkpoint kept the whole checkpoint in its resident
    memory. Copying the few plain parameters releases the mapping.
    """
    for module in model.modules():
        for param in module.parameters(recurse=False):
            if type(param) is torch.nn.Parameter:
                param.data = param.data.clone()
