"""Convert an original-format LLaVA checkpoint (``model_type: llava_llama``) into a native transformers
``LlavaForConditionalGeneration`` folder (``LlavaNextForConditionalGeneration`` with one tile when the
checkpoint uses ``image_newline``), with processor files and the ``evalalign_judge.json`` sidecar.

Weights are streamed one shard at a time (peak memory: one shard), renamed (see
:mod:`evalalign_metric.convert.mapping`) and checked: a missing or unexpected tensor, or a shape that
does not fit the native model, is an error. Vision weights come from the checkpoint when
``unfreeze_mm_vision_tower`` is true (as in the reference), else from the CLIP tower ``mm_vision_tower``
names. An ``<image>`` token is appended to the vocabulary when the tokenizer lacks one: its input row is
never read (image features replace it) and its output row is the mean of the others, so its probability is
at most 1/vocab_size (Jensen), and judges should mask it anyway.

Example:
    >>> import tempfile
    >>> from evalalign_metric.convert.testing import build_original_llava
    >>> src = build_original_llava(tempfile.mkdtemp())
    >>> dst = convert_llava_checkpoint(src, tempfile.mkdtemp() + "/native")
    >>> import json; json.loads((dst / "config.json").read_text())["model_type"]
    'llava'
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Callable

import torch

from evalalign_metric.convert import config as cfg
from evalalign_metric.convert import processor as proc
from evalalign_metric.convert.errors import ConversionError
from evalalign_metric.convert.mapping import DROP, UNEXPECTED, rename_checkpoint_key, rename_tower_key
from evalalign_metric.convert.tower import VisionTower, has_weights, known_tower, locate_tower, read_tower
from evalalign_metric.convert.weights import PickleWeightsRefusedError, iter_tensors, tensor_shapes, weight_files

_CKPT_VISION_PREFIX = "model.vision_tower.vision_tower."
_EMBED = "model.language_model.embed_tokens.weight"
_HEAD = "lm_head.weight"


def is_original_llava_dir(folder: str | Path) -> bool:
    """True when ``folder`` holds an original-format LLaVA checkpoint."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        return False
    try:
        return cfg.is_original_llava(json.loads(path.read_text()))
    except json.JSONDecodeError:
        return False


def _choose_tower(config: dict, src: Path, *, vision_tower, tower_resolver, has_ckpt_vision: bool,
                  allow_pickle: bool) -> tuple[VisionTower, list[Path]]:
    """The tower's config/preprocessing and the weight files to take vision weights from ([] = checkpoint)."""
    name = config["mm_vision_tower"]
    from_checkpoint = bool(config.get("unfreeze_mm_vision_tower", False))
    if from_checkpoint and not has_ckpt_vision:
        raise ConversionError(
            f"{src}: unfreeze_mm_vision_tower is true but the checkpoint has no vision weights "
            f"({_CKPT_VISION_PREFIX}*)"
        )
    folder = locate_tower(name, tower_path=vision_tower, checkpoint_dir=src,
                          resolver=None if from_checkpoint and known_tower(name) else tower_resolver,
                          need_weights=not from_checkpoint, allow_pickle=allow_pickle)
    if folder is not None:
        tower = read_tower(folder, name)
        if from_checkpoint:
            return tower, []
        if not allow_pickle and not has_weights(folder, allow_pickle=False) and vision_tower is None:
            raise PickleWeightsRefusedError(
                f"the vision tower {name!r} ({folder}) has no safetensors weights: its repo likely ships only "
                "pickle weights (pytorch_model.bin, as openai/clip-vit-large-patch14-336 does), which are not "
                "downloaded or loaded unless you trust them: pass allow_pickle=True (CLI: --allow-pickle), or "
                "vision_tower=PATH (CLI: --vision-tower PATH) to a CLIP folder with safetensors"
            )
        return tower, weight_files(folder, allow_pickle=allow_pickle)
    tower = known_tower(name)
    if from_checkpoint and tower is not None:
        return tower, []
    if has_ckpt_vision and tower is not None:
        warnings.warn(
            f"vision tower {name!r} not found; using the vision weights stored in the checkpoint (the "
            "reference would load the tower's own weights: pass vision_tower=PATH to match it exactly)",
            stacklevel=3,
        )
        return tower, []
    raise ConversionError(
        f"the vision tower {name!r} named by mm_vision_tower was not found locally; pass vision_tower=PATH "
        "(CLI: --vision-tower PATH) pointing to a CLIP folder (config.json + safetensors), or load the judge "
        "by Hub id so that the tower is downloaded"
    )


