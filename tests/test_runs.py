"""The resumable scoring job: prompt sources, folder scan, results file, resume, kill/restart, sharding."""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import evalalign_metric
from evalalign_metric.errors import InputError
from evalalign_metric.functional import aggregate, score_images
from evalalign_metric.judge import load_judge
from evalalign_metric.official import alignment_prompts, faithfulness_prompts
from evalalign_metric.protocol import load_protocol
from evalalign_metric.runs import load_prompts, read_results, scan_folder, score_folder
from evalalign_metric.runs.job import RunPaths, _finalise
from evalalign_metric.runs.resultsfile import ResultsWriter, make_header

ALIGN_IDS = [e["prompt_id"] for e in alignment_prompts()]
FAITH_IDS = [e["prompt_id"] for e in faithfulness_prompts()]
SHARED_IDS = sorted(set(ALIGN_IDS) & set(FAITH_IDS))
ALIGN_ONLY = [i for i in ALIGN_IDS if i not in SHARED_IDS]
FAITH_ONLY = [i for i in FAITH_IDS if i not in SHARED_IDS]
PROMPT = {
    **{e["prompt_id"]: e["prompt"] for e in faithfulness_prompts()},
    **{e["prompt_id"]: e["prompt"] for e in alignment_prompts()},
}
ELEMENTS = {e["prompt_id"]: e["result_info"] for e in alignment_prompts()}
COLOURS = [
    "red",
    "green",
    "blue",
    "white",
    "yellow",
    "black",
    "purple",
    "orange",
    "grey",
    "pink",
    "brown",
    "cyan",
]


def make_folder(folder: Path, ids, size=(32, 32)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, pid in enumerate(ids):
        image = Image.new("RGB", size, COLOURS[i % len(COLOURS)])
        image.putpixel((i % size[0], 0), (i * 20 % 256, 7, 9))  # distinct files, distinct hashes
        image.save(folder / f"{pid}.png")
    return folder


def answer_lines(path: Path) -> list[dict]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines[1:]]


def complete_images(path: Path) -> int:
    content = read_results(path) if path.exists() else None
    return 0 if content is None else len(content.images)


# --- prompt sources -------------------------------------------------------------------------------------


def test_official_source_resolves_shared_ids_by_the_folders_set():
    source = load_prompts("official", load_protocol("evalalign"))
    shared = SHARED_IDS[0]
    as_alignment = source.id_table({shared, ALIGN_ONLY[0]})
    assert (
        as_alignment[shared].prompt
        == PROMPT[shared]
        == next(e["prompt"] for e in alignment_prompts() if e["prompt_id"] == shared)
    )
    assert as_alignment[shared].elements_source == "official"
    as_faithfulness = source.id_table({shared, FAITH_ONLY[0]})
    assert as_faithfulness[shared].prompt == next(
        e["prompt"] for e in faithfulness_prompts() if e["prompt_id"] == shared
    )
    assert as_faithfulness[shared].elements is None
    with pytest.raises(InputError, match="both official sets"):
        source.id_table({shared, ALIGN_ONLY[0], FAITH_ONLY[0]})
    assert len(load_prompts("official-alignment", load_protocol("evalalign")).by_id) == 120
    assert len(load_prompts("official-faithfulness", load_protocol("evalalign")).by_id) == 100


def test_prompts_file_forms(tmp_path):
    protocol = load_protocol("evalalign")
    official_file = tmp_path / "official.json"
    official_file.write_text(json.dumps(alignment_prompts()[:3]))  # the official file is a prompts file as is
    source = load_prompts(official_file, protocol)
    assert source.by_id[ALIGN_IDS[0]].elements == ELEMENTS[ALIGN_IDS[0]]
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text(
        '{"prompt_id": 7, "prompt": "a red cube", "elements": {"Color": "cube: red;"}}\n\n'
        '{"prompt_id": "8", "prompt": "'
        + PROMPT[ALIGN_IDS[1]]
        + '"}\n'
    )
    source = load_prompts(jsonl, protocol)
    assert (
        source.by_id["7"].elements == {"Color": "cube: red;"}
        and source.by_id["7"].elements_source == "prompts-file"
    )
    assert source.by_id["8"].elements_source == "official"  # an official prompt brings its official elements
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        '{"image": "sub/a.png", "prompt": "a cat"}\n{"image": "./b.png", "prompt": "a cat"}\n'
    )
    source = load_prompts(manifest, protocol)
    assert sorted(source.by_image) == ["b.png", "sub/a.png"]
    # no elements, not official: the parser's (hand-computed: one cat, nothing else)
    assert source.by_image["b.png"].elements == {**NONE6, "Object": "cat;", "Count": "cat: a;"}
    assert source.by_image["b.png"].elements_source == "parser"
    assert load_prompts(manifest, protocol, parse_elements=False).by_image["b.png"].elements is None


