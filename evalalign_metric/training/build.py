"""Build a new, untrained LLaVA-style judge from a small spec, to train from scratch (no download).

The tokenizer is a BPE trained in-process (``tokenizers``) on the questions the judge will be asked. With
``compact_tokens`` the fixed text of the chat format and of every protocol template (the parts between
``<image>``, ``{prompt}`` and the element placeholders) become single added tokens: a small judge then
reads a long EvalAlign question as a handful of tokens, and any other text still tokenises normally.

Vision towers: ``"clip"`` (a CLIP ViT, one token per ``patch_size`` patch) or ``"swin"`` (a Swin
transformer with ``vision_layers`` stages of windowed attention, one token per cell of its last stage:
``(image_size / (4 * 2**(stages-1)))**2`` tokens), the better choice for small shapes on a small budget.

Example:
    >>> import tempfile
    >>> spec = BuildSpec(image_size=32, vision="swin", vision_hidden=16, vision_layers=2, text_hidden=32,
    ...                  vocab_size=400)
    >>> path = build_judge(spec, tempfile.mkdtemp(), corpus=["<image>\\nIs it red? Answer yes or no."])
    >>> from evalalign_metric.judge import load_judge
    >>> judge = load_judge(path, cache=False)
    >>> judge.backend.model_type, judge.prepare_image(__import__("PIL.Image").Image.new("RGB", (32, 32)))[1]
    ('llava', 16)
"""

from __future__ import annotations

import json
import math
import re
import string
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import torch

from evalalign_metric.errors import InputError
from evalalign_metric.judge.chat import SIDECAR_NAME, SIDECAR_VERSION, get_chat_format

IMAGE_TOKEN = "<image>"
SPECIALS = ["<unk>", "<s>", "</s>", "<pad>", IMAGE_TOKEN]
VISION_TYPES = ("clip", "swin")
PROJECTORS = ("mlp", "linear")


