"""A leaderboard of text-to-image models from their results files, with bootstrap confidence intervals.

Every value is :func:`evalalign_metric.functional.aggregate` over a model's images (the same numbers as the
run's summary). Its interval is a seeded percentile bootstrap over images: the images of each model are
resampled with replacement, each resample aggregated the same way, and the interval is the central
``confidence`` range of the resampled values (the ``percentile`` method of ``scipy.stats.bootstrap``).
Images are the unit because the judge's answers about one image are not independent of each other.

Example:
    >>> import numpy as np
    >>> from evalalign_metric.protocol import load_protocol
    >>> p = load_protocol("evalalign")
    >>> sums, counts = np.zeros((4, len(p.aspects))), np.zeros((4, len(p.aspects)))
    >>> sums[:, 0], counts[:, 0] = [1, 2, 3, 4], 1  # faithfulness/body over 4 images
    >>> run = RunData("m", p, "argmax", {}, ["a", "b", "c", "d"], sums, counts, np.zeros(4, bool))
    >>> board = build_leaderboard([run], n_resamples=200, seed=0)
    >>> est = board.rows[0].values["faithfulness/body"]
    >>> est.value, bool(1.0 <= est.low <= 2.5 <= est.high <= 4.0)
    (2.5, True)
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from evalalign_metric.errors import InputError
from evalalign_metric.functional import SCORING_MODES, aggregate
from evalalign_metric.protocol import Protocol, load_protocol
from evalalign_metric.runs.identity import protocol_identity
from evalalign_metric.runs.resultsfile import read_results
from evalalign_metric.runs.summary import record_score


@dataclass
class RunData:
    """One model's per-image sums and counts of applicable scores, per aspect (protocol order)."""

    name: str
    protocol: Protocol
    scoring: str
    header: Mapping[str, Any]
    keys: list[str]
    sums: np.ndarray  # (images, aspects)
    counts: np.ndarray  # (images, aspects)
    has_alignment: np.ndarray  # (images,) bool: the image was asked an alignment question

    @property
    def num_images(self) -> int:
        return len(self.keys)


def load_run(
    results_path: str | os.PathLike,
    name: str,
    *,
    protocol: Protocol | str | None = None,
    keys: Iterable[str] | None = None,
    scoring: str | None = None,
) -> RunData:
    """Read a results file into a :class:`RunData` (only ``keys`` if given; corrupt images are left out).

    ``protocol`` defaults to the shipped protocol named in the file's header, and must be the one the file
    was scored with; ``scoring`` defaults to the header's.
    """
    path = Path(results_path)
    content = read_results(path)
    if content is None or content.header is None:
        raise InputError(f"results file {os.fspath(path)!r} does not exist or is empty")
    header = content.header
    recorded = header.get("protocol") or {}
    protocol = load_protocol(protocol if protocol is not None else str(recorded.get("name")))
    if protocol_identity(protocol) != recorded:
        raise InputError(
            f"results file {os.fspath(path)!r} was scored with protocol {recorded.get('name')!r} "
            f"version {recorded.get('version')!r} (sha256 {str(recorded.get('sha256'))[:12]}), not "
            f"{protocol.name!r} version {protocol.version!r}; pass the protocol it was scored with"
        )
    scoring = scoring or header.get("scoring")
    if scoring not in SCORING_MODES:
        raise InputError(f"scoring={scoring!r}; expected one of {', '.join(SCORING_MODES)}")
    wanted = None if keys is None else set(keys)
    aspect_index = {a.key: i for i, a in enumerate(protocol.aspects)}
    chosen = [r for k, r in content.images.items() if r.kind != "corrupt" and (wanted is None or k in wanted)]
    sums = np.zeros((len(chosen), len(aspect_index)))
    counts = np.zeros_like(sums)
    has_alignment = np.zeros(len(chosen), dtype=bool)
    for row, image in enumerate(chosen):
        for record in image.records:
            if record["kind"] != "answer":
                continue
            column = aspect_index[record["aspect"]]
            has_alignment[row] |= record["aspect"].startswith("alignment/")
            score = record_score(record, scoring)
            if not math.isnan(score):
                sums[row, column] += score
                counts[row, column] += 1
    return RunData(name, protocol, scoring, header, [r.key for r in chosen], sums, counts, has_alignment)


@dataclass(frozen=True)
class Estimate:
    """A value and its bootstrap interval (NaN bounds when undefined)."""

    value: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float | None]:
        return {
            k: None if math.isnan(v) else v
            for k, v in (("value", self.value), ("low", self.low), ("high", self.high))
        }


@dataclass
class LeaderboardRow:
    name: str
    num_images: int
    values: dict[str, Estimate]
    results: str | None = None


@dataclass
class Leaderboard:
    """Models ranked by ``overall`` (best first); ``metrics`` lists the columns in display order."""

    protocol: Protocol
    scoring: str
    metrics: list[str]
    rows: list[LeaderboardRow]
    confidence: float
    n_resamples: int
    seed: int
    judge: Mapping[str, Any] = field(default_factory=dict)
    demo_judge: bool = False
    prompts: Mapping[str, Any] = field(default_factory=dict)  # which prompts were compared (report.ranking)

    def as_dict(self) -> dict[str, Any]:
        return {
            "protocol": {"name": self.protocol.name, "version": self.protocol.version},
            "scoring": self.scoring,
            "confidence": self.confidence,
            "n_resamples": self.n_resamples,
            "seed": self.seed,
            "judge": dict(self.judge),
            "demo_judge": self.demo_judge,
            "prompts": dict(self.prompts),
            "metrics": self.metrics,
            "rows": [
                {
                    "rank": i + 1,
                    "name": r.name,
                    "num_images": r.num_images,
                    "results": r.results,
                    "values": {m: r.values[m].as_dict() for m in self.metrics},
                }
                for i, r in enumerate(self.rows)
            ],
        }


