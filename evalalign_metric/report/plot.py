"""``report.png``: one panel per dimension (its aspects and, if it has several, their mean), one for the overall
score; within each aspect one bar per model with its bootstrap interval. Panels keep their own scale
(EvalAlign: faithfulness 0-4, alignment 0-2; iMatch: imatch 1-5, element 0-1; overall 0-1), so no aspect
is squashed. Needs the ``plot`` extra (matplotlib).

The figure is drawn on a ``matplotlib.figure.Figure`` with the Agg canvas, never through ``pyplot``: no
global backend or open-figure state is touched.

Example:
    >>> import tempfile, os, numpy as np
    >>> from evalalign_metric.protocol import load_protocol
    >>> from evalalign_metric.report.leaderboard import RunData, build_leaderboard
    >>> p = load_protocol("evalalign")
    >>> run = RunData("m", p, "argmax", {}, ["a"], np.ones((1, 11)), np.ones((1, 11)), np.ones(1, bool))
    >>> path = os.path.join(tempfile.mkdtemp(), "report.png")
    >>> plot_leaderboard(build_leaderboard([run], n_resamples=10), path)
    >>> os.path.getsize(path) > 10_000
    True
"""

from __future__ import annotations

import math
import os

from evalalign_metric.errors import require_extra
from evalalign_metric.report.scales import protocol_title


def _panels(board) -> list[tuple[str, list[str], float, float]]:
    """(title, metrics, low, high) per panel. A dimension of one aspect is that aspect's mean: it gets no
    second group of bars."""
    panels = []
    for dim in board.protocol.dimensions:
        aspects = [a for a in board.protocol.aspects if a.dimension == dim]
        low, high = min(a.min_score for a in aspects), max(a.max_score for a in aspects)
        metrics = [*(a.key for a in aspects), dim] if len(aspects) > 1 else [aspects[0].key]
        panels.append((f"{dim}: {low:g} (worst) - {high:g} (best)", metrics, low, high))
    panels.append(("overall: every answer normalised to 0 - 1", ["overall"], 0.0, 1.0))
    return panels


def _label(metric: str, alone: bool) -> str:
    if "/" in metric:
        return metric if alone else metric.split("/", 1)[1]  # a lone aspect keeps its dimension: imatch/overall
    return metric if metric == "overall" else f"{metric}\n(all aspects)"


def plot_leaderboard(board, path: str | os.PathLike, *, dpi: int = 130) -> None:
    """Draw the grouped bar chart of ``board`` (a :class:`~.leaderboard.Leaderboard`) into ``path``."""
    leaderboard_figure(board).savefig(os.fspath(path), dpi=dpi)


def leaderboard_figure(board):
    """The chart as a ``matplotlib.figure.Figure`` (Agg canvas attached)."""
    require_extra("matplotlib", "plot", "Drawing the leaderboard chart")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = _panels(board)
    models = [r.name for r in board.rows]
    n = len(models)
    widths = [len(p[1]) for p in panels]
    ratios = [1.0 if len(p[1]) > 1 else 0.75 for p in panels]
    fig = Figure(
        figsize=(max(9.0, 1.1 * max(widths) * max(1.0, n / 2.5) + 2), 3.4 * sum(ratios) + 1.4),
        layout="constrained",
    )
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(panels), 1, squeeze=False, height_ratios=ratios)[:, 0]
    colours = [f"C{i % 10}" for i in range(n)]
    bar = 0.8 / max(n, 1)
    show_values = n <= 4
    for ax, (title, metrics, low, high) in zip(axes, panels):
        span = high - low
        for m_index, row in enumerate(board.rows):
            for g, metric in enumerate(metrics):
                est = row.values[metric]
                x = g - 0.4 + bar * (m_index + 0.5)
                if math.isnan(est.value):
                    ax.text(
                        x,
                        low + 0.02 * span,
                        "n/a",
                        ha="center",
                        va="bottom",
                        fontsize=8,
                        rotation=90,
                        color="0.4",
                    )
                    continue
                err = None
                if not math.isnan(est.low):
                    err = [[max(0.0, est.value - est.low)], [max(0.0, est.high - est.value)]]
                ax.bar(
                    x,
                    est.value - low,
                    bar * 0.92,
                    bottom=low,
                    color=colours[m_index],
                    yerr=err,
                    capsize=3,
                    ecolor="0.25",
                    label=row.name if g == 0 else None,
                )
                if show_values:
                    top = est.high if not math.isnan(est.high) else est.value
                    ax.text(
                        x,
                        min(top + 0.02 * span, high + 0.06 * span),
                        f"{est.value:.2f}",
                        ha="center",
                        va="bottom",
                        fontsize=8,
                    )
        ax.set_xticks(range(len(metrics)), [_label(m, len(metrics) == 1) for m in metrics], fontsize=10)
        # A lone group (overall) would otherwise stretch its bars across the whole panel.
        ax.set_xlim(*((-0.6, len(metrics) - 0.4) if len(metrics) > 1 else (-2.0, 2.0)))
        ax.set_ylim(low, high + 0.15 * span)
        ax.set_title(title, fontsize=11, loc="left")
        ax.set_ylabel("score", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
        if len(metrics) > 1:
            ax.axvline(len(metrics) - 1.5, color="0.6", linewidth=0.8, linestyle=":")
    handles, labels = axes[0].get_legend_handles_labels()
    if not handles:
        for ax in axes[1:]:
            handles, labels = ax.get_legend_handles_labels()
            if handles:
                break
    fig.legend(handles, labels, loc="outside lower center", ncols=min(n, 5), fontsize=10, frameon=False)
    reference = str(board.judge.get("reference", "?"))
    shown = reference if len(reference) <= 48 else "..." + reference[-45:]
    judge = "UNTRAINED DEMO JUDGE - scores are meaningless" if board.demo_judge else f"judge {shown}"
    fig.suptitle(
        f"Leaderboard - {protocol_title(board.protocol)} {board.protocol.version} protocol, "
        f"scoring={board.scoring}, {100 * board.confidence:g}% bootstrap intervals\n{judge}",
        fontsize=10,
        color="firebrick" if board.demo_judge else "black",
    )
    return fig
