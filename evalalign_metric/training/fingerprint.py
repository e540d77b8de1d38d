"""What a run's checkpoints were trained from, so a resume never continues them on something else.

A checkpoint's ``state.json`` records :func:`run_fingerprint`: the protocol, the ``model`` section (with the
base judge's weight files identified by content, not by path), and the training method and LoRA settings.
Resuming with a different one is refused by :func:`check_resumable` with what changed: the trainable
weights of a checkpoint only mean something on the base they were trained on. Steps, learning rates, eval
and logging settings may change between a run and its resume (a longer run continues a shorter one).

Example:
    >>> a = {"protocol": "evalalign", "model": {"base": "j"}, "method": "full"}
    >>> check_resumable(a, dict(a), "out")
    >>> check_resumable(a, {**a, "method": "lora"}, "out")
    Traceback (most recent call last):
    ...
    evalalign_metric.errors.InputError: out holds checkpoints of another run: method was 'full', now 'lora'; \
set training.resume: false to start over there, or use another output_dir
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from evalalign_metric.errors import InputError

SAMPLE_BYTES = 1 << 20  # hashing whole multi-GB checkpoints would take minutes; both ends identify them


def weights_identity(folder) -> list[dict[str, Any]] | None:
    """Each ``*.safetensors`` file of a local judge folder: name, size and a SHA-256 of its first and last MiB
    (its header, which names every tensor, and weights at both ends); None when ``folder`` is not local
    (a Hub id: its revision is part of the reference)."""
    path = Path(os.fspath(folder))
    if not path.is_dir():
        return None
    out = []
    for file in sorted(path.glob("*.safetensors")):
        size = file.stat().st_size
        digest = hashlib.sha256()
        with open(file, "rb") as f:
            digest.update(f.read(SAMPLE_BYTES))
            if size > SAMPLE_BYTES:
                f.seek(max(SAMPLE_BYTES, size - SAMPLE_BYTES))
                digest.update(f.read())
        out.append({"file": file.name, "size": size, "sha256_ends": digest.hexdigest()})
    return out


def file_identity(reference):
    """A protocol reference as a resume compares it: a file by its content's SHA-256 (the same file copied
    elsewhere is the same protocol), a shipped protocol's name as it is."""
    path = Path(os.fspath(reference)) if reference is not None else None
    if path is None or not path.is_file():
        return reference
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def run_fingerprint(config_dict: dict, base_path) -> dict:
    """The parts of a run (``config_to_dict`` output) its checkpoints depend on, the base judge by content."""
    training = config_dict.get("training", {})
    model = dict(config_dict.get("model", {}))
    model["base_weights"] = weights_identity(base_path)
    if model["base_weights"] is not None:
        model.pop("base", None)  # the same weights moved to another folder are the same base
    return {"protocol": file_identity(config_dict.get("protocol")), "model": model, "method": training.get("method"),
            "lora": training.get("lora") if training.get("method") == "lora" else None}


def check_resumable(recorded: dict | None, current: dict, output_dir) -> None:
    """Raise :class:`InputError` naming the first difference between a checkpoint's fingerprint and this
    run's (a checkpoint written before fingerprints existed is resumed unchecked)."""
    if recorded is None:
        return
    for key in [*current, *(k for k in recorded if k not in current)]:
        was, now = recorded.get(key), current.get(key)
        if was == now:
            continue
        if isinstance(was, dict) and isinstance(now, dict):
            inner = next(k for k in sorted(set(was) | set(now)) if was.get(k) != now.get(k))
            key, was, now = f"{key}.{inner}", was.get(inner), now.get(inner)
            if inner == "base_weights":
                was, now = "other weights", "these weights"
        raise InputError(f"{output_dir} holds checkpoints of another run: {key} was {was!r}, now {now!r}; "
                         "set training.resume: false to start over there, or use another output_dir")
