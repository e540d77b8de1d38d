"""Idefics3 / SmolVLM (v1): an image becomes tiles, each tile a run of ``<image>`` tokens between text markers.

The family of another shape: the processor splits an image into a grid of tiles (their number follows the
aspect ratio) plus a global view, and writes around each tile's ``image_seq_len`` image tokens
``<fake_token_around_image>``, ``<row_i_col_j>`` or ``<global-img>`` markers and newlines. So an image's text
is a mix of image and text tokens that only the processor knows how to lay out: it is taken from the
processor (``replace_image_token``) and tokenised whole, never rebuilt from a count. The language model is a
Llama with 1-D positions and the image comes first, so the prefix engine shares it as it does for LLaVA.
SmolVLM-256M/500M/2.2B-Instruct (``model_type`` ``idefics3``) are the small instruct judges of this family.

Example:
    >>> from evalalign_metric.judge.families import family_for_model_type
    >>> family = family_for_model_type("idefics3")
    >>> family.model_class, family.pad_to_square, family.chat
    ('Idefics3ForConditionalGeneration', False, 'template')
"""

from __future__ import annotations

from evalalign_metric.judge.families.base import JudgeFamily


class Idefics3Family(JudgeFamily):
    """Idefics3 and SmolVLM v1 (``Idefics3ForConditionalGeneration``)."""

    name = "idefics3"
    model_types = ("idefics3",)
    model_class = "Idefics3ForConditionalGeneration"
    chat = "template"
    pad_to_square = False
    lora_target_modules = r".*text_model.*\.(q_proj|k_proj|v_proj|o_proj)$"
