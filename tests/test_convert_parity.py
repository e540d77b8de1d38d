"""Parity of converted judges with the original LLaVA code, through benchmarks/parity_reference_llava.py.

It creates (once, then reuses) an isolated venv with transformers 4.37 and ``llava-torch`` from PyPI; when
that is impossible (no package index, no disk) the test is skipped with the reason.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.subprocess, pytest.mark.timeout(1500)]


def test_converted_judges_match_the_reference(tmp_path, load_benchmark):
    bench = load_benchmark("parity_reference_llava")
    venv = Path(os.environ.get("EVALALIGN_PARITY_VENV", bench.default_venv()))
    try:
        bench.ensure_reference_venv(venv)
    except (RuntimeError, OSError) as exc:
        pytest.skip(f"cannot create the reference venv at {venv}: {str(exc).splitlines()[0]}")
    report = bench.run(venv, tmp_path)
    bench.print_report(report)
    for name, check in report["checks"].items():
        assert check["ids_equal"] and check["prompts_equal"], name
        assert check["max_logit_diff"] <= bench.LOGIT_TOLERANCE, (name, check)
        assert check["max_prob_diff"] <= bench.PROB_TOLERANCE, (name, check)
    for name, counted in report["tokenizer"].items():
        assert counted["equal"] == counted["prompts"] > 100, name
    # One judge per checkpoint against EvalAlign's per-script input shapes (34B style: newline per question).
    assert set(report["judge_level"]) == {"flat", "spatial_unpad", "yi_anyres_unpad"}
    for name, judged in report["judge_level"].items():
        assert judged["max_prob_diff"] <= bench.PROB_TOLERANCE, (name, judged)
        assert judged["argmax_equal"] == judged["greedy_equal"] == judged["items"], (name, judged)
    # Deliberately wrong mappings must be caught by the same check.
    assert report["controls"] and not any(c["passes"] for c in report["controls"].values())