NONE6 = dict.fromkeys(["Object", "Count", "Color", "Style", "Spatial", "Action"], "none")
MY_PROMPTS = [  # (prompt_id, prompt, the parser's elements worked out by hand)
    ("p1", "two dogs under a table",
     {**NONE6, "Object": "dogs; table;", "Count": "dogs: two; table: a;", "Spatial": "dogs: under the table;"}),
    ("p2", "a yellow kite, watercolor", {**NONE6, "Object": "kite;", "Count": "kite: a;", "Color": "kite: yellow;",
                                         "Style": "watercolor;"}),
]


def write_prompts(path: Path, extra=()) -> Path:
    entries = [{"prompt_id": pid, "prompt": prompt} for pid, prompt, _ in MY_PROMPTS] + list(extra)
    path.write_text(json.dumps(entries))
    return path


def test_prompts_without_elements_get_the_parsers_except_official_faithfulness(tmp_path):
    faith = faithfulness_prompts()[0]
    path = write_prompts(tmp_path / "p.json", [{"prompt_id": "f", "prompt": faith["prompt"]},
                                               {"prompt_id": "x", "prompt": "4k, masterpiece"}])
    source = load_prompts(path, load_protocol("evalalign"))
    for pid, _, expected in MY_PROMPTS:
        assert (source.by_id[pid].elements, source.by_id[pid].elements_source) == (expected, "parser")
    # an official faithfulness prompt is asked no alignment questions (as in the reference); nothing parsed
    assert (source.by_id["f"].elements, source.by_id["f"].elements_source) == (None, None)
    assert (source.by_id["x"].elements, source.by_id["x"].elements_source) == (None, None)
    off = load_prompts(path, load_protocol("evalalign"), parse_elements=False)
    assert all(off.by_id[pid].elements is None for pid, _, _ in MY_PROMPTS)
    # the official sets themselves are never parsed
    official = load_prompts("official-faithfulness", load_protocol("evalalign"))
    assert official.by_id[FAITH_ONLY[0]].elements is None


def test_imatch_prompts_are_not_parsed(tmp_path):
    source = load_prompts(write_prompts(tmp_path / "p.json"), load_protocol("imatch"))
    assert all(source.by_id[pid].elements is None for pid, _, _ in MY_PROMPTS)


def test_folder_run_scores_parsed_elements_and_counts_the_sources(tmp_path, tiny_judge_path):
    protocol = load_protocol("evalalign")
    folder = make_folder(tmp_path / "imgs", [pid for pid, _, _ in MY_PROMPTS] + ["f"])
    faith = faithfulness_prompts()[0]["prompt"]
    prompts = write_prompts(tmp_path / "p.json", [{"prompt_id": "f", "prompt": faith}])
    run = score_folder(folder, prompts=prompts, model=tiny_judge_path, out=tmp_path / "on.jsonl", progress=False)
    records = [json.loads(line) for line in (tmp_path / "on.jsonl").read_text().splitlines()[1:]]
    for pid, prompt, expected in MY_PROMPTS:
        mine = [r for r in records if r["image"] == f"{pid}.png"]
        asked = [r["question"] for r in mine if r["aspect"].startswith("alignment/")]
        # the alignment questions are the ones the parsed elements give, asked word for word
        assert asked == [text for aspect, text in protocol.questions_for(expected, prompt)
                         if aspect.key.startswith("alignment/")]
        assert {r["elements_source"] for r in mine} == {"parser"}
    assert len([r for r in records if r["image"] == "p1.png" and r["aspect"].startswith("alignment/")]) == 3
    assert not [r for r in records if r["image"] == "f.png" and r["aspect"].startswith("alignment/")]
    assert run.data["counts"]["elements_from"] == {"prompts-file": 0, "official": 0, "parser": 2, "none": 1}
    assert run.data["faithfulness_only_images"] == ["f.png"]
    off = score_folder(folder, prompts=prompts, model=tiny_judge_path, out=tmp_path / "off.jsonl",
                       progress=False, parse_elements=False)
    assert off.data["counts"]["elements_from"] == {"prompts-file": 0, "official": 0, "parser": 0, "none": 3}
    assert off.data["counts"]["images_with_alignment_questions"] == 0
    assert sorted(off.data["faithfulness_only_images"]) == ["f.png", "p1.png", "p2.png"]


