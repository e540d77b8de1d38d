"""``evalalign score`` / ``rank`` / ``demo`` through the CLI: outputs, and bad input answered in one line."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from evalalign_metric.cli import main
from evalalign_metric.official import alignment_prompts, faithfulness_prompts
from evalalign_metric.runs.scan import natural_key

ALIGN_IDS = [e["prompt_id"] for e in alignment_prompts()]
FAITH_IDS = [e["prompt_id"] for e in faithfulness_prompts()]
SHARED = sorted(set(ALIGN_IDS) & set(FAITH_IDS))
ALIGN_ONLY = [i for i in ALIGN_IDS if i not in SHARED]
FAITH_ONLY = [i for i in FAITH_IDS if i not in SHARED]


def make_folder(folder: Path, ids, colour="red", size=(32, 32)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, pid in enumerate(ids):
        image = Image.new("RGB", size, colour)
        image.putpixel((i % size[0], 0), (i, 0, 0))
        image.save(folder / f"{pid}.png")
    return folder


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, pattern: str, command: str = "score", notes: bool = False) -> None:
    """Exit 2 and one error line (after the run's notes, when ``notes``), without a traceback."""
    lines = [line for line in err.splitlines() if line.strip()]
    if notes:
        lines = [line for line in lines if not line.startswith(f"evalalign {command}: note: ")]
    assert code == 2, (code, err)
    assert "Traceback" not in err
    assert len(lines) == 1, err
    assert lines[0].startswith(f"evalalign {command}: error: "), lines[0]
    assert re.search(pattern, lines[0]), (pattern, lines[0])


# --- happy paths ----------------------------------------------------------------------------------------


def test_score_prints_scores_and_writes_results_and_summary(tmp_path, capsys, tiny_judge_path):
    folder = make_folder(tmp_path / "imgs", [ALIGN_ONLY[0], FAITH_ONLY[0]])
    code, out, err = run_cli(capsys, "score", folder, "--model", tiny_judge_path, "--no-progress")
    assert code == 0, err
    official = len(set(ALIGN_IDS) | set(FAITH_IDS))  # the folder holds images of both official sets
    assert err.splitlines() == [
        f"evalalign score: note: {official - 2} of the {official} prompt(s) of --prompts official have no image "
        f"in {str(folder)!r} (e.g. {', '.join(repr(i) for i in sorted(set(ALIGN_IDS) | set(FAITH_IDS), key=natural_key)[:3])}"  # noqa: E501
        ", ...)"
    ]
    results = folder / "evalalign" / "results.jsonl"
    summary = json.loads((folder / "evalalign" / "results.summary.json").read_text())
    assert f"2 image(s) scored (argmax); results: {results}" in out
    for label in ("overall", "faithfulness", "alignment/Object", "faithfulness/common"):
        assert label in out
    assert summary["counts"]["images_scored"] == 2
    assert len(summary["prompts_without_image"]) == official - 2
    code, out, err = run_cli(capsys, "score", folder, "--model", tiny_judge_path, "--format", "json")
    assert code == 0 and json.loads(out) == summary  # resumed: nothing new, same summary
    assert f"note: resuming {str(results)!r}: 2 of the 2 image(s) were already scored by an earlier run; 0 left" in err
    assert "elements: 1 prompt(s) official, 1 without elements (faithfulness only)" in run_cli(
        capsys, "score", folder, "--model", tiny_judge_path)[1]
    assert summary["counts"]["elements_from"] == {"prompts-file": 0, "official": 1, "parser": 0, "none": 1}


def test_score_a_prompts_file_without_elements_gets_the_parsers_unless_off(tmp_path, capsys, tiny_judge_path):
    folder = make_folder(tmp_path / "imgs", ["a", "b"])
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt_id": "a", "prompt": "three red balloons above a house"}\n'
                       '{"prompt_id": "b", "prompt": "a horse"}\n')
    code, out, err = run_cli(capsys, "score", folder, "--prompts", prompts, "--model", tiny_judge_path,
                             "--no-progress")
    assert code == 0, err
    assert "elements: 2 prompt(s) from the parser" in out
    summary = json.loads((folder / "evalalign" / "results.summary.json").read_text())
    assert summary["counts"]["elements_from"] == {"prompts-file": 0, "official": 0, "parser": 2, "none": 0}
    # hand-computed: balloons (three, red) above a house -> Object, Count, Color, Spatial; a horse -> Object, Count
    assert summary["counts"]["asked"]["alignment/Color"] == 1
    assert summary["counts"]["asked"]["alignment/Spatial"] == 1
    assert summary["counts"]["asked"]["alignment/Object"] == 2
    code, out, err = run_cli(capsys, "score", folder, "--prompts", prompts, "--model", tiny_judge_path,
                             "--no-progress", "--no-parse-elements", "--out", tmp_path / "off.jsonl")
    assert code == 0, err
    assert "elements: 2 prompt(s) without elements (faithfulness only)" in out
    off = json.loads((tmp_path / "off.summary.json").read_text())
    assert off["counts"]["images_with_alignment_questions"] == 0
    assert off["counts"]["elements_from"]["none"] == 2


