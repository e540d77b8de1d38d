"""Rank text-to-image models: score each model's folder (resuming its results file), then build the
leaderboard and the report. Under ``torchrun`` every rank scores; rank 0 alone writes the report.

Models are compared on the prompts every one of them was scored on (:func:`compare_prompts`): an image whose
prompt some other model lacks is left out of the ranking, the outcome's ``comparison`` says how many were
left out per model, and the report lists the prompts compared. Models that share no prompt are refused.

Example:
    >>> import tempfile, pathlib
    >>> from PIL import Image
    >>> from evalalign_metric.testing import build_tiny_judge
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for model, colour in (("a", "red"), ("b", "blue")):
    ...     (root / model).mkdir()
    ...     Image.new("RGB", (32, 32), colour).save(root / model / "45.png")
    >>> outcome = rank_models([root / "a", root / "b"], out_dir=root / "report", n_resamples=20,
    ...                       score_kwargs={"model": build_tiny_judge(root / "judge"), "progress": False})
    >>> sorted(r.name for r in outcome.board.rows), sorted(outcome.paths)
    (['a', 'b'], ['html', 'json', 'png'])
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from evalalign_metric.errors import InputError
from evalalign_metric.report.leaderboard import Leaderboard, build_leaderboard, load_run
from evalalign_metric.runs.defaults import is_demo_judge
from evalalign_metric.runs.distributed import DistContext
from evalalign_metric.runs.job import score_folder
from evalalign_metric.runs.resultsfile import read_results
from evalalign_metric.runs.scan import natural_key
from evalalign_metric.runs.summary import RunSummary


@dataclass
class PromptComparison:
    """Which prompts the models were ranked on.

    ``compared``: the labels (prompt id, else the prompt's text) of the prompts every model was scored on, in
    natural order; ``left_out``: per model, the labels of its prompts that some other model lacks, and
    ``left_out_images``: how many of its images they held (left out of the ranking).

    Example:
        >>> c = PromptComparison(["1", "2"], {"a": ["3"], "b": []}, {"a": 1, "b": 0})
        >>> print(c.message())
        the models were scored on different prompts: ranked on the 2 prompt(s) all 2 models share; left out: \
'a' 1 image(s) of 1 prompt(s) (e.g. '3')
    """

    compared: list[str]
    left_out: dict[str, list[str]]
    left_out_images: dict[str, int]

    def message(self) -> str | None:
        """One line saying what was left out, or ``None`` when every model had the same prompts."""
        dropped = [name for name, labels in self.left_out.items() if labels]
        if not dropped:
            return None
        parts = [
            f"{name!r} {self.left_out_images[name]} image(s) of {len(self.left_out[name])} prompt(s) (e.g. "
            + ", ".join(repr(label) for label in self.left_out[name][:3]) + ")"
            for name in dropped
        ]
        return (
            f"the models were scored on different prompts: ranked on the {len(self.compared)} prompt(s) all "
            f"{len(self.left_out)} models share; left out: {'; '.join(parts)}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "num_compared": len(self.compared),
            "compared": list(self.compared),
            "left_out": {
                name: {"prompts": list(labels), "images": self.left_out_images[name]}
                for name, labels in self.left_out.items()
            },
        }


def compare_prompts(
    runs: Sequence[tuple[str, str | os.PathLike, Sequence[str] | None]],
) -> tuple[dict[str, list[str]], PromptComparison]:
    """The images of each run to rank (those whose prompt every run has) and the comparison.

    Args:
        runs: ``(name, results file, image keys or None for all)`` per model; corrupt images are ignored.

    Returns:
        ``({name: image keys}, comparison)``; prompts are matched by their text, labelled by their id.

    Raises:
        InputError: the runs share no prompt (naming each run's prompt count and an example).
    """
    prompts_of: dict[str, dict[str, str]] = {}  # name -> {image key: prompt text}
    labels: dict[str, str] = {}
    for name, path, keys in runs:
        content = read_results(path)
        if content is None or content.header is None:
            raise InputError(f"results file {os.fspath(path)!r} does not exist or is empty")
        wanted = None if keys is None else set(keys)
        images = {}
        for key, image in content.images.items():
            if image.kind == "corrupt" or (wanted is not None and key not in wanted):
                continue
            first = image.records[0]
            images[key] = first.get("prompt") or ""
            labels.setdefault(images[key], str(first.get("prompt_id") or first.get("prompt") or key))
        prompts_of[name] = images
    sets = {name: set(images.values()) for name, images in prompts_of.items()}
    shared = set.intersection(*sets.values()) if sets else set()

    def order(texts) -> list[str]:
        return sorted((labels[t] for t in texts), key=natural_key)

    if not shared and len(sets) > 1:
        described = ", ".join(
            f"{name!r} on {len(texts)} prompt(s) (e.g. {order(texts)[0]!r})" if texts else f"{name!r} on none"
            for name, texts in sets.items()
        )
        raise InputError(
            f"the models share no prompt, so there is nothing to compare: scored {described}; rank folders "
            "scored on the same prompts"
        )
    comparison = PromptComparison(
        order(shared),
        {name: order(texts - shared) for name, texts in sets.items()},
        {name: sum(text not in shared for text in prompts_of[name].values()) for name in sets},
    )
    keys = {name: [k for k, text in images.items() if text in shared] for name, images in prompts_of.items()}
    return keys, comparison


@dataclass
class RankOutcome:
    """The leaderboard and report paths (``None`` on ranks other than 0), each folder's run summary and the
    prompts compared (``None`` on ranks other than 0)."""

    board: Leaderboard | None
    paths: dict[str, Path] | None
    summaries: dict[str, RunSummary] = field(default_factory=dict)
    comparison: PromptComparison | None = None


def model_names(sources: Sequence[str | os.PathLike], names: Sequence[str] | None) -> list[str]:
    """``names`` if given (one per source), else each folder's name (a results file's folder's name)."""
    if names is not None:
        if len(names) != len(sources):
            raise InputError(
                f"--names has {len(names)} name(s) for {len(sources)} folder(s); give one per folder"
            )
        chosen = [str(n) for n in names]
    else:
        chosen = []
        for source in sources:
            path = Path(source).expanduser().resolve()
            if path.suffix == ".jsonl":
                path = path.parent.parent if path.parent.name == "evalalign" else path.parent
            chosen.append(path.name or os.fspath(source))
    if any(not n.strip() for n in chosen):
        raise InputError("model names must be non-empty")
    duplicates = sorted({n for n in chosen if chosen.count(n) > 1})
    if duplicates:
        raise InputError(
            f"model name(s) {duplicates} appear more than once; pass --names with distinct names"
        )
    return chosen


def rank_models(
    sources: Sequence[str | os.PathLike],
    *,
    names: Sequence[str] | None = None,
    out_dir: str | os.PathLike = "evalalign_report",
    score_kwargs: Mapping[str, Any] | None = None,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    plot: bool = True,
    dist: DistContext | None = None,
) -> RankOutcome:
    """Score (or reuse) each source and write the leaderboard report.

    A source is an images folder (scored into ``<folder>/evalalign/results.jsonl``, resuming it) or an
    existing ``.jsonl`` results file (used as it is).
    """
    from evalalign_metric.report import write_report

    if not sources:
        raise InputError("give at least one images folder (or results .jsonl file) to rank")
    chosen = model_names(sources, names)
    kwargs = dict(score_kwargs or {})
    for source in sources:
        path = Path(source).expanduser()
        if not path.exists():
            raise InputError(
                f"{os.fspath(source)!r} does not exist (expected an images folder or a results .jsonl)"
            )
        if path.is_file() and path.suffix != ".jsonl":
            raise InputError(
                f"{os.fspath(source)!r} is a file but not a results .jsonl; expected an images folder"
            )
    ctx = dist if dist is not None else DistContext.from_env()
    created = ctx.setup()
    try:
        summaries: dict[str, RunSummary] = {}
        runs_input = []
        for name, source in zip(chosen, sources):
            path = Path(source).expanduser()
            if path.is_dir():
                run = score_folder(path, dist=ctx, **kwargs)
                summaries[name] = run
                runs_input.append((name, run.results_path, run.scored_images))
            else:
                runs_input.append((name, path, None))
        if not ctx.is_main:
            return RankOutcome(None, None, summaries)
        protocol = kwargs.get("protocol")
        ranked, comparison = compare_prompts(runs_input)
        runs = [
            load_run(p, name, protocol=protocol, keys=ranked[name], scoring=kwargs.get("scoring"))
            for name, p, _ in runs_input
        ]
        demo = any(is_demo_judge(r.header.get("model", {}).get("reference", "")) for r in runs)
        board = build_leaderboard(
            runs,
            n_resamples=n_resamples,
            confidence=confidence,
            seed=seed,
            results=[os.fspath(p) for _, p, _ in runs_input],
            demo_judge=demo,
            prompts=comparison.as_dict(),
        )
        paths = write_report(board, out_dir, plot=plot)
        return RankOutcome(board, paths, summaries, comparison)
    finally:
        if created:
            ctx.close()