def test_resuming_a_run_scored_without_the_parser_says_how(tmp_path, tiny_judge_path):
    folder = make_folder(tmp_path / "imgs", [MY_PROMPTS[0][0]])
    prompts = write_prompts(tmp_path / "p.json")
    score_folder(folder, prompts=prompts, model=tiny_judge_path, progress=False, parse_elements=False)
    with pytest.raises(InputError, match=r"image 'p1.png' was asked other questions .* now come from the parser: "
                                         r"pass --no-parse-elements"):
        score_folder(folder, prompts=prompts, model=tiny_judge_path, progress=False)
    again = score_folder(folder, prompts=prompts, model=tiny_judge_path, progress=False, parse_elements=False)
    assert again.data["counts"]["elements_from"]["none"] == 1


def test_official_folder_counts_official_elements(tmp_path, tiny_judge_path):
    folder = make_folder(tmp_path / "imgs", [ALIGN_ONLY[0], ALIGN_ONLY[1], FAITH_ONLY[0]])
    run = score_folder(folder, model=tiny_judge_path, progress=False)
    assert run.data["counts"]["elements_from"] == {"prompts-file": 0, "official": 2, "parser": 0, "none": 1}


def test_scan_lists_every_file_once(tmp_path):
    folder = make_folder(tmp_path / "imgs", [ALIGN_ONLY[1], ALIGN_ONLY[0], "not_a_prompt"])
    (folder / "readme.txt").write_text("notes")
    (folder / ".DS_Store").write_bytes(b"\0\0")
    (folder / f"{ALIGN_ONLY[2]}.jpg").write_bytes(b"this is not a jpeg")
    (folder / "evalalign").mkdir()
    (folder / "results.jsonl").write_text("")
    scan = scan_folder(
        folder, load_prompts("official", load_protocol("evalalign")), exclude=[folder / "results.jsonl"]
    )
    expected = sorted([ALIGN_ONLY[1], ALIGN_ONLY[0]], key=int)
    assert [i.key for i in scan.items] == [f"{p}.png" for p in expected]  # natural order
    assert scan.non_image_files == ["readme.txt"]
    assert [u["image"] for u in scan.unreadable] == [f"{ALIGN_ONLY[2]}.jpg"]
    assert scan.without_prompt == ["not_a_prompt.png"]
    assert scan.num_files == 5


def _prompts_file(path: Path, ids) -> Path:
    path.write_text("".join(json.dumps({"prompt_id": i, "prompt": f"a photo number {i}"}) + "\n" for i in ids))
    return path


def test_two_images_of_one_prompt_id_are_refused_naming_both(tmp_path):
    folder = make_folder(tmp_path / "imgs", ["p0", "p1"])
    Image.new("RGB", (32, 32), "blue").save(folder / "p0.jpg")
    prompts = load_prompts(_prompts_file(tmp_path / "prompts.jsonl", ["p0", "p1"]), load_protocol("evalalign"))
    with pytest.raises(InputError, match=r"images 'p0\.jpg' and 'p0\.png' in .* both match prompt_id 'p0'"):
        scan_folder(folder, prompts)
    Image.new("RGB", (32, 32), "blue").save(folder / "x9.jpg")  # a clash without a prompt is only unmatched
    (folder / "p0.jpg").unlink()
    make_folder(tmp_path / "other", ["x9"])
    os.replace(tmp_path / "other" / "x9.png", folder / "x9.png")
    assert sorted(scan_folder(folder, prompts).without_prompt) == ["x9.jpg", "x9.png"]


def test_scan_lists_images_in_subfolders_and_prompts_without_an_image(tmp_path):
    folder = make_folder(tmp_path / "imgs", ["p0", "p2"])
    make_folder(folder / "old", ["p1", "p3"])
    make_folder(folder / "deep" / "er", ["p4"])
    (folder / "notes").mkdir()
    (folder / "notes" / "a.txt").write_text("no image here")
    make_folder(folder / ".hidden", ["p5"])
    protocol = load_protocol("evalalign")
    scan = scan_folder(folder, load_prompts(_prompts_file(tmp_path / "p.jsonl", ["p0", "p1", "p2", "p3", "p9"]),
                                            protocol))
    assert scan.ignored_subfolders == [{"folder": "deep", "images": 1}, {"folder": "old", "images": 2}]
    assert scan.prompts_without_image == ["p1", "p3", "p9"] and scan.num_prompts == 5
    # the official sets: only the sets the folder's images belong to are expected
    official = scan_folder(make_folder(tmp_path / "official", ALIGN_ONLY[:3]), load_prompts("official", protocol))
    assert official.num_prompts == len(ALIGN_IDS)
    assert official.prompts_without_image == sorted(set(ALIGN_IDS) - set(ALIGN_ONLY[:3]), key=int)
    # a manifest may point into subfolders: only the images it does not list are counted
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text(json.dumps({"image": "old/p1.png", "prompt": "a photo"}) + "\n")
    listed = scan_folder(folder, load_prompts(manifest, protocol))
    assert listed.ignored_subfolders == [{"folder": "deep", "images": 1}, {"folder": "old", "images": 1}]
    assert listed.prompts_without_image == []


