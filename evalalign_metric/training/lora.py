"""LoRA adapters (peft): attach to a judge for training, and load a saved adapter folder as a judge.

An adapter folder holds ``adapter_config.json`` (naming its base judge in ``base_model_name_or_path``),
``adapter_model.safetensors``, the processor files and the ``evalalign_judge.json`` sidecar.
:func:`evalalign_metric.judge.load_judge` (so ``EvalAlignScore(model=folder)``) loads the base judge and
merges the adapter into it in memory.

Example:
    >>> import tempfile
    >>> from evalalign_metric.judge import load_judge
    >>> from evalalign_metric.testing import build_tiny_judge
    >>> from evalalign_metric.training.config import LoraConfig
    >>> judge = load_judge(build_tiny_judge(tempfile.mkdtemp()), cache=False)
    >>> model = apply_lora(judge.model, LoraConfig(r=2, alpha=4))
    >>> n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    >>> 0 < n_trainable < sum(p.numel() for p in model.parameters()) // 10
    True
"""

from __future__ import annotations

import os
from pathlib import Path

from evalalign_metric.errors import JudgeLoadError, require_extra


def apply_lora(model, config, family=None):
    """Wrap ``model`` with LoRA layers on ``config.target_modules`` (a regex or a list of module names); left at
    its default, the judge family's own target (``family.lora_target_modules``: the language model's attention
    projections, named ``language_model`` in LLaVA and Qwen-VL, ``text_model`` in Idefics3)."""
    from evalalign_metric.training.config import DEFAULT_LORA_TARGETS

    peft = require_extra("peft", "train", "LoRA training")
    target = config.target_modules if isinstance(config.target_modules, str) else list(config.target_modules)
    if family is not None and target == DEFAULT_LORA_TARGETS:
        target = family.lora_target_modules
    lora = peft.LoraConfig(r=config.r, lora_alpha=config.alpha, lora_dropout=config.dropout, target_modules=target,
                           modules_to_save=list(config.modules_to_save) or None, bias="none")
    try:
        return peft.get_peft_model(model, lora)
    except ValueError as exc:
        raise JudgeLoadError(f"training.lora.target_modules={config.target_modules!r} matches no layer of this "
                             f"judge: {exc}") from None


def load_trained_judge(path, *, device=None, dtype=None, base: str | None = None):
    """A judge from a training output: a native checkpoint folder, or an adapter folder on its base judge.

    ``load_judge`` (and so ``EvalAlignScore(model=path)``) reads both; this function adds ``base``.

    Args:
        path: the folder ``evalalign train`` wrote.
        device, dtype: as for :func:`~evalalign_metric.judge.load_judge`.
        base: override the base judge an adapter names (e.g. after moving it).
    """
    import torch

    from evalalign_metric.hub.adapter import is_adapter_dir
    from evalalign_metric.judge import load_judge
    from evalalign_metric.judge.loading import _load_adapter, default_device, parse_dtype

    if base is None or not is_adapter_dir(path):
        return load_judge(path, device=device, dtype=dtype, cache=False)
    device = torch.device(device) if device is not None else default_device()
    return _load_adapter(Path(os.fspath(path)), device=device, dtype=parse_dtype(dtype, device), chat_format=None,
                         batch_size=8, engine="prefix", hub_kwargs={}, base=base)
