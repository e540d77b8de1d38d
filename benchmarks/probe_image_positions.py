"""Where do a judge's image tokens lose their positions? A linear probe on the tokens that show a shape.

For each judge folder: render scenes (``evalalign_metric.synthetic.scenes``), take the image tokens covering a
drawn shape, and fit a ridge-regression probe (3/4 of the tokens; scored on the rest) that tells whether the
token lies in the left (top) half of the image, from two places: the vision tower's output (what the projector
reads) and the projected features (what the language model reads). Near 1.0: the position is there for the
language model to use; near 0.5: it is gone.

Example:
    python benchmarks/probe_image_positions.py evalalign_metric/assets/judge /tmp/scenes/describe/base
"""

from __future__ import annotations

import argparse
import sys

import numpy as np


def shape_tokens(scene, image, grid: int) -> np.ndarray:
    """Indices (raster order) of the ``grid`` x ``grid`` image cells that are mostly one of the scene's shapes."""
    from evalalign_metric.synthetic.scenes import COLOURS

    pixels = np.asarray(image).astype(int)
    cell = pixels.shape[0] // grid
    covered = np.zeros((grid, grid), bool)
    for group in scene.groups:
        mask = np.abs(pixels - np.array(COLOURS[group.colour])).sum(-1) < 40
        covered |= mask.reshape(grid, cell, grid, cell).sum((1, 3)) > cell * cell // 5
    return np.flatnonzero(covered)


def probe_accuracy(features: np.ndarray, labels: np.ndarray, ridge: float = 1e-2) -> float:
    """Held-out accuracy of a ridge-regression classifier (fit on the first 3/4, scored on the rest)."""
    design = np.c_[features, np.ones(len(features))]
    n = len(design) * 3 // 4
    target = labels[:n] * 2.0 - 1.0
    weights = np.linalg.solve(design[:n].T @ design[:n] + ridge * np.eye(design.shape[1]), design[:n].T @ target)
    return float(((design[n:] @ weights > 0) == labels[n:]).mean())


def probe(judge_dir: str, scenes_count: int) -> dict[str, float]:
    import torch

    from evalalign_metric.judge import load_judge
    from evalalign_metric.synthetic import scenes
    from evalalign_metric.training.features import image_features

    judge = load_judge(judge_dir, cache=False)
    model = judge.model.eval()
    drawn = [scenes.random_scene(scenes.random_state(10 ** 7 + s)) for s in range(scenes_count)]
    drawn = [s for s in drawn if all(g.colour in scenes.COLOURS for g in s.groups)]
    images = [scenes.render(s) for s in drawn]
    pixels = torch.cat([judge.prepare_image(im)[0]["pixel_values"] for im in images])
    with torch.no_grad():
        tower = model.model.vision_tower(pixels, output_hidden_states=True).hidden_states[-1]
        projected = image_features(model, pixels)
    grid = int(round(tower.shape[1] ** 0.5))
    rows, picks = [], []
    for i, (scene, image) in enumerate(zip(drawn, images)):
        for token in shape_tokens(scene, image, grid):
            picks.append((i, token))
            rows.append((token % grid < grid // 2, token // grid < grid // 2))
    index = tuple(np.array(picks).T)
    left, top = (np.array([r[k] for r in rows]) for k in (0, 1))
    out = {}
    for place, feats in (("tower", tower), ("language model", projected)):
        values = feats.numpy()[index]
        out[f"{place}: left"] = probe_accuracy(values, left)
        out[f"{place}: top"] = probe_accuracy(values, top)
    out["tokens"] = len(rows)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("judges", nargs="+", help="judge folders built for 64x64 scenes")
    parser.add_argument("--scenes", type=int, default=600)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    print(f"{'judge':50s} {'tower L/T':>12s} {'LM input L/T':>14s} {'tokens':>7s}")
    for judge_dir in args.judges:
        r = probe(judge_dir, args.scenes)
        print(f"{judge_dir:50s} {r['tower: left']:5.3f}/{r['tower: top']:5.3f} "
              f"{r['language model: left']:6.3f}/{r['language model: top']:5.3f} {r['tokens']:7d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
