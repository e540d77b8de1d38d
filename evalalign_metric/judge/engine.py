"""Probability engines: from (image, encoded questions) work items to each option's log-probability.

:class:`PlainEngine` runs one teacher-forced forward per (image, question) row, packing up to
``batch_size`` rows into one right-padded batch; it is the reference that faster engines (a shared
image prefix, :mod:`~evalalign_metric.judge.prefix_engine`) must match. An engine only needs
``run(model, items, *, image_token_id, pad_token_id, family=None)``; the family (default: the registered
family of the model's ``model_type``) supplies the extra inputs a forward needs (Qwen's
``mm_token_type_ids``) and how pixel inputs of several images batch.

Example:
    >>> import torch
    >>> expand_image_tokens((1, 7, 2), image_token_id=7, count=3)
    [1, 7, 7, 7, 2]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol as TypingProtocol, Sequence

import torch

from evalalign_metric.errors import InputError
from evalalign_metric.judge.families import JudgeFamily, family_for_model
from evalalign_metric.judge.options import EncodedQuestion
from evalalign_metric.judge.placement import input_device


@dataclass
class ImageWork:
    """One image's inputs and the questions asked of it.

    ``prompts[q]`` are question ``q``'s full prompt ids as the family made them (the processor's text for
    the image in place); when absent, each question's single image token is repeated ``n_image_tokens``
    times (the LLaVA layout).
    """

    pixels: dict[str, torch.Tensor]
    n_image_tokens: int
    questions: list[EncodedQuestion]
    prompts: list[list[int]] | None = None

    def prompt(self, q: int, image_token_id: int) -> list[int]:
        if self.prompts is not None:
            return list(self.prompts[q])
        return expand_image_tokens(self.questions[q].prompt_ids, image_token_id, self.n_image_tokens)


@dataclass
class _Row:
    item: int
    question: int
    ids: list[int]
    read_start: int
    options: list[int] = field(default_factory=list)


class Engine(TypingProtocol):
    def run(self, model, items: Sequence[ImageWork], *, image_token_id: int, pad_token_id: int,
            family: JudgeFamily | None = None) -> list[list[torch.Tensor]]:
        """For each item and each of its questions, a float32 CPU tensor of the options' log-probabilities."""


def expand_image_tokens(ids: Sequence[int], image_token_id: int, count: int) -> list[int]:
    """Replace the single image token of ``ids`` by ``count`` copies (what the processor does to text)."""
    positions = [i for i, t in enumerate(ids) if t == image_token_id]
    if len(positions) != 1:
        raise InputError(f"a question must contain exactly one image token; found {len(positions)}")
    p = positions[0]
    return list(ids[:p]) + [image_token_id] * count + list(ids[p + 1:])


def _model_device(model) -> torch.device:
    return input_device(model)


class PlainEngine:
    """One forward per (image, question), up to ``batch_size`` such rows per call, right-padded."""

    def __init__(self, batch_size: int = 8):
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1; got {batch_size}")
        self.batch_size = batch_size

    def _rows(self, items: Sequence[ImageWork], image_token_id: int) -> list[_Row]:
        rows = []
        for i, item in enumerate(items):
            for q, question in enumerate(item.questions):
                prompt = item.prompt(q, image_token_id)
                for prefix, options in question.rows():
                    rows.append(_Row(i, q, prompt + list(prefix), len(prompt) - 1, list(options)))
        return rows

    @torch.inference_mode()
    def run(self, model, items, *, image_token_id, pad_token_id, family=None):
        family = family or family_for_model(model)
        results: list[list[torch.Tensor | None]] = [[None] * len(it.questions) for it in items]
        partial: dict[tuple[int, int], torch.Tensor] = {}
        rows = self._rows(items, image_token_id)
        device = _model_device(model)
        for start in range(0, len(rows), self.batch_size):
            chunk = rows[start:start + self.batch_size]
            longest = max(len(r.ids) for r in chunk)
            n_read = max(len(r.ids) - r.read_start for r in chunk)
            input_ids = torch.full((len(chunk), longest), pad_token_id, dtype=torch.long)
            attention = torch.zeros((len(chunk), longest), dtype=torch.long)
            positions = torch.zeros((len(chunk), n_read), dtype=torch.long)
            for b, r in enumerate(chunk):
                input_ids[b, : len(r.ids)] = torch.tensor(r.ids)
                attention[b, : len(r.ids)] = 1
                last = len(r.ids) - 1
                positions[b] = torch.clamp(torch.arange(r.read_start, r.read_start + n_read), max=last)
            pixels = family.collate_pixels([items[r.item].pixels for r in chunk])
            pixels = {k: v.to(device=device, dtype=model.dtype if v.is_floating_point() else v.dtype)
                      for k, v in pixels.items()}
            extra = {k: v.to(device) for k, v in family.row_inputs(input_ids, image_token_id).items()}
            out = model(input_ids=input_ids.to(device), attention_mask=attention.to(device),
                        logits_to_keep=positions.to(device), **pixels, **extra)
            log_probs = torch.log_softmax(out.logits.float(), dim=-1).cpu()
            for b, r in enumerate(chunk):
                question = items[r.item].questions[r.question]
                key = (r.item, r.question)
                if key not in partial:
                    partial[key] = torch.full((len(question.labels),), float("nan"))
                for o in r.options:
                    ids = torch.tensor(question.option_ids[o])
                    steps = torch.arange(len(ids))
                    partial[key][o] = log_probs[b, steps, ids].sum()
        for (i, q), values in partial.items():
            results[i][q] = values
        return results  # type: ignore[return-value]
