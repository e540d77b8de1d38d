"""Tiny judges built offline from configs, for tests, benchmarks and the demo.

Nothing here downloads anything: the tokenizer is trained in-process with the ``tokenizers`` library on
the protocol texts, the models are random LLaVA / LLaVA-NeXT networks a few hundred kB in size (and, through
:mod:`evalalign_metric.testing_families`, Qwen2.5-VL, Qwen3-VL and Idefics3 ones). Two
tokenizer flavours reproduce the tokenisation trap of DESIGN 2:

- ``"llama"`` (SentencePiece-like, digits split): ``" 2"`` is ``"▁"`` + ``"2"`` and ``" -1"`` may be
  ``"▁-"`` + ``"1"``, so an option is several tokens;
- ``"bytelevel"`` (GPT-2 / Qwen-like): ``" 2"`` is one token ``"Ġ2"``.

Example:
    >>> import tempfile
    >>> from evalalign_metric.testing import build_tiny_judge
    >>> path = build_tiny_judge(tempfile.mkdtemp(), tokenizer="llama", seed=0)
    >>> sorted(p.name for p in path.iterdir())[:2]
    ['chat_template.jinja', 'config.json']
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from evalalign_metric.judge.chat import CHAT_FORMATS, SIDECAR_NAME

IMAGE_TOKEN = "<image>"
SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>", IMAGE_TOKEN]
CHATML_TOKENS = ["<|im_start|>", "<|im_end|>"]
TOKENIZER_FLAVOURS = ("llama", "bytelevel")
# Tokens a "confident" tiny judge may answer with (everything an option of a shipped protocol needs).
ANSWER_TEXTS = ["-1", "0", "1", "2", "3", "4", "Yes", "No", *"ABCDEFGHIJKLMNO"]


def _training_corpus() -> list[str]:
    from evalalign_metric.official import alignment_prompts
    from evalalign_metric.protocol import available_protocols, load_protocol

    texts = []
    for name in available_protocols():
        protocol = load_protocol(name)
        for aspect in protocol.aspects:
            texts.append(aspect.template)
            texts.extend(f"ASSISTANT: {o.label}" for o in aspect.options)
            texts.extend(f"assistant\n{o.label}" for o in aspect.options)
    for fmt in CHAT_FORMATS.values():
        texts.append(fmt.render("question"))
    for entry in alignment_prompts():
        texts.append(entry["prompt"])
        texts.extend(entry["question_info"].values())
    texts.extend(f"the answer is {d} ; -{d} ; {d}{d}" for d in range(10))
    # Enough " d" pairs that a byte-level BPE learns " 0" .. " 9" as single tokens.
    texts.extend(" ".join(str(d) for _ in range(20)) + " " for d in range(10))
    return texts * 3


def build_tiny_tokenizer(flavour: str = "llama", *, chatml: bool = False, vocab_size: int = 600):
    """A ``PreTrainedTokenizerFast`` trained in-process on the protocol texts.

    Example:
        >>> tok = build_tiny_tokenizer("llama")
        >>> tok.convert_ids_to_tokens(tok(" 2", add_special_tokens=False)["input_ids"])
        ['▁', '2']
        >>> tok = build_tiny_tokenizer("bytelevel")
        >>> tok.convert_ids_to_tokens(tok(" 2", add_special_tokens=False)["input_ids"])
        ['Ġ2']
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if flavour not in TOKENIZER_FLAVOURS:
        raise ValueError(f"flavour={flavour!r}; expected one of {TOKENIZER_FLAVOURS}")
    specials = SPECIAL_TOKENS + (CHATML_TOKENS if chatml else [])
    if flavour == "llama":
        tok = Tokenizer(models.BPE(unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first"),
             pre_tokenizers.Digits(individual_digits=True)]
        )
        tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
        alphabet = []
    else:
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        alphabet = pre_tokenizers.ByteLevel.alphabet()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, initial_alphabet=alphabet,
                                  show_progress=False)
    tok.train_from_iterator(_training_corpus(), trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    extra = [IMAGE_TOKEN] + (CHATML_TOKENS if chatml else [])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
        extra_special_tokens=extra,
    )
    return fast


def _confident_lm_head(model, tokenizer, scale: float, seed: int) -> None:
    """Make the LM answer with option tokens, confidently: zero every other output row and give the answer
    tokens large random rows, so greedy decoding lands on an option with a peaked distribution."""
    answer_ids = set()
    for text in ANSWER_TEXTS:
        for prefix in (" ", "\n", ""):
            answer_ids.update(tokenizer(prefix + text, add_special_tokens=False)["input_ids"])
    answer_ids.add(tokenizer.eos_token_id)
    head = model.get_output_embeddings().weight
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        new = torch.zeros_like(head)
        for i in sorted(answer_ids):
            new[i] = torch.randn(head.shape[1], generator=gen) * scale
        head.copy_(new)