def test_a_run_says_what_it_did_not_score_in_the_summary_and_in_notes(tmp_path, tiny_judge_path):
    folder = make_folder(tmp_path / "imgs", ["p0", "p2"])
    make_folder(folder / "old", ["p1"])
    prompts = _prompts_file(tmp_path / "p.jsonl", ["p0", "p1", "p2"])
    notes = []
    run = score_folder(folder, prompts=prompts, model=tiny_judge_path, progress=False, notify=notes.append)
    assert run.data["ignored_subfolders"] == [{"folder": "old", "images": 1}]
    assert run.data["prompts_without_image"] == ["p1"]
    assert run.num_skipped == 0 and run.already_scored == 0  # neither is a skipped file
    assert notes == [
        f"1 image(s) in subfolders of {str(folder)!r} are not scored (only the folder's top level is): 'old' (1)",
        f"1 of the 3 prompt(s) of --prompts {prompts} have no image in {str(folder)!r} (e.g. 'p1')",
    ]
    notes.clear()
    make_folder(tmp_path / "more", ["p1"])
    os.replace(tmp_path / "more" / "p1.png", folder / "p1.png")
    again = score_folder(folder, prompts=prompts, model=tiny_judge_path, progress=False, notify=notes.append)
    assert again.already_scored == 2 and again.data["prompts_without_image"] == []
    assert notes[0] == (f"resuming {str(run.results_path)!r}: 2 of the 3 image(s) were already scored by an "
                        "earlier run; 1 left to score")


_HOLD_LOCK = (
    "import sys, time\n"
    "from evalalign_metric.runs.lock import RunLock\n"
    "lock = RunLock(sys.argv[1]); lock.acquire()\n"
    "print('locked', flush=True); time.sleep(600)\n"
)


def test_a_second_run_on_the_same_out_stops_at_once_naming_the_holder(tmp_path, tiny_judge_path, monkeypatch):
    folder = make_folder(tmp_path / "imgs", ALIGN_ONLY[:2])
    out = tmp_path / "r.jsonl"
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(out)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(Path(evalalign_metric.__file__).parents[1])})
    try:
        assert holder.stdout.readline().strip() == "locked"
        import evalalign_metric.judge as judge_module

        monkeypatch.setattr(judge_module, "load_judge", lambda *a, **k: pytest.fail("the second run started"))
        with pytest.raises(InputError) as caught:
            score_folder(folder, model=tiny_judge_path, out=out, progress=False)
        message = str(caught.value)
        assert f"results file {str(out)!r} is being written by another run" in message
        assert f"pid {holder.pid} on host {socket.gethostname()!r}" in message
        assert not out.exists()
        monkeypatch.undo()
    finally:
        holder.kill()  # SIGKILL: the holder cannot release anything itself
        holder.wait(timeout=60)
    # a killed holder leaves its lock file, but not its lock: the next run goes ahead at once
    assert (tmp_path / ".r.jsonl.lock").exists()
    run = score_folder(folder, model=tiny_judge_path, out=out, progress=False)
    assert run.data["counts"]["images_scored"] == 2


def test_a_temporary_left_by_a_killed_summary_write_is_removed(tmp_path, tiny_judge_path):
    folder = make_folder(tmp_path / "imgs", ALIGN_ONLY[:1])
    run = score_folder(folder, model=tiny_judge_path, progress=False)
    stale = run.summary_path.with_name(f".{run.summary_path.name}.0123456789ab.tmp")
    stale.write_text('{"summary_version": 1, "res')  # what a SIGKILL inside write_atomic leaves
    other = run.summary_path.with_name(".keep.me.0123456789ab.tmp")
    other.write_text("not ours")
    again = score_folder(folder, model=tiny_judge_path, progress=False)
    assert not stale.exists() and other.exists()
    assert again.data == run.data