def test_skipped_files_exit_2_after_writing_unless_allowed(tmp_path, capsys, tiny_judge_path):
    folder = make_folder(tmp_path / "imgs", [ALIGN_ONLY[0]])
    (folder / "notes.txt").write_text("x")
    (folder / f"{ALIGN_ONLY[1]}.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 30)
    make_folder(folder, ["no_such_prompt"])
    Image.new("RGB", (2, 2)).save(folder / f"{ALIGN_ONLY[2]}.png")  # smaller than the judge's patch
    code, _, err = run_cli(capsys, "score", folder, "--model", tiny_judge_path)
    assert_one_line_error(
        code,
        err,
        r"4 file\(s\) .* were not scored: 1 not an image \(e\.g\. 'notes\.txt'\); 2 "
        r"corrupt or unreadable .*; 1 without a prompt .*--allow-skipped",
        notes=True,
    )
    summary = json.loads((folder / "evalalign" / "results.summary.json").read_text())
    assert summary["skipped"]["non_image_files"] == ["notes.txt"]
    assert [c["image"] for c in summary["skipped"]["corrupt_images"]] == [
        f"{ALIGN_ONLY[1]}.png",
        f"{ALIGN_ONLY[2]}.png",
    ]
    assert "needs at least" in summary["skipped"]["corrupt_images"][1]["error"]
    assert summary["skipped"]["images_without_prompt"] == ["no_such_prompt.png"]
    assert summary["counts"]["images_scored"] == 1 and summary["counts"]["files"] == 5
    code, out, err = run_cli(capsys, "score", folder, "--model", tiny_judge_path, "--allow-skipped")
    assert code == 0 and "evalalign score: warning: 4 file(s)" in err and "overall" in out


def test_rank_writes_the_report_and_reuses_results(tmp_path, capsys, tiny_judge_path, monkeypatch):
    a = make_folder(tmp_path / "model_a", [ALIGN_ONLY[0], ALIGN_ONLY[1], FAITH_ONLY[0]], "red")
    b = make_folder(tmp_path / "model_b", [ALIGN_ONLY[0], ALIGN_ONLY[1], FAITH_ONLY[0]], "blue")
    report = tmp_path / "report"
    code, out, err = run_cli(
        capsys,
        "rank",
        a,
        b,
        "--names",
        "Model A",
        "Model B",
        "--model",
        tiny_judge_path,
        "--out-dir",
        report,
        "--n-resamples",
        "200",
    )
    assert code == 0, err
    assert {p.name for p in report.iterdir()} == {"report.html", "report.png", "leaderboard.json"}
    for text in ("Model A", "Model B", "alignment/Count", "faithfulness/face", "95% bootstrap interval"):
        assert text in out
    board = json.loads((report / "leaderboard.json").read_text())
    assert sorted(r["name"] for r in board["rows"]) == ["Model A", "Model B"]
    # Second time: the results files are reused (no judge is even loaded), folders or .jsonl alike.
    import evalalign_metric.judge as judge_module

    monkeypatch.setattr(judge_module, "load_judge", lambda *a, **k: pytest.fail("rescored"))
    code, out2, err = run_cli(
        capsys,
        "rank",
        a,
        b / "evalalign" / "results.jsonl",
        "--names",
        "Model A",
        "Model B",
        "--model",
        tiny_judge_path,
        "--out-dir",
        report,
        "--n-resamples",
        "200",
        "--format",
        "json",
    )
    assert code == 0, err
    assert json.loads(out2)["rows"] == board["rows"]


def test_rank_compares_the_prompts_every_model_shares_and_says_what_it_left_out(tmp_path, capsys, tiny_judge_path):
    a = make_folder(tmp_path / "model_a", ALIGN_ONLY[:4], "red")
    b = make_folder(tmp_path / "model_b", [*ALIGN_ONLY[1:3], ALIGN_ONLY[5]], "blue")
    code, out, err = run_cli(capsys, "rank", a, b, "--model", tiny_judge_path, "--out-dir", tmp_path / "report",
                             "--n-resamples", "50", "--no-plot", "--scoring", "expectation")
    assert code == 0, err
    shared = ALIGN_ONLY[1:3]
    warning = [line for line in err.splitlines() if line.startswith("evalalign rank: warning:")]
    assert len(warning) == 1, err
    assert "ranked on the 2 prompt(s) all 2 models share" in warning[0]
    assert f"'model_a' 2 image(s) of 2 prompt(s) (e.g. '{ALIGN_ONLY[0]}', '{ALIGN_ONLY[3]}')" in warning[0]
    assert f"'model_b' 1 image(s) of 1 prompt(s) (e.g. '{ALIGN_ONLY[5]}')" in warning[0]
    assert "compared on the 2 prompt(s) every model was scored on" in out
    board = json.loads((tmp_path / "report" / "leaderboard.json").read_text())
    assert board["prompts"]["compared"] == sorted(shared, key=int)
    assert board["prompts"]["left_out"]["model_a"] == {"prompts": [ALIGN_ONLY[0], ALIGN_ONLY[3]], "images": 2}
    assert {r["name"]: r["num_images"] for r in board["rows"]} == {"model_a": 2, "model_b": 2}
    html = (tmp_path / "report" / "report.html").read_text()
    assert "Compared on the 2 prompt(s)" in html and all(p in html for p in shared)
    # independent expectation: model_a's numbers are those of a folder holding only the shared prompts' images
    only = tmp_path / "only_shared"
    only.mkdir()
    for pid in shared:
        (only / f"{pid}.png").write_bytes((a / f"{pid}.png").read_bytes())
    code, _, err = run_cli(capsys, "rank", only, b, "--names", "model_a", "model_b", "--model", tiny_judge_path,
                           "--out-dir", tmp_path / "report2", "--n-resamples", "50", "--no-plot", "--scoring",
                           "expectation")
    assert code == 0, err
    again = json.loads((tmp_path / "report2" / "leaderboard.json").read_text())
    assert [{**r, "results": None} for r in again["rows"]] == [{**r, "results": None} for r in board["rows"]]
    assert len({r["values"]["overall"]["value"] for r in board["rows"]}) == 2  # the check can tell models apart
    assert not again["prompts"]["left_out"]["model_a"]["prompts"]


def test_rank_refuses_models_that_share_no_prompt(tmp_path, capsys, tiny_judge_path):
    a = make_folder(tmp_path / "model_a", ALIGN_ONLY[:12], "red")
    b = make_folder(tmp_path / "model_b", ALIGN_ONLY[12:15], "blue")
    code, _, err = run_cli(capsys, "rank", a, b, "--model", tiny_judge_path, "--out-dir", tmp_path / "report",
                           "--no-plot")
    assert_one_line_error(code, err, rf"share no prompt.*'model_a' on 12 prompt\(s\) \(e\.g\. '{ALIGN_ONLY[0]}'\), "
                                     rf"'model_b' on 3 prompt\(s\)", command="rank", notes=True)
    assert not (tmp_path / "report").exists()


# --- bad input: one line, exit 2, no traceback -----------------------------------------------------------


def _prompts(tmp_path: Path, text: str, name: str = "prompts.json") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def case_empty_folder(t, j):
    (t / "empty").mkdir()
    return ["score", t / "empty", "--model", j], r"is empty"


def case_missing_folder(t, j):
    return ["score", t / "nowhere", "--model", j], r"'.*nowhere' does not exist"


def case_folder_is_a_file(t, j):
    (t / "file.png").write_bytes(b"x")
    return ["score", t / "file.png", "--model", j], r"is not a folder"


def case_wrong_extension(t, j):
    (t / "imgs").mkdir()
    (t / "imgs" / f"{ALIGN_ONLY[0]}.txt").write_text("an image?")
    return ["score", t / "imgs", "--model", j], r"holds no image files .*'\d+\.txt'"


def case_unreadable_file(t, j):
    (t / "imgs").mkdir()
    os.symlink(t / "gone.png", t / "imgs" / f"{ALIGN_ONLY[0]}.png")  # unreadable even for root
    return ["score", t / "imgs", "--model", j], r"none of the images .* can be read: 1 unreadable"


def case_no_image_has_a_prompt(t, j):
    make_folder(t / "imgs", ["cat", "dog"])
    return [
        "score",
        t / "imgs",
        "--model",
        j,
    ], r"none of the 2 image\(s\) .* has a prompt .*<prompt_id>\.<ext>"


def case_prompts_malformed_json(t, j):
    make_folder(t / "imgs", ["1"])
    return [
        "score",
        t / "imgs",
        "--model",
        j,
        "--prompts",
        _prompts(t, '[{"prompt_id": 1,'),
    ], r"is not valid JSON"


def case_prompts_malformed_jsonl_line(t, j):
    make_folder(t / "imgs", ["1"])
    p = _prompts(t, '{"prompt_id": 1, "prompt": "a"}\n{oops}\n', "p.jsonl")
    return ["score", t / "imgs", "--model", j, "--prompts", p], r"line 2 is not valid JSON"


def case_prompts_not_a_list(t, j):
    make_folder(t / "imgs", ["1"])
    p = _prompts(t, '{"1": "a cat"}')
    return ["score", t / "imgs", "--model", j, "--prompts", p], r"must hold a JSON list .* got a dict"


def case_prompt_id_missing(t, j):
    make_folder(t / "imgs", ["1"])
    p = _prompts(t, '[{"prompt": "a cat"}]')
    return ["score", t / "imgs", "--model", j, "--prompts", p], r"entry 0 has no 'prompt_id'"


def case_duplicate_prompt_ids(t, j):
    make_folder(t / "imgs", ["1"])
    p = _prompts(t, '[{"prompt_id": "1", "prompt": "a cat"}, {"prompt_id": 1, "prompt": "a dog"}]')
    return ["score", t / "imgs", "--model", j, "--prompts", p], r"entry 1: duplicate prompt_id '1'"


def case_empty_prompt(t, j):
    make_folder(t / "imgs", ["1"])
    p = _prompts(t, '[{"prompt_id": "1", "prompt": "  "}]')
    return ["score", t / "imgs", "--model", j, "--prompts", p], r"'prompt' must be a non-empty string"


def case_prompt_entry_unknown_key(t, j):
    make_folder(t / "imgs", ["1"])
    p = _prompts(t, '[{"prompt_id": "1", "promt": "a cat", "prompt": "a cat"}]')
    return ["score", t / "imgs", "--model", j, "--prompts", p], r"unknown key\(s\) \['promt'\]"


def case_prompts_wrong_extension(t, j):
    make_folder(t / "imgs", ["1"])
    p = _prompts(t, "1,a cat\n", "prompts.csv")
    return ["score", t / "imgs", "--model", j, "--prompts", p], r"must be a \.json or \.jsonl file"


def case_prompts_file_missing(t, j):
    make_folder(t / "imgs", ["1"])
    return [
        "score",
        t / "imgs",
        "--model",
        j,
        "--prompts",
        t / "nope.json",
    ], r"neither a file nor one of official"


def case_bad_elements(t, j):
    make_folder(t / "imgs", ["1"])
    p = _prompts(t, '[{"prompt_id": "1", "prompt": "a cat", "elements": {"Colour": "cat: red;"}}]')
    return ["score", t / "imgs", "--model", j, "--prompts", p], r"unknown aspect 'Colour'"


def case_manifest_image_missing(t, j):
    make_folder(t / "imgs", ["a"])
    p = _prompts(t, '{"image": "a.png", "prompt": "x"}\n{"image": "b.png", "prompt": "y"}\n', "m.jsonl")
    return ["score", t / "imgs", "--model", j, "--prompts", p], r"image 'b\.png' does not exist"


def case_manifest_path_outside_folder(t, j):
    make_folder(t / "imgs", ["a"])
    p = _prompts(t, '{"image": "../a.png", "prompt": "x"}\n', "m.jsonl")
    return ["score", t / "imgs", "--model", j, "--prompts", p], r"points outside the images folder"


def case_shared_ids_ambiguous(t, j):
    make_folder(t / "imgs", [SHARED[0], ALIGN_ONLY[0], FAITH_ONLY[0]])
    return ["score", t / "imgs", "--model", j], r"prompt ids of both official sets .*official-alignment"


def case_unknown_protocol(t, j):
    make_folder(t / "imgs", [ALIGN_ONLY[0]])
    return [
        "score",
        t / "imgs",
        "--model",
        j,
        "--protocol",
        "evalalign2",
    ], r"protocol='evalalign2' is neither"


def case_unknown_model(t, j):
    make_folder(t / "imgs", [ALIGN_ONLY[0]])
    return ["score", t / "imgs", "--model", t / "no-such-judge"], r"no-such-judge"


def case_model_folder_not_a_checkpoint(t, j):
    make_folder(t / "imgs", [ALIGN_ONLY[0]])
    (t / "judge").mkdir()
    return ["score", t / "imgs", "--model", t / "judge"], r"has no config\.json"


def case_model_unsupported_architecture(t, j):
    make_folder(t / "imgs", [ALIGN_ONLY[0]])
    (t / "judge").mkdir()
    (t / "judge" / "config.json").write_text('{"model_type": "bert"}')
    return ["score", t / "imgs", "--model", t / "judge"], r"bert"


def case_out_unwritable(t, j):
    make_folder(t / "imgs", [ALIGN_ONLY[0]])
    (t / "blocker").write_text("a file where a folder should be")
    return (
        ["score", t / "imgs", "--model", j, "--out", t / "blocker" / "r.jsonl"],
        r"cannot be written: .*blocker. is a file, not a folder",
    )


def case_two_images_of_one_prompt(t, j):
    make_folder(t / "imgs", [ALIGN_ONLY[0], ALIGN_ONLY[1]])
    Image.new("RGB", (32, 32), "blue").save(t / "imgs" / f"{ALIGN_ONLY[0]}.jpg")
    return ["score", t / "imgs", "--model", j], (
        rf"images '{ALIGN_ONLY[0]}\.jpg' and '{ALIGN_ONLY[0]}\.png' in .* both match prompt_id '{ALIGN_ONLY[0]}'"
    )


_HELD: list = []


def case_out_held_by_another_run(t, j):
    from evalalign_metric.runs.lock import RunLock

    make_folder(t / "imgs", [ALIGN_ONLY[0]])
    lock = RunLock(t / "r.jsonl")
    lock.acquire()  # held by this test process: the lock is per open file, so the run cannot take it
    _HELD.append(lock)  # kept alive until the run was refused (a collected lock releases itself)
    return ["score", t / "imgs", "--model", j, "--out", t / "r.jsonl"], (
        rf"'.*r\.jsonl' is being written by another run \(pid {os.getpid()} on host '.*', started .*; lock "
        r"'.*\.r\.jsonl\.lock'\): wait for it to end, or pass another --out"
    )


def case_out_wrong_extension(t, j):
    make_folder(t / "imgs", [ALIGN_ONLY[0]])
    return ["score", t / "imgs", "--model", j, "--out", t / "results.json"], r"must end in \.jsonl"


def case_out_is_a_folder(t, j):
    make_folder(t / "imgs", [ALIGN_ONLY[0]])
    (t / "r.jsonl").mkdir()
    return ["score", t / "imgs", "--model", j, "--out", t / "r.jsonl"], r"is a folder"


def case_out_is_another_file(t, j):
    make_folder(t / "imgs", [ALIGN_ONLY[0]])
    (t / "r.jsonl").write_text('{"id": 1, "score": 3}\n')
    return ["score", t / "imgs", "--model", j, "--out", t / "r.jsonl"], r"not an evalalign results file"


def case_results_from_another_model(t, j, factory):
    make_folder(t / "imgs", [ALIGN_ONLY[0]])
    assert main(["score", str(t / "imgs"), "--model", str(j), "--out", str(t / "r.jsonl")]) == 0
    other = factory(tokenizer="llama", architecture="llava", seed=5)
    return ["score", t / "imgs", "--model", other, "--out", t / "r.jsonl"], r"another judge model"


def case_results_damaged(t, j):
    make_folder(t / "imgs", [ALIGN_ONLY[0], ALIGN_ONLY[1]])
    assert main(["score", str(t / "imgs"), "--model", str(j), "--out", str(t / "r.jsonl")]) == 0
    lines = (t / "r.jsonl").read_text().splitlines()
    lines[3] = lines[3][:20]
    (t / "r.jsonl").write_text("\n".join(lines) + "\n")
    return ["score", t / "imgs", "--model", j, "--out", t / "r.jsonl"], r"damaged at line 4"


def case_image_changed_since_scored(t, j):
    make_folder(t / "imgs", [ALIGN_ONLY[0]])
    assert main(["score", str(t / "imgs"), "--model", str(j), "--out", str(t / "r.jsonl")]) == 0
    make_folder(t / "imgs", [ALIGN_ONLY[0]], colour="green")
    return ["score", t / "imgs", "--model", j, "--out", t / "r.jsonl"], r"changed since it was scored"


def case_bad_dtype(t, j):
    make_folder(t / "imgs", [ALIGN_ONLY[0]])
    return ["score", t / "imgs", "--model", j, "--dtype", "float13"], r"dtype='float13' is not one of"


def case_bad_device(t, j):
    make_folder(t / "imgs", [ALIGN_ONLY[0]])
    return ["score", t / "imgs", "--model", j, "--device", "gpu0"], r"--device 'gpu0' is not a device"


def case_cuda_missing(t, j):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    make_folder(t / "imgs", [ALIGN_ONLY[0]])
    return ["score", t / "imgs", "--model", j, "--device", "cuda"], r"no CUDA GPU"


def case_rank_names_mismatch(t, j):
    make_folder(t / "a", [ALIGN_ONLY[0]])
    return ["rank", t / "a", "--names", "A", "B", "--model", j], r"--names has 2 name\(s\) for 1 folder"


def case_rank_missing_folder(t, j):
    return ["rank", t / "gone", "--model", j], r"'.*gone' does not exist"


def case_rank_duplicate_names(t, j):
    make_folder(t / "x" / "m", [ALIGN_ONLY[0]])
    make_folder(t / "y" / "m", [ALIGN_ONLY[0]])
    return ["rank", t / "x" / "m", t / "y" / "m", "--model", j], r"\['m'\] appear more than once"


def case_rank_different_judges(t, j, factory):
    make_folder(t / "a", [ALIGN_ONLY[0]])
    make_folder(t / "b", [ALIGN_ONLY[0]])
    assert main(["score", str(t / "a"), "--model", str(j)]) == 0
    assert (
        main(
            ["score", str(t / "b"), "--model", str(factory(tokenizer="llama", architecture="llava", seed=5))]
        )
        == 0
    )
    return [
        "rank",
        t / "a" / "evalalign" / "results.jsonl",
        t / "b" / "evalalign" / "results.jsonl",
        "--out-dir",
        t / "rep",
    ], r"scored by different judges"


def case_rank_source_not_results(t, j):
    (t / "scores.csv").write_text("a,1\n")
    return ["rank", t / "scores.csv", "--model", j], r"is a file but not a results \.jsonl"


def case_rank_empty_results_file(t, j):
    (t / "empty.jsonl").write_text("")
    return ["rank", t / "empty.jsonl", "--model", j], r"results file '.*empty\.jsonl' does not exist or is empty"


CASES = [v for k, v in sorted(globals().items()) if k.startswith("case_")]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__[5:] for c in CASES])
def test_bad_input_exits_2_with_one_clear_line(case, tmp_path, capsys, tiny_judge_path, tiny_judge_factory):
    import inspect

    if len(inspect.signature(case).parameters) == 3:
        argv, pattern = case(tmp_path, tiny_judge_path, tiny_judge_factory)
    else:
        argv, pattern = case(tmp_path, tiny_judge_path)
    capsys.readouterr()
    code, _, err = run_cli(capsys, *argv)
    assert_one_line_error(code, err, pattern, command=str(argv[0]))