def _expected_state(config) -> dict[str, tuple[int, ...]]:
    from transformers import LlavaForConditionalGeneration, LlavaNextForConditionalGeneration

    model_class = LlavaNextForConditionalGeneration if config.model_type == "llava_next" else \
        LlavaForConditionalGeneration
    with torch.device("meta"):
        model = model_class(config)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _plan(src_files, tower_files, *, vision_from_ckpt: bool, keep_newline: bool):
    """(file, source key) -> native key for every tensor carried over; raises on unknown keys."""
    plan: dict[tuple[Path, str], str] = {}
    unexpected = []
    for path in src_files:
        for key in tensor_shapes([path]):
            target = rename_checkpoint_key(key, vision_from_checkpoint=vision_from_ckpt, keep_newline=keep_newline)
            if target == UNEXPECTED:
                unexpected.append(key)
            elif target is not DROP:
                plan[(path, key)] = target
    for path in tower_files:
        for key in tensor_shapes([path]):
            target = rename_tower_key(key)
            if target == UNEXPECTED:
                unexpected.append(f"{path.name}:{key}")
            elif target is not DROP:
                plan[(path, key)] = target
    if unexpected:
        raise ConversionError(
            f"{len(unexpected)} unexpected tensors that have no place in the native model, e.g. "
            f"{unexpected[:5]}"
        )
    return plan


def _check_plan(plan, shapes, expected, *, old_vocab: int, tied: bool) -> None:
    targets: dict[str, tuple[int, ...]] = {}
    for (path, key), target in plan.items():
        if target in targets:
            raise ConversionError(f"two source tensors map to {target!r} (second: {path.name}:{key})")
        targets[target] = shapes[(path, key)]
    optional = {_HEAD} if tied else set()
    missing = sorted(set(expected) - set(targets) - optional)
    extra = sorted(set(targets) - set(expected))
    if missing or extra:
        raise ConversionError(
            f"the checkpoint does not fit the native model: missing {len(missing)} tensors {missing[:5]}, "
            f"unexpected {len(extra)} tensors {extra[:5]}"
        )
    for name, shape in targets.items():
        want = expected[name]
        if name in (_EMBED, _HEAD):
            want = (old_vocab,) + want[1:]
        if shape != want:
            raise ConversionError(f"{name}: checkpoint shape {shape} does not fit the native shape {want}")


def _grow_vocab(name: str, tensor: torch.Tensor, vocab: int) -> torch.Tensor:
    extra = vocab - tensor.shape[0]
    if extra <= 0 or name not in (_EMBED, _HEAD):
        return tensor
    if name == _EMBED:
        rows = torch.zeros(extra, tensor.shape[1], dtype=tensor.dtype)
    else:
        rows = tensor.float().mean(dim=0, keepdim=True).expand(extra, -1).to(tensor.dtype)
    return torch.cat([tensor, rows], dim=0)


def _write_weights(dst: Path, plan, files: list[Path], *, vocab: int, dtype: torch.dtype | None) -> None:
    from safetensors.torch import save_file

    by_file: dict[Path, dict[str, str]] = {}
    for (path, key), target in plan.items():
        by_file.setdefault(path, {})[key] = target
    ordered = [p for p in files if p in by_file]
    weight_map, total = {}, 0
    for i, path in enumerate(ordered, start=1):
        name = f"model-{i:05d}-of-{len(ordered):05d}.safetensors"
        wanted = by_file[path]
        out = {}
        for key, tensor in iter_tensors(path):
            if key not in wanted:
                continue
            tensor = _grow_vocab(wanted[key], tensor, vocab)
            if dtype is not None and tensor.is_floating_point():
                tensor = tensor.to(dtype)
            out[wanted[key]] = tensor.contiguous()
            weight_map[wanted[key]] = name
            total += tensor.numel() * tensor.element_size()
        save_file(out, str(dst / name), metadata={"format": "pt"})
        del out
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    (dst / "model.safetensors.index.json").write_text(json.dumps(index, indent=1) + "\n")


