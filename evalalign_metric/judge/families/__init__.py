"""Judge families: one class per backbone family, owning how an (image, question) becomes model inputs.

:data:`FAMILIES` maps each ``model_type`` to its family; :func:`register_family` adds one (a subclass of
:class:`JudgeFamily`). See docs/judges.md ("Judge families") for the table of families.

Example:
    >>> sorted(FAMILIES)
    ['idefics3', 'llava', 'llava_next', 'qwen2_5_vl', 'qwen2_vl', 'qwen3_vl']
    >>> family_for_model_type("qwen3_vl").name
    'qwen3-vl'
"""

from __future__ import annotations

from evalalign_metric.errors import UnsupportedModelError
from evalalign_metric.judge.families.base import (
    ImageInputs,
    JudgeFamily,
    ProcessorParts,
    collate_pixels,
    read_chat_template,
)
from evalalign_metric.judge.families.idefics3 import Idefics3Family
from evalalign_metric.judge.families.llava import LlavaFamily, LlavaNextFamily
from evalalign_metric.judge.families.qwen import Qwen2VLFamily, Qwen3VLFamily, QwenVLFamily

FAMILIES: dict[str, JudgeFamily] = {}


def register_family(family: JudgeFamily) -> JudgeFamily:
    """Make ``family`` load checkpoints of each of its ``model_types`` (replacing an earlier registration).

    Example:
        >>> class MyLlava(LlavaFamily):
        ...     model_types = ("my_llava",)
        >>> register_family(MyLlava()).model_type, "my_llava" in FAMILIES
        ('my_llava', True)
        >>> del FAMILIES["my_llava"]
    """
    if not isinstance(family, JudgeFamily):
        raise TypeError(f"register_family expects a JudgeFamily; got {type(family).__name__}")
    for model_type in family.model_types:
        FAMILIES[model_type] = family
    return family


def family_for_model_type(model_type: str | None) -> JudgeFamily:
    """The family that loads ``model_type``; :class:`~evalalign_metric.errors.UnsupportedModelError` if none."""
    try:
        return FAMILIES[model_type]
    except KeyError:
        raise UnsupportedModelError(
            f"model_type={model_type!r} has no judge family; supported: {sorted(FAMILIES)} "
            "(original-format LLaVA checkpoints, model_type 'llava_llama', need conversion first: "
            "`evalalign convert SRC DST`)"
        ) from None


def family_for_model(model) -> JudgeFamily:
    """The registered family of a loaded model (by its config's ``model_type``), else the LLaVA defaults."""
    return FAMILIES.get(getattr(model.config, "model_type", None)) or JudgeFamily()


for _family in (LlavaFamily(), LlavaNextFamily(), Qwen2VLFamily(), QwenVLFamily(), Qwen3VLFamily(), Idefics3Family()):
    register_family(_family)

__all__ = [
    "FAMILIES", "Idefics3Family", "ImageInputs", "JudgeFamily", "LlavaFamily", "LlavaNextFamily", "ProcessorParts",
    "Qwen2VLFamily", "Qwen3VLFamily", "QwenVLFamily", "collate_pixels", "family_for_model", "family_for_model_type",
    "read_chat_template", "register_family",
]
