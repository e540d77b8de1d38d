"""Leaderboard values and bootstrap intervals against independent computations; report.html and report.png."""

from __future__ import annotations

import math
import re
import sys

import numpy as np
import pytest
from PIL import Image
from scipy import stats

from evalalign_metric.errors import InputError, MissingExtraError
from evalalign_metric.functional import aggregate
from evalalign_metric.official import alignment_prompts, faithfulness_prompts
from evalalign_metric.protocol import load_protocol
from evalalign_metric.report import (
    RunData,
    build_leaderboard,
    format_leaderboard,
    load_run,
    write_report,
)
from evalalign_metric.report.plot import leaderboard_figure
from evalalign_metric.runs import score_folder

PROTOCOL = load_protocol("evalalign")
KEYS = [a.key for a in PROTOCOL.aspects]
MODELS = ["Stable Diffusion XL", "PixArt-alpha", "SD 1.5 <base>"]


def synthetic_run(name: str, seed: int, n: int = 40, *, header=None, drop=()) -> RunData:
    """Random per-image answers: faithfulness 0-4 (body/Hand/face sometimes N/A), alignment 0-2 (sometimes
    not asked)."""
    rng = np.random.default_rng(seed)
    sums, counts = np.zeros((n, len(KEYS))), np.zeros((n, len(KEYS)))
    for j, aspect in enumerate(PROTOCOL.aspects):
        asked = rng.random(n) < (0.9 if aspect.dimension == "faithfulness" else 0.6)
        if aspect.key in drop:
            asked[:] = False
        sums[:, j] = rng.integers(0, int(aspect.max_score) + 1, n) * asked
        counts[:, j] = asked
    has_alignment = counts[:, 5:].sum(1) > 0
    header = header or {"model": {"reference": "/judges/evalalign-v1.0-13b", "fingerprint": "abc"}}
    return RunData(
        name, PROTOCOL, "argmax", header, [f"{i}.png" for i in range(n)], sums, counts, has_alignment
    )


def test_point_values_are_the_aggregate_of_all_images():
    run = synthetic_run("m", 0)
    board = build_leaderboard([run], n_resamples=0)
    want = aggregate(PROTOCOL, dict(zip(KEYS, run.sums.sum(0))), dict(zip(KEYS, run.counts.sum(0))))
    for metric in board.metrics:
        assert board.rows[0].values[metric].value == pytest.approx(want[metric], abs=1e-12)
        assert math.isnan(board.rows[0].values[metric].low)  # no resamples, no interval
    # By hand for one aspect: mean over the images where it was asked.
    j = KEYS.index("alignment/Color")
    asked = run.counts[:, j] > 0
    assert board.rows[0].values["alignment/Color"].value == pytest.approx(run.sums[asked, j].mean())


def test_bootstrap_interval_matches_scipy_percentile_bootstrap():
    run = synthetic_run("m", 1, n=60)
    board = build_leaderboard([run], n_resamples=6000, seed=3)
    for metric in ("faithfulness/body", "alignment/Object", "faithfulness"):
        if "/" in metric:
            j = KEYS.index(metric)
            data = (run.sums[:, j], run.counts[:, j])
        else:
            cols = [KEYS.index(a.key) for a in PROTOCOL.aspects if a.dimension == metric]
            data = (run.sums[:, cols].sum(1), run.counts[:, cols].sum(1))
        ref = stats.bootstrap(
            data,
            lambda s, c, axis=-1: s.sum(axis) / c.sum(axis),
            paired=True,
            vectorized=True,
            n_resamples=6000,
            confidence_level=0.95,
            method="percentile",
            random_state=np.random.default_rng(11),
        )
        est = board.rows[0].values[metric]
        assert est.low == pytest.approx(ref.confidence_interval.low, abs=0.04), metric
        assert est.high == pytest.approx(ref.confidence_interval.high, abs=0.04), metric
        assert est.low < est.value < est.high


def test_intervals_are_seeded_and_shrink_with_more_images():
    small, large = synthetic_run("s", 2, n=20), synthetic_run("l", 2, n=320)
    a = build_leaderboard([small], n_resamples=500, seed=7).rows[0].values["overall"]
    b = build_leaderboard([small], n_resamples=500, seed=7).rows[0].values["overall"]
    assert a == b
    wide = a.high - a.low
    narrow = build_leaderboard([large], n_resamples=500, seed=7).rows[0].values["overall"]
    assert narrow.high - narrow.low < wide / 2  # ~1/sqrt(16) of the width


