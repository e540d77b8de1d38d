"""Model inputs for training: token ids with the loss on the answer only, batches, and the loss itself.

A row is the judge's prompt for one question, exactly as scoring tokenises it (the judge's chat format and
:func:`~evalalign_metric.judge.options.encode_question`), followed by the answer option's tokens and the
format's end-of-answer suffix. Labels are ``-100`` (ignored) on the system text, the question and every
image token: only the answer tokens are learned.

A batch holds a few images and all their questions; :class:`AnswerLoss` runs the vision tower once per
image and reuses its features for every question about it (for LLaVA; other families, e.g. Qwen-VL with its
3-D positions or Idefics3 with its tiles, run one full forward per row with the row's image and the
family's extra inputs, which gives the same loss). With ``pack=True`` it also runs the language model on
each image's shared prefix (system text and image tokens) once: the image's questions follow it in one
sequence, each seeing the prefix and itself only (:func:`pack_by_image`), which gives the same loss with
several times fewer tokens when an image has several questions.

Example:
    >>> import tempfile
    >>> from evalalign_metric.judge import load_judge
    >>> from evalalign_metric.testing import build_tiny_judge
    >>> from evalalign_metric.training.targets import Target
    >>> judge = load_judge(build_tiny_judge(tempfile.mkdtemp()), cache=False)
    >>> ids, labels = TargetEncoder(judge).encode(Target("<image>\\nIs it red?", ("0", "1"), "1", "a/b"))
    >>> judge.tokenizer.convert_ids_to_tokens([t for t in labels if t != IGNORE])
    ['▁', '1', '</s>']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from evalalign_metric.errors import InputError
from evalalign_metric.judge.families import JudgeFamily
from evalalign_metric.training.targets import Target

IGNORE = -100


class TargetEncoder:
    """Token ids and masked labels for targets, through a :class:`~evalalign_metric.judge.Judge`'s own
    question encoding (cached per question)."""

    def __init__(self, judge, *, train_on_suffix: bool = True):
        self.judge = judge
        self.train_on_suffix = train_on_suffix
        self._suffix: dict[tuple[str, str], tuple[int, ...]] = {}

    def _suffix_ids(self, prompt_text: str, answer_ids: tuple[int, ...], label: str) -> tuple[int, ...]:
        """The end-of-answer tokens after ``label`` (``</s>`` for Vicuna, ``<|im_end|>`` for ChatML)."""
        fmt = self.judge.chat_format
        key = (prompt_text, label)
        if key not in self._suffix:
            tok = self.judge.tokenizer
            base = tok(prompt_text + fmt.answer_prefix + label, add_special_tokens=True)["input_ids"]
            full = tok(prompt_text + fmt.answer_prefix + label + fmt.answer_suffix,
                       add_special_tokens=True)["input_ids"]
            tail = tuple(full[len(base):]) if full[: len(base)] == base and len(full) > len(base) else ()
            if not tail and tok.eos_token_id is not None:
                tail = (tok.eos_token_id,)
            self._suffix[key] = tail
        return self._suffix[key]

    def encode(self, target: Target) -> tuple[list[int], list[int]]:
        """``(input_ids, labels)`` with ONE image token (expanded per image at collation)."""
        if target.answer not in target.labels:
            raise InputError(f"answer {target.answer!r} is not one of the options {list(target.labels)}")
        encoded = self.judge.encode(target.question, target.labels)
        answer = encoded.option_ids[target.labels.index(target.answer)]
        suffix = self._suffix_ids(encoded.text, answer, target.answer) if self.train_on_suffix else ()
        ids = list(encoded.prompt_ids) + list(answer) + list(suffix)
        labels = [IGNORE] * len(encoded.prompt_ids) + list(answer) + list(suffix)
        return ids, labels


@dataclass
class Batch:
    """Images (their processed pixels) and rows (questions), each row pointing at its image.

    ``row_pixels`` holds each row's image inputs batched row by row and ``row_inputs`` the family's extra
    inputs for the rows (Qwen's ``mm_token_type_ids``), for families trained with one forward per row.
    """

    pixels: dict[str, torch.Tensor]
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    row_image: torch.Tensor
    n_rows: int
    row_pixels: dict[str, torch.Tensor] | None = None
    row_inputs: dict[str, torch.Tensor] | None = None

    def to(self, device) -> "Batch":
        def move(d):
            return None if d is None else {k: v.to(device) for k, v in d.items()}

        return Batch(move(self.pixels), self.input_ids.to(device), self.attention_mask.to(device),
                     self.labels.to(device), self.row_image.to(device), self.n_rows, move(self.row_pixels),
                     move(self.row_inputs))

    @property
    def n_answer_tokens(self) -> int:
        return int((self.labels[:, 1:] != IGNORE).sum())


def collate(images: Sequence[tuple[dict[str, torch.Tensor], int | Sequence[int]]],
            rows: Sequence[tuple[int, list[int], list[int]]], *, image_token_id: int, pad_token_id: int,
            family: JudgeFamily | None = None) -> Batch:
    """Right-padded batch from processed images ``(pixels, image token ids)`` and rows
    ``(image index, ids, labels)``: each row's image token is replaced by its image's token ids (the ids of
    the processor's text for the image; an int ``n`` stands for ``n`` image tokens, the LLaVA layout). With a
    ``family`` that does not share vision features in training, the batch also carries per-row pixels and
    extra inputs."""
    expanded = []
    for image, ids, labels in rows:
        span = images[image][1]
        span = [image_token_id] * span if isinstance(span, int) else list(span)
        if ids.count(image_token_id) != 1:
            raise InputError(f"a training row must contain exactly one image token; found {ids.count(image_token_id)}")
        position = ids.index(image_token_id)
        expanded.append((image, ids[:position] + span + ids[position + 1:],
                         labels[:position] + [IGNORE] * len(span) + labels[position + 1:]))
    longest = max(len(ids) for _, ids, _ in expanded)
    input_ids = torch.full((len(rows), longest), pad_token_id, dtype=torch.long)
    labels = torch.full((len(rows), longest), IGNORE, dtype=torch.long)
    attention = torch.zeros((len(rows), longest), dtype=torch.long)
    for r, (_, ids, labs) in enumerate(expanded):
        input_ids[r, : len(ids)] = torch.tensor(ids)
        labels[r, : len(labs)] = torch.tensor(labs)
        attention[r, : len(ids)] = 1
    family = family or JudgeFamily()
    row_image = torch.tensor([image for image, _, _ in expanded])
    row_pixels = row_inputs = None
    if not family.training_shared_vision:
        row_pixels = family.collate_pixels([images[image][0] for image, _, _ in expanded])
        row_inputs = family.row_inputs(input_ids, image_token_id)
    return Batch(family.collate_pixels([p for p, _ in images]), input_ids, attention, labels, row_image, len(rows),
                 row_pixels, row_inputs)


def base_model(model):
    """The transformers model under a peft wrapper (LoRA layers stay injected in it)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


@dataclass
class Packed:
    """One sequence per image: the shared prefix of its rows once, then each row's remainder.

    ``targets[i, j]`` is the token position ``j`` predicts (``IGNORE`` where nothing is learned),
    ``positions`` the position ids each token had in its own row, ``sees[i, j, k]`` whether ``j`` attends
    to ``k``, ``valid`` which positions hold a token (the rest is padding).
    """

    input_ids: torch.Tensor
    targets: torch.Tensor
    positions: torch.Tensor
    sees: torch.Tensor
    valid: torch.Tensor


def pack_by_image(batch: Batch, *, pad_token_id: int = 0) -> Packed:
    """Pack ``batch`` per image (see :class:`Packed`); the loss over it equals the loss over the rows.

    The prefix stops before the last prompt token of every row, so each position that predicts an answer
    token belongs to one row only.

    Example:
        >>> ids = torch.tensor([[5, 6, 7, 8, 0], [5, 6, 9, 8, 4]])
        >>> labels = torch.tensor([[IGNORE, IGNORE, IGNORE, 8, IGNORE], [IGNORE, IGNORE, IGNORE, 8, 4]])
        >>> batch = Batch({}, ids, (ids > 0).long(), labels, torch.tensor([0, 0]), 2)
        >>> packed = pack_by_image(batch)
        >>> packed.input_ids.tolist(), packed.positions.tolist()
        ([[5, 6, 7, 8, 9, 8, 4]], [[0, 1, 2, 3, 2, 3, 4]])
        >>> packed.targets.tolist()
        [[-100, -100, 8, -100, 8, 4, -100]]
    """
    sequences = []
    for image in range(int(batch.row_image.max()) + 1 if batch.n_rows else 0):
        rows = [r for r in range(batch.n_rows) if int(batch.row_image[r]) == image]
        if not rows:
            continue
        lengths = [int(batch.attention_mask[r].sum()) for r in rows]
        ids = [batch.input_ids[r, :n] for r, n in zip(rows, lengths)]
        labels = [batch.labels[r, :n] for r, n in zip(rows, lengths)]
        first_answer = min(int((lab != IGNORE).nonzero()[0]) if (lab != IGNORE).any() else len(lab) for lab in labels)
        prefix = min(min(lengths), max(first_answer - 1, 0))
        for other in ids[1:]:
            same = (other[:prefix] == ids[0][:prefix]).long()
            prefix = int(same.cumprod(0).sum())
        # token ids, the target each position predicts, position ids, and which segment (0 = prefix)
        parts = [(ids[0][:prefix], labels[0][1:prefix + 1], torch.arange(prefix), 0)]
        for k, (row_ids, row_labels, n) in enumerate(zip(ids, labels, lengths)):
            following = torch.cat([row_labels[prefix + 1:], torch.tensor([IGNORE])])
            parts.append((row_ids[prefix:], following, torch.arange(prefix, n), k + 1))
        sequences.append(parts)
    longest = max(sum(len(p[0]) for p in parts) for parts in sequences)
    n = len(sequences)
    input_ids = torch.full((n, longest), pad_token_id, dtype=torch.long)
    targets = torch.full((n, longest), IGNORE, dtype=torch.long)
    positions = torch.zeros((n, longest), dtype=torch.long)
    segment = torch.full((n, longest), -1, dtype=torch.long)
    for i, parts in enumerate(sequences):
        at = 0
        for tokens, target, pos, seg in parts:
            input_ids[i, at:at + len(tokens)] = tokens
            targets[i, at:at + len(tokens)] = target
            positions[i, at:at + len(tokens)] = pos
            segment[i, at:at + len(tokens)] = seg
            at += len(tokens)
    index = torch.arange(longest)
    causal = index[:, None] >= index[None, :]
    key, query = segment[:, None, :], segment[:, :, None]
    sees = causal & ((key == query) | ((key == 0) & (query > 0)))
    sees |= torch.eye(longest, dtype=torch.bool)  # padding attends to itself only (no empty softmax rows)
    return Packed(input_ids, targets, positions, sees, segment >= 0)


def image_features(model, pixel_values: torch.Tensor) -> torch.Tensor:
    """What a LLaVA model's language model reads for each image: projected vision features,
    ``(images, image tokens, text hidden size)``, selected as the model's config says."""
    config = model.config
    features = model.model.get_image_features(
        pixel_values=pixel_values, vision_feature_layer=config.vision_feature_layer,
        vision_feature_select_strategy=config.vision_feature_select_strategy,
    ).pooler_output
    return torch.stack(list(features))


class AnswerLoss(nn.Module):
    """Summed cross-entropy over answer tokens, and their count (a module, so DDP wraps the whole forward).

    ``shared_vision`` runs the vision tower once per image (LLaVA); otherwise each row gets a full forward
    with its image's pixels. ``pack`` (with shared vision and an attention implementation that takes a
    custom 4-D mask: sdpa, eager) also shares each image's prefix in the language model
    (:func:`pack_by_image`).
    """

    def __init__(self, model, *, image_token_id: int, shared_vision: bool | None = None, pack: bool = False):
        super().__init__()
        self.model = model
        self.image_token_id = image_token_id
        inner = base_model(model)
        if shared_vision is None:
            shared_vision = getattr(inner.config, "model_type", None) == "llava"
        self.shared_vision = shared_vision
        self.pack = pack and shared_vision and _takes_4d_mask(inner)

    def _packed_loss(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        inner = base_model(self.model)
        per_image = image_features(inner, batch.pixels["pixel_values"])
        packed = pack_by_image(batch)
        device = batch.input_ids.device
        ids = packed.input_ids.to(device)
        embeds = inner.get_input_embeddings()(ids)
        is_image = ids == self.image_token_id
        # an image's features once per occurrence of its image (the prefix holds it once for image-first rows)
        copies = is_image.sum(1) // per_image.shape[1]
        features = torch.cat([per_image[i].repeat(int(c), 1) for i, c in enumerate(copies)]).to(embeds.dtype)
        embeds = embeds.masked_scatter(is_image.unsqueeze(-1).expand_as(embeds), features)
        mask = torch.zeros(packed.sees.shape, dtype=embeds.dtype, device=device)
        mask = mask.masked_fill(~packed.sees.to(device), torch.finfo(embeds.dtype).min)[:, None]
        hidden = inner.model.language_model(inputs_embeds=embeds, attention_mask=mask,
                                            position_ids=packed.positions.to(device)).last_hidden_state
        targets = packed.targets.to(device)
        keep = targets != IGNORE
        logits = inner.lm_head(hidden[keep])
        return nn.functional.cross_entropy(logits.float(), targets[keep], reduction="sum"), keep.sum()

    def _hidden_shared(self, batch: Batch) -> torch.Tensor:
        inner = base_model(self.model)
        per_image = image_features(inner, batch.pixels["pixel_values"])
        embeds = inner.get_input_embeddings()(batch.input_ids)
        rows = per_image[batch.row_image].reshape(-1, per_image.shape[-1]).to(embeds.dtype)
        mask = (batch.input_ids == self.image_token_id).unsqueeze(-1).expand_as(embeds)
        embeds = embeds.masked_scatter(mask, rows)
        return inner.model(inputs_embeds=embeds, attention_mask=batch.attention_mask).last_hidden_state

    def _hidden_per_row(self, batch: Batch) -> torch.Tensor:
        inner = base_model(self.model)
        if batch.row_pixels is not None:
            pixels = {**batch.row_pixels, **(batch.row_inputs or {})}
        else:
            pixels = {k: v[batch.row_image] for k, v in batch.pixels.items()}
        return inner.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, **pixels).last_hidden_state

    def forward(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        if self.pack:
            return self._packed_loss(batch)
        hidden = self._hidden_shared(batch) if self.shared_vision else self._hidden_per_row(batch)
        targets = batch.labels[:, 1:]
        keep = targets != IGNORE
        logits = base_model(self.model).lm_head(hidden[:, :-1][keep])
        loss = nn.functional.cross_entropy(logits.float(), targets[keep], reduction="sum")
        return loss, keep.sum()


def _takes_4d_mask(model) -> bool:
    from evalalign_metric.judge.prefix_engine import MASKABLE_ATTENTION

    text = getattr(model.config, "text_config", model.config)
    impl = getattr(text, "_attn_implementation", None) or getattr(model.config, "_attn_implementation", None)
    return impl in MASKABLE_ATTENTION
