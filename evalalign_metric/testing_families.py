"""Tiny random judges of the families beyond LLaVA (Qwen2-VL, Qwen2.5-VL, Qwen3-VL, Idefics3/SmolVLM), built offline.

Used by :func:`evalalign_metric.testing.build_tiny_judge` (``architecture="qwen2_5_vl"``, ``"qwen3_vl"``,
``"idefics3"``). Each is saved as a standard checkpoint folder of its family: weights, the image processor's
``preprocessor_config.json``, the tokenizer and a chat template shaped like the family's instruct models'
(Qwen: ChatML with a default system prompt and ``<|vision_start|><|image_pad|><|vision_end|>`` for an image;
SmolVLM: ``User:<image>TEXT<end_of_utterance>`` turns). The tokenizer is trained in-process on the protocol
texts (byte-level BPE, as Qwen's and SmolVLM's are), so the option labels tokenise as they would there.

Example:
    >>> import tempfile
    >>> from evalalign_metric.testing import build_tiny_judge
    >>> path = build_tiny_judge(tempfile.mkdtemp(), architecture="qwen2_5_vl")
    >>> import json; json.loads((path / "config.json").read_text())["model_type"]
    'qwen2_5_vl'
"""

from __future__ import annotations

from pathlib import Path

import torch

QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                 "<|image_pad|>", "<|video_pad|>"]
IDEFICS3_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<end_of_utterance>", "<fake_token_around_image>", "<image>",
                     "<global-img>"] + [f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)]