def test_a_full_disk_stops_the_run_in_one_error_and_the_rerun_ends_byte_identical(
    tmp_path, tiny_judge_path, monkeypatch
):
    import errno

    import evalalign_metric.runs.job as job

    folder = make_folder(tmp_path / "imgs", ALIGN_ONLY[:4])
    reference = score_folder(folder, model=tiny_judge_path, out=tmp_path / "ref.jsonl", progress=False)
    out = tmp_path / "r.jsonl"
    real = ResultsWriter._write
    calls = []

    def fills_up(self, data):
        calls.append(len(data))
        if len(calls) == 4:  # the header, two images, then half of the third image's lines fit
            self._handle.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        real(self, data)

    monkeypatch.setattr(ResultsWriter, "_write", fills_up)
    with pytest.raises(InputError) as caught:
        score_folder(folder, model=tiny_judge_path, out=out, progress=False)
    assert str(caught.value) == (
        f"cannot write {str(out)!r}: No space left on device; 2 image(s) are safely written: make room (or fix "
        "the cause) and rerun the same command to continue"
    )
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    monkeypatch.undo()
    assert complete_images(out) == 2
    score_folder(folder, model=tiny_judge_path, out=out, progress=False)
    assert out.read_bytes() == reference.results_path.read_bytes()
    # full again when the summary is written: one error, the results stay whole, the rerun completes it
    summary = out.with_name("r.summary.json")
    summary.unlink()

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(job, "write_summary", full)
    with pytest.raises(InputError, match=r"cannot write '.*r\.summary\.json': No space left on device; 4 image"):
        score_folder(folder, model=tiny_judge_path, out=out, progress=False)
    monkeypatch.undo()
    assert score_folder(folder, model=tiny_judge_path, out=out, progress=False).data["counts"]["images_scored"] == 4


# --- results file ---------------------------------------------------------------------------------------


HEADER = make_header(
    {"reference": "m", "fingerprint": "f", "model_type": "llava"},
    {"name": "evalalign", "version": "1.0", "sha256": "s"},
    "argmax",
    "float32",
)


def _records(key: str, n: int) -> list[dict]:
    return [
        {"kind": "answer", "image": key, "sha256": "x", "aspect": f"a{i}", "argmax": float(i)}
        for i in range(n)
    ]


def test_results_file_detects_crash_damage_and_refuses_other_damage(tmp_path):
    path = tmp_path / "r.jsonl"
    with ResultsWriter(path, HEADER) as writer:
        writer.write_image(_records("1.png", 2))
        writer.write_image(_records("2.png", 3))
    intact = path.read_bytes()
    content = read_results(path)
    assert list(content.images) == ["1.png", "2.png"] and content.dropped is None
    assert content.intact_bytes == len(intact)
    assert [r["line"] for r in content.images["2.png"].records] == [0, 1, 2]
    # A crash inside the third image: two of its four lines complete, the third cut mid-line.
    lines = [json.dumps({"kind": "answer", "image": "3.png", "line": i, "lines": 4}) for i in range(3)]
    path.write_bytes(intact + ("\n".join(lines[:2]) + "\n" + lines[2][:10]).encode())
    content = read_results(path)
    assert list(content.images) == ["1.png", "2.png"]
    assert content.dropped == "the incomplete lines of image '3.png'"
    assert content.intact_bytes == len(intact)
    # Resuming cuts the file back to its intact part before appending.
    with ResultsWriter(path, HEADER, truncate_to=content.intact_bytes) as writer:
        writer.write_image(_records("3.png", 1))
    assert list(read_results(path).images) == ["1.png", "2.png", "3.png"]
    # Damage before the end is refused, not repaired.
    text = path.read_text().splitlines()
    path.write_text("\n".join([text[0], text[1], "garbage", *text[3:]]) + "\n")
    with pytest.raises(InputError, match="damaged at line 3"):
        read_results(path)
    path.write_text("just some text\n")
    with pytest.raises(InputError, match="not an evalalign results file"):
        read_results(path)


# --- scoring runs ---------------------------------------------------------------------------------------


