"""The synthetic package: scenes' deprecated old home, the scene checks the README's figures come from."""

from __future__ import annotations

import importlib
import itertools
import math
import sys

import pytest

from evalalign_metric.synthetic import checks, scenes


def test_training_scenes_is_a_deprecated_alias(monkeypatch):
    import evalalign_metric.training as training

    monkeypatch.delitem(sys.modules, "evalalign_metric.training.scenes", raising=False)
    monkeypatch.delattr(training, "scenes", raising=False)
    with pytest.warns(DeprecationWarning, match="evalalign_metric.synthetic.scenes"):
        old = importlib.import_module("evalalign_metric.training.scenes")
    assert old.random_scene is scenes.random_scene and old.HELD_OUT_PAIRS is scenes.HELD_OUT_PAIRS
    from evalalign_metric.training import scenes as via_package

    assert via_package is old and "render" in dir(old)


def test_roc_auc_is_the_share_of_ordered_pairs():
    positive, negative = [0.9, 0.4, 0.4, 0.7], [0.4, 0.1, 0.8]
    pairs = list(itertools.product(positive, negative))
    expected = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs) / len(pairs)
    assert checks.roc_auc(positive, negative) == pytest.approx(expected)


def test_benchmark_scripts_use_the_package_without_sys_path(load_benchmark):
    before = list(sys.path)
    driver = load_benchmark("scene_checks")
    diagnose = load_benchmark("diagnose_scene_judge")
    assert sys.path == before
    assert driver.score_variations is checks.score_variations and driver.roc_auc is checks.roc_auc
    assert diagnose.imatch_items is checks.imatch_items and diagnose.score_in_batches is checks.score_in_batches


def test_scene_checks_run_through_the_metric_scoring(tiny_judge_path):
    from evalalign_metric.judge import load_judge

    judge = load_judge(tiny_judge_path)
    table = checks.score_variations(judge, n_scenes=2, variations=["clean"])
    assert set(table) == {"clean"} and set(table["clean"]) <= set(scenes.ALIGNMENT_ASPECTS)
    assert all(0.0 <= v["auc"] <= 1.0 and v["n"] >= 1 for v in table["clean"].values())
    result = checks.score_imatch(judge, n_scenes=2)
    items = checks.imatch_items(2, varied=False, max_count=3)
    assert result["n_prompts"] == len(items)
    assert result["n_elements"] == sum(len(item[2]) for item in items)
    assert -1.0 <= result["overall_srcc"] <= 1.0 or math.isnan(result["overall_srcc"])


def test_lower_layers_import_no_higher_layer():
    import subprocess

    code = ("import sys\n"
            "import evalalign_metric.scoring, evalalign_metric.functional, evalalign_metric.metric\n"
            "import evalalign_metric.synthetic.checks\n"
            "higher = ('evalalign_metric.runs', 'evalalign_metric.commands', 'evalalign_metric.training',\n"
            "          'evalalign_metric.callbacks', 'evalalign_metric.report')\n"
            "print(sorted(m for m in sys.modules if m.startswith(higher)))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