def convert_llava_checkpoint(
    src: str | Path,
    dst: str | Path,
    *,
    vision_tower: str | Path | None = None,
    keep_image_newline: bool = True,
    allow_pickle: bool = False,
    dtype: torch.dtype | None = None,
    tower_resolver: Callable[[str], Path | None] | None = None,
) -> Path:
    """Convert the original-format LLaVA checkpoint in ``src`` into a native folder ``dst`` and return it.

    Args:
        src: folder of the original checkpoint (``config.json`` with ``mm_vision_tower``, safetensors,
            tokenizer files).
        dst: folder to create; it must not exist or be empty.
        vision_tower: local CLIP folder to use for ``mm_vision_tower`` (else it is looked up by name: as a
            path, inside ``src``, in the Hugging Face cache, then through ``tower_resolver``).
        keep_image_newline: for ``spatial_unpad`` checkpoints, build ``LlavaNext`` with ``image_newline`` and
            record EvalAlign's per-script rule in the sidecar: faithfulness questions with the newline (its
            list-of-images path), alignment questions without (its batched-tensor path). False builds plain
            ``Llava`` without it for every question.
        allow_pickle: accept ``.bin`` / ``.pt`` weights (they can run code when loaded).
        dtype: cast floating weights (default: keep the checkpoint's dtype).
        tower_resolver: ``name -> folder or None``, used when the tower is not found locally.
    """
    src, dst = Path(src), Path(dst)
    original = cfg.read_config(src)
    if not cfg.is_original_llava(original):
        model_type = original.get("model_type")
        if model_type in ("llava", "llava_next"):
            raise ConversionError(f"{src} is already a native transformers checkpoint ({model_type}); load it as is")
        raise cfg.UnsupportedModelError(
            f"{src}: model_type={model_type!r} is not an original LLaVA checkpoint (no mm_vision_tower)"
        )
    cfg.check_supported(original)
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise ConversionError(f"destination {dst} exists and is not empty; choose a new folder")

    src_files = weight_files(src, allow_pickle=allow_pickle)
    src_shapes = tensor_shapes(src_files)
    has_ckpt_vision = any(k.startswith(_CKPT_VISION_PREFIX) for k in src_shapes)
    tower, tower_files = _choose_tower(original, src, vision_tower=vision_tower, tower_resolver=tower_resolver,
                                       has_ckpt_vision=has_ckpt_vision, allow_pickle=allow_pickle)
    vision_from_ckpt = not tower_files
    keep_newline = cfg.uses_image_newline(original) and keep_image_newline
    if keep_newline and "model.image_newline" not in src_shapes:
        raise ConversionError(f"{src}: mm_patch_merge_type is {original.get('mm_patch_merge_type')!r} but "
                              "the checkpoint has no model.image_newline")

    tokenizer, tokenizer_options, spm_reference = proc.load_tokenizer(src)
    image_token_id = tokenizer.convert_tokens_to_ids(proc.IMAGE_TOKEN)
    old_vocab = int(original.get("vocab_size", len(tokenizer)))
    if len(tokenizer) > max(old_vocab, image_token_id + 1) or image_token_id > old_vocab:
        raise ConversionError(
            f"the tokenizer has {len(tokenizer)} tokens but the model only {old_vocab} embeddings: tokens "
            "were added after training, the checkpoint and its tokenizer do not match"
        )
    vocab = max(old_vocab, image_token_id + 1)
    config = cfg.native_config(original, vision_config=tower.vision_config, image_token_id=image_token_id,
                               vocab_size=vocab, keep_newline=keep_newline)
    config.text_config.pad_token_id = tokenizer.pad_token_id

    all_files = src_files + tower_files
    plan = _plan(src_files, tower_files, vision_from_ckpt=vision_from_ckpt, keep_newline=keep_newline)
    shapes = {}
    for path in all_files:
        shapes.update({(path, k): v for k, v in tensor_shapes([path]).items()})
    _check_plan(plan, shapes, _expected_state(config), old_vocab=old_vocab,
                tied=bool(config.text_config.tie_word_embeddings))

    dst.mkdir(parents=True, exist_ok=True)
    _write_weights(dst, plan, all_files, vocab=vocab, dtype=dtype)
    config.save_pretrained(str(dst))
    _save_generation_config(dst, tokenizer)

    patch_size = config.vision_config.patch_size
    strategy = config.vision_feature_select_strategy
    chat_format = proc.chat_format_name(tokenizer)
    processor = proc.build_processor(tokenizer, tower, llava_next=keep_newline, patch_size=patch_size,
                                     strategy=strategy, chat_format=chat_format)
    processor.save_pretrained(str(dst))
    proc.save_tokenizer(tokenizer, tokenizer_options, dst)
    proc.write_sidecar(dst, chat_format=chat_format,
                       pad_to_square=cfg.image_aspect_ratio(original) == "pad",
                       image_newline=proc.EVALALIGN_NEWLINE_RULE if keep_newline else None,
                       dtype=cfg.trained_dtype(original))
    _self_check(dst, tower, keep_newline=keep_newline, strategy=strategy, patch_size=patch_size,
                reference=spm_reference)
    return dst


def _save_generation_config(dst: Path, tokenizer) -> None:
    from transformers import GenerationConfig

    GenerationConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                     pad_token_id=tokenizer.pad_token_id).save_pretrained(str(dst))


def _self_check(dst: Path, tower: VisionTower, *, keep_newline: bool, strategy: str, patch_size: int,
                reference) -> None:
    """Reload the saved processor: the image-token count and the SentencePiece token ids must survive saving."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(str(dst))
    patches = (tower.image_size // patch_size) ** 2
    want = proc.expected_image_tokens(patches=patches, strategy=strategy, llava_next=keep_newline)
    got = proc.count_image_tokens(processor, tower.image_size)
    if got != want:
        raise ConversionError(f"the saved processor writes {got} image tokens per image, the model expects {want}")
    tokenizer = processor.tokenizer
    problem = None if reference is None else proc.first_mismatch(
        tokenizer, reference, tokenizer.convert_tokens_to_ids(proc.IMAGE_TOKEN))
    if problem is not None:
        raise proc.TokenizerMismatchError(f"the saved tokenizer no longer reproduces the SentencePiece ids: {problem}")
