"""Loading a judge from a model reference, once per process.

A reference is a local folder holding a native transformers checkpoint (``config.json`` with a registered
``model_type``, safetensors weights, processor files, optional ``evalalign_judge.json``), or a LoRA adapter
folder (peft ``adapter_config.json`` naming its base judge; merged into the base in memory, needs the
``train`` extra). Hub repo ids are resolved to such a folder first (see the seam below). Weights load with
``use_safetensors=True`` and ``trust_remote_code=False``: nothing from a checkpoint is executed.

Example:
    >>> import tempfile
    >>> from evalalign_metric.testing import build_tiny_judge
    >>> path = build_tiny_judge(tempfile.mkdtemp())
    >>> load_judge(path) is load_judge(path)  # cached: one model per (reference, device, dtype, ...)
    True
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from evalalign_metric.errors import JudgeLoadError
from evalalign_metric.judge.chat import read_sidecar
from evalalign_metric.judge.chat_template import resolve_chat_format
from evalalign_metric.judge.devices import check_device
from evalalign_metric.judge.families import family_for_model_type
from evalalign_metric.judge.judge import Judge
from evalalign_metric.judge.newline import NewlineRule
from evalalign_metric.judge.prefix_engine import make_engine

_CACHE: dict[tuple, Judge] = {}


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_dtype(device: torch.device) -> torch.dtype:
    """fp32 on CPU; bf16 on GPUs that support it, else fp16 (the official checkpoints are fp16)."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def parse_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """The torch dtype for ``dtype`` (a name, a ``torch.dtype``, or None/``"auto"`` for the device default)."""
    if dtype is None or dtype == "auto":
        return default_dtype(device)
    if isinstance(dtype, torch.dtype):
        return dtype
    table = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
             "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
    if dtype not in table:
        raise JudgeLoadError(f"dtype={dtype!r} is not one of {sorted(table)}")
    return table[dtype]


def judge_dtype(dtype: str | torch.dtype | None, device: torch.device, sidecar: dict) -> torch.dtype:
    """:func:`parse_dtype`, except that on a GPU ``None``/``"auto"`` takes the dtype the judge's sidecar says
    it was trained and run in (``"dtype"``: ``float16`` for the converted official judges).

    Example:
        >>> judge_dtype(None, torch.device("cuda"), {"dtype": "float16"}), judge_dtype(None, torch.device("cpu"), {})
        (torch.float16, torch.float32)
    """
    if (dtype is None or dtype == "auto") and device.type == "cuda" and sidecar.get("dtype"):
        return parse_dtype(sidecar["dtype"], device)
    return parse_dtype(dtype, device)


def resolve_reference(model: str | os.PathLike, **hub_kwargs: Any) -> Path:
    """A local folder for ``model``: the folder itself, or (Hub seam) a downloaded/converted snapshot."""
    path = Path(os.fspath(model)).expanduser()
    if path.is_dir():
        return path
    from evalalign_metric.registry import local_reference

    named = local_reference(os.fspath(model))  # an embedded or user-registered judge name
    if named is not None and named != os.fspath(model):
        return resolve_reference(named, **hub_kwargs)
    # --- Hub seam: non-directory references are resolved by evalalign_metric.hub (Hub issue). ---
    try:
        from evalalign_metric.hub import resolve_model
    except ImportError:
        raise JudgeLoadError(
            f"model={os.fspath(model)!r} is not a local directory, and Hub references are not supported "
            "by this installation"
        ) from None
    return resolve_model(os.fspath(model), **hub_kwargs)


def load_judge(
    model: str | os.PathLike,
    *,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    chat_format: str | None = None,
    batch_size: int = 8,
    engine="prefix",
    cache: bool = True,
    quantize: str | None = None,
    device_map: str | dict | None = None,
    max_memory: dict | None = None,
    offload_folder: str | os.PathLike | None = None,
    image_options: dict[str, Any] | None = None,
    **hub_kwargs: Any,
) -> Judge:
    """Load (or fetch from the per-process cache) the judge at ``model``.

    Args:
        model: local checkpoint folder or model reference; ``http://host:port`` is a judge served by
            ``evalalign serve`` (a :class:`~evalalign_metric.serve.client.RemoteJudge`; the other options are
            the server's).
        device: defaults to CUDA when available, else CPU; one not available here is refused (``InputError``)
            before anything is loaded.
        dtype: ``"auto"``/None (fp32 on CPU; on GPU the sidecar's ``dtype`` if any, as fp16 for the official
            judges, else bf16/fp16), a ``torch.dtype`` or its name.
        chat_format: override the format read from the checkpoint (``"vicuna_v1"``, ``"chatml"``).
        batch_size: rows (plain engine) or images (prefix engine) per forward.
        engine: ``"prefix"`` (default: each image encoded once, its questions share the cached prefix),
            ``"plain"`` (one forward per question; the reference the prefix engine is tested against), or
            an engine object with a ``run`` method.
        cache: reuse a judge already loaded with the same arguments.
        quantize: ``"int8"`` or ``"4bit"``: quantize the language model's linear layers while loading
            (bitsandbytes on CUDA, torchao on CPU; :mod:`evalalign_metric.judge.quantization`).
        device_map, max_memory, offload_folder: shard the judge over GPUs or offload part of it to CPU/disk
            (accelerate; :mod:`evalalign_metric.judge.placement`); ``max_memory`` alone means ``"auto"``.
        image_options: the family's image settings, e.g. ``{"min_pixels": 256 * 28 * 28, "max_pixels":
            1280 * 28 * 28}`` for Qwen-VL (see docs/judges.md, "Judge families").
        hub_kwargs: ``revision``, ``cache_dir``, ``token``, ``local_files_only`` for Hub references.
    """
    if not Path(os.fspath(model)).expanduser().is_dir():
        from evalalign_metric.registry import local_reference

        model = local_reference(os.fspath(model)) or model  # an embedded or user-registered name: its reference
    if isinstance(model, str) and model.startswith(("http://", "https://")):  # served by `evalalign serve`
        from evalalign_metric.serve.client import RemoteJudge

        return RemoteJudge(model, **{k: v for k, v in hub_kwargs.items() if k == "token"})
    device = check_device(device) if device is not None else default_device()
    torch_dtype = parse_dtype(dtype, device)
    named_engine = isinstance(engine, str)
    placing = {"quantize": quantize, "device_map": device_map, "max_memory": max_memory,
               "offload_folder": None if offload_folder is None else os.fspath(offload_folder)}
    key = (os.fspath(model), str(device), str(torch_dtype), chat_format, batch_size, engine if named_engine else None,
           tuple(sorted((k, str(v)) for k, v in {**hub_kwargs, **placing}.items() if v is not None)),
           tuple(sorted((k, str(v)) for k, v in (image_options or {}).items())))
    if cache and named_engine and key in _CACHE:
        return _CACHE[key]
    path = resolve_reference(model, **hub_kwargs)
    from evalalign_metric.hub.adapter import is_adapter_dir

    if is_adapter_dir(path):
        if any(v is not None for v in placing.values()):
            raise JudgeLoadError(f"{path} is a LoRA adapter: quantize/device_map/max_memory apply to full judges "
                                 "only (merge the adapter into its base and save it, then load that folder)")
        judge = _load_adapter(path, device=device, dtype=torch_dtype, chat_format=chat_format, batch_size=batch_size,
                              engine=engine, hub_kwargs=hub_kwargs, image_options=image_options)
        if cache and named_engine:
            _CACHE[key] = judge
        return judge
    config_file = path / "config.json"
    if not config_file.is_file():
        raise JudgeLoadError(f"{path} has no config.json: not a transformers checkpoint")
    try:
        model_type = json.loads(config_file.read_text()).get("model_type")
    except json.JSONDecodeError as exc:
        raise JudgeLoadError(f"{config_file} is not valid JSON: {exc}") from exc
    family = family_for_model_type(model_type)
    if not any(path.glob("*.safetensors")):
        raise JudgeLoadError(
            f"{path} has no .safetensors weights; pickle weights (.bin/.pt) are not loaded because they can "
            "execute code (convert them with `evalalign convert`, or re-save with safetensors)"
        )
    sidecar = read_sidecar(path)
    torch_dtype = judge_dtype(dtype, device, sidecar)

    from evalalign_metric.judge.placement import from_pretrained_options
    from evalalign_metric.judge.quantization import own_unquantized_weights, quantization_backend

    placed = from_pretrained_options(device=device, dtype=torch_dtype, **placing)
    try:
        processor = family.load_processor(path)
        net = family.load_class().from_pretrained(path, dtype=torch_dtype, use_safetensors=True,
                                                  trust_remote_code=False, **placed)
    except (OSError, ValueError, RuntimeError) as exc:  # RuntimeError: a quantizer that cannot convert a layer
        raise JudgeLoadError(f"could not load the judge at {path}: {exc}") from exc
    if not placed:
        net.to(device)
    elif quantize and "quantization_config" in placed and quantization_backend(device) == "torchao":
        own_unquantized_weights(net)
    fmt = resolve_chat_format(path, processor.tokenizer, family=family, processor=processor, override=chat_format)
    judge = Judge(
        net, processor, family=family, chat_format=fmt,
        pad_to_square=sidecar.get("pad_to_square", family.pad_to_square),
        engine=make_engine(engine, batch_size=batch_size) if named_engine else engine, image_options=image_options,
        identity={"model": os.fspath(model), "revision": hub_kwargs.get("revision"), "model_type": model_type,
                  "protocol": sidecar.get("protocol"), "protocols": sidecar.get("protocols")},
        newline_rule=NewlineRule.from_sidecar(sidecar),
    )
    if cache and named_engine:
        _CACHE[key] = judge
    return judge


def clear_judge_cache() -> None:
    """Forget every cached judge (frees their memory once no metric holds them)."""
    _CACHE.clear()


def _load_adapter(path: Path, *, device, dtype, chat_format, batch_size, engine, hub_kwargs, base=None,
                  image_options=None) -> Judge:
    """Base judge + LoRA adapter at ``path``, merged in memory (the judge then runs at the base model's speed)."""
    from evalalign_metric.errors import require_extra
    from evalalign_metric.fileio import read_json

    peft = require_extra("peft", "train", "Loading a LoRA adapter judge")
    config_file = path / "adapter_config.json"
    base = base or read_json(config_file, what="adapter config", error=JudgeLoadError).get("base_model_name_or_path")
    if not base:
        raise JudgeLoadError(f"{config_file} does not name its base judge (base_model_name_or_path)")
    if not (path / "adapter_model.safetensors").is_file():
        raise JudgeLoadError(f"{path} has no adapter_model.safetensors (pickle adapters are not loaded)")
    if not os.path.isabs(base) and (path / base).is_dir():  # a base stored relative to the adapter
        base = os.fspath(path / base)
    base_judge = load_judge(base, device=device, dtype=dtype, cache=False, batch_size=batch_size, engine=engine,
                            image_options=image_options, **hub_kwargs)
    net = peft.PeftModel.from_pretrained(base_judge.model, os.fspath(path)).merge_and_unload()
    net.to(device)
    sidecar = read_sidecar(path)
    if chat_format or sidecar:
        fmt = resolve_chat_format(path, base_judge.tokenizer, family=base_judge.family, processor=base_judge.processor,
                                  override=chat_format)
    else:
        fmt = base_judge.chat_format
    return Judge(net, base_judge.processor, family=base_judge.family, chat_format=fmt,
                 pad_to_square=sidecar.get("pad_to_square", base_judge.pad_to_square),
                 image_options=base_judge.image_options,
                 engine=make_engine(engine, batch_size=batch_size) if isinstance(engine, str) else engine,
                 newline_rule=base_judge.newline_rule,
                 identity={**base_judge.identity, "model": os.fspath(path), "base": base,
                           "protocol": sidecar.get("protocol", base_judge.identity.get("protocol")),
                           "protocols": sidecar.get("protocols", base_judge.identity.get("protocols"))})
