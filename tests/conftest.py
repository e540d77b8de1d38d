"""Shared fixtures: tiny judges built offline and saved with save_pretrained (loaded through the real path), and
the benchmark scripts some tests call into."""

from __future__ import annotations

import importlib.util
import json
import math
import random
import os
from pathlib import Path

import pytest
import torch
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
# Tiny models: one thread avoids oversubscription on small shared CPUs and keeps results reproducible.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def load_benchmark():
    """``load_benchmark("train_scene_judge")``: that script of ``benchmarks/`` imported as a module (the folder
    holds scripts, not a package)."""

    def load(name: str):
        path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture(scope="session")
def tiny_judge_factory(tmp_path_factory):
    """Build (once per session and settings) a tiny judge folder."""
    from evalalign_metric.testing import build_tiny_judge

    built = {}

    def make(**kwargs):
        key = tuple(sorted(kwargs.items()))
        if key not in built:
            built[key] = build_tiny_judge(tmp_path_factory.mktemp("judge"), **kwargs)
        return built[key]

    return make


@pytest.fixture(scope="session")
def tiny_judge_path(tiny_judge_factory):
    return tiny_judge_factory(tokenizer="llama", architecture="llava")


@pytest.fixture
def colour_images():
    colours = ["red", "green", "blue", "white", "yellow", "black"]
    sizes = [(24, 16), (16, 16), (20, 30), (32, 32), (17, 23), (40, 16)]
    return [Image.new("RGB", size, colour) for colour, size in zip(colours, sizes)]


@pytest.fixture
def random_uint8_images():
    gen = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (4, 3, 24, 24), dtype=torch.uint8, generator=gen)


# Figures EvalAlignScore.compute() reports beyond what evalalign_score() returns.
_DIAGNOSTICS = {"num_images", "num_without_elements", "mean_outside_mass"}


def _assert_same_scores(reference, *others, atol: float = 1e-5) -> None:
    """Every result in ``others`` (a metric's compute(), evalalign_score()'s dict, a DDP rank's figures) holds
    ``reference``'s figures (NaN where NaN): the same keys, or for the functional form the same keys
    without the metric's diagnostics."""
    for i, other in enumerate(others):
        extra = set(other) - set(reference)
        missing = {k for k in set(reference) - set(other)
                   if k not in _DIAGNOSTICS and not k.startswith("elements_from/")}
        assert not extra and not missing, (i, sorted(extra), sorted(missing))
        for key in other:
            want, got = float(reference[key]), float(other[key])
            if math.isnan(want):
                assert math.isnan(got), (i, key)
            else:
                assert got == pytest.approx(want, abs=atol), (i, key)


@pytest.fixture(scope="session")
def assert_same_scores():
    """The one check that the metric, its functional twin and DDP agree (see ``_assert_same_scores``)."""
    return _assert_same_scores


@pytest.fixture(scope="session")
def yesno_colour_data(tmp_path_factory):
    """``make(n_images, n_train_rows, size=...)``: a folder of one-colour images (``size(i)`` pixels), the
    yes/no protocol ``p.json`` and rows asking 'a red square' / 'a blue square' of each image, the first
    ``n_train_rows`` in ``train.jsonl`` and the rest in ``eval.jsonl``."""
    protocol = {"name": "yesno", "version": "1", "default_scoring": "expectation", "aspects": [
        {"name": "Match", "dimension": "alignment",
         "template": "<image>\nDoes the image show {prompt}? Answer yes or no.",
         "options": [{"label": "yes", "score": 1}, {"label": "no", "score": 0}]}]}
    colours = {"red": (220, 30, 30), "blue": (30, 30, 220)}

    def make(n_images: int, n_train_rows: int, size=lambda i: (16, 16)) -> Path:
        d = tmp_path_factory.mktemp("data")
        (d / "p.json").write_text(json.dumps(protocol))
        rng = random.Random(0)
        rows = []
        for i in range(n_images):
            colour = rng.choice(sorted(colours))
            Image.new("RGB", size(i), colours[colour]).save(d / f"{i}.png")
            for asked in sorted(colours):
                rows.append({"image": f"{i}.png", "prompt": f"a {asked} square", "aspect": "Match",
                             "score": int(asked == colour)})
        (d / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:n_train_rows]))
        (d / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[n_train_rows:]))
        return d

    return make