def test_score_folder_writes_every_question_with_the_judges_probabilities(tmp_path, tiny_judge_path):
    ids = [ALIGN_ONLY[0], ALIGN_ONLY[1], FAITH_ONLY[0]]
    folder = make_folder(tmp_path / "imgs", ids)
    run = score_folder(folder, model=tiny_judge_path, progress=False)
    protocol = load_protocol("evalalign")
    assert run.results_path == folder / "evalalign" / "results.jsonl"
    records = answer_lines(run.results_path)
    header = json.loads(run.results_path.read_text().splitlines()[0])
    assert header["protocol"]["name"] == "evalalign" and header["scoring"] == "argmax"
    assert header["dtype"] == "float32" and header["model"]["reference"] == os.fspath(tiny_judge_path)
    # Independent expectation: the questions the protocol asks for each prompt, in order.
    ordered = sorted(ids, key=int)
    expected = [
        (f"{pid}.png", text)
        for pid in ordered
        for _, text in protocol.questions_for(ELEMENTS.get(pid), PROMPT[pid])
    ]
    assert [(r["image"], r["question"]) for r in records] == expected
    # Same numbers as asking the judge directly.
    judge = load_judge(tiny_judge_path)
    direct = score_images(
        judge,
        protocol,
        [Image.open(folder / f"{ordered[0]}.png").convert("RGB")],
        [PROMPT[ordered[0]]],
        [ELEMENTS.get(ordered[0])],
        use_official_elements=False,
    )[0]
    first = [r for r in records if r["image"] == f"{ordered[0]}.png"]
    assert [r["probs"] for r in first] == [q.probs for q in direct.questions]
    for r, q in zip(first, direct.questions):
        assert (r["argmax"] is None and math.isnan(q.argmax)) or r["argmax"] == q.argmax
    # Summary = aggregate() over the applicable answers, computed here from the lines.
    sums, counts = {}, {}
    for r in records:
        if r["argmax"] is not None:
            sums[r["aspect"]] = sums.get(r["aspect"], 0.0) + r["argmax"]
            counts[r["aspect"]] = counts.get(r["aspect"], 0) + 1
    n_align = len({r["image"] for r in records if r["aspect"].startswith("alignment/")})
    want = aggregate(protocol, sums, counts, num_alignment_images=n_align)
    for key, value in want.items():
        got = run.scores[key]
        assert (math.isnan(value) and math.isnan(got)) or got == pytest.approx(value, abs=1e-12), key
    assert (
        run.data["counts"]["images_scored"] == 3
        and run.data["counts"]["images_with_alignment_questions"] == 2
    )
    assert run.data["faithfulness_only_images"] == [f"{FAITH_ONLY[0]}.png"]
    assert run.num_skipped == 0


def test_resume_scores_only_what_is_missing_and_ends_byte_identical(tmp_path, tiny_judge_path, monkeypatch):
    ids = ALIGN_ONLY[:4]
    folder = make_folder(tmp_path / "imgs", ids)
    full = score_folder(folder, model=tiny_judge_path, out=tmp_path / "full.jsonl", progress=False)
    reference = full.results_path.read_bytes()
    content = read_results(full.results_path)
    keys = list(content.images)
    # Crash states: after two images, inside the third image's lines, inside a line.
    two = len(content.images[keys[0]].text) + len(content.images[keys[1]].text) + 1
    cut_lines = reference.split(b"\n")
    states = {
        "after two images": b"\n".join(cut_lines[:two]) + b"\n",
        "inside an image": b"\n".join(cut_lines[: two + 2]) + b"\n",
        "inside a line": b"\n".join(cut_lines[: two + 2]) + b"\n" + cut_lines[two + 2][:25],
    }
    import evalalign_metric.runs.job as job

    scored = []
    real = job.score_item
    monkeypatch.setattr(
        job,
        "score_item",
        lambda judge, protocol, item: scored.append(item.key) or real(judge, protocol, item),
    )
    for name, data in states.items():
        out = tmp_path / f"{name.replace(' ', '_')}.jsonl"
        out.write_bytes(data)
        scored.clear()
        score_folder(folder, model=tiny_judge_path, out=out, progress=False)
        assert out.read_bytes() == reference, name
        assert scored == keys[2:], name  # nothing already written is scored again
    scored.clear()
    again = score_folder(folder, model=tiny_judge_path, out=full.results_path, progress=False)
    assert scored == [] and full.results_path.read_bytes() == reference
    assert again.data == full.data


def test_new_images_join_in_canonical_order(tmp_path, tiny_judge_path):
    folder = make_folder(tmp_path / "imgs", [ALIGN_ONLY[5], ALIGN_ONLY[6]])
    out = tmp_path / "r.jsonl"
    score_folder(folder, model=tiny_judge_path, out=out, progress=False)
    make_folder(tmp_path / "more", [ALIGN_ONLY[0]])
    os.replace(tmp_path / "more" / f"{ALIGN_ONLY[0]}.png", folder / f"{ALIGN_ONLY[0]}.png")
    score_folder(folder, model=tiny_judge_path, out=out, progress=False)
    fresh = score_folder(folder, model=tiny_judge_path, out=tmp_path / "fresh.jsonl", progress=False)
    assert out.read_bytes() == fresh.results_path.read_bytes()


