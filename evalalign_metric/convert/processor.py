"""The processor files of a converted judge: the checkpoint's tokenizer with an ``<image>`` token, a
CLIP-style image processor, the chat template and the ``evalalign_judge.json`` sidecar.

The chat format is read from the tokenizer (ChatML when it knows ``<|im_start|>``, Vicuna v1 otherwise),
never from a folder name. The reference tokenises the text on each side of ``<image>`` separately with the
slow SentencePiece tokenizer, which with a Llama-2 model puts a ``▁`` right after the image and with a Yi
model (no dummy prefix) puts none anywhere. The converter loads the fast tokenizer in the mode whose single
pass reproduces that (``legacy``; ``add_prefix_space=False`` when the proto has no dummy prefix), checked on
every EvalAlign question and answer against :mod:`evalalign_metric.convert.spm_reference`.

Example:
    >>> from evalalign_metric.testing import build_tiny_tokenizer
    >>> chat_format_name(build_tiny_tokenizer("llama", chatml=True))
    'chatml'
    >>> chat_format_name(build_tiny_tokenizer("llama"))
    'vicuna_v1'
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from evalalign_metric.convert.errors import TokenizerMismatchError
from evalalign_metric.convert.spm_reference import IMAGE_TOKEN, SentencePieceReference, adds_dummy_prefix
from evalalign_metric.errors import JudgeLoadError
_PROBE_QUESTION = "<image>\nAre there any issues with the body? \nOptions: -1.None, 0.Bad, 4.Good, the answer is"


def chat_format_name(tokenizer) -> str:
    """``"chatml"`` when the tokenizer has ``<|im_start|>`` (Yi-34B based judges), else ``"vicuna_v1"``."""
    return "chatml" if "<|im_start|>" in tokenizer.get_vocab() else "vicuna_v1"


def reference_ids(tokenizer, prompt: str, image_token_id: int) -> list[int]:
    """Token ids as the reference builds them: each piece around ``<image>`` tokenised on its own, the
    beginning-of-sequence token kept only once."""
    chunks = [tokenizer(chunk)["input_ids"] for chunk in prompt.split(IMAGE_TOKEN)]
    bos = tokenizer.bos_token_id
    offset = 1 if chunks and chunks[0] and bos is not None and chunks[0][0] == bos else 0
    ids = chunks[0][:offset]
    for i, chunk in enumerate(chunks):
        if i:
            ids.append(image_token_id)
        ids.extend(chunk[offset:])
    return ids


def probe_prompts(chat_format: str) -> list[str]:
    """Every EvalAlign question in ``chat_format``, alone and followed by each of its answers."""
    from evalalign_metric.judge.chat import CHAT_FORMATS
    from evalalign_metric.protocol import load_protocol

    fmt = CHAT_FORMATS[chat_format]
    prompts = [fmt.render(_PROBE_QUESTION)]
    for aspect in load_protocol("evalalign").aspects:
        prompt = fmt.render(aspect.template)
        prompts.append(prompt)
        prompts.extend(prompt + fmt.answer_prefix + option.label for option in aspect.options)
    return prompts


def matches_reference(tokenizer, image_token_id: int) -> bool:
    """Whether one pass of ``tokenizer`` equals its own chunk-wise ids (the reference's way of splitting)
    on every probe prompt; used for checkpoints without ``tokenizer.model``."""
    prompts = probe_prompts(chat_format_name(tokenizer))
    return all(tokenizer(p)["input_ids"] == reference_ids(tokenizer, p, image_token_id) for p in prompts)


def slow_reference(src: Path, tokenizer) -> SentencePieceReference | None:
    """The slow tokenizer of ``src`` re-implemented on its ``tokenizer.model`` (None when it has none)."""
    model_file = src / "tokenizer.model"
    if not model_file.is_file():
        return None
    config_file = src / "tokenizer_config.json"
    config = json.loads(config_file.read_text()) if config_file.is_file() else {}
    legacy = config.get("legacy")
    return SentencePieceReference(model_file, legacy=True if legacy is None else bool(legacy),
                                  add_bos=bool(config.get("add_bos_token", True)),
                                  special_tokens=tokenizer.get_added_vocab())


def first_mismatch(tokenizer, reference: SentencePieceReference, image_token_id: int) -> str | None:
    """The first probe prompt whose single-pass ids differ from the reference's, described; None if none."""
    for prompt in probe_prompts(chat_format_name(tokenizer)):
        got = tokenizer(prompt)["input_ids"]
        want = reference.ids(prompt, image_token_id)
        if got != want:
            at = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
            return (f"prompt {prompt[max(0, at - 40):][:80]!r}...: converted tokenizer "
                    f"{tokenizer.convert_ids_to_tokens(got[at:at + 4])} vs SentencePiece "
                    f"{[IMAGE_TOKEN if i == image_token_id else reference.piece(i) for i in want[at:at + 4]]} "
                    f"at token {at}")
    return None


def _candidates(src: Path) -> list[dict]:
    """Load options to try, in order: the SentencePiece model's own prefix rule first."""
    model_file = src / "tokenizer.model"
    no_prefix = model_file.is_file() and not adds_dummy_prefix(model_file)
    extra = {"add_prefix_space": False} if no_prefix else {}
    return [dict(legacy=legacy, **extra) for legacy in (True, False)]


def load_tokenizer(src: Path):
    """The checkpoint's tokenizer with ``<image>`` added, in the mode whose single-pass ids equal the slow
    SentencePiece tokenisation the reference ran (chunk-wise around ``<image>``).

    Returns ``(tokenizer, options, reference)``: the load options chosen (``legacy``, ``add_prefix_space``)
    and the :class:`SentencePieceReference` it was checked against (None without ``tokenizer.model``).

    Raises:
        TokenizerMismatchError: no mode reproduces the SentencePiece ids on the EvalAlign questions.
    """
    from transformers import AutoTokenizer

    tried = []
    for options in _candidates(src):
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(src), **options)
        except (OSError, ValueError) as exc:
            raise JudgeLoadError(f"cannot load the tokenizer of {src}: {exc}") from exc
        if IMAGE_TOKEN not in tokenizer.get_vocab():
            tokenizer.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]},
                                         replace_extra_special_tokens=False)
        image_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
        has_mode = hasattr(tokenizer, "legacy")
        if not has_mode:
            options = {}
        reference = slow_reference(src, tokenizer)
        if reference is None:
            if not matches_reference(tokenizer, image_id):
                warnings.warn(
                    f"the tokenizer of {src} does not reproduce the reference's token ids around <image> in a "
                    "single pass (and it has no tokenizer.model to check against); scores may differ slightly "
                    "from the original code", stacklevel=3,
                )
            return tokenizer, options, None
        problem = first_mismatch(tokenizer, reference, image_id)
        if problem is None:
            return tokenizer, options, reference
        tried.append(f"{options}: {problem}")
        if not has_mode:
            break
    raise TokenizerMismatchError(
        f"the converted tokenizer of {src} does not reproduce the slow SentencePiece tokenisation "
        f"(tokenizer.model, legacy={reference.legacy}, dummy prefix={reference.adds_dummy_prefix}) that the "
        "original code feeds the judge; converting would change its answers. Tried " + "; ".join(tried)
    )