def _aggregate_rows(
    protocol: Protocol, sums: np.ndarray, counts: np.ndarray, n_align: np.ndarray, metrics: Sequence[str]
) -> np.ndarray:
    keys = [a.key for a in protocol.aspects]
    out = np.empty((sums.shape[0], len(metrics)))
    for b in range(sums.shape[0]):
        values = aggregate(
            protocol,
            dict(zip(keys, sums[b])),
            dict(zip(keys, counts[b])),
            num_alignment_images=float(n_align[b]),
        )
        out[b] = [values[m] for m in metrics]
    return out


def bootstrap_run(
    run: RunData,
    metrics: Sequence[str],
    *,
    n_resamples: int,
    confidence: float,
    rng: np.random.Generator,
    chunk: int = 256,
) -> dict[str, Estimate]:
    """Point values and percentile intervals of ``metrics`` for one run (images resampled)."""
    point = _aggregate_rows(
        run.protocol,
        run.sums.sum(0, keepdims=True),
        run.counts.sum(0, keepdims=True),
        np.array([run.has_alignment.sum()]),
        metrics,
    )[0]
    n = run.num_images
    draws = np.empty((0, len(metrics)))
    if n and n_resamples:
        parts = []
        for start in range(0, n_resamples, chunk):
            size = min(chunk, n_resamples - start)
            idx = rng.integers(0, n, (size, n))
            weights = np.stack([np.bincount(row, minlength=n) for row in idx]).astype(float)  # (size, n)
            parts.append(
                _aggregate_rows(
                    run.protocol,
                    weights @ run.sums,
                    weights @ run.counts,
                    weights @ run.has_alignment.astype(float),
                    metrics,
                )
            )
        draws = np.concatenate(parts)
    alpha = 100 * (1 - confidence) / 2
    out = {}
    for j, metric in enumerate(metrics):
        finite = draws[:, j][np.isfinite(draws[:, j])] if draws.size else np.empty(0)
        if math.isnan(point[j]) or finite.size == 0:
            low = high = math.nan
        else:
            low, high = (float(v) for v in np.percentile(finite, [alpha, 100 - alpha]))
        out[metric] = Estimate(float(point[j]), low, high)
    return out


def leaderboard_metrics(protocol: Protocol) -> list[str]:
    """``overall``, each dimension, then every aspect in protocol order."""
    return ["overall", *protocol.dimensions, *(a.key for a in protocol.aspects)]


def build_leaderboard(
    runs: Sequence[RunData],
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    results: Sequence[str | None] | None = None,
    demo_judge: bool = False,
    prompts: Mapping[str, Any] | None = None,
) -> Leaderboard:
    """Rank ``runs`` by overall score; all must share protocol, scoring and judge. ``prompts``: which prompts
    were compared (:meth:`evalalign_metric.report.ranking.PromptComparison.as_dict`), kept for the report."""
    if not runs:
        raise InputError("a leaderboard needs at least one results file")
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 0:
        raise InputError(f"n_resamples must be an integer >= 0; got {n_resamples!r}")
    if not 0.0 < float(confidence) < 1.0:
        raise InputError(f"confidence must be strictly between 0 and 1; got {confidence!r}")
    names = [r.name for r in runs]
    if len(set(names)) != len(names):
        raise InputError(f"model names must be distinct; got {names} (pass --names)")
    first = runs[0]
    for run in runs[1:]:
        if protocol_identity(run.protocol) != protocol_identity(first.protocol):
            raise InputError(
                f"{run.name!r} was scored with protocol {run.protocol.name!r} {run.protocol.version}, "
                f"{first.name!r} with {first.protocol.name!r} {first.protocol.version}: not comparable"
            )
        if run.scoring != first.scoring:
            raise InputError(f"{run.name!r} uses scoring {run.scoring!r}, {first.name!r} {first.scoring!r}")
        a, b = run.header.get("model") or {}, first.header.get("model") or {}
        if a.get("fingerprint") != b.get("fingerprint"):
            raise InputError(
                f"{run.name!r} and {first.name!r} were scored by different judges "
                f"({a.get('reference')!r} vs {b.get('reference')!r}): their scores are not comparable"
            )
    metrics = leaderboard_metrics(first.protocol)
    rows = []
    for i, run in enumerate(runs):
        rng = np.random.default_rng([seed, i])
        values = bootstrap_run(run, metrics, n_resamples=n_resamples, confidence=confidence, rng=rng)
        rows.append(LeaderboardRow(run.name, run.num_images, values, results[i] if results else None))
    rows.sort(
        key=lambda r: (-r.values["overall"].value if not math.isnan(r.values["overall"].value) else math.inf)
    )
    return Leaderboard(
        first.protocol,
        first.scoring,
        metrics,
        rows,
        float(confidence),
        n_resamples,
        seed,
        judge=dict(first.header.get("model") or {}),
        demo_judge=demo_judge,
        prompts=dict(prompts or {}),
    )
