"""Tiny checkpoints in the ORIGINAL LLaVA format, built offline, for tests of the converter and the Hub.

The tensors are named as ``LlavaLlamaForCausalLM`` (the original code) names its modules, the tokenizer
is a SentencePiece BPE model trained in-process with split digits and byte fallback (as Llama-2's), and
the CLIP tower is saved as its own folder with ``vision_model.*`` keys, like ``openai/clip-vit-*``.

Example:
    >>> import tempfile, json
    >>> src = build_original_llava(tempfile.mkdtemp(), merge="spatial_unpad")
    >>> config = json.loads((src / "config.json").read_text())
    >>> config["model_type"], config["mm_projector_type"], config["mm_patch_merge_type"]
    ('llava_llama', 'mlp2x_gelu', 'spatial_unpad')
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

CHATML_TOKENS = ["<|im_start|>", "<|im_end|>"]


def _corpus() -> list[str]:
    from evalalign_metric.judge.chat import CHAT_FORMATS
    from evalalign_metric.protocol import load_protocol

    texts = []
    for aspect in load_protocol("evalalign").aspects:
        texts.append(aspect.template)
        texts.extend(f"ASSISTANT: {o.label}" for o in aspect.options)
    texts.extend(fmt.render("question") for fmt in CHAT_FORMATS.values())
    texts.extend(f"the answer is {d} ; -{d} ; {d}{d}" for d in range(10))
    return texts * 2


def train_sentencepiece(folder: Path, *, chatml: bool = False, vocab_size: int = 500, dummy_prefix: bool = True
                        ) -> Path:
    """Train a Llama-like SentencePiece BPE model into ``folder/tokenizer.model`` with its config files.

    ``dummy_prefix=False`` gives a Yi-like model instead: no ``▁`` before the text (``add_dummy_prefix``
    false in the proto), ``<|startoftext|>`` / ``<|endoftext|>``, no beginning-of-sequence token added and no
    ``legacy`` key in ``tokenizer_config.json`` (so transformers 4.3x's slow tokenizer runs in legacy mode).
    """
    import sentencepiece as spm

    folder.mkdir(parents=True, exist_ok=True)
    bos, eos = ("<s>", "</s>") if dummy_prefix else ("<|startoftext|>", "<|endoftext|>")
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_corpus()), model_prefix=str(folder / "tokenizer"), vocab_size=vocab_size,
        model_type="bpe", byte_fallback=True, split_digits=True, character_coverage=1.0, unk_id=0, bos_id=1,
        eos_id=2, pad_id=-1, add_dummy_prefix=dummy_prefix, remove_extra_whitespaces=False,
        normalization_rule_name="identity", user_defined_symbols=CHATML_TOKENS if chatml else [],
        bos_piece=bos, eos_piece=eos, minloglevel=2,
    )
    (folder / "tokenizer.vocab").unlink(missing_ok=True)
    tokenizer_config = {
        "tokenizer_class": "LlamaTokenizer", "add_bos_token": dummy_prefix, "add_eos_token": False,
        "bos_token": bos, "eos_token": eos, "unk_token": "<unk>", "pad_token": "<unk>",
        "model_max_length": 2048, "padding_side": "right",
    }
    if dummy_prefix:
        tokenizer_config["legacy"] = False
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=1))
    special = {"bos_token": bos, "eos_token": eos, "unk_token": "<unk>", "pad_token": "<unk>"}
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=1))
    return folder / "tokenizer.model"


def build_clip_tower(folder: str | Path, *, image_size: int = 16, patch_size: int = 4, hidden_size: int = 32,
                     num_layers: int = 3, seed: int = 0) -> Path:
    """A random CLIP vision tower saved like ``openai/clip-vit-*``: ``vision_model.*`` keys, a ``clip``
    config and a CLIP ``preprocessor_config.json``."""
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModel

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    vision = CLIPVisionConfig(hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                              num_hidden_layers=num_layers, num_attention_heads=4, image_size=image_size,
                              patch_size=patch_size, projection_dim=hidden_size)
    model = CLIPVisionModel(vision)
    state = {"vision_model." + k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    vision_dict = {k: v for k, v in vision.to_dict().items() if k not in ("transformers_version", "architectures")}
    config = {"architectures": ["CLIPModel"], "model_type": "clip", "projection_dim": hidden_size,
              "vision_config": vision_dict, "text_config": {"hidden_size": hidden_size}}
    (folder / "config.json").write_text(json.dumps(config, indent=1))
    preprocessor = {
        "crop_size": image_size, "do_center_crop": True, "do_normalize": True, "do_resize": True,
        "feature_extractor_type": "CLIPFeatureExtractor", "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711], "resample": 3, "size": image_size,
    }
    (folder / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=1))
    return folder


def build_original_llava(
    path: str | Path,
    *,
    merge: str = "flat",
    unfreeze_vision: bool = False,
    chat_format: str = "vicuna_v1",
    tower_name: str | None = None,
    image_size: int = 16,
    patch_size: int = 4,
    hidden_size: int = 32,
    seed: int = 0,
    dtype: torch.dtype = torch.float16,
    dummy_prefix: bool = True,
    aspect_ratio: str = "pad",
) -> Path:
    """Build a tiny original-format checkpoint in ``path/checkpoint`` (tower in ``path/clip-tower``).

    Args:
        merge: ``"flat"`` or ``"spatial_unpad"`` (adds ``model.image_newline``).
        unfreeze_vision: store the (perturbed) vision weights in the checkpoint and set
            ``unfreeze_mm_vision_tower``, so they differ from the tower folder's.
        chat_format: ``"chatml"`` gives the tokenizer ``<|im_start|>`` / ``<|im_end|>``.
        tower_name: what ``mm_vision_tower`` says (default: the tower folder's absolute path).
        dtype: the stored dtype (the official checkpoints are float16).
        dummy_prefix: False builds a Yi-like SentencePiece tokenizer (see :func:`train_sentencepiece`), as
            the 34B judge's.
        aspect_ratio: what ``image_aspect_ratio`` says (``"anyres"`` for a LLaVA-1.6 config).
    """
    from safetensors.torch import save_file
    from transformers import LlamaConfig, LlamaForCausalLM

    root = Path(path)
    ckpt = root / "checkpoint"
    tower_dir = build_clip_tower(root / "clip-tower", image_size=image_size, patch_size=patch_size,
                                 hidden_size=hidden_size, seed=seed + 1)
    train_sentencepiece(ckpt, chatml=chat_format == "chatml", dummy_prefix=dummy_prefix)
    import sentencepiece as spm

    vocab = spm.SentencePieceProcessor(model_file=str(ckpt / "tokenizer.model")).get_piece_size()
    torch.manual_seed(seed)
    text = LlamaConfig(vocab_size=vocab, hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                       num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                       max_position_embeddings=2048, bos_token_id=1, eos_token_id=2, pad_token_id=0,
                       rms_norm_eps=1e-5, initializer_range=0.2)
    state = {k: v for k, v in LlamaForCausalLM(text).state_dict().items()}
    gen = torch.Generator().manual_seed(seed + 7)
    state["model.mm_projector.0.weight"] = torch.randn(hidden_size, hidden_size, generator=gen) * 0.2
    state["model.mm_projector.0.bias"] = torch.randn(hidden_size, generator=gen) * 0.2
    state["model.mm_projector.2.weight"] = torch.randn(hidden_size, hidden_size, generator=gen) * 0.2
    state["model.mm_projector.2.bias"] = torch.randn(hidden_size, generator=gen) * 0.2
    if merge == "spatial_unpad":
        state["model.image_newline"] = torch.randn(hidden_size, generator=gen)
    if unfreeze_vision:
        from safetensors.torch import load_file

        for key, value in load_file(str(tower_dir / "model.safetensors")).items():
            if key.startswith("vision_model."):
                noise = torch.randn(value.shape, generator=gen) * 0.05 if value.is_floating_point() else 0
                state["model.vision_tower.vision_tower." + key] = value + noise
    state = {k: (v.to(dtype) if v.is_floating_point() else v).contiguous() for k, v in state.items()}
    save_file(state, str(ckpt / "model.safetensors"), metadata={"format": "pt"})
    config = {k: v for k, v in text.to_dict().items() if k not in ("transformers_version", "rope_parameters")}
    config.update({
        "architectures": ["LlavaLlamaForCausalLM"], "model_type": "llava_llama", "rope_theta": 10000.0,
        "rope_scaling": None, "torch_dtype": str(dtype).removeprefix("torch."), "mm_hidden_size": hidden_size,
        "mm_projector_type": "mlp2x_gelu", "mm_vision_tower": tower_name or str(tower_dir.resolve()),
        "mm_vision_select_layer": -2, "mm_vision_select_feature": "patch", "mm_patch_merge_type": merge,
        "image_aspect_ratio": aspect_ratio, "mm_use_im_start_end": False, "mm_use_im_patch_token": False,
        "unfreeze_mm_vision_tower": unfreeze_vision, "tune_mm_mlp_adapter": False, "use_mm_proj": True,
        "tokenizer_model_max_length": 2048, "tokenizer_padding_side": "right",
    })
    config.pop("dtype", None)
    (ckpt / "config.json").write_text(json.dumps(config, indent=1))
    return ckpt