def test_ranking_order_and_what_is_refused():
    weak, strong = synthetic_run("weak", 3), synthetic_run("strong", 4)
    strong.sums = np.minimum(
        strong.sums + strong.counts, [a.max_score for a in PROTOCOL.aspects] * strong.counts
    )
    board = build_leaderboard([weak, strong], n_resamples=50)
    assert [r.name for r in board.rows] == ["strong", "weak"]
    with pytest.raises(InputError, match="different judges"):
        build_leaderboard([weak, synthetic_run("x", 5, header={"model": {"fingerprint": "other"}})])
    with pytest.raises(InputError, match="distinct"):
        build_leaderboard([weak, synthetic_run("weak", 6)])
    other = synthetic_run("y", 7)
    other.scoring = "expectation"
    with pytest.raises(InputError, match="scoring"):
        build_leaderboard([weak, other])
    with pytest.raises(InputError, match="at least one"):
        build_leaderboard([])


def test_never_asked_aspect_is_nan_not_zero():
    run = synthetic_run("m", 8, drop=("alignment/Action",))
    est = build_leaderboard([run], n_resamples=100).rows[0].values["alignment/Action"]
    assert math.isnan(est.value) and math.isnan(est.low) and math.isnan(est.high)
    assert "n/a" in format_leaderboard(build_leaderboard([run], n_resamples=10))


def _folder(path, ids, colour):
    path.mkdir(parents=True)
    for i, pid in enumerate(ids):
        image = Image.new("RGB", (32, 32), colour)
        image.putpixel((i, 0), (0, 0, 0))
        image.save(path / f"{pid}.png")
    return path


def test_leaderboard_from_results_files_equals_the_run_summary(tmp_path, tiny_judge_path):
    ids = [e["prompt_id"] for e in alignment_prompts()[:3]] + [faithfulness_prompts()[0]["prompt_id"]]
    folder = _folder(tmp_path / "m", ids, "purple")
    (folder / f"{alignment_prompts()[5]['prompt_id']}.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    run = score_folder(folder, model=tiny_judge_path, progress=False)
    data = load_run(run.results_path, "m", keys=run.scored_images)
    assert data.keys == [f"{i}.png" for i in sorted(ids, key=int)]  # the corrupt image is not a row
    board = build_leaderboard([data], n_resamples=0)
    for metric in board.metrics:
        got, want = board.rows[0].values[metric].value, run.scores[metric]
        assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want, abs=1e-12), metric
    with pytest.raises(InputError, match="was scored with protocol 'evalalign'"):
        load_run(run.results_path, "m", protocol="imatch")


def test_html_is_self_contained_and_lists_every_model_and_aspect(tmp_path):
    runs = [synthetic_run(name, 10 + i) for i, name in enumerate(MODELS)]
    board = build_leaderboard(runs, n_resamples=200, demo_judge=True)
    paths = write_report(board, tmp_path / "report")
    page = paths["html"].read_text()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert not re.search(
        r"""(src|href)\s*=\s*["'](https?:|//|[^"'#d])""", page
    )  # nothing fetched from outside
    assert page.count('src="data:image/png;base64,') == 1
    assert "SD 1.5 &lt;base&gt;" in page and "SD 1.5 <base>" not in page
    for metric in board.metrics:
        assert f">{metric}<" in page
    assert "Untrained demo judge" in page
    rows = re.findall(r"<tr><td>(\d)</td><td class=\"name\">([^<]+)</td>", page)
    assert [name for _, name in rows] == [
        r.name.replace("<", "&lt;").replace(">", "&gt;") for r in board.rows
    ]
    no_plot = write_report(board, tmp_path / "plain", plot=False)
    assert "png" not in no_plot and "data:image/png" not in no_plot["html"].read_text()


def test_png_shows_every_aspect_for_every_model_with_readable_labels(tmp_path):
    runs = [
        synthetic_run(name, 20 + i, drop=("alignment/Spatial",) if i == 2 else ())
        for i, name in enumerate(MODELS)
    ]
    board = build_leaderboard(runs, n_resamples=200)
    fig = leaderboard_figure(board)
    renderer = fig.canvas.get_renderer()
    fig.canvas.draw()
    ticks = [t for ax in fig.axes for t in ax.get_xticklabels() if t.get_text()]
    shown = {t.get_text().split("\n")[0] for t in ticks}
    assert {a.name for a in PROTOCOL.aspects} | {"faithfulness", "alignment", "overall"} <= shown
    assert all(t.get_fontsize() >= 8 for t in ticks)
    for ax in fig.axes:  # no two tick labels of a panel overlap
        boxes = sorted(
            (t.get_window_extent(renderer) for t in ax.get_xticklabels() if t.get_text()), key=lambda b: b.x0
        )
        assert all(a.x1 <= b.x0 for a, b in zip(boxes, boxes[1:]))
    legend = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert legend == [r.name for r in board.rows]
    bars_per_panel = [len(ax.patches) for ax in fig.axes]
    n_aspects = [6, 7, 1]  # faithfulness 5 + mean, alignment 6 + mean, overall
    # Every model has a bar for every aspect, except the aspect one model was never asked (drawn as "n/a").
    assert bars_per_panel == [3 * n_aspects[0], 3 * n_aspects[1] - 1, 3 * n_aspects[2]]
    assert any(t.get_text() == "n/a" for t in fig.axes[1].texts)
    path = tmp_path / "report.png"
    fig.savefig(path, dpi=130)
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width >= 1200 and image.height >= 900


