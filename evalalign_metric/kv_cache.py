"""The name transformers gives a model's key/value cache: ``cache`` from 5.24, ``past_key_values`` before.

5.24 still takes the old name with a FutureWarning (until 5.40 for ``forward``, 6.0 for ``generate``) and
still reads it off outputs; these two helpers use whichever name the installed version has, so the prefix
engine and the element extractor work, silently, across the ``transformers>=5,<6`` range this package allows.

Example:
    >>> import torch
    >>> from transformers import LlamaConfig, LlamaForCausalLM
    >>> model = LlamaForCausalLM(LlamaConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
    ...                                      num_attention_heads=2, num_key_value_heads=1, vocab_size=32))
    >>> first = model(input_ids=torch.tensor([[1, 2]]), use_cache=True)
    >>> more = model(input_ids=torch.tensor([[3]]), use_cache=True, **{cache_keyword(model): returned_cache(first)})
    >>> returned_cache(more).get_seq_length()
    3
"""

from __future__ import annotations

import inspect
from typing import Any


def cache_keyword(model) -> str:
    """The keyword ``model.forward`` (and ``generate``) takes a cache by; a peft wrapper is seen through."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def returned_cache(output) -> Any:
    """The cache a forward pass with ``use_cache=True`` returned."""
    return output["cache"] if "cache" in output else output["past_key_values"]
