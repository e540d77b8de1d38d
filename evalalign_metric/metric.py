"""``EvalAlignScore``: the EvalAlign / iMatch judge as a ``torchmetrics.Metric``.

States are per-aspect sums and counts, and per-source counts of where prompts' elements came from
(``dist_reduce_fx="sum"``), so ``compute()`` after DDP equals one
process over the same data. The judge is shared (one per process and model reference) and is not part of
``state_dict()``; ``metric.to(device)`` moves it with the metric.

Example:
    >>> import tempfile, torch
    >>> from evalalign_metric import EvalAlignScore
    >>> from evalalign_metric.testing import build_tiny_judge
    >>> metric = EvalAlignScore(model=build_tiny_judge(tempfile.mkdtemp()))
    >>> images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    >>> metric.update(images, ["a cat on a mat", "two dogs"], elements=[{"Object": "cat; mat;"}, None])
    >>> out = metric.compute()
    >>> sorted(out)[:4], bool(out["overall"].isfinite()), int(out["num_without_elements"])
    (['alignment', 'alignment/Action', 'alignment/Color', 'alignment/Count'], True, 0)
    >>> int(out["elements_from/caller"]), int(out["elements_from/parser"])  # "two dogs": parsed
    (1, 1)

With ``protocol="imatch"`` each prompt comes with its EvalMuse-style element keys; results hold the overall
score on 1-5 and the element scores, overall and per category (NaN for categories never asked):

    >>> metric = EvalAlignScore(model=build_tiny_judge(tempfile.mkdtemp()), protocol="imatch")
    >>> metric.update(images, ["a puffin on a rock", "a red car"],
    ...               elements=[["puffin (animal)", "rock (object)"], ["red (color)", "car (object)"]])
    >>> out = metric.compute()
    >>> 1.0 <= float(out["imatch/overall"]) <= 5.0, 0.0 <= float(out["element/match/object"]) <= 1.0
    (True, True)
    >>> counts = dict(zip(metric.score_keys, metric.score_count.tolist()))
    >>> bool(out["element/match/food"].isnan()), counts["element/match"], counts["element/match/object"]
    (True, 4.0, 2.0)
"""

from __future__ import annotations

import math
import os
from typing import Any, Callable, Mapping, Sequence

import torch
from torchmetrics import Metric
from torchmetrics.utilities import rank_zero_warn

from evalalign_metric.elements import SOURCES
from evalalign_metric.errors import InputError
from evalalign_metric.evalmuse import category_keys
from evalalign_metric.functional import _score_pil
from evalalign_metric.images import to_pil_images
from evalalign_metric.judge import Judge, load_judge
from evalalign_metric.judge.protocols import warn_if_untrained
from evalalign_metric.protocol import Protocol, load_protocol
from evalalign_metric.scoring import ScoreBatch, _compute, _diagnostics, _update, check_scoring


class _SharedJudge:
    """Holds the judge outside the module tree: ``clone()`` shares it, pickling reloads it by reference."""

    def __init__(self, judge: Judge, spec: dict[str, Any] | None):
        self.judge = judge
        self.spec = spec

    def __deepcopy__(self, memo):
        return self

    def __reduce__(self):
        if self.spec is None:
            return (_SharedJudge, (self.judge, None))
        return (_reload_shared_judge, (self.spec,))


def _reload_shared_judge(spec: dict[str, Any]) -> _SharedJudge:
    return _SharedJudge(load_judge(**spec), spec)


