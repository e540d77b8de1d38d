"""Translating an original LLaVA ``config.json`` into a transformers ``LlavaConfig`` / ``LlavaNextConfig``.

Original field                -> native field
``mm_vision_tower``           -> ``vision_config`` (read from the tower)
``mm_projector_type``         -> ``projector_hidden_act`` (only ``mlp2x_gelu`` maps onto the native projector)
``mm_vision_select_layer``    -> ``vision_feature_layer``
``mm_vision_select_feature``  -> ``vision_feature_select_strategy``
                                 (``patch`` -> ``default``, ``cls_patch`` -> ``full``)
``mm_patch_merge_type``       -> ``LlavaNextConfig`` with one tile when it is ``spatial_unpad`` (image_newline)
``image_aspect_ratio``        -> the sidecar's ``pad_to_square`` (``anyres`` runs as ``pad``, as EvalAlign does)
every Llama field             -> ``text_config``

Example:
    >>> original = {"model_type": "llava_llama", "mm_vision_tower": "openai/clip-vit-large-patch14-336"}
    >>> is_original_llava(original)
    True
    >>> select_strategy({"mm_vision_select_feature": "patch"})
    'default'
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from evalalign_metric.errors import JudgeLoadError, UnsupportedModelError

# model_type of the original code's classes -> the native text model type.
TEXT_MODEL_TYPES = {"llava_llama": "llama", "llava_mistral": "mistral", "llava": "llama"}
SUPPORTED_PROJECTORS = ("mlp2x_gelu",)
_SELECT_FEATURE = {"patch": "default", "cls_patch": "full"}
_NOT_TEXT_FIELDS = {
    "architectures", "model_type", "_name_or_path", "transformers_version", "torch_dtype", "dtype",
    "image_aspect_ratio", "image_grid_pinpoints", "image_crop_resolution", "image_split_resolution",
    "tokenizer_model_max_length", "tokenizer_padding_side", "tune_mm_mlp_adapter", "freeze_mm_mlp_adapter",
    "unfreeze_mm_vision_tower", "use_mm_proj", "s2", "s2_scales", "auto_map",
}


def read_config(folder: str | Path) -> dict:
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise JudgeLoadError(f"{folder} has no config.json: not a model checkpoint")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise JudgeLoadError(f"{path} is not valid JSON: {exc}") from exc


def is_original_llava(config: dict) -> bool:
    """True for a checkpoint saved by the original LLaVA code (it names its tower in ``mm_vision_tower``)."""
    return config.get("model_type") in TEXT_MODEL_TYPES and "mm_vision_tower" in config


def select_strategy(config: dict) -> str:
    feature = config.get("mm_vision_select_feature", "patch")
    try:
        return _SELECT_FEATURE[feature]
    except KeyError:
        raise UnsupportedModelError(
            f"mm_vision_select_feature={feature!r} is not supported; expected one of {sorted(_SELECT_FEATURE)}"
        ) from None


def uses_image_newline(config: dict) -> bool:
    """Whether the checkpoint was trained with LLaVA-1.6's ``image_newline`` (``*unpad`` merge types)."""
    merge = config.get("mm_patch_merge_type", "flat")
    if merge not in ("flat", "spatial", "spatial_unpad"):
        raise UnsupportedModelError(f"mm_patch_merge_type={merge!r} is not supported")
    return "unpad" in merge


def image_aspect_ratio(config: dict, *, warn: bool = True) -> str:
    """How the judge sees an image: ``"pad"`` (padded to a square) or ``"square"`` (resized as is).

    ``anyres`` (LLaVA-1.6's multi-tile setting, in the official 34B config) is run as ``"pad"`` with a
    warning: EvalAlign's own inference code pads every image to one tile whatever the config says
    (docs/judges.md).
    """
    aspect = config.get("image_aspect_ratio", "square")
    if aspect in ("pad", "square"):
        return aspect
    if isinstance(aspect, str) and aspect.startswith("anyres"):
        if warn:
            warnings.warn(
                f"image_aspect_ratio={aspect!r} is run as 'pad' (one tile per image, padded to a square), as "
                "EvalAlign's inference code runs its judges", stacklevel=3,
            )
        return "pad"
    raise UnsupportedModelError(
        f"image_aspect_ratio={aspect!r} is not supported (expected 'pad', 'square' or 'anyres': the converted "
        "judge sees one tile per image, as EvalAlign runs its checkpoints)"
    )