def save_tokenizer(tokenizer, options: dict, dst: Path) -> None:
    tokenizer.save_pretrained(str(dst))
    if not options:
        return
    # transformers does not write the mode back, and rebuilds the pre-tokenizer from it when loading.
    path = dst / "tokenizer_config.json"
    data = json.loads(path.read_text())
    data.update(options)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False))


def image_processor(tower, *, llava_next: bool):
    """CLIP preprocessing at the tower's size; LLaVA pads to a square with the mean colour."""
    size = tower.image_size
    common = dict(size={"shortest_edge": size}, crop_size={"height": size, "width": size},
                  image_mean=list(tower.image_mean), image_std=list(tower.image_std), resample=tower.resample,
                  do_center_crop=True, do_convert_rgb=True)
    if llava_next:
        from transformers.models.llava_next.image_processing_pil_llava_next import LlavaNextImageProcessorPil

        # One extra tile the model discards (its own pinpoint is [0, 0]); the processor needs a real one.
        return LlavaNextImageProcessorPil(**common, image_grid_pinpoints=[[size, size]], do_pad=True)
    from transformers.models.llava.image_processing_pil_llava import LlavaImageProcessorPil

    return LlavaImageProcessorPil(**common, do_pad=True)


def build_processor(tokenizer, tower, *, llava_next: bool, patch_size: int, strategy: str, chat_format: str):
    """A processor that expands ``<image>`` into exactly as many tokens as the model has image features."""
    from transformers import LlavaNextProcessor, LlavaProcessor

    from evalalign_metric.judge.chat import CHAT_FORMATS

    template = CHAT_FORMATS[chat_format].jinja_template()
    images = image_processor(tower, llava_next=llava_next)
    if not llava_next:
        return LlavaProcessor(image_processor=images, tokenizer=tokenizer, patch_size=patch_size,
                              vision_feature_select_strategy=strategy, num_additional_image_tokens=1,
                              chat_template=template, image_token=IMAGE_TOKEN)
    # LlavaNextProcessor counts base + tile + newline features from `patch_size`; with patch_size equal
    # to the image size each of those is one "patch", and the remaining base features are declared as
    # additional tokens, so the count is patches (+1 CLS with 'full') + 1 image_newline.
    patches = (tower.image_size // patch_size) ** 2
    return LlavaNextProcessor(image_processor=images, tokenizer=tokenizer, patch_size=tower.image_size,
                              vision_feature_select_strategy=strategy, num_additional_image_tokens=patches - 1,
                              chat_template=template, image_token=IMAGE_TOKEN)


def expected_image_tokens(*, patches: int, strategy: str, llava_next: bool) -> int:
    return patches + (1 if strategy == "full" else 0) + (1 if llava_next else 0)


def count_image_tokens(processor, image_size: int) -> int:
    """How many image tokens the processor writes for one square image."""
    from PIL import Image

    image = Image.new("RGB", (image_size + 7, image_size + 7), (10, 20, 30))
    out = processor(images=[image], text=[IMAGE_TOKEN], return_tensors="pt")
    image_id = processor.tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    return int((out["input_ids"][0] == image_id).sum())


# EvalAlign's scripts with a spatial_unpad judge: faithfulness passes a list of images (image_newline
# appended), alignment a 4-D tensor (not appended). See evalalign_metric.judge.newline.
EVALALIGN_NEWLINE_RULE = {"faithfulness": True, "alignment": False}


def write_sidecar(dst: Path, *, chat_format: str, pad_to_square: bool, image_newline: dict | None = None,
                  dtype: str | None = None) -> None:
    from evalalign_metric.judge.chat import SIDECAR_NAME
    from evalalign_metric.judge.newline import SIDECAR_KEY

    payload = {"format_version": 1, "chat_format": chat_format, "protocol": "evalalign",
               "pad_to_square": pad_to_square}
    if image_newline is not None:
        payload[SIDECAR_KEY] = dict(image_newline)
    if dtype is not None:
        payload["dtype"] = dtype  # what the judge was trained and run in: its default on a GPU
    (dst / SIDECAR_NAME).write_text(json.dumps(payload, indent=1) + "\n")
