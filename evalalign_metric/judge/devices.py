"""Checking a requested device before any weights are loaded.

A judge's weights can take minutes to load; a device this machine does not have should fail first, with an
error naming the device, rather than after loading with torch's own assertion.

Example:
    >>> check_device("cpu")
    device(type='cpu')
    >>> check_device("tpu:0")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    evalalign_metric.errors.InputError: device='tpu:0' is not a device torch knows; expected 'cpu', 'cuda', ...
"""

from __future__ import annotations

import torch

from evalalign_metric.errors import InputError

_ACCELERATORS = ("cuda", "mps", "xpu")
_EXPECTED = "'cpu', 'cuda', 'cuda:N', 'mps' or 'xpu'"


def _count(kind: str) -> int:
    """How many devices of an accelerator ``kind`` this process can use (0 when torch has no such backend)."""
    if kind == "mps":
        return int(torch.backends.mps.is_available())
    backend = getattr(torch, kind, None)
    if backend is None or not backend.is_available():
        return 0
    return backend.device_count()


def check_device(device: str | torch.device) -> torch.device:
    """``device`` as a ``torch.device``, if this process can run a judge on it.

    Args:
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``, ``"xpu"`` or a ``torch.device``.

    Returns:
        The ``torch.device``.

    Raises:
        InputError: the device is not one torch knows, is not one a judge runs on, or is not available here
            (no GPU, no such GPU index).
    """
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise InputError(f"device={device!r} is not a device torch knows; expected {_EXPECTED}") from None
    if parsed.type == "cpu":
        return parsed
    if parsed.type not in _ACCELERATORS:
        raise InputError(f"device={device!r} is not a device a judge runs on; expected {_EXPECTED}")
    available = _count(parsed.type)
    if available == 0:
        raise InputError(f"device={device!r}: this machine has no {parsed.type} device available to torch "
                         "(use device='cpu', or leave device unset to pick CUDA when present)")
    if parsed.index is not None and parsed.index >= available:
        raise InputError(f"device={device!r}: only {available} {parsed.type} device(s) here "
                         f"(indices 0..{available - 1})")
    return parsed