class EvalAlignScore(Metric):
    """Score generated images against their prompts with a multimodal judge.

    Args:
        model: local judge folder or model reference (Hub id where supported), or ``"http://host:port"`` of an
            ``evalalign serve`` that every process shares (docs/serve.md), or a name of
            :func:`evalalign_metric.list_judges`. Ignored if ``judge`` is given; with neither, the protocol's
            embedded judge (:func:`evalalign_metric.registry.judge_when_none_named`).
        protocol: ``"evalalign"`` (default), ``"imatch"``, a protocol file or a ``Protocol``.
        judge: an already loaded :class:`~evalalign_metric.judge.Judge` to use instead of ``model``.
        scoring: ``"argmax"`` (EvalAlign's discrete answers) or ``"expectation"`` (QAlign's
            probability-weighted score); defaults to the protocol's choice.
        normalize: images are float tensors in [0, 1] (else uint8 in [0, 255] or PIL images).
        element_extractor: callable ``prompt -> elements`` for prompts without given or official elements.
        use_official_elements: look prompts up in the official EvalAlign alignment set.
        elements_file: an elements file (``evalalign elements PROMPTS --out FILE``, reviewed and edited):
            its prompts get its elements, before the official set and the extractor.
        parse_elements: the last step for prompts still without elements: the deterministic parser
            (:mod:`evalalign_metric.extraction.parser`); ``False`` leaves them faithfulness-only. Only for
            protocols whose element aspects are EvalAlign's six. ``compute()`` reports per source
            (``elements_from/caller``, ``/file``, ``/official``, ``/extractor``, ``/parser``) how many
            prompts got their elements there.
        device, dtype, batch_size, revision, **judge_kwargs: passed to :func:`~evalalign_metric.judge.load_judge`
            (with ``judge=``, the judge's own engine sets the batch size; ``batch_size`` is still checked).
        quantize, device_map, max_memory: ``"int8"``/``"4bit"`` loading, sharding and offload, passed to
            :func:`~evalalign_metric.judge.load_judge` (see docs/judges.md, memory section).
        kwargs: torchmetrics ``Metric`` options (``sync_on_compute``, ``dist_sync_fn``, ...).
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False
    plot_lower_bound = 0.0

    def __init__(
        self,
        model: str | os.PathLike | None = None,
        protocol: str | os.PathLike | Protocol = "evalalign",
        *,
        judge: Judge | None = None,
        scoring: str | None = None,
        normalize: bool = False,
        element_extractor: Callable[[str], Mapping[str, str]] | None = None,
        use_official_elements: bool = True,
        elements_file: str | os.PathLike | None = None,
        parse_elements: bool = True,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        batch_size: int = 8,
        revision: str | None = None,
        judge_kwargs: Mapping[str, Any] | None = None,
        quantize: str | None = None,
        device_map: str | Mapping[str, Any] | None = None,
        max_memory: Mapping[Any, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.protocol = load_protocol(protocol)
        self.scoring = check_scoring(scoring or self.protocol.default_scoring)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"batch_size={batch_size!r}; expected a whole number >= 1")
        if judge is None:
            if model is None:
                from evalalign_metric.registry import judge_when_none_named

                model = judge_when_none_named(self.protocol)
            spec = {"model": os.fspath(model), "device": device, "dtype": dtype, "batch_size": batch_size,
                    **({"revision": revision} if revision else {}), **dict(judge_kwargs or {}),
                    **{k: v for k, v in (("quantize", quantize), ("device_map", device_map),
                                         ("max_memory", max_memory)) if v is not None}}
            self._judge = _SharedJudge(load_judge(**spec), spec)
        else:
            self._judge = _SharedJudge(judge, None)
        warn_if_untrained(self._judge.judge.identity, self.protocol)
        self.normalize = normalize
        self.element_extractor = element_extractor
        self.use_official_elements = use_official_elements
        self.element_table = None
        if elements_file is not None:
            from evalalign_metric.extraction.elements_file import load_elements_file

            self.element_table = load_elements_file(elements_file)
        self.parse_elements = parse_elements
        self.aspect_keys = [a.key for a in self.protocol.aspects]
        # Per-element aspects also keep one slot per element category, after the aspects.
        self.category_keys = category_keys(self.protocol)
        self.score_keys = self.aspect_keys + self.category_keys
        n = len(self.score_keys)
        self.add_state("score_sum", torch.zeros(n, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("score_count", torch.zeros(n, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("asked", torch.zeros(n, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("num_images", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("num_alignment_images", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("num_without_elements", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        # One count per element source (strings do not sync across processes; these tensors do).
        self.add_state("elements_from", torch.zeros(len(SOURCES), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("outside_mass_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    @property
    def judge(self) -> Judge:
        return self._judge.judge

    def _apply(self, fn, *args, **kwargs):
        out = super()._apply(fn, *args, **kwargs)
        holder = self.__dict__.get("_judge")
        if holder is not None and holder.judge.device != self.device:
            holder.judge.to(self.device)
        return out

    def update(self, images, prompts: Sequence[str],
               elements: Sequence[Mapping[str, str] | Sequence[str] | None] | None = None) -> None:
        """Score a batch: ``images`` (uint8 ``(N,3,H,W)``, float in [0,1] with ``normalize=True``, or PIL),
        ``prompts`` (one per image) and optional per-prompt ``elements`` (``{"Object": "cat;"}`` for
        ``"evalalign"``; element keys ``["puffin (animal)", ...]`` for ``"imatch"``)."""
        pil = to_pil_images(images, normalize=self.normalize)
        results = _score_pil(self.judge, self.protocol, pil, prompts, elements,
                             extractor=self.element_extractor, use_official_elements=self.use_official_elements,
                             element_table=self.element_table, parse_elements=self.parse_elements)
        batch = _update(results, self.protocol, self.scoring, self.score_keys)
        without = int(batch.num_without_elements)
        if without:
            alone = "faithfulness" if "faithfulness" in self.protocol.dimensions else "element-free questions"
            parser = "the parser found none" if self.parse_elements else "the parser is off"
            rank_zero_warn(
                f"{without} prompt(s) have no alignment elements (not given, not official, no extractor, {parser}): "
                f"they are scored on {alone} only; see `num_without_elements` in compute()",
                UserWarning,
            )
        # Out-of-place: states shared across processes (Lightning's ddp_spawn) must not be added into twice.
        for name, value in batch._asdict().items():
            setattr(self, name, getattr(self, name) + value.to(self.device))

    def merge_state(self, incoming_state: dict[str, Any] | Metric) -> None:
        """Add another ``EvalAlignScore``'s states (or a dict of states) to this one.

        Raises:
            InputError: ``incoming_state`` is a metric scored with another protocol (name, version or content),
                another scoring mode, or another judge (its ``Judge.identity``: model reference, revision,
                architecture, chat format): its sums are on other questions or another scale.
        """
        if isinstance(incoming_state, EvalAlignScore):
            _check_mergeable(self, incoming_state)
        super().merge_state(incoming_state)

    def compute(self) -> dict[str, torch.Tensor]:
        """Overall (in [0, 1]), each dimension, each aspect and element category (NaN if never answered),
        and diagnostics."""
        state = ScoreBatch(**{name: getattr(self, name) for name in ScoreBatch._fields})
        values = _compute(self.protocol, self.score_keys, self.score_sum, self.score_count,
                          self.num_alignment_images)
        values.update(_diagnostics(self.protocol, state))
        return {k: torch.tensor(v, dtype=torch.float32) for k, v in values.items()}

    def plot(self, val: Mapping[str, torch.Tensor] | None = None, ax=None):
        """Bar chart of every aspect, dimension and the overall score (needs the ``plot`` extra).

        Returns ``(figure, axes)`` like torchmetrics' ``plot``.
        """
        from evalalign_metric.errors import require_extra

        plt = require_extra("matplotlib.pyplot", "plot", "EvalAlignScore.plot()")
        val = val if val is not None else self.compute()
        keys = [k for k in [*self.aspect_keys, *self.category_keys, *self.protocol.dimensions, "overall"]
                if k in val]
        heights = [float(val[k]) for k in keys]
        fig, ax = (ax.get_figure(), ax) if ax is not None else plt.subplots(figsize=(max(6, 0.6 * len(keys)), 4))
        ax.bar(range(len(keys)), [0.0 if math.isnan(h) else h for h in heights], color="tab:blue")
        ax.set_xticks(range(len(keys)), keys, rotation=60, ha="right", fontsize=8)
        ax.set_title(f"{type(self).__name__} ({self.protocol.name}, {self.scoring})")
        ax.set_ylabel("score")
        fig.tight_layout()
        return fig, ax


def _describe_protocol(protocol: Protocol) -> str:
    return f"{protocol.name!r} (version {protocol.version})"


def _describe_judge(identity: Mapping[str, Any], keys: Sequence[str]) -> str:
    return ", ".join(f"{key}={identity.get(key)!r}" for key in keys)


def _check_mergeable(mine: EvalAlignScore, theirs: EvalAlignScore) -> None:
    """Refuse to add up states that do not measure the same thing (see :meth:`EvalAlignScore.merge_state`)."""
    if mine.protocol != theirs.protocol:
        same_name = (mine.protocol.name, mine.protocol.version) == (theirs.protocol.name, theirs.protocol.version)
        edited = " (same name and version, different content)" if same_name else ""
        raise InputError(
            f"cannot merge EvalAlignScore states of different protocols: {_describe_protocol(mine.protocol)} and "
            f"{_describe_protocol(theirs.protocol)}{edited}"
        )
    if mine.scoring != theirs.scoring:
        raise InputError(f"cannot merge EvalAlignScore states of different scoring modes: {mine.scoring!r} and "
                         f"{theirs.scoring!r}")
    a, b = mine.judge.identity, theirs.judge.identity
    if mine.judge is not theirs.judge and a != b:
        differing = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        keys = ["model", *(k for k in differing if k != "model")]
        raise InputError(
            f"cannot merge EvalAlignScore states of different judges: {_describe_judge(a, keys)} and "
            f"{_describe_judge(b, keys)}"
        )
