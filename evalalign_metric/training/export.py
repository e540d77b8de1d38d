"""Writing a trained judge where scoring can load it, and pushing it to the Hub.

- full fine-tuning (or a merged LoRA): a native transformers checkpoint (safetensors) + processor files +
  the ``evalalign_judge.json`` sidecar;
- LoRA: a peft adapter folder naming its base judge, + processor files + sidecar;

both with ``protocol.json`` (the protocol the judge was trained on, as data) and ``training_summary.json``.

Example:
    >>> from evalalign_metric.protocol import load_protocol, protocol_from_dict
    >>> p = load_protocol("imatch")
    >>> protocol_from_dict(protocol_to_dict(p)) == p
    True
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

from evalalign_metric.errors import require_extra
from evalalign_metric.protocol import Protocol
from evalalign_metric.training.build import write_sidecar

PROTOCOL_FILE = "protocol.json"
SUMMARY_FILE = "training_summary.json"
WORK_DIRS = ("checkpoints", "base")


def protocol_to_dict(protocol: Protocol) -> dict[str, Any]:
    """The protocol as the data :func:`~evalalign_metric.protocol.protocol_from_dict` reads."""
    aspects = []
    for a in protocol.aspects:
        entry: dict[str, Any] = {"name": a.name, "dimension": a.dimension, "description": a.description,
                                 "template": a.template,
                                 "options": [{"label": o.label, "score": o.score} for o in a.options]}
        if a.elements_key is not None:
            entry["elements_key"] = a.elements_key
        if a.repeat is not None:
            entry["repeat"] = a.repeat
        aspects.append(entry)
    return {"name": protocol.name, "version": protocol.version, "description": protocol.description,
            "source": protocol.source, "default_scoring": protocol.default_scoring, **dict(protocol.metadata),
            "aspects": aspects}


def export_judge(model, processor, out_dir, *, chat_format: str, protocol: Protocol, adapter_base: str | None = None,
                 merge: bool = False, summary: dict | None = None, pad_to_square: bool = True,
                 protocols: Sequence[str] = ()) -> Path:
    """Save the trained judge into ``out_dir`` (see the module docstring); returns ``out_dir``.

    Args:
        model: the trained model (a peft model for LoRA).
        adapter_base: the base judge reference of a LoRA model (recorded in ``adapter_config.json``).
        merge: merge LoRA weights into the base and save a native checkpoint instead of an adapter.
        protocols: the protocols the judge was trained for (sidecar ``protocols``;
            :func:`evalalign_metric.judge.protocols.trained_protocols`); default: ``protocol``'s alone.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    is_peft = hasattr(model, "peft_config")
    extra: dict[str, Any] = {"protocol_file": PROTOCOL_FILE, "trained_with": "evalalign train",
                             "pad_to_square": pad_to_square, "protocols": list(protocols) or [protocol.name]}
    if is_peft and merge:
        model = model.merge_and_unload()
        is_peft = False
    if is_peft:
        for cfg in model.peft_config.values():
            cfg.base_model_name_or_path = adapter_base
        model.save_pretrained(out, safe_serialization=True)
        extra["adapter_of"] = adapter_base
    else:
        model.save_pretrained(out, safe_serialization=True)
    processor.save_pretrained(out)
    write_sidecar(out, chat_format=chat_format, protocol=protocol.name, extra=extra)
    (out / PROTOCOL_FILE).write_text(json.dumps(protocol_to_dict(protocol), indent=1, ensure_ascii=False) + "\n")
    if summary is not None:
        (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=1, default=str) + "\n")
    return out


def push_to_hub(out_dir, hub, *, api=None) -> str:
    """Upload ``out_dir`` (without checkpoints and build files) to ``hub.repo_id``; returns the commit URL.

    ``hub`` is a :class:`~evalalign_metric.training.config.HubConfig`; the token defaults to the usual
    ``HF_TOKEN`` / ``huggingface-cli login``. ``api`` replaces ``huggingface_hub.HfApi()`` (tests).
    """
    if api is None:
        hf = require_extra("huggingface_hub", "train", "push_to_hub")
        api = hf.HfApi(token=hub.token)
    api.create_repo(hub.repo_id, private=hub.private, exist_ok=True)
    info = api.upload_folder(folder_path=os.fspath(out_dir), repo_id=hub.repo_id, revision=hub.revision,
                             commit_message=hub.commit_message, ignore_patterns=[f"{d}/*" for d in WORK_DIRS])
    return str(getattr(info, "commit_url", info))