def test_missing_matplotlib_names_the_plot_extra(tmp_path, monkeypatch):
    board = build_leaderboard([synthetic_run("m", 30)], n_resamples=10)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(MissingExtraError, match=r"evalalign-metric\[plot\]"):
        write_report(board, tmp_path / "r")
    assert not (tmp_path / "r").exists()


def imatch_run(name: str, seed: int, n: int = 30) -> RunData:
    """Random iMatch answers: overall on the 15 levels (1-5), element matches 0/1, one to three per image."""
    protocol = load_protocol("imatch")
    rng = np.random.default_rng(seed)
    levels = np.array([o.score for o in protocol.aspects[0].options])
    per_image = rng.integers(1, 4, n)
    sums = np.stack([rng.choice(levels, n), rng.binomial(per_image, 0.6)], axis=1).astype(float)
    counts = np.stack([np.ones(n), per_image], axis=1).astype(float)
    header = {"model": {"reference": "/judges/" + "very-long-folder-name/" * 6 + "judge-imatch", "fingerprint": "f"}}
    return RunData(name, protocol, "expectation", header, [f"{i}.png" for i in range(n)], sums, counts,
                   np.zeros(n, bool))


def test_each_protocol_report_explains_its_own_scales(tmp_path):
    imatch = build_leaderboard([imatch_run("a", 1), imatch_run("b", 2)], n_resamples=50)
    page = write_report(imatch, tmp_path / "imatch")["html"].read_text()
    title = re.search(r"<h1>(.*)</h1>", page).group(1)
    assert "imatch 1.0" in title and "EvalAlign" not in title
    read = page.split("<h2>How to read it</h2>", 1)[1]
    assert "15 levels A (worst) to O (best), scored 1 to 5" in read and "Yes = 1, No = 0" in read
    assert "once per element" in read and "expected option score" in read
    for foreign in ("0-4", "0 (worst) to 4", "0-2", "-1 =", "faithfulness", "alignment"):
        assert foreign not in read, foreign
    evalalign = build_leaderboard([synthetic_run("m", 5)], n_resamples=50)
    page = write_report(evalalign, tmp_path / "evalalign", plot=False)["html"].read_text()
    read = page.split("<h2>How to read it</h2>", 1)[1]
    assert "evalalign 1.0" in re.search(r"<h1>(.*)</h1>", page).group(1)
    assert "faithfulness (body, Hand, face, object, common): 0 (worst) to 4 (best)" in read
    assert "-1 = not applicable (body, Hand, face)" in read and "alignment" in read and "0 (worst) to 2" in read
    assert "most likely" in read and "imatch" not in read and "Yes" not in read


def test_imatch_png_draws_each_bar_once_under_a_title_that_fits():
    board = build_leaderboard([imatch_run("a", 1), imatch_run("b", 2)], n_resamples=50)
    fig = leaderboard_figure(board)
    renderer = fig.canvas.get_renderer()
    fig.canvas.draw()
    # One-aspect dimensions (imatch/overall, element/match) get no second "(all aspects)" group of the same bars.
    ticks = [[t.get_text() for t in ax.get_xticklabels() if t.get_text()] for ax in fig.axes]
    assert ticks == [["imatch/overall"], ["element/match"], ["overall"]]
    assert [len(ax.patches) for ax in fig.axes] == [2, 2, 2]
    heights = sorted(round(p.get_height() + p.get_y(), 9) for p in fig.axes[1].patches)
    assert heights == sorted(round(r.values["element/match"].value, 9) for r in board.rows)
    title = fig.get_suptitle()
    assert "imatch 1.0" in title and "EvalAlign" not in title
    box, page = fig._suptitle.get_window_extent(renderer), fig.bbox
    assert page.x0 <= box.x0 and box.x1 <= page.x1 and box.y1 <= page.y1  # not clipped at either edge