def test_resume_refuses_a_changed_judge_protocol_scoring_image_or_prompt(
    tmp_path, tiny_judge_path, tiny_judge_factory
):
    folder = make_folder(tmp_path / "imgs", ALIGN_ONLY[:2])
    out = tmp_path / "r.jsonl"
    score_folder(folder, model=tiny_judge_path, out=out, progress=False)
    other = tiny_judge_factory(tokenizer="llama", architecture="llava", seed=3)
    with pytest.raises(InputError, match="another judge model"):
        score_folder(folder, model=other, out=out, progress=False)
    custom = tmp_path / "custom.json"
    raw = json.loads(
        (Path(evalalign_metric.__file__).parent / "protocol" / "data" / "evalalign.json").read_text()
    )
    raw["version"] = "1.0-edited"
    custom.write_text(json.dumps(raw))
    with pytest.raises(InputError, match="protocol 'evalalign' version '1.0'"):
        score_folder(folder, model=tiny_judge_path, protocol=custom, out=out, progress=False)
    with pytest.raises(InputError, match="scoring 'argmax'"):
        score_folder(folder, model=tiny_judge_path, scoring="expectation", out=out, progress=False)
    prompts = tmp_path / "p.json"
    prompts.write_text(json.dumps([{"prompt_id": i, "prompt": "something else"} for i in ALIGN_ONLY[:2]]))
    with pytest.raises(InputError, match="was scored with prompt"):
        score_folder(folder, model=tiny_judge_path, prompts=prompts, out=out, progress=False)
    Image.new("RGB", (32, 32), "magenta").save(folder / f"{ALIGN_ONLY[0]}.png")
    with pytest.raises(InputError, match="changed since it was scored"):
        score_folder(folder, model=tiny_judge_path, out=out, progress=False)


def test_part_files_merge_into_the_single_process_file(tmp_path, tiny_judge_path):
    folder = make_folder(tmp_path / "imgs", ALIGN_ONLY[:5])
    single = score_folder(folder, model=tiny_judge_path, out=tmp_path / "single.jsonl", progress=False)
    content = read_results(single.results_path)
    paths = RunPaths(tmp_path / "merged.jsonl")
    records = list(content.images.values())
    for rank in range(2):  # what two ranks would have written: every second remaining image
        with ResultsWriter(paths.part(rank, 2), content.header) as writer:
            for record in records[rank::2]:
                writer.write_image(
                    [{k: v for k, v in r.items() if k not in ("line", "lines")} for r in record.records]
                )
    _finalise(paths, content.header)
    assert paths.out.read_bytes() == single.results_path.read_bytes()
    assert paths.existing_parts() == []


def test_score_folder_with_a_manifest_and_the_imatch_protocol(tmp_path, tiny_judge_path):
    folder = make_folder(tmp_path / "imgs", ["a", "b"])
    (folder / "sub").mkdir()
    make_folder(folder / "sub", ["c"])
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        "\n".join(
            json.dumps(e)
            for e in [
                {
                    "image": "a.png",
                    "prompt": "a puffin on a rock",
                    "elements": ["puffin (animal)", "rock (object)"],
                },
                {
                    "image": "sub/c.png",
                    "prompt": "a puffin on a rock",
                    "elements": ["puffin (animal)", "rock (object)"],
                },
            ]
        )
        + "\n"
    )
    run = score_folder(folder, model=tiny_judge_path, prompts=manifest, protocol="imatch", progress=False)
    records = answer_lines(run.results_path)
    assert sorted({r["image"] for r in records}) == ["a.png", "sub/c.png"]
    assert [r["element"] for r in records if r["image"] == "a.png" and "element" in r] == [
        "puffin (animal)",
        "rock (object)",
    ]
    assert run.skipped["images_without_prompt"] == ["b.png"]
    assert run.data["counts"]["asked"]["element/match"] == 4


# --- real processes ---------------------------------------------------------------------------------------


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # one thread, as the in-process reference runs (conftest): with another thread count fp32 kernels may sum
    # in another order (seen on an AMD EPYC VM), and the byte-for-byte comparisons below are about resuming
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error", "PYTHONUNBUFFERED": "1",
                "OMP_NUM_THREADS": "1"})
    return env


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "evalalign_metric.cli", *args]