def build_tiny_judge(
    path: str | Path,
    *,
    tokenizer: str = "llama",
    architecture: str = "llava",
    chat_format: str = "vicuna_v1",
    image_size: int = 16,
    patch_size: int = 4,
    hidden_size: int = 32,
    num_layers: int = 2,
    seed: int = 0,
    confident: bool = False,
    confident_scale: float = 3.0,
    write_sidecar: bool = True,
) -> Path:
    """Build a random tiny judge, save it with ``save_pretrained`` and return its folder.

    Args:
        path: folder to create (must not hold another checkpoint).
        tokenizer: ``"llama"`` (digits split, multi-token options) or ``"bytelevel"``.
        architecture: ``"llava"`` (``LlavaForConditionalGeneration``), ``"llava_next"``, or a family of
            :mod:`evalalign_metric.testing_families` (``"qwen2_5_vl"``, ``"qwen3_vl"``, ``"idefics3"``: a
            byte-level tokenizer and the family's chat template, which the judge is asked through; ``tokenizer``
            and ``chat_format`` do not apply).
        chat_format: recorded in the ``evalalign_judge.json`` sidecar; ``"chatml"`` adds ChatML tokens.
        confident: make the output head answer with option tokens only, with peaked probabilities.
        write_sidecar: write ``evalalign_judge.json`` (omit it to test detection from the tokenizer).
    """
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaNextConfig,
        LlavaNextForConditionalGeneration,
        LlavaNextProcessor,
        LlavaProcessor,
    )
    from transformers.models.llava.image_processing_pil_llava import LlavaImageProcessorPil

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    from evalalign_metric.testing_families import ARCHITECTURES, build_family_judge

    if architecture in ARCHITECTURES:
        model, tok, processor = build_family_judge(path, architecture, hidden_size=hidden_size,
                                                   num_layers=num_layers, seed=seed, image_size=image_size,
                                                   patch_size=patch_size)
        return _save(path, model, tok, processor, confident=confident, scale=confident_scale, seed=seed,
                     sidecar={"format_version": 1, "chat_format": "chat_template", "protocol": "evalalign",
                              "pad_to_square": False} if write_sidecar else None)
    torch.manual_seed(seed)
    tok = build_tiny_tokenizer(tokenizer, chatml=chat_format == "chatml")
    vision = CLIPVisionConfig(
        hidden_size=hidden_size, intermediate_size=2 * hidden_size, num_hidden_layers=2, num_attention_heads=4,
        image_size=image_size, patch_size=patch_size, projection_dim=hidden_size,
    )
    text = LlamaConfig(
        vocab_size=len(tok), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=2048, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    image_token_id = tok.convert_tokens_to_ids(IMAGE_TOKEN)
    common = dict(vision_config=vision, text_config=text, image_token_id=image_token_id,
                  vision_feature_select_strategy="default", vision_feature_layer=-2)
    image_processor = LlavaImageProcessorPil(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size},
        do_pad=False,
    )
    template = CHAT_FORMATS[chat_format].jinja_template()
    if architecture == "llava":
        config = LlavaConfig(**common)
        model = LlavaForConditionalGeneration(config)
        processor = LlavaProcessor(image_processor=image_processor, tokenizer=tok, patch_size=patch_size,
                                   vision_feature_select_strategy="default", chat_template=template,
                                   num_additional_image_tokens=1)
    elif architecture == "llava_next":
        from transformers.models.llava_next.image_processing_pil_llava_next import LlavaNextImageProcessorPil

        pinpoints = [[image_size, image_size]]
        config = LlavaNextConfig(**common, image_grid_pinpoints=pinpoints)
        model = LlavaNextForConditionalGeneration(config)
        next_processor = LlavaNextImageProcessorPil(
            size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size},
            image_grid_pinpoints=pinpoints, do_pad=True,
        )
        processor = LlavaNextProcessor(image_processor=next_processor, tokenizer=tok, patch_size=patch_size,
                                       vision_feature_select_strategy="default", chat_template=template,
                                       num_additional_image_tokens=1)
    else:
        raise ValueError(f"architecture={architecture!r}; expected 'llava', 'llava_next' or one of {ARCHITECTURES}")
    model.config.pad_token_id = tok.pad_token_id
    return _save(path, model, tok, processor, confident=confident, scale=confident_scale, seed=seed,
                 sidecar={"format_version": 1, "chat_format": chat_format, "protocol": "evalalign",
                          "pad_to_square": True} if write_sidecar else None)


def _save(path: Path, model, tok, processor, *, confident: bool, scale: float, seed: int, sidecar: dict | None
          ) -> Path:
    if confident:
        _confident_lm_head(model, tok, scale, seed)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    model.save_pretrained(path)
    processor.save_pretrained(path)
    if sidecar is not None:
        (path / SIDECAR_NAME).write_text(json.dumps(sidecar, indent=1))
    return path
