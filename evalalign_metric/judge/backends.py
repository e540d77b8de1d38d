"""The earlier name of the judge-family registry, kept so existing ``register_backend`` calls still work.

A backend is now a :class:`~evalalign_metric.judge.families.JudgeFamily`; :class:`Backend` builds a LLaVA-style
family (one image token repeated per feature, 1-D positions) for a new ``model_type`` and transformers class.
A backbone of another shape (its own positions, processor or extra inputs) is a ``JudgeFamily`` subclass
registered with :func:`~evalalign_metric.judge.families.register_family`.

Example:
    >>> backend_for_model_type("llava").model_class
    'LlavaForConditionalGeneration'
    >>> sorted(BACKENDS)[:2]
    ['idefics3', 'llava']
"""

from __future__ import annotations

from evalalign_metric.judge.families import (
    FAMILIES,
    JudgeFamily,
    collate_pixels,
    family_for_model_type,
    register_family,
)

BACKENDS = FAMILIES
backend_for_model_type = family_for_model_type
register_backend = register_family


class Backend(JudgeFamily):
    """A LLaVA-style family for ``model_type`` loaded by the transformers class ``model_class``.

    ``image_placeholder`` replaces the protocol's ``<image>`` in the text; ``image_token`` is the token the
    processor expands into one token per image feature; ``image_first`` says whether the image tokens sit in
    a prefix shared by all questions of an image (the prefix engine relies on it).
    """

    def __init__(self, model_type: str, model_class: str, image_placeholder: str = "<image>",
                 image_token: str = "<image>", image_first: bool = True):
        self.name = model_type
        self.model_types = (model_type,)
        self.model_class = model_class
        self.image_placeholder = image_placeholder
        self.image_token = image_token
        self.prefix_sharing = image_first

    def image_token_text(self, processor) -> str:
        return self.image_placeholder


__all__ = ["BACKENDS", "Backend", "backend_for_model_type", "collate_pixels", "register_backend"]