# Shaped like Qwen2-VL / Qwen2.5-VL-Instruct's template: a default system turn, images as vision markers.
QWEN_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}{{ '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}{{ '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
# Shaped like SmolVLM-Instruct's template: "User:<image>TEXT<end_of_utterance>\nAssistant: ANSWER".
IDEFICS3_TEMPLATE = (
    "{{ '<|im_start|>' }}{% for message in messages %}{{ message['role'] | capitalize }}"
    "{% if message['content'] is not string and message['content'][0]['type'] == 'image' %}{{ ':' }}"
    "{% else %}{{ ': ' }}{% endif %}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'text' %}{{ part['text'] }}{% elif part['type'] == 'image' %}{{ '<image>' }}{% endif %}"
    "{% endfor %}{% endif %}{{ '<end_of_utterance>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
ARCHITECTURES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl", "idefics3")


def build_family_tokenizer(specials: list[str], *, eos: str, pad: str, vocab_size: int = 700):
    """A byte-level BPE ``PreTrainedTokenizerFast`` trained on the protocol texts, with ``specials``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from evalalign_metric.testing import _training_corpus

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_training_corpus() + ["User: Assistant: system user assistant You are a helpful"],
                            trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=eos, pad_token=pad,
                                   extra_special_tokens=[s for s in specials if s not in (eos, pad)])


def _qwen(path: Path, architecture: str, *, hidden_size: int, num_layers: int, patch_size: int,
          min_pixels: int, max_pixels: int):
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    tok = build_family_tokenizer(QWEN_SPECIALS, eos="<|im_end|>", pad="<|endoftext|>")
    ids = {t: tok.convert_tokens_to_ids(t) for t in QWEN_SPECIALS}
    heads = 4
    half = hidden_size // heads // 2  # rotary frequencies per head, split over (t, h, w)
    section = [half - 2 * (half // 4), half // 4, half // 4]
    text = dict(vocab_size=len(tok), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                num_hidden_layers=num_layers, num_attention_heads=heads, num_key_value_heads=2,
                max_position_embeddings=4096, pad_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"],
                rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": section})
    tokens = dict(image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
                  vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    if architecture == "qwen2_vl":
        from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

        vision = dict(depth=2, embed_dim=hidden_size, hidden_size=hidden_size, mlp_ratio=2, num_heads=heads,
                      patch_size=patch_size, spatial_merge_size=2, temporal_patch_size=2)
        model = Qwen2VLForConditionalGeneration(Qwen2VLConfig(text_config=text, vision_config=vision, **tokens))
    elif architecture == "qwen2_5_vl":
        from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

        vision = dict(depth=2, hidden_size=hidden_size, intermediate_size=2 * hidden_size, num_heads=heads,
                      out_hidden_size=hidden_size, patch_size=patch_size, spatial_merge_size=2,
                      temporal_patch_size=2, window_size=4 * patch_size, fullatt_block_indexes=[1])
        config = Qwen2_5_VLConfig(text_config=text, vision_config=vision, **tokens)
        model = Qwen2_5_VLForConditionalGeneration(config)
    else:
        from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

        text["rope_parameters"]["mrope_interleaved"] = True
        text["head_dim"] = hidden_size // heads
        vision = dict(depth=2, hidden_size=hidden_size, intermediate_size=2 * hidden_size, num_heads=heads,
                      out_hidden_size=hidden_size, patch_size=patch_size, spatial_merge_size=2,
                      temporal_patch_size=2, num_position_embeddings=64, deepstack_visual_indexes=[0])
        model = Qwen3VLForConditionalGeneration(Qwen3VLConfig(text_config=text, vision_config=vision, **tokens))
    image_processor = Qwen2VLImageProcessorPil(
        size={"shortest_edge": min_pixels, "longest_edge": max_pixels}, patch_size=patch_size, merge_size=2,
        temporal_patch_size=2)
    return model, tok, image_processor, QWEN_TEMPLATE


def _idefics3(path: Path, *, hidden_size: int, num_layers: int, patch_size: int, image_size: int):
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3Processor,
        Idefics3VisionConfig,
        LlamaConfig,
    )
    from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

    tok = build_family_tokenizer(IDEFICS3_SPECIALS, eos="<end_of_utterance>", pad="<|endoftext|>")
    scale = 2
    vision = Idefics3VisionConfig(hidden_size=hidden_size, intermediate_size=2 * hidden_size, num_hidden_layers=2,
                                  num_attention_heads=4, image_size=image_size, patch_size=patch_size)
    text = LlamaConfig(vocab_size=len(tok), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                       num_hidden_layers=num_layers, num_attention_heads=4, num_key_value_heads=2,
                       max_position_embeddings=4096, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    config = Idefics3Config(vision_config=vision, text_config=text, scale_factor=scale,
                            image_token_id=tok.convert_tokens_to_ids("<image>"), pad_token_id=tok.pad_token_id)
    model = Idefics3ForConditionalGeneration(config)
    image_processor = Idefics3ImageProcessorPil(
        size={"longest_edge": 2 * image_size}, max_image_size={"longest_edge": image_size}, do_image_splitting=True)
    seq_len = (image_size // patch_size) ** 2 // scale ** 2
    processor = Idefics3Processor(image_processor=image_processor, tokenizer=tok, image_seq_len=seq_len,
                                  chat_template=IDEFICS3_TEMPLATE)
    return model, tok, processor


def build_family_judge(path: Path, architecture: str, *, hidden_size: int, num_layers: int, seed: int,
                       image_size: int, patch_size: int, min_pixels: int | None = None,
                       max_pixels: int | None = None):
    """Build, save and return ``(model, tokenizer)`` of a tiny judge of ``architecture`` in ``path``."""
    from evalalign_metric.judge.families import ProcessorParts

    torch.manual_seed(seed)
    if architecture in ("qwen2_vl", "qwen2_5_vl", "qwen3_vl"):
        unit = patch_size * 2
        model, tok, image_processor, template = _qwen(
            path, architecture, hidden_size=hidden_size, num_layers=num_layers, patch_size=patch_size,
            min_pixels=min_pixels or (2 * unit) ** 2, max_pixels=max_pixels or (6 * unit) ** 2)
        processor = ProcessorParts(image_processor, tok, template)
    elif architecture == "idefics3":
        model, tok, processor = _idefics3(path, hidden_size=hidden_size, num_layers=num_layers,
                                          patch_size=patch_size, image_size=image_size)
    else:
        raise ValueError(f"architecture={architecture!r}; expected one of {ARCHITECTURES}")
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    return model, tok, processor