@pytest.mark.slow
@pytest.mark.subprocess
def test_sigkill_mid_run_then_restart_equals_an_uninterrupted_run(tmp_path, tiny_judge_path):
    ids = ALIGN_ONLY[:6] + FAITH_ONLY[:6]
    folder = make_folder(tmp_path / "imgs", ids)
    reference = score_folder(folder, model=tiny_judge_path, out=tmp_path / "reference.jsonl", progress=False)
    out = tmp_path / "run.jsonl"
    command = _cli("score", str(folder), "--model", str(tiny_judge_path), "--out", str(out), "--no-progress")
    proc = subprocess.Popen(command, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        if complete_images(out) >= 3:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    code = proc.wait()
    assert (
        code == -signal.SIGKILL
    ), f"the run was not killed mid-way (exit {code}): {proc.stderr.read()[-400:]}"
    killed_at = complete_images(out)
    assert 3 <= killed_at < len(ids), killed_at
    restart = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=600)
    assert restart.returncode == 0, restart.stderr
    assert out.read_bytes() == reference.results_path.read_bytes()
    pairs = [(r["image"], r["aspect"]) for r in answer_lines(out)]
    assert len(pairs) == len(set(pairs))  # nothing duplicated
    protocol = load_protocol("evalalign")
    expected = {(f"{pid}.png", a.key) for pid in ids for a, _ in protocol.questions_for(ELEMENTS.get(pid))}
    assert set(pairs) == expected  # nothing missing
    resumed = json.loads(out.with_name("run.summary.json").read_text())
    assert {k: v for k, v in resumed.items() if k != "results"} == {
        k: v for k, v in reference.data.items() if k != "results"
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(folder: Path, judge: Path, out: Path, nproc: int = 2) -> subprocess.CompletedProcess:
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        "1",
        "--nproc_per_node",
        str(nproc),
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
        "-m",
        "evalalign_metric.cli",
        "score",
        str(folder),
        "--model",
        str(judge),
        "--out",
        str(out),
        "--no-progress",
        "--allow-skipped",
    ]
    env = _env()
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
@pytest.mark.subprocess
def test_torchrun_two_processes_equal_one_process(tmp_path, tiny_judge_path):
    ids = ALIGN_ONLY[:4] + FAITH_ONLY[:3]  # 7 images: ranks get 4 and 3
    folder = make_folder(tmp_path / "imgs", ids)
    (folder / f"{ALIGN_ONLY[10]}.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)  # corrupt
    single = score_folder(folder, model=tiny_judge_path, out=tmp_path / "single.jsonl", progress=False)
    assert single.num_skipped == 1
    out = tmp_path / "two.jsonl"
    result = _torchrun(folder, tiny_judge_path, out)
    assert result.returncode == 0, result.stderr[-2000:]
    assert out.read_bytes() == single.results_path.read_bytes()
    assert not list(tmp_path.glob("two.jsonl.rank*"))
    two = json.loads(out.with_name("two.summary.json").read_text())
    assert {k: v for k, v in two.items() if k != "results"} == {
        k: v for k, v in single.data.items() if k != "results"
    }
    # Resuming a crashed single-process file with two processes gives the same file again.
    crashed = tmp_path / "crashed.jsonl"
    data = single.results_path.read_bytes().split(b"\n")
    crashed.write_bytes(b"\n".join(data[:14]) + b"\n" + data[14][:30])
    result = _torchrun(folder, tiny_judge_path, crashed)
    assert result.returncode == 0, result.stderr[-2000:]
    assert crashed.read_bytes() == single.results_path.read_bytes()


def test_cpu_threads_do_not_change_results(tmp_path, tiny_judge_path):
    """torchrun sets OMP_NUM_THREADS=1: the per-image numbers must not depend on the thread count."""
    folder = make_folder(tmp_path / "imgs", ALIGN_ONLY[:1])
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = score_folder(folder, model=tiny_judge_path, out=tmp_path / "one.jsonl", progress=False)
        torch.set_num_threads(2)
        two = score_folder(folder, model=tiny_judge_path, out=tmp_path / "two.jsonl", progress=False)
    finally:
        torch.set_num_threads(before)
    # fp32 kernels may sum in another order with another thread count (seen on an AMD EPYC VM: 1e-7 apart),
    # so the records must agree field by field, numbers to within float32 rounding
    first, second = (p.read_text().splitlines() for p in (one.results_path, two.results_path))
    assert len(first) == len(second) > 1
    for a, b in zip(first, second):
        a, b = json.loads(a), json.loads(b)
        assert a.keys() == b.keys()
        for key in a:
            if isinstance(a[key], float) or (isinstance(a[key], list) and a[key] and isinstance(a[key][0], float)):
                assert np.allclose(a[key], b[key], rtol=0, atol=1e-6), key
            else:
                assert a[key] == b[key], key
