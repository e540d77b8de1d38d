"""Where a judge's weights live: one device, or spread by a ``device_map`` over GPUs, CPU and disk (accelerate).

``device_map="auto"`` (or ``"balanced"``, ``"balanced_low_0"``, ``"sequential"``, or an explicit
``{module name: device}`` dict) lets accelerate place the judge's modules; ``max_memory`` caps what it puts on
each device (``{0: "20GiB", 1: "20GiB", "cpu": "60GiB"}``), and what does not fit goes to the CPU, then to disk
(an ``offload_folder``). Hooks move each module's inputs to its device, so a placed judge takes its inputs on
:func:`input_device` and computes the same numbers as one on a single device.

Example:
    >>> parse_max_memory("0=20GiB, 1=20GiB, cpu=60GiB")
    {0: '20GiB', 1: '20GiB', 'cpu': '60GiB'}
    >>> check_device_map("auto"), check_device_map(None)
    ('auto', None)
"""

from __future__ import annotations

import atexit
import re
import shutil
import tempfile
import warnings
from typing import Any, Mapping

import torch

from evalalign_metric.errors import JudgeLoadError

DEVICE_MAP_STRATEGIES = ("auto", "balanced", "balanced_low_0", "sequential")
_MEMORY = re.compile(r"^\d+(\.\d+)?\s*([KMGT]i?B)?$", re.IGNORECASE)


def check_device_map(device_map: str | Mapping[str, Any] | None) -> str | dict[str, Any] | None:
    """``device_map`` validated: None, a strategy name or a ``{module name: device}`` dict.

    Example:
        >>> check_device_map("everywhere")
        Traceback (most recent call last):
        ...
        evalalign_metric.errors.JudgeLoadError: device_map='everywhere' is not one of 'auto', 'balanced', \
'balanced_low_0', 'sequential', or a {module name: device} dict
    """
    if device_map is None or device_map in DEVICE_MAP_STRATEGIES:
        return device_map
    if isinstance(device_map, Mapping) and device_map and all(isinstance(k, str) for k in device_map):
        return dict(device_map)
    raise JudgeLoadError(
        f"device_map={device_map!r} is not one of {', '.join(map(repr, DEVICE_MAP_STRATEGIES))}, "
        "or a {module name: device} dict"
    )


def check_max_memory(max_memory: Mapping[Any, Any] | None) -> dict[Any, Any] | None:
    """``max_memory`` validated: None or ``{GPU index | "cpu" | "mps": bytes or "20GiB"}``."""
    if max_memory is None:
        return None
    if not isinstance(max_memory, Mapping) or not max_memory:
        raise JudgeLoadError(f"max_memory={max_memory!r}; expected a dict like {{0: '20GiB', 'cpu': '60GiB'}}")
    for key, value in max_memory.items():
        if not (isinstance(key, int) and not isinstance(key, bool) and key >= 0) and key not in ("cpu", "mps"):
            raise JudgeLoadError(f"max_memory key {key!r} is not a GPU index (0, 1, ...), 'cpu' or 'mps'")
        ok = (isinstance(value, int) and not isinstance(value, bool) and value > 0) or (
            isinstance(value, str) and _MEMORY.match(value.strip()))
        if not ok:
            raise JudgeLoadError(f"max_memory[{key!r}]={value!r} is not a size (bytes, or like '20GiB', '500MB')")
    return dict(max_memory)


def parse_max_memory(text: str) -> dict[Any, Any]:
    """``"0=20GiB,cpu=60GiB"`` (the command line's form) as a ``max_memory`` dict.

    Example:
        >>> parse_max_memory("cpu=1000000")
        {'cpu': 1000000}
    """
    out: dict[Any, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep:
            raise JudgeLoadError(f"--max-memory entry {part!r} is not DEVICE=SIZE (e.g. 0=20GiB or cpu=60GiB)")
        key, value = key.strip(), value.strip()
        out[int(key) if key.isdigit() else key] = int(value) if value.isdigit() else value
    return check_max_memory(out) or {}


def is_placed(model) -> bool:
    """Whether ``model`` was loaded with a ``device_map`` (sharded or offloaded) or quantized by bitsandbytes:
    its weights stay where loading put them, and ``.to()`` must not move them."""
    method = getattr(getattr(getattr(model, "hf_quantizer", None), "quantization_config", None), "quant_method", None)
    return bool(getattr(model, "hf_device_map", None)) or getattr(method, "value", method) == "bitsandbytes"


def move(model, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> None:
    """``model.to(device, dtype)``, except for a placed model (:func:`is_placed`), which stays where it is (a
    warning says so once per model when a move to another device or dtype is asked)."""
    if not is_placed(model):
        model.to(device=device, dtype=dtype)
        return
    elsewhere = device is not None and torch.device(device) != input_device(model)
    if (elsewhere or (dtype is not None and dtype != model.dtype)) and not getattr(model, "_evalalign_warned", 0):
        model._evalalign_warned = 1
        warnings.warn(f"the judge was loaded with device_map={model.hf_device_map!r} (or quantized): it stays "
                      f"there, not moved to device={device}, dtype={dtype}", UserWarning, stacklevel=3)


def input_device(model) -> torch.device:
    """The device to put a model's inputs on: its first GPU for a placed model (its hooks move inputs on from
    there), else the device of its first weight that is not on the ``meta`` device."""
    if is_placed(model):
        gpus = [d for d in model.hf_device_map.values() if str(d) not in ("cpu", "disk", "meta")]
        if gpus:
            return torch.device(f"cuda:{gpus[0]}" if isinstance(gpus[0], int) else gpus[0])
    for param in model.parameters():
        if param.device.type != "meta":
            return param.device
    return torch.device("cpu")


def from_pretrained_options(
    *,
    device: torch.device,
    dtype: torch.dtype,
    quantize: str | None = None,
    device_map: str | Mapping[str, Any] | None = None,
    max_memory: Mapping[Any, Any] | None = None,
    offload_folder: str | None = None,
) -> dict[str, Any]:
    """The ``from_pretrained`` keyword arguments that place (and quantize) a judge; ``{}`` for a plain load
    (the caller then moves the model to ``device``).

    ``max_memory`` without ``device_map`` means ``device_map="auto"``; a quantized judge without a
    ``device_map`` loads straight onto ``device`` (``{"": device}``). Offloading to disk uses
    ``offload_folder`` (default: a temporary folder removed at exit).

    Example:
        >>> from_pretrained_options(device=torch.device("cpu"), dtype=torch.float32)
        {}
        >>> opts = from_pretrained_options(device=torch.device("cpu"), dtype=torch.float32,
        ...                                max_memory={"cpu": "1GiB"}, offload_folder="offload")
        >>> opts["device_map"], opts["max_memory"], opts["offload_folder"]
        ('auto', {'cpu': '1GiB'}, 'offload')
    """
    from evalalign_metric.judge.quantization import quantization_config

    device_map = check_device_map(device_map)
    max_memory = check_max_memory(max_memory)
    config = quantization_config(quantize, device=device, dtype=dtype)
    if device_map is None and max_memory is not None:
        device_map = "auto"
    if device_map is None and config is None:
        return {}
    options: dict[str, Any] = {"device_map": device_map if device_map is not None else {"": str(device)}}
    if config is not None:
        options["quantization_config"] = config
    if device_map is not None:
        options["max_memory"] = max_memory
        options["offload_folder"] = offload_folder or _temporary_folder()
    return options


def _temporary_folder() -> str:
    folder = tempfile.mkdtemp(prefix="evalalign-offload-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder
