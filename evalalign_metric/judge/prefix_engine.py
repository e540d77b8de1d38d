"""A shared-prefix engine: each image is encoded and prefilled once; all its questions read that cache.

All questions about one image start with the same tokens (system text, chat header, the image's hundreds of
tokens, sometimes common question text). :class:`PrefixEngine` runs, per group of images:

1. one forward over the images' shared prefixes (vision tower + LM prefill, right-padded), keeping the
   ``DynamicCache`` and computing no logits;
2. forwards over every image's packed suffixes against that cache: each question's remaining tokens once,
   then each teacher-forcing row's option-prefix tokens as a short branch after its question. A 4-D
   attention mask lets a token see its image's prefix, its own question and (for a branch) its own branch
   only; position ids continue each question where its prompt left off; logits are computed only where an
   option token is read. Suffixes are cut into chunks of whole questions (by default about the prefix's
   length, usually 1-2 chunks), one forward each, the cache cropped back to the prefix in between: the
   dense attention between unrelated questions of one chunk grows with the square of its length.

The cache is never copied per question (all rows of one image share one cache row), so the LM processes
the prefix once and each suffix token once: the floor for teacher forcing. Images are packed into groups
by :func:`evalalign_metric.judge.scheduler.pack_groups`. Option log-probabilities equal those of
:class:`~evalalign_metric.judge.engine.PlainEngine` up to floating-point summation order.

Positions are the family's (:class:`~evalalign_metric.judge.families.JudgeFamily`): LLaVA counts tokens;
Qwen-VL's 3-D M-RoPE positions come from the model's own ``get_rope_index`` over the prefix, and suffix
tokens continue at their index plus the prefix's rope delta on all three axes.

When the prefix cannot be shared (a family that puts the question before the image, an attention
implementation that cannot take a custom 4-D mask, a sliding-window LM shorter than the work), the engine
falls back to :class:`PlainEngine` and warns once: it is never silently wrong.

Example:
    >>> import tempfile
    >>> from PIL import Image
    >>> from evalalign_metric.testing import build_tiny_judge
    >>> from evalalign_metric.judge import load_judge
    >>> judge = load_judge(build_tiny_judge(tempfile.mkdtemp()), engine=make_engine("prefix", batch_size=4))
    >>> asked = [("<image>\\nIs it red? Answer:", ("0", "1")), ("<image>\\nIs it big? Answer:", ("0", "1"))]
    >>> answers = judge.answer([Image.new("RGB", (20, 12), "red")], [asked])
    >>> [d.labels for d in answers[0]]
    [('0', '1'), ('0', '1')]
    >>> stats = judge.engine.last_stats
    >>> stats.vision_passes, stats.lm_tokens == stats.floor_tokens
    (1, True)
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Sequence

import torch

from evalalign_metric.errors import InputError
from evalalign_metric.judge.engine import ImageWork, PlainEngine
from evalalign_metric.judge.families import FAMILIES, JudgeFamily, family_for_model
from evalalign_metric.judge.scheduler import pack_groups
from evalalign_metric.judge.placement import input_device
from evalalign_metric.kv_cache import cache_keyword, returned_cache

# Attention implementations known to honour a custom additive 4-D mask together with a DynamicCache.
MASKABLE_ATTENTION = ("sdpa", "eager")


@dataclass
class EngineStats:
    """What the last :meth:`PrefixEngine.run` processed (counted over the images it ran itself).

    ``lm_tokens`` counts padded tokens fed to the language model; ``floor_tokens`` the tokens it cannot
    avoid (each prefix once, each question's suffix once, each option-prefix branch once).
    """

    images: int = 0
    groups: int = 0
    vision_passes: int = 0
    lm_tokens: int = 0
    floor_tokens: int = 0
    fallback_images: int = 0


@dataclass
class _Piece:
    """One question's part of an image's suffix: its prompt tokens after the shared prefix, then one short
    branch per teacher-forcing row (the row's option-prefix tokens), each branch seeing only its question."""

    ids: list[int] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    segment: list[int] = field(default_factory=list)  # local ids: 0 = the question, 1.. = its branches
    reads: list[int] = field(default_factory=list)  # indices into ``ids`` whose logits are kept
    # (index into ``reads``, token id, option index): log P(token) read there adds to that option.
    targets: list[tuple[int, int, int]] = field(default_factory=list)
    n_options: int = 0


@dataclass
class _Layout:
    """One image's work: the shared prefix and one piece per question."""

    prefix: list[int]
    pieces: list[_Piece]

    @property
    def suffix_tokens(self) -> int:
        return sum(len(p.ids) for p in self.pieces)


@dataclass
class _Chunk:
    """Pieces of one image packed into one row of a suffix forward."""

    ids: list[int] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    segment: list[int] = field(default_factory=list)
    parent: list[int] = field(default_factory=list)
    reads: list[int] = field(default_factory=list)
    targets: list[tuple[int, int, int]] = field(default_factory=list)  # (read column, token, output slot)


def shared_prefix_length(prompts: Sequence[Sequence[int]]) -> int:
    """Length of the prefix common to all ``prompts``, leaving at least one token of each as its suffix
    (the logits that predict an answer come from a prompt's last token, which must be in the suffix).

    Example:
        >>> shared_prefix_length([[1, 2, 3, 4], [1, 2, 5]]), shared_prefix_length([[1, 2, 3]])
        (2, 2)
    """
    shortest = min(len(p) for p in prompts)
    table = torch.tensor([list(p[:shortest]) for p in prompts])
    same = (table == table[0]).all(dim=0).long()
    return min(int(same.cumprod(0).sum()), shortest - 1)


def _piece(question, prompt: list[int], start: int) -> _Piece:
    tail = prompt[start:]
    piece = _Piece(ids=list(tail), positions=list(range(start, len(prompt))), segment=[0] * len(tail),
                   reads=[len(tail) - 1], n_options=len(question.labels))
    for branch, (row_prefix, options) in enumerate(question.rows(), start=1):
        first = len(piece.ids)
        columns = [0] + list(range(len(piece.reads), len(piece.reads) + len(row_prefix)))
        piece.reads += range(first, first + len(row_prefix))
        piece.ids += row_prefix
        piece.positions += range(len(prompt), len(prompt) + len(row_prefix))
        piece.segment += [branch] * len(row_prefix)
        for o in options:
            piece.targets += [(c, t, o) for c, t in zip(columns, question.option_ids[o])]
    return piece


def _layout(item: ImageWork, image_token_id: int) -> _Layout | None:
    """Split one image's questions into a shared prefix and pieces; None when the image tokens are not
    inside the shared prefix (the prefix cannot carry the image for every question)."""
    prompts = [item.prompt(q, image_token_id) for q in range(len(item.questions))]
    length = shared_prefix_length(prompts)
    prefix = prompts[0][:length]
    if prefix.count(image_token_id) != prompts[0].count(image_token_id):
        return None
    return _Layout(prefix, [_piece(q, p, length) for q, p in zip(item.questions, prompts)])


def _chunks(layout: _Layout, limit: int) -> list[list[int]]:
    """Consecutive questions grouped into chunks of at most ``limit`` suffix tokens (a longer question
    gets a chunk of its own). Attention inside a chunk is computed densely, so chunks bound the wasted
    suffix-by-suffix work; each chunk costs one more forward."""
    chunks: list[list[int]] = []
    size = 0
    for q, piece in enumerate(layout.pieces):
        if chunks and size + len(piece.ids) <= limit:
            chunks[-1].append(q)
            size += len(piece.ids)
        else:
            chunks.append([q])
            size = len(piece.ids)
    return chunks


def _pack(layout: _Layout, questions: list[int], slots: list[int]) -> _Chunk:
    """Concatenate the pieces of ``questions`` with globally unique segments, offsets and output slots."""
    out = _Chunk()
    next_segment = 0
    for q in questions:
        piece = layout.pieces[q]
        offset, read_offset = len(out.ids), len(out.reads)
        out.ids += piece.ids
        out.positions += piece.positions
        out.segment += [next_segment + s for s in piece.segment]
        out.parent += [next_segment] * len(piece.ids)
        out.reads += [offset + r for r in piece.reads]
        out.targets += [(read_offset + c, t, slots[q] + o) for c, t, o in piece.targets]
        next_segment += max(piece.segment) + 1
    return out


def _model_device(model) -> torch.device:
    return input_device(model)


def _text_config(model):
    config = model.config
    return getattr(config, "text_config", None) or config


class PrefixEngine:
    """Shared-prefix probability engine with the same ``run`` contract as :class:`PlainEngine`.

    Args:
        batch_size: at most this many images per group (one prefill forward, then the suffix forwards).
        token_budget: at most this many padded LM tokens per group (prefix + packed suffix, times images);
            None for no bound. An image larger than the budget runs alone.
        suffix_chunk_tokens: at most this many suffix tokens of an image per suffix forward (whole
            questions; a longer question runs alone). None: the group's prefix length, so that the
            attention computed between unrelated questions stays below the useful attention to the prefix.
    """

    def __init__(self, batch_size: int = 8, token_budget: int | None = None,
                 suffix_chunk_tokens: int | None = None):
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1; got {batch_size}")
        if token_budget is not None and token_budget < 1:
            raise InputError(f"token_budget must be >= 1 or None; got {token_budget}")
        if suffix_chunk_tokens is not None and suffix_chunk_tokens < 1:
            raise InputError(f"suffix_chunk_tokens must be >= 1 or None; got {suffix_chunk_tokens}")
        self.batch_size = batch_size
        self.token_budget = token_budget
        self.suffix_chunk_tokens = suffix_chunk_tokens
        self.fallback = PlainEngine(batch_size)
        self.last_stats = EngineStats()
        self._warned = False

    def _warn(self, reason: str) -> None:
        if not self._warned:
            warnings.warn(f"PrefixEngine falls back to the plain engine: {reason}", RuntimeWarning,
                          stacklevel=3)
            self._warned = True

    @staticmethod
    def unsupported_reason(model, family: JudgeFamily | None = None) -> str | None:
        """Why ``model`` cannot share prefixes at all (None when it can): its registered family or ``family``
        says so, or its attention cannot take a custom 4-D mask."""
        for candidate in (FAMILIES.get(getattr(model.config, "model_type", None)), family):
            reason = candidate.prefix_unsupported_reason(model) if candidate is not None else None
            if reason:
                return reason
        text = _text_config(model)
        impl = getattr(text, "_attn_implementation", None)
        impl = impl or getattr(model.config, "_attn_implementation", None)
        if impl not in MASKABLE_ATTENTION:
            return f"attention implementation {impl!r} does not take a custom 4-D mask (use sdpa or eager)"
        return None

    @torch.inference_mode()
    def run(self, model, items: Sequence[ImageWork], *, image_token_id: int, pad_token_id: int,
            family: JudgeFamily | None = None) -> list[list[torch.Tensor]]:
        family = family or family_for_model(model)
        results: list[list[torch.Tensor]] = [[] for _ in items]
        stats = EngineStats()
        self.last_stats = stats
        reason = self.unsupported_reason(model, family)
        layouts: dict[int, _Layout] = {}
        plain: list[int] = []
        for i, item in enumerate(items):
            if not item.questions:
                continue
            layout = None if reason else _layout(item, image_token_id)
            if layout is None:
                plain.append(i)
            else:
                layouts[i] = layout
        window = getattr(_text_config(model), "sliding_window", None)
        if layouts and window is not None:
            longest = max(len(lay.prefix) + lay.suffix_tokens for lay in layouts.values())
            if longest >= window:
                reason = f"the LM's sliding window ({window}) is shorter than the work ({longest} tokens)"
                plain += list(layouts)
                layouts = {}
        if plain:
            self._warn(reason or "the questions of an image do not share a prefix holding the image")
            stats.fallback_images = len(plain)
            sub = self.fallback.run(model, [items[i] for i in plain], image_token_id=image_token_id,
                                    pad_token_id=pad_token_id, family=family)
            for i, values in zip(plain, sub):
                results[i] = values
        order = list(layouts)
        costs = [(len(layouts[i].prefix), layouts[i].suffix_tokens) for i in order]
        for group in pack_groups(costs, batch_size=self.batch_size, token_budget=self.token_budget):
            indices = [order[g] for g in group]
            values = self._run_group(model, [items[i] for i in indices], [layouts[i] for i in indices],
                                     pad_token_id, stats, family, image_token_id)
            for i, v in zip(indices, values):
                results[i] = v
        return results

    def _run_group(self, model, items: list[ImageWork], layouts: list[_Layout], pad_token_id: int,
                   stats: EngineStats, family: JudgeFamily, image_token_id: int) -> list[list[torch.Tensor]]:
        device, dtype = _model_device(model), model.dtype
        n = len(layouts)
        p_max = max(len(lay.prefix) for lay in layouts)
        prefix_ids = torch.full((n, p_max), pad_token_id, dtype=torch.long)
        prefix_valid = torch.zeros((n, p_max), dtype=torch.bool)
        for b, lay in enumerate(layouts):
            prefix_ids[b, : len(lay.prefix)] = torch.tensor(lay.prefix)
            prefix_valid[b, : len(lay.prefix)] = True
            stats.floor_tokens += len(lay.prefix) + lay.suffix_tokens
        pixels = family.collate_pixels([item.pixels for item in items])
        pixels = {k: v.to(device=device, dtype=dtype if v.is_floating_point() else v.dtype)
                  for k, v in pixels.items()}
        prefill, offsets = family.prefill_inputs(model, prefix_ids.to(device), prefix_valid.to(device), pixels,
                                                 image_token_id)
        cache = returned_cache(model(
            input_ids=prefix_ids.to(device), attention_mask=prefix_valid.long().to(device), use_cache=True,
            logits_to_keep=torch.zeros((n, 0), dtype=torch.long, device=device), **pixels, **prefill,
        ))
        stats.images += n
        stats.groups += 1
        stats.vision_passes += n
        stats.lm_tokens += n * p_max

        limit = self.suffix_chunk_tokens or p_max
        sizes = [[p.n_options for p in lay.pieces] for lay in layouts]
        slots = [[sum(s[:q]) for q in range(len(s))] for s in sizes]
        plans = [_chunks(lay, limit) for lay in layouts]
        values = [torch.zeros(sum(s), dtype=torch.float32, device=device) for s in sizes]
        for k in range(max(len(plan) for plan in plans)):
            rows = [_pack(lay, plan[k], slot) if k < len(plan) else _Chunk()
                    for lay, plan, slot in zip(layouts, plans, slots)]
            log_probs, width = self._suffix_forward(model, cache, rows, prefix_valid, pad_token_id,
                                                    lambda p: family.suffix_positions(p, offsets))
            stats.lm_tokens += n * width
            for b, row in enumerate(rows):
                if row.targets:
                    column, token, slot = torch.tensor(row.targets, dtype=torch.long, device=device).unbind(1)
                    values[b].index_add_(0, slot, log_probs[b, column, token])
            cache.crop(-width)  # back to the prefix for the next chunk
        return [[v.clone() for v in vals.cpu().split(s)] for vals, s in zip(values, sizes)]

    @staticmethod
    def _suffix_forward(model, cache, rows: list[_Chunk], prefix_valid: torch.Tensor, pad_token_id: int,
                        place) -> tuple[torch.Tensor, int]:
        """One forward of packed rows over the cached prefixes: log-probabilities at each row's reads."""
        device, dtype = _model_device(model), model.dtype
        n, p_max = prefix_valid.shape
        width = max(1, max(len(r.ids) for r in rows))
        k_max = max(1, max(len(r.reads) for r in rows))
        ids = torch.full((n, width), pad_token_id, dtype=torch.long)
        positions = torch.zeros((n, width), dtype=torch.long)
        segment = torch.full((n, width), -1, dtype=torch.long)
        parent = torch.full((n, width), -2, dtype=torch.long)
        reads = torch.zeros((n, k_max), dtype=torch.long)
        for b, r in enumerate(rows):
            s = len(r.ids)
            if s:
                ids[b, :s] = torch.tensor(r.ids)
                positions[b, :s] = torch.tensor(r.positions)
                segment[b, :s] = torch.tensor(r.segment)
                parent[b, :s] = torch.tensor(r.parent)
                reads[b, : len(r.reads)] = torch.tensor(r.reads)
        # Token t sees key u when u is not after t and u is in t's own segment or t's question.
        order = torch.arange(width)
        causal = order[None, :, None] >= order[None, None, :]
        related = (segment[:, None, :] == segment[:, :, None]) | (segment[:, None, :] == parent[:, :, None])
        sees = causal & related & (segment >= 0)[:, None, :]
        # Padding rows see nothing of the suffix but their own slot, so no softmax row is empty.
        sees |= torch.eye(width, dtype=torch.bool)[None]
        sees = torch.cat([prefix_valid[:, None, :].expand(n, width, p_max), sees], dim=2)
        mask = torch.zeros(sees.shape, dtype=dtype).masked_fill_(~sees, torch.finfo(dtype).min)[:, None]
        out = model(input_ids=ids.to(device), attention_mask=mask.to(device),
                    position_ids=place(positions.to(device)), use_cache=True, logits_to_keep=reads.to(device),
                    **{cache_keyword(model): cache})
        return torch.log_softmax(out.logits.float(), dim=-1), width


ENGINES = {"plain": PlainEngine, "prefix": PrefixEngine}


def make_engine(name: str, **options):
    """A probability engine by name: ``"plain"`` (:class:`PlainEngine`) or ``"prefix"``
    (:class:`PrefixEngine`).

    ``options`` go to the engine's constructor; ``token_budget`` only applies to ``"prefix"`` and is
    dropped for ``"plain"`` when None.

    Example:
        >>> make_engine("prefix", batch_size=4, token_budget=8192).batch_size
        4
        >>> type(make_engine("plain", batch_size=2)).__name__
        'PlainEngine'
    """
    if name not in ENGINES:
        raise InputError(f"engine={name!r} is unknown; expected one of {sorted(ENGINES)}")
    if name == "plain" and options.get("token_budget", 0) is None:
        options = {k: v for k, v in options.items() if k != "token_budget"}
    try:
        return ENGINES[name](**options)
    except TypeError as exc:
        raise InputError(f"engine={name!r} does not take these options: {sorted(options)} ({exc})") from None
