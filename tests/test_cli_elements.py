"""`evalalign elements`: official prompts, extraction with a tiny real LM loaded from a folder, the cache,
failures, and the written file read back by the metric's element resolution."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from evalalign_metric.cli import main
from evalalign_metric.extraction import load_elements_file
from evalalign_metric.official import alignment_prompts
from test_extraction import GOOD, build_fixed_answer_lm

OFFICIAL = alignment_prompts()
NEW_PROMPT = "an elephant carrying two blue birds"


def save_lm(path, values):
    model, tok = build_fixed_answer_lm(values)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory):
    return save_lm(tmp_path_factory.mktemp("lm") / "fixed", GOOD)


@pytest.fixture
def prompts_file(tmp_path):
    path = tmp_path / "prompts.jsonl"
    lines = [{"prompt_id": e["prompt_id"], "prompt": e["prompt"]} for e in OFFICIAL[:2]] + [NEW_PROMPT]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return path


def test_official_prompts_need_no_model(tmp_path, capsys):
    path = tmp_path / "official.json"
    path.write_text(json.dumps([e["prompt"] for e in OFFICIAL[:3]]))
    out = tmp_path / "elements.json"
    assert main(["elements", str(path), "--out", str(out), "--quiet"]) == 0
    assert "wrote 3 prompts" in capsys.readouterr().out
    assert load_elements_file(out) == {e["prompt"]: e["result_info"] for e in OFFICIAL[:3]}
    assert {e["source"] for e in json.loads(out.read_text())} == {"official"}


def test_a_new_prompt_with_method_lm_and_no_model_is_a_one_line_error(prompts_file, tmp_path, capsys):
    assert main(["elements", str(prompts_file), "--out", str(tmp_path / "e.json"), "--method", "lm"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"evalalign elements: error: 1 of 3 prompts are not official EvalAlign prompts (first: "
                   f"{NEW_PROMPT!r}); give --model to extract their elements with --method lm")
    assert not (tmp_path / "e.json").exists()


def test_extraction_with_a_model_folder_and_the_cache(prompts_file, lm_dir, tmp_path, capsys):
    out, cache = tmp_path / "elements.json", tmp_path / "cache"
    args = ["elements", str(prompts_file), "--out", str(out), "--method", "lm", "--model", str(lm_dir),
            "--cache-dir", str(cache), "--device", "cpu"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "wrote 3 prompts to" in captured.out and "2 official, 1 extracted (0 from the cache)" in captured.out
    assert f"[3/3] extracted: {NEW_PROMPT}" in captured.err
    written = json.loads(out.read_text())
    assert [e.get("prompt_id") for e in written] == [OFFICIAL[0]["prompt_id"], OFFICIAL[1]["prompt_id"], None]
    assert written[2] == {"prompt": NEW_PROMPT, "result_info": GOOD, "source": "extracted"}
    assert len(list(cache.glob("*.json"))) == 1
    # second run: the model is loaded but not asked again
    assert main(args) == 0
    assert "(1 from the cache)" in capsys.readouterr().out
    # --no-official extracts the official prompts too (and finds the new one in the cache)
    assert main(args + ["--no-official", "--quiet"]) == 0
    assert "0 official, 3 extracted (1 from the cache)" in capsys.readouterr().out
    assert load_elements_file(out) == {e["prompt"]: GOOD for e in OFFICIAL[:2]} | {NEW_PROMPT: GOOD}


def test_the_written_file_feeds_the_metrics_element_resolution(prompts_file, lm_dir, tmp_path):
    from evalalign_metric.elements import resolve_elements
    from evalalign_metric.protocol import load_protocol

    out = tmp_path / "elements.json"
    assert main(["elements", str(prompts_file), "--out", str(out), "--method", "lm", "--model", str(lm_dir),
                 "--no-cache", "--quiet"]) == 0
    assert not (tmp_path / "cache").exists()
    table = load_elements_file(out)
    prompts = [OFFICIAL[0]["prompt"], NEW_PROMPT]
    resolved = resolve_elements(load_protocol("evalalign"), prompts, [table[p] for p in prompts])
    assert resolved == [(OFFICIAL[0]["result_info"], "caller"), (GOOD, "caller")]


def test_a_model_that_cannot_answer_stops_the_export_or_is_skipped(prompts_file, tmp_path, capsys):
    bad_dir = save_lm(tmp_path / "bad", {**GOOD, "Count": "elephant: grey;"})
    out = tmp_path / "elements.json"
    base = ["elements", str(prompts_file), "--out", str(out), "--method", "lm", "--model", str(bad_dir),
            "--no-cache", "--quiet"]
    assert main(base) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the loaders' progress bars
    assert err.startswith("evalalign elements: error: the extraction model gave no well-formed")
    assert f"prompt {NEW_PROMPT!r} in 2 attempt(s)" in err and "Count elements 'elephant: grey;'" in err
    assert not out.exists()
    assert main(base + ["--skip-failed"]) == 2
    assert load_elements_file(out) == {e["prompt"]: e["result_info"] for e in OFFICIAL[:2]}
    failed = json.loads((tmp_path / "elements.json.failed.json").read_text())
    assert [f["prompt"] for f in failed] == [NEW_PROMPT] and len(failed[0]["answers"]) == 2
    assert "Count: elephant: grey;" in failed[0]["answers"][0]


def test_missing_inputs_are_named(tmp_path, capsys):
    assert main(["elements", str(tmp_path / "nope.txt"), "--out", str(tmp_path / "e.json")]) == 2
    assert "prompts file" in capsys.readouterr().err
    path = tmp_path / "p.txt"
    path.write_text("a cat\n")
    assert main(["elements", str(path), "--out", str(tmp_path / "e.json"), "--method", "lm",
                 "--model", str(tmp_path / "nolm")]) == 2
    assert "could not load the extraction model" in capsys.readouterr().err


def test_console_script_runs_offline(prompts_file, lm_dir, tmp_path):
    out = tmp_path / "elements.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    done = subprocess.run([sys.executable, "-m", "evalalign_metric.cli", "elements", str(prompts_file), "--out",
                           str(out), "--method", "lm", "--model", str(lm_dir), "--quiet"], capture_output=True,
                          text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert load_elements_file(out)[NEW_PROMPT] == GOOD
    assert len(list((tmp_path / "hf" / "evalalign" / "elements").glob("*.json"))) == 1


def _one_line_error(capsys, pattern: str) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and len(lines) == 1, err
    assert lines[0].startswith("evalalign elements: error: ") and re.search(pattern, lines[0]), lines[0]
    return lines[0]


@pytest.mark.parametrize("suffix", [".txt", ".jsonl"])
def test_a_prompts_file_that_is_not_utf8_is_a_one_line_error(tmp_path, capsys, suffix):
    path = tmp_path / f"prompts{suffix}"
    path.write_bytes(b"a red cat\n\xff\xfe latin-1 bytes\n")
    assert main(["elements", str(path), "--out", str(tmp_path / "e.json")]) == 2
    _one_line_error(capsys, rf"prompts file '.*prompts\{suffix}' is not UTF-8 text")


def test_an_out_that_cannot_be_written_is_refused_before_any_extraction(tmp_path, capsys, monkeypatch):
    path = tmp_path / "p.txt"
    path.write_text("a cat\n")
    (tmp_path / "blocker").write_text("a file where a folder should be")
    assert main(["elements", str(path), "--out", str(tmp_path / "blocker" / "e.json")]) == 2
    _one_line_error(capsys, r"--out '.*e\.json' cannot be written: '.*blocker' is a file, not a folder")

    # a read-only folder (tests run as root, who may write anywhere: the denial is simulated where it happens)
    import tempfile

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    with monkeypatch.context() as patch:
        patch.setattr(tempfile, "mkstemp", denied)
        assert main(["elements", str(path), "--out", str(tmp_path / "ro" / "e.json")]) == 2
    _one_line_error(capsys, r"--out '.*e\.json' cannot be written: Permission denied")


def test_a_disk_full_while_saving_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    import errno

    from evalalign_metric.extraction import elements_file

    path = tmp_path / "p.txt"
    path.write_text("a cat\n")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(elements_file, "write_atomic", full)
    assert main(["elements", str(path), "--out", str(tmp_path / "e.json"), "--quiet"]) == 2
    _one_line_error(capsys, r"--out '.*e\.json' cannot be written: No space left on device")