def test_there_are_at_least_twenty_bad_input_cases():
    assert len(CASES) >= 20


# --- real processes ---------------------------------------------------------------------------------------


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf"),
        "TRANSFORMERS_VERBOSITY": "error",
    }


@pytest.mark.subprocess
def test_console_error_is_one_line_without_traceback(tmp_path):
    (tmp_path / "empty").mkdir()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "evalalign_metric.cli",
            "score",
            str(tmp_path / "empty"),
            "--model",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=_env(tmp_path),
        timeout=300,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"evalalign score: error: IMAGES_DIR {str(tmp_path / 'empty')!r} is empty: expected images named "
        "<prompt_id>.<ext> (.png, .jpg, .jpeg, .webp, .bmp, .gif, .tif, .tiff)"
    ]


@pytest.mark.slow
def test_demo_without_the_embedded_judge_says_the_judge_is_untrained(tmp_path, monkeypatch, capsys):
    from evalalign_metric import cli
    from evalalign_metric.runs import defaults

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setattr(defaults, "embedded_judge_dir", lambda protocol=None: tmp_path / "no-embedded-judge")
    assert cli.main(["demo", "--out-dir", str(tmp_path / "demo"), "--n-resamples", "100", "--no-progress"]) == 0
    out, err = capsys.readouterr()
    assert "UNTRAINED DEMO JUDGE" in err and "UNTRAINED DEMO JUDGE" in out
    # no progress bar: one line per stage, saying what the demo does and on how many images
    stages = [line for line in err.splitlines() if line.startswith("evalalign demo: ") and "UNTRAINED" not in line]
    assert stages[0] == "evalalign demo: starting: importing torch and transformers, loading the embedded judges"
    assert stages[1].startswith("evalalign demo: drawing 10 scenes for each of 2 pretend text-to-image models")
    for protocol in ("EvalAlign", "iMatch"):
        assert f"evalalign demo: {protocol} protocol: scoring painter's 10 images (judge: the untrained demo judge)" \
            in stages
        assert any(s.startswith(f"evalalign demo: {protocol} protocol: leaderboard of 2 models over 20 images")
                   for s in stages)
    assert len(stages) == 8
    demo = tmp_path / "demo"
    assert {p.name for p in demo.iterdir()} >= {"report.html", "report.png", "leaderboard.json", "images", "results"}
    assert len(list((demo / "images" / "painter").glob("*.png"))) == 10
    assert (tmp_path / "hf" / "evalalign" / "demo-judge" / "v1" / "config.json").is_file()
    assert "Untrained demo judge" in (demo / "report.html").read_text()
    board = json.loads((demo / "leaderboard.json").read_text())
    assert board["demo_judge"] is True and all(r["num_images"] == 10 for r in board["rows"])