def trained_dtype(config: dict) -> str | None:
    """The dtype the checkpoint was saved in (``torch_dtype``: ``"float16"`` for the official judges, which
    EvalAlign runs in fp16), or None when the config does not say or names no floating dtype."""
    value = config.get("torch_dtype") or config.get("dtype")
    return value if value in ("float16", "bfloat16", "float32") else None


def check_supported(config: dict) -> None:
    """Raise :class:`UnsupportedModelError` for original-format settings the native classes cannot express."""
    model_type = config.get("model_type")
    if model_type not in TEXT_MODEL_TYPES:
        raise UnsupportedModelError(
            f"model_type={model_type!r} is not an original LLaVA checkpoint this converter knows; expected "
            f"one of {sorted(TEXT_MODEL_TYPES)}"
        )
    projector = config.get("mm_projector_type", "linear")
    if projector not in SUPPORTED_PROJECTORS:
        raise UnsupportedModelError(
            f"mm_projector_type={projector!r} has no native equivalent; supported: {list(SUPPORTED_PROJECTORS)}"
        )
    if config.get("mm_use_im_start_end"):
        raise UnsupportedModelError("mm_use_im_start_end=true (image start/end tokens) is not supported")
    image_aspect_ratio(config, warn=False)
    if not isinstance(config.get("mm_vision_select_layer", -2), int):
        raise UnsupportedModelError("mm_vision_select_layer must be one integer layer index")
    select_strategy(config)
    uses_image_newline(config)


def text_config(config: dict):
    """The language model's config (``LlamaConfig`` / ``MistralConfig``) from the original fields; legacy
    fields such as ``rope_theta`` / ``rope_scaling`` are passed through for transformers to translate."""
    from transformers import AutoConfig

    native_type = TEXT_MODEL_TYPES[config["model_type"]]
    config_class = type(AutoConfig.for_model(native_type))
    fields = {k: v for k, v in config.items()
              if k not in _NOT_TEXT_FIELDS and not k.startswith(("mm_", "freeze_mm", "unfreeze_mm"))}
    if fields.get("rope_scaling", 0) is None:
        del fields["rope_scaling"]
    return config_class(**fields)


def native_config(config: dict, *, vision_config: dict, image_token_id: int, vocab_size: int,
                  keep_newline: bool):
    """The ``LlavaConfig`` (or single-tile ``LlavaNextConfig`` when ``keep_newline``)."""
    from transformers import CLIPVisionConfig, LlavaConfig, LlavaNextConfig

    text = text_config(config)
    text.vocab_size = vocab_size
    vision_fields = {k: v for k, v in vision_config.items() if k != "model_type"}
    vision = CLIPVisionConfig(**vision_fields)
    patches = (vision.image_size // vision.patch_size) ** 2
    strategy = select_strategy(config)
    features = patches + (1 if strategy == "full" else 0)
    common = dict(
        vision_config=vision, text_config=text, image_token_index=image_token_id,
        projector_hidden_act="gelu", vision_feature_select_strategy=strategy,
        vision_feature_layer=config.get("mm_vision_select_layer", -2), multimodal_projector_bias=True,
        tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
    )
    if not keep_newline:
        return LlavaConfig(**common, image_seq_length=features)
    # A grid pinpoint of size 0 makes LLaVA-NeXT count one tile per image, so the model keeps only the
    # base image's features and appends image_newline once: the reference's single-image list path.
    return LlavaNextConfig(**common, image_grid_pinpoints=[[0, 0]], image_seq_length=features + 1)
