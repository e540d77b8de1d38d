"""Qwen2-VL, Qwen2.5-VL and Qwen3-VL: dynamic-resolution images and 3-D M-RoPE positions.

What differs from LLaVA (DESIGN 7):

- the image keeps its aspect ratio: the image processor resizes it to a multiple of ``patch_size *
  merge_size`` with ``min_pixels <= h * w <= max_pixels`` (user-settable, see :meth:`QwenVLFamily.encode_image`),
  so images of different sizes give different numbers of ``<|image_pad|>`` tokens;
- a forward needs ``mm_token_type_ids`` (1 on image tokens) and ``image_grid_thw``;
- positions are 3-D (temporal, height, width): image tokens get grid positions and the text after an image
  continues from the image's largest position + 1, so a text token's position is its index plus a per-row
  *rope delta*. A shared prefix therefore hands its suffixes ``index + delta`` on all three axes
  (:meth:`QwenVLFamily.suffix_positions`), computed by the model's own ``get_rope_index``;
- the processor also needs a video processor (torchvision): where it cannot be built, inputs come from the
  image processor + tokenizer + chat template (:class:`~evalalign_metric.judge.families.base.ProcessorParts`)
  and the image's text is ``<|image_pad|>`` repeated ``grid_t * grid_h * grid_w / merge_size**2`` times, the
  rule of the processor's ``replace_image_token`` (where the processor exists, its own method is used).

Example:
    >>> from evalalign_metric.judge.families import family_for_model_type
    >>> family = family_for_model_type("qwen2_5_vl")
    >>> family.pad_to_square, family.chat, family.image_option_names
    (False, 'template', ('min_pixels', 'max_pixels'))
"""

from __future__ import annotations

from PIL import Image

import torch

from evalalign_metric.errors import InputError
from evalalign_metric.judge.families.base import ImageInputs, JudgeFamily, ProcessorParts, unwrap


class QwenVLFamily(JudgeFamily):
    """Qwen2.5-VL (``Qwen2_5_VLForConditionalGeneration``)."""

    name = "qwen2.5-vl"
    model_types = ("qwen2_5_vl",)
    model_class = "Qwen2_5_VLForConditionalGeneration"
    image_token = "<|image_pad|>"
    chat = "template"
    pad_to_square = False
    lora_target_modules = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj)$"
    image_option_names = ("min_pixels", "max_pixels")

    def check_image_options(self, options):
        options = super().check_image_options(options)
        for key, value in options.items():
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise InputError(f"{key} must be a positive number of pixels; got {value!r}")
        low, high = options.get("min_pixels"), options.get("max_pixels")
        if low is not None and high is not None and low > high:
            raise InputError(f"min_pixels ({low}) must not exceed max_pixels ({high})")
        return options

    @staticmethod
    def _size(image_processor, options) -> dict:
        size = dict(getattr(image_processor, "size", None) or {})
        if options.get("min_pixels") is not None:
            size["shortest_edge"] = options["min_pixels"]
        if options.get("max_pixels") is not None:
            size["longest_edge"] = options["max_pixels"]
        return size

    def encode_image(self, processor, image: Image.Image, **options) -> ImageInputs:
        size = self._size(processor.image_processor, options)
        if not isinstance(processor, ProcessorParts):
            return super().encode_image(processor, image, size=size)
        features = processor.image_processor(images=[image], size=size, return_tensors="pt")
        merge = int(getattr(processor.image_processor, "merge_size", 2))
        count = int(features["image_grid_thw"][0].prod()) // merge ** 2
        pixels = {k: features[k] for k in ("pixel_values", "image_grid_thw")}
        return ImageInputs(pixels, self.image_token * count, count)

    def row_inputs(self, input_ids, image_token_id):
        return {"mm_token_type_ids": (input_ids == image_token_id).int()}

    def prefill_inputs(self, model, input_ids, valid, pixels, image_token_id):
        # The model's own rule for 3-D positions; the deltas say where text positions continue.
        inner = unwrap(model).model
        mm = (input_ids == image_token_id).int()
        positions, deltas = inner.get_rope_index(input_ids, mm_token_type_ids=mm,
                                                 image_grid_thw=pixels.get("image_grid_thw"),
                                                 attention_mask=valid.long())
        return {"position_ids": positions, "mm_token_type_ids": mm}, deltas.to(input_ids.device).long()

    def suffix_positions(self, positions: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        shifted = positions + offsets
        return shifted[None].expand(3, *shifted.shape)


class Qwen3VLFamily(QwenVLFamily):
    """Qwen3-VL (``Qwen3VLForConditionalGeneration``): Qwen2.5-VL's inputs, interleaved M-RoPE and deepstack
    visual features (added inside the prefix only, where the image tokens are)."""

    name = "qwen3-vl"
    model_types = ("qwen3_vl",)
    model_class = "Qwen3VLForConditionalGeneration"


class Qwen2VLFamily(QwenVLFamily):
    """Qwen2-VL (``Qwen2VLForConditionalGeneration``; HPSv3 and UnifiedReward-style judges): Qwen2.5-VL's
    inputs and positions."""

    name = "qwen2-vl"
    model_types = ("qwen2_vl",)
    model_class = "Qwen2VLForConditionalGeneration"