@pytest.mark.slow
@pytest.mark.subprocess
def test_demo_on_the_embedded_judge_ranks_the_faithful_painter_first(tmp_path):
    from evalalign_metric.runs.defaults import embedded_judge_dir

    assert (embedded_judge_dir() / "model.safetensors").is_file(), "the trained default judge must ship"
    result = subprocess.run(
        [sys.executable, "-m", "evalalign_metric.cli", "demo", "--out-dir", str(tmp_path / "demo"),
         "--n-resamples", "100"],
        capture_output=True, text=True, env=_env(tmp_path), timeout=900,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "UNTRAINED" not in result.stdout + result.stderr
    board = json.loads((tmp_path / "demo" / "leaderboard.json").read_text())
    assert board["demo_judge"] is False
    rows = {r["name"]: r["values"] for r in board["rows"]}
    # painter draws every prompt as written with clean shapes; scribbler gets part of each prompt wrong
    # and draws torn shapes: the trained judge must see both differences
    assert board["rows"][0]["name"] == "painter"
    for key in ("alignment", "faithfulness"):
        assert rows["painter"][key]["value"] > rows["scribbler"][key]["value"], key
    assert not (tmp_path / "hf" / "evalalign" / "demo-judge").exists()  # no demo judge was built
    # iMatch's questions go to the embedded judge trained for them, which must rank the painter first too
    assert "iMatch protocol (judge: judge-imatch)" in result.stdout
    assert "EvalAlign protocol (judge: judge)" in result.stdout
    imatch = json.loads((tmp_path / "demo" / "imatch" / "leaderboard.json").read_text())
    assert imatch["demo_judge"] is False and imatch["rows"][0]["name"] == "painter"


@pytest.mark.parametrize("protocol, folder", [("evalalign", "judge"), ("imatch", "judge-imatch")])
def test_score_without_a_model_uses_the_embedded_judge_of_its_protocol(tmp_path, protocol, folder):
    from evalalign_metric import cli
    from evalalign_metric.runs.demo_set import PROMPTS_FILES, write_demo_images

    folders = write_demo_images(tmp_path / "images")
    out = tmp_path / "results.jsonl"
    assert cli.main(["score", str(folders["painter"]), "--prompts", str(tmp_path / "images" / PROMPTS_FILES[protocol]),
                     "--protocol", protocol, "--out", str(out), "--no-progress"]) == 0
    header = json.loads(out.read_text().splitlines()[0])
    assert Path(header["model"]["reference"]).name == folder and header["protocol"]["name"] == protocol
