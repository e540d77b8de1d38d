"""evalalign-metric: judge text-to-image outputs with a fine-tuned multimodal LLM.

The public names below are imported on first use (PEP 562), so ``import evalalign_metric.errors`` or the
``evalalign`` command's start-up does not pay for importing torch, transformers and torchmetrics.

Example:
    >>> import evalalign_metric
    >>> evalalign_metric.load_protocol("evalalign").name
    'evalalign'
"""

from importlib import import_module

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "EvalAlignError": "evalalign_metric.errors",
    "InputError": "evalalign_metric.errors",
    "JudgeLoadError": "evalalign_metric.errors",
    "ProtocolError": "evalalign_metric.errors",
    "aggregate": "evalalign_metric.functional",
    "evalalign_score": "evalalign_metric.functional",
    "question_scores": "evalalign_metric.functional",
    "score_images": "evalalign_metric.functional",
    "Judge": "evalalign_metric.judge",
    "load_judge": "evalalign_metric.judge",
    "EvalAlignScore": "evalalign_metric.metric",
    "Protocol": "evalalign_metric.protocol",
    "load_protocol": "evalalign_metric.protocol",
    "list_judges": "evalalign_metric.registry",
    "list_protocols": "evalalign_metric.registry",
    "register_judge": "evalalign_metric.registry",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'evalalign_metric' has no attribute {name!r}")
    value = getattr(import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
