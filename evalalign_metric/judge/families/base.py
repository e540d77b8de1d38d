"""The seam between the engines and a backbone: a judge family owns how its inputs are made.

A :class:`JudgeFamily` says, for one family of image-text-to-text models:

- which transformers class loads it and how its processor is loaded (the checkpoint's own processor, or its
  image processor + tokenizer + chat template where the full processor cannot be built, see
  :class:`ProcessorParts`);
- the image policy (LLaVA-1.5 pads to a square as the EvalAlign reference does; others keep the aspect ratio);
- how one image becomes pixel inputs and the text the processor puts where the image goes
  (:meth:`JudgeFamily.encode_image`), and how a prompt with that text becomes token ids
  (:meth:`JudgeFamily.prompt_ids`): the processor's own expansion, tokenised as the processor tokenises it;
- which extra inputs a forward needs (:meth:`JudgeFamily.row_inputs`, e.g. Qwen's ``mm_token_type_ids``);
- how positions run in a shared prefix and continue after it (:meth:`JudgeFamily.prefill_inputs`,
  :meth:`JudgeFamily.suffix_positions`), or that the prefix cannot be shared (``prefix_sharing``);
- which layers LoRA adapts (``lora_target_modules``) and how training feeds images
  (``training_shared_vision``).

Example:
    >>> from evalalign_metric.judge.families import family_for_model_type
    >>> family = family_for_model_type("llava")
    >>> family.model_class, family.pad_to_square, family.prefix_sharing
    ('LlavaForConditionalGeneration', True, True)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from evalalign_metric.errors import InputError, JudgeLoadError
from evalalign_metric.images import mean_colour, pad_to_square

TEXT_KEYS = ("input_ids", "attention_mask", "token_type_ids", "mm_token_type_ids", "text_replacement_offsets")


@dataclass
class ImageInputs:
    """One image as the model reads it: pixel inputs (a batch of one) and the text the processor puts where
    the image goes in a prompt (its image tokens, plus any markers such as tile separators)."""

    pixels: dict[str, torch.Tensor]
    text: str
    n_image_tokens: int


class ProcessorParts:
    """A processor assembled from its parts: the image processor, the tokenizer and the chat template.

    Used where the checkpoint's own processor class cannot be built (Qwen-VL processors also need a video
    processor, which needs torchvision). Saves as the processor would (:meth:`save_pretrained`).
    """

    def __init__(self, image_processor, tokenizer, chat_template: str | None = None):
        self.image_processor = image_processor
        self.tokenizer = tokenizer
        self.chat_template = chat_template

    def save_pretrained(self, path) -> None:
        path = Path(path)
        self.image_processor.save_pretrained(path)
        self.tokenizer.save_pretrained(path)
        if self.chat_template:
            (path / "chat_template.jinja").write_text(self.chat_template)


def read_chat_template(path: Path, tokenizer=None) -> str | None:
    """The chat template saved with a checkpoint (``chat_template.jinja`` or ``chat_template.json``), else the
    tokenizer's."""
    jinja = path / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text()
    as_json = path / "chat_template.json"
    if as_json.is_file():
        try:
            return json.loads(as_json.read_text())["chat_template"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise JudgeLoadError(f"{as_json} holds no readable chat template: {exc}") from exc
    return getattr(tokenizer, "chat_template", None)


def collate_pixels(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack per-image pixel inputs along the batch axis, zero-padding dimension 1 where images differ
    (LLaVA-NeXT's patch count, Idefics3's tile count; the models read the real count from ``image_sizes`` or
    skip all-zero tiles). Qwen's flattened patches, ``(patches, dim)``, are concatenated."""
    out = {}
    for key in items[0]:
        tensors = [item[key] for item in items]
        if all(t.shape[1:] == tensors[0].shape[1:] for t in tensors) or tensors[0].ndim < 2:
            out[key] = torch.cat(tensors, dim=0)
            continue
        longest = max(t.shape[1] for t in tensors)
        padded = []
        for t in tensors:
            pad = t.new_zeros((t.shape[0], longest - t.shape[1], *t.shape[2:]))
            padded.append(torch.cat([t, pad], dim=1))
        out[key] = torch.cat(padded, dim=0)
    return out


def unwrap(model):
    """The transformers model under a peft wrapper."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


class JudgeFamily:
    """A family of judge backbones: the defaults describe LLaVA-style models (one image token repeated per
    feature, 1-D positions, the image before the question). Subclasses override what differs.

    Attributes:
        name: the family's name (listed in docs/judges.md).
        model_types: the ``config.json`` ``model_type`` values it loads.
        model_class: the transformers class name.
        image_token: the token the processor repeats once per image feature (when the processor names none).
        prefix_sharing: whether the image sits in a prefix that all questions of an image share.
        chat: ``"format"`` (a chat format of ``chat_formats.json``, read from the sidecar or the tokenizer) or
            ``"template"`` (the checkpoint's own chat template, so an instruct model answers as it was tuned).
        pad_to_square: the default image policy (the sidecar's ``pad_to_square`` overrides it).
        lora_target_modules: the default LoRA target (a regex over module names).
        training_shared_vision: training encodes each image once and reuses its features for every
            question (:class:`~evalalign_metric.training.features.AnswerLoss`); otherwise each row runs a full
            forward with its image.
    """

    name = "llava"
    model_types: tuple[str, ...] = ("llava",)
    model_class = "LlavaForConditionalGeneration"
    image_token = "<image>"
    prefix_sharing = True
    chat = "format"
    pad_to_square = True
    lora_target_modules = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj)$"
    training_shared_vision = False
    image_option_names: tuple[str, ...] = ()

    @property
    def model_type(self) -> str:
        return self.model_types[0]

    @property
    def image_first(self) -> bool:
        """Whether the image precedes the question (the prefix engine's condition; ``prefix_sharing``)."""
        return self.prefix_sharing

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, model_types={self.model_types!r})"

    # ------------------------------------------------------------------ loading
    def load_class(self):
        import transformers

        return getattr(transformers, self.model_class)

    def load_processor(self, path: Path):
        """The checkpoint's processor (``AutoProcessor``), or its parts where the processor cannot be built."""
        from transformers import AutoProcessor

        try:
            return AutoProcessor.from_pretrained(path, trust_remote_code=False)
        except ImportError:
            return self.load_parts(path)

    def load_parts(self, path: Path) -> ProcessorParts:
        from transformers import AutoImageProcessor, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
        image_processor = AutoImageProcessor.from_pretrained(path, trust_remote_code=False)
        return ProcessorParts(image_processor, tokenizer, read_chat_template(path, tokenizer))

    def image_token_text(self, processor) -> str:
        """The token that stands for the image in a prompt (the processor's, else the family's default)."""
        return getattr(processor, "image_token", None) or self.image_token

    def check_image_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """Validate user image options (e.g. Qwen's ``min_pixels``); families without options take none."""
        unknown = sorted(set(options) - set(self.image_option_names))
        if unknown:
            allowed = list(self.image_option_names) or "none"
            raise InputError(f"image options {unknown} do not apply to the {self.name!r} family (it takes: {allowed})")
        return dict(options)

    # ------------------------------------------------------------------ images and prompts
    def prepare_image(self, processor, image: Image.Image, *, pad: bool) -> Image.Image:
        """The image policy: pad to a square with the processor's mean colour when ``pad`` (LLaVA-1.5 ``pad``)."""
        if pad:
            return pad_to_square(image, mean_colour(getattr(processor.image_processor, "image_mean", None)))
        return image

    def encode_image(self, processor, image: Image.Image, **options) -> ImageInputs:
        """Pixel inputs and the processor's text for ``image``, from one processor call on the image token
        alone (the processor expands it as it would in any prompt)."""
        token = self.image_token_text(processor)
        features = processor(images=[image], text=[token], return_tensors="pt", add_special_tokens=False,
                             return_text_replacement_offsets=True, **options)
        text = features["text_replacement_offsets"][0][0]["replacement"]
        pixels = {k: v for k, v in features.items() if k not in TEXT_KEYS}
        return ImageInputs(pixels, text, text.count(token))

    def prompt_ids(self, tokenizer, prompt: str, image: ImageInputs, image_token: str) -> list[int]:
        """Token ids of ``prompt`` (holding ``image_token`` once) with the image's text in its place, tokenised
        whole, as the processor does."""
        return tokenizer(prompt.replace(image_token, image.text, 1), add_special_tokens=True)["input_ids"]

    def collate_pixels(self, items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        return collate_pixels(items)

    # ------------------------------------------------------------------ forwards
    def row_inputs(self, input_ids: torch.Tensor, image_token_id: int) -> dict[str, torch.Tensor]:
        """Extra model inputs for a batch of full rows (none for LLaVA)."""
        return {}

    def prefill_inputs(self, model, input_ids: torch.Tensor, valid: torch.Tensor, pixels: dict[str, torch.Tensor],
                       image_token_id: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Inputs (besides ids, mask, pixels) for a right-padded prefix forward, and per row the offset
        ``o`` such that a token at index ``i`` after the prefix has position ``i + o``."""
        n, length = input_ids.shape
        positions = torch.arange(length, device=input_ids.device)[None].expand(n, length)
        return {"position_ids": positions}, torch.zeros((n, 1), dtype=torch.long, device=input_ids.device)

    def suffix_positions(self, positions: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        """Position ids for suffix tokens whose indices in their prompt are ``positions`` (n, width)."""
        return positions + offsets

    def prefix_unsupported_reason(self, model) -> str | None:
        """Why the prefix engine cannot serve ``model`` exactly (None when it can)."""
        if not self.prefix_sharing:
            return f"the {self.model_type!r} backend does not put the image before the question"
        inner = getattr(unwrap(model), "model", None)
        if hasattr(inner, "get_rope_index") and type(self).prefill_inputs is JudgeFamily.prefill_inputs:
            return (f"{type(unwrap(model)).__name__} computes 3-D (M-RoPE) positions that the {self.name!r} family "
                    "does not carry past a shared prefix (register a family that does, as the Qwen-VL ones)")
        return None