@dataclass(frozen=True)
class BuildSpec:
    """Sizes of a judge built from scratch (see the module docstring)."""

    image_size: int = 64
    vision: str = "swin"
    patch_size: int = 4
    vision_hidden: int = 32
    vision_layers: int = 3
    vision_heads: int = 2
    window_size: int = 4
    text_hidden: int = 96
    text_layers: int = 2
    text_heads: int = 4
    text_kv_heads: int = 2
    vocab_size: int = 800
    chat_format: str = "vicuna_v1"
    compact_tokens: bool = True
    keep_cls: bool = False
    # Swin: learned absolute position embeddings. Without them its image tokens are alike wherever a shape is,
    # and left/right must be inferred from token order alone (CLIP's ViT always has them).
    absolute_positions: bool = True
    # which vision hidden states the projector reads, concatenated along channels (LLaVA's
    # ``vision_feature_layer``); an early one keeps the patch positions that deep layers wash out
    feature_layers: tuple[int, ...] = (-1,)
    # "mlp": LLaVA's projector as transformers initialises it (linear, GELU, linear); "linear": the same two
    # layers with the identity activation, built as a norm-keeping (semi-orthogonal) map, which hands the
    # language model every direction of the tower's features, positions included (measured against the GELU
    # MLP in docs/embedded-judge.md, "Positions reach the language model")
    projector: str = "mlp"
    # the language model's rotary base chosen so that one of its frequencies turns once per row of image
    # tokens: a column's tokens then share a phase, and attention can prefer the left or right ones by
    # position, as the slow frequencies let it prefer the top or bottom rows (LLaVA's raster order)
    rope_columns: bool = False
    seed: int = 0

    def __post_init__(self):
        if self.vision not in VISION_TYPES:
            raise InputError(f"model.build.vision must be one of {VISION_TYPES}; got {self.vision!r}")
        for name in ("image_size", "patch_size", "vision_hidden", "vision_layers", "vision_heads", "text_hidden",
                     "text_layers", "text_heads", "text_kv_heads", "vocab_size", "window_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"model.build.{name} must be a positive integer; got {value!r}")
        if self.image_size % self.token_cell:
            raise InputError(f"model.build.image_size ({self.image_size}) must be a multiple of the vision "
                             f"token cell ({self.token_cell} px)")
        layers = self.feature_layers
        if isinstance(layers, list):
            object.__setattr__(self, "feature_layers", layers := tuple(layers))
        if (not isinstance(layers, tuple) or not layers
                or not all(isinstance(i, int) and not isinstance(i, bool) for i in layers)):
            raise InputError(f"model.build.feature_layers must be a non-empty list of layer indices; got {layers!r}")
        for name in ("compact_tokens", "keep_cls", "absolute_positions", "rope_columns"):
            if not isinstance(getattr(self, name), bool):
                raise InputError(f"model.build.{name} must be true or false; got {getattr(self, name)!r}")
        if self.projector not in PROJECTORS:
            raise InputError(f"model.build.projector must be one of {PROJECTORS}; got {self.projector!r}")
        get_chat_format(self.chat_format)

    @property
    def token_cell(self) -> int:
        """Pixels per side of the image region one image token covers."""
        return self.patch_size if self.vision == "clip" else self.patch_size * 2 ** (self.vision_layers - 1)

    @classmethod
    def from_dict(cls, raw: dict, where: str = "model.build") -> "BuildSpec":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise InputError(f"{where} has unknown key(s) {unknown}; known: {sorted(known)}")
        return cls(**raw)


def template_pieces(template: str) -> list[str]:
    """The fixed text of a template, between ``<image>`` and its placeholders.

    Example:
        >>> template_pieces("<image>\\nIs {element} in {prompt}? Yes or No.")
        ['\\nIs ', ' in ', '? Yes or No.']
    """
    return [p for p in re.split(r"<image>|\{elements\}|\{element\}|\{prompt\}", template) if p]


def template_token_pieces(templates: Iterable[str]) -> list[str]:
    """The template pieces (:func:`template_pieces`) of two or more characters that become single tokens,
    each once, in order.

    Example:
        >>> template_token_pieces(["<image>\\nIs {element} in {prompt}?", "<image>\\nIs {element} here?"])
        ['\\nIs ', ' in ', ' here?']
    """
    return list(dict.fromkeys(p for t in templates for p in template_pieces(t) if len(p) > 1))


def compact_pieces(chat_format: str, templates: Iterable[str]) -> list[str]:
    """Texts that become single tokens: the chat format's text around the question, and template pieces."""
    fmt = get_chat_format(chat_format)
    head, _, tail = fmt.render("\0").partition("\0")
    return list(dict.fromkeys([p for p in (head, tail) if p] + template_token_pieces(templates)))


def train_tokenizer(corpus: Sequence[str], *, vocab_size: int, pieces: Sequence[str] = ()):
    """A ``PreTrainedTokenizerFast``: Llama-like BPE (``▁`` for spaces, digits split), every printable ASCII
    character in the alphabet, ``pieces`` added as whole tokens."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first"),
        pre_tokenizers.Digits(individual_digits=True),
    ])
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
    alphabet = sorted(set(string.printable) - set(string.whitespace) | {"▁", "\n"})
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, initial_alphabet=alphabet,
                                  show_progress=False)
    tok.train_from_iterator(list(corpus), trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", tok.token_to_id("<s>"))])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>", extra_special_tokens=[IMAGE_TOKEN])
    if pieces:
        fast.add_tokens([AddedToken(p, normalized=False, lstrip=False, rstrip=False) for p in pieces])
    return fast


def add_phrase_tokens(model, tokenizer, phrases: Iterable[str], like: Mapping[str, str] | None = None) -> list[str]:
    """Make each phrase the tokenizer does not yet hold one added token of an existing judge (``model.base``
    with ``model.phrase_tokens``), growing the model's input and output embeddings to match. A new token
    starts as the mean of the embeddings of the pieces the phrase tokenised into, so the judge first reads it
    roughly as it read the phrase; ``like[phrase]``, an existing text, starts it as the mean of that text's
    tokens instead (a token the judge already checks, e.g. the same relation as another protocol writes
    it). Every other token keeps its row. Returns the phrases added.

    Example:
        >>> import tempfile
        >>> from evalalign_metric.judge import load_judge
        >>> spec = BuildSpec(image_size=32, vision="swin", vision_hidden=16, vision_layers=2, text_hidden=32,
        ...                  vocab_size=300)
        >>> judge = load_judge(build_judge(spec, tempfile.mkdtemp(), corpus=["a red circle left of a square"]),
        ...                    cache=False)
        >>> tok = judge.processor.tokenizer
        >>> add_phrase_tokens(judge.model, tok, ["circle left of", "circle left of"])
        ['circle left of']
        >>> "circle left of" in tok.tokenize("a circle left of a square")
        True
        >>> judge.model.get_input_embeddings().num_embeddings == len(tok)
        True
    """
    from tokenizers import AddedToken

    vocab = tokenizer.get_vocab()
    new = [p for p in dict.fromkeys(phrases) if p not in vocab]
    if not new:
        return []
    like = like or {}
    pieces = [tokenizer(like.get(p, p), add_special_tokens=False)["input_ids"] for p in new]
    tokenizer.add_tokens([AddedToken(p, normalized=False, lstrip=False, rstrip=False) for p in new])
    old_size = model.get_input_embeddings().num_embeddings
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    with torch.no_grad():
        for table in (model.get_input_embeddings(), model.get_output_embeddings()):
            if table is None:
                continue
            for row, ids in enumerate(pieces, start=old_size):
                table.weight[row] = table.weight[ids].mean(dim=0)
    return new


def _configs(spec: BuildSpec, vocab: int, tok):
    from transformers import CLIPVisionConfig, LlamaConfig, SwinConfig

    if spec.vision == "clip":
        vision = CLIPVisionConfig(hidden_size=spec.vision_hidden, intermediate_size=2 * spec.vision_hidden,
                                  num_hidden_layers=spec.vision_layers, num_attention_heads=spec.vision_heads,
                                  image_size=spec.image_size, patch_size=spec.patch_size,
                                  projection_dim=spec.vision_hidden)
        # "full" also hands the LM the CLS token, a learned summary of the whole image
        strategy, extra_tokens = ("full", 1) if spec.keep_cls else ("default", 1)
    else:
        vision = SwinConfig(image_size=spec.image_size, patch_size=spec.patch_size, embed_dim=spec.vision_hidden,
                            depths=[2] * spec.vision_layers,
                            num_heads=[spec.vision_heads * 2 ** i for i in range(spec.vision_layers)],
                            window_size=spec.window_size, mlp_ratio=2.0, drop_path_rate=0.0,
                            use_absolute_embeddings=spec.absolute_positions)
        strategy, extra_tokens = "full", 0
    rope = {"rope_type": "default", "rope_theta": column_rope_theta(spec) if spec.rope_columns else 10000.0}
    text = LlamaConfig(vocab_size=vocab, hidden_size=spec.text_hidden, intermediate_size=2 * spec.text_hidden,
                       num_hidden_layers=spec.text_layers, num_attention_heads=spec.text_heads,
                       num_key_value_heads=spec.text_kv_heads, max_position_embeddings=4096, rope_parameters=rope,
                       pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    return vision, text, strategy, extra_tokens


def column_rope_theta(spec: BuildSpec) -> float:
    """The rotary base whose second frequency, ``theta ** (-2 / head_dim)``, is ``2 pi / W`` radians per token
    for ``W`` image tokens per row: that frequency's phase depends on a token's column only.

    Example:
        >>> spec = BuildSpec(image_size=64, patch_size=4, vision_layers=2, text_hidden=96, text_heads=4)
        >>> theta = column_rope_theta(spec)  # 8 tokens per row, head_dim 24
        >>> round(theta, 2), round(theta ** (-2 / 24) * 8, 6) == round(2 * math.pi, 6)
        (18.15, True)
    """
    per_row = spec.image_size // spec.token_cell
    head_dim = spec.text_hidden // spec.text_heads
    return (per_row / (2 * math.pi)) ** (head_dim / 2)


def sincos_positions(rows: int, cols: int, dim: int) -> torch.Tensor:
    """Fixed 2-D sine-cosine position codes, one row per patch in raster order: a quarter of the channels
    each for sin/cos of the column and of the row, at geometric frequencies (``dim`` a multiple of 4).

    Example:
        >>> codes = sincos_positions(2, 3, 8)
        >>> codes.shape, bool(codes[0, 0] == 0.0), bool(codes[0, 2] == 1.0)  # patch (0, 0): sin 0, cos 0
        (torch.Size([6, 8]), True, True)
    """
    if dim % 4:
        raise InputError(f"model.build.vision_hidden must be a multiple of 4 for position codes; got {dim}")
    quarter = dim // 4
    omega = 1.0 / 100.0 ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    y, x = torch.meshgrid(torch.arange(rows, dtype=torch.float64), torch.arange(cols, dtype=torch.float64),
                          indexing="ij")
    x, y = x.reshape(-1, 1) * omega, y.reshape(-1, 1) * omega
    return torch.cat([x.sin(), x.cos(), y.sin(), y.cos()], dim=1).float()


def orthogonal_projector(projector: torch.nn.Module) -> None:
    """Make LLaVA's projector (``linear_1``, activation, ``linear_2``) a norm-keeping linear map: orthonormal
    rows or columns in ``linear_1`` (whichever its shape allows), the identity in ``linear_2``, zero biases.
    With the identity activation (``projector_hidden_act="linear"``) no direction of the vision features is
    lost when the language model's width is at least the tower's, and none is zeroed when it is smaller.

    Example:
        >>> from transformers.models.llava.modeling_llava import LlavaMultiModalProjector
        >>> from transformers import LlavaConfig
        >>> cfg = LlavaConfig(projector_hidden_act="linear")
        >>> cfg.vision_config.hidden_size, cfg.text_config.hidden_size = 8, 8
        >>> projector = LlavaMultiModalProjector(cfg)
        >>> orthogonal_projector(projector)
        >>> x = torch.randn(3, 8)
        >>> torch.allclose(projector(x).norm(dim=-1), x.norm(dim=-1), atol=1e-5)
        True
    """
    with torch.no_grad():
        torch.nn.init.orthogonal_(projector.linear_1.weight)
        torch.nn.init.eye_(projector.linear_2.weight)
        for layer in (projector.linear_1, projector.linear_2):
            if layer.bias is not None:
                layer.bias.zero_()


ANSWER_REPEATS = 50


def build_judge(spec: BuildSpec, path, *, corpus: Sequence[str], templates: Iterable[str] = (),
                answers: Iterable[str] = (), phrases: Iterable[str] = (), protocol_name: str | None = None) -> Path:
    """Create an untrained judge folder at ``path`` (native checkpoint, processor, sidecar).

    Args:
        spec: sizes.
        corpus: question texts (and anything else) the tokenizer learns its merges from.
        templates: protocol templates whose fixed text becomes single tokens (with ``compact_tokens``).
        answers: option labels; each appears often enough, as an answer, that a word answer (``"circle"``)
            becomes one token rather than one per letter (digits stay split, as in Llama).
        phrases: texts that become single tokens wherever they occur (``model.phrase_tokens``), whether or
            not ``compact_tokens`` is set.
        protocol_name: recorded in the sidecar.
    """
    from transformers import LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor
    from transformers.models.llava.image_processing_pil_llava import LlavaImageProcessorPil

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    fmt = get_chat_format(spec.chat_format)
    pieces = compact_pieces(spec.chat_format, templates) if spec.compact_tokens else []
    pieces += [p for p in dict.fromkeys(phrases) if p not in pieces]
    texts = [fmt.render(q) for q in corpus] or ["<image>"]
    for label in dict.fromkeys(answers):
        texts.extend([fmt.answer_prefix + label + fmt.answer_suffix] * ANSWER_REPEATS)
    tok = train_tokenizer(texts, vocab_size=spec.vocab_size, pieces=pieces)
    vision, text, strategy, extra_tokens = _configs(spec, len(tok), tok)
    torch.manual_seed(spec.seed)
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_id=tok.convert_tokens_to_ids(IMAGE_TOKEN),
                         vision_feature_select_strategy=strategy,
                         projector_hidden_act="gelu" if spec.projector == "mlp" else "linear",
                         vision_feature_layer=spec.feature_layers[0] if len(spec.feature_layers) == 1
                         else list(spec.feature_layers))
    model = LlavaForConditionalGeneration(config)
    embeddings = model.model.vision_tower.embeddings
    if spec.vision == "swin" and embeddings.position_embeddings is not None:
        # transformers starts them at zero; a 2-D sine-cosine start (as MAE's) gives every patch coordinates
        # that attention can compare (which shape is further left) from the first step
        with torch.no_grad():
            embeddings.position_embeddings.copy_(sincos_positions(*embeddings.patch_grid, spec.vision_hidden)[None])
    if spec.projector == "linear":
        orthogonal_projector(model.model.multi_modal_projector)
    model.config.pad_token_id = tok.pad_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    image_processor = LlavaImageProcessorPil(
        size={"shortest_edge": spec.image_size}, crop_size={"height": spec.image_size, "width": spec.image_size},
        do_pad=False)
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tok, patch_size=spec.token_cell,
                               vision_feature_select_strategy=strategy, num_additional_image_tokens=extra_tokens,
                               chat_template=fmt.jinja_template())
    model.save_pretrained(path)
    processor.save_pretrained(path)
    write_sidecar(path, chat_format=spec.chat_format, protocol=protocol_name, extra={"built_from": asdict(spec)})
    return path


def write_sidecar(path, *, chat_format: str, protocol: str | None, extra: dict | None = None) -> Path:
    """Write ``evalalign_judge.json`` (the loader reads ``chat_format``, ``protocol``, ``pad_to_square``)."""
    data = {"format_version": SIDECAR_VERSION, "chat_format": chat_format, "pad_to_square": True}
    if protocol:
        data["protocol"] = protocol
    data.update(extra or {})
    target = Path(path) / SIDECAR_NAME
    target.write_text(json.dumps(data, indent=1) + "\n")
    return target
