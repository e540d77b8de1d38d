"""LLaVA-1.5 and LLaVA-NeXT: one ``<image>`` token per image feature, 1-D positions, the image first.

The EvalAlign judges are LLaVA-1.6 checkpoints read through these classes after conversion
(``evalalign convert``): the image is padded to a square with the CLIP mean colour (the reference's
``pad``), and the prompt is wrapped by a chat format of ``chat_formats.json`` (Vicuna v1 or ChatML),
read from the sidecar or the tokenizer. Training encodes each LLaVA image once for all its questions.

Example:
    >>> from evalalign_metric.judge.families import family_for_model_type
    >>> family_for_model_type("llava_next").model_class
    'LlavaNextForConditionalGeneration'
"""

from __future__ import annotations

from evalalign_metric.judge.families.base import JudgeFamily


class LlavaFamily(JudgeFamily):
    """LLaVA-1.5 (``LlavaForConditionalGeneration``)."""

    name = "llava"
    model_types = ("llava",)
    model_class = "LlavaForConditionalGeneration"
    training_shared_vision = True


class LlavaNextFamily(JudgeFamily):
    """LLaVA-NeXT / LLaVA-1.6 (``LlavaNextForConditionalGeneration``); the EvalAlign checkpoints use one tile."""

    name = "llava-next"
    model_types = ("llava_next",)
    model_class = "LlavaNextForConditionalGeneration"
