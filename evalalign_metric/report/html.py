"""``report.html``: one self-contained page (inline style, the chart embedded as a data URI) with the
ranking, every aspect per model with its interval, and what the numbers mean.

Example:
    >>> import numpy as np
    >>> from evalalign_metric.protocol import load_protocol
    >>> from evalalign_metric.report.leaderboard import RunData, build_leaderboard
    >>> p = load_protocol("evalalign")
    >>> ones = np.ones((1, 11))
    >>> run = RunData("<b>m</b>", p, "argmax", {}, ["a"], ones, ones, np.ones(1, bool))
    >>> page = render_html(build_leaderboard([run], n_resamples=10))
    >>> page.startswith("<!DOCTYPE html>"), "&lt;b&gt;m&lt;/b&gt;" in page, "<b>m</b>" in page
    (True, True, False)
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path

from evalalign_metric.report.scales import describe_scales, protocol_title
from evalalign_metric.report.text import format_value

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#222;max-width:90rem}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}
th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:right;white-space:nowrap}
th{background:#f2f2f2}td.name,th.name{text-align:left}
.ci{color:#777;font-size:.8rem}
.warn{background:#fde8e8;border:1px solid #e0a0a0;padding:.7rem;border-radius:4px}
.note{color:#555;font-size:.85rem;max-width:60rem}img{max-width:100%;border:1px solid #ddd}
"""


def _cell(est) -> str:
    if math.isnan(est.value):
        return "<td>n/a</td>"
    ci = (
        ""
        if math.isnan(est.low)
        else (f'<br><span class="ci">[{format_value(est.low)}, {format_value(est.high)}]</span>')
    )
    return f"<td>{format_value(est.value)}{ci}</td>"


def _prompts_note(prompts) -> list[str]:
    """Which prompts the models were compared on (``rank``'s :class:`PromptComparison`), if known."""
    if not prompts:
        return []
    esc = html.escape
    compared = prompts["compared"]
    left = {name: v for name, v in prompts["left_out"].items() if v["prompts"]}
    text = f"Compared on the {len(compared)} prompt(s) every model was scored on"
    if left:
        text += "; left out (some other model lacks their prompts): " + "; ".join(
            f"{esc(name)}: {v['images']} image(s) of {len(v['prompts'])} prompt(s)" for name, v in left.items()
        )
    listed = ", ".join(esc(label) for label in compared)
    return [f'<p class="note">{text}.</p><details><summary>prompts compared</summary>'
            f'<p class="note">{listed}</p></details>']


def render_html(board, png_path: str | Path | None = None, *, title: str | None = None) -> str:
    """The report page for ``board``; embeds ``png_path`` if given. ``title`` defaults to one naming the
    protocol; "How to read it" explains that protocol's own scales (:func:`.scales.describe_scales`)."""
    esc = html.escape
    p = board.protocol
    title = title or f"Leaderboard - {protocol_title(p)} {p.version} protocol"
    pct = f"{100 * board.confidence:g}%"
    head_metrics = [m for m in board.metrics if "/" not in m]
    aspects = [m for m in board.metrics if "/" in m]
    parts = [
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>',
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
    ]
    if board.demo_judge:
        parts.append(
            '<p class="warn"><b>Untrained demo judge.</b> These scores come from a tiny judge with random '
            "weights that exercises the pipeline; they say nothing about the images. Pass "
            "<code>--model</code> with a trained EvalAlign judge for real scores.</p>"
        )
    judge = board.judge
    parts.append(
        f'<p class="note">Protocol <b>{esc(p.name)} {esc(p.version)}</b>, scoring'
        f" <b>{esc(board.scoring)}</b>, "
        f"judge <code>{esc(str(judge.get('reference', '?')))}</code> (fingerprint "
        f"<code>{esc(str(judge.get('fingerprint', '?'))[:12])}</code>). Brackets: {pct} percentile bootstrap "
        f"interval over images ({board.n_resamples} resamples, seed {board.seed}).</p>"
    )
    parts.extend(_prompts_note(board.prompts))
    parts.append(
        '<h2>Ranking</h2><table><tr><th>rank</th><th class="name">model</th><th>images</th>'
        + "".join(f"<th>{esc(m)}</th>" for m in head_metrics)
        + "</tr>"
    )
    for i, row in enumerate(board.rows):
        parts.append(
            f'<tr><td>{i + 1}</td><td class="name">{esc(row.name)}</td><td>{row.num_images}</td>'
            + "".join(_cell(row.values[m]) for m in head_metrics)
            + "</tr>"
        )
    parts.append("</table>")
    parts.append(
        '<h2>Every aspect</h2><table><tr><th class="name">aspect</th><th>range</th>'
        + "".join(f"<th>{esc(r.name)}</th>" for r in board.rows)
        + "</tr>"
    )
    for metric in aspects:
        aspect = p.aspect(metric)
        parts.append(
            f'<tr><td class="name">{esc(metric)}</td><td>{aspect.min_score:g}-{aspect.max_score:g}</td>'
            + "".join(_cell(r.values[metric]) for r in board.rows)
            + "</tr>"
        )
    parts.append("</table>")
    if png_path is not None and Path(png_path).is_file():
        data = base64.b64encode(Path(png_path).read_bytes()).decode("ascii")
        parts.append(
            f'<h2>Chart</h2><img alt="per-aspect scores per model" src="data:image/png;base64,{data}">'
        )
    notes = describe_scales(p, board.scoring)
    parts.append('<h2>How to read it</h2><ul class="note">' + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
