"""The scene benchmark's stage options (benchmarks/train_scene_judge.py): what a --bind stage asks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalalign_metric.protocol.schema import protocol_from_dict
from evalalign_metric.synthetic import scenes
from evalalign_metric.training.readers import read_jsonl


@pytest.fixture(scope="module")
def script(load_benchmark):
    return load_benchmark("train_scene_judge")


def test_bind_values_are_parsed_with_weights_and_questions_per_image(script):
    bind = script.parse_bind("colours,Color=3,Spatial:1000:4")
    assert (bind.aspects, bind.weights, bind.steps, bind.per_image) == (
        {"colours", "Color", "Spatial"}, {"Color": 3.0}, 1000, 4)
    assert script.parse_bind("Color:600") == script.Bind(frozenset({"Color"}), {}, 600, None)


@pytest.mark.parametrize("text, names", [
    ("Colour:600", "'Colour'"),  # not an aspect the scenes have
    ("Color:0", "positive whole numbers"),
    ("Color", "ASPECTS:STEPS"),
    ("Color:600:4:2", "ASPECTS:STEPS"),
    ("Color=x:600", "weight of 'Color'"),
    ("Color=-1:600", "weight of 'Color'"),
])
def test_bad_bind_values_are_refused_by_name(script, text, names):
    with pytest.raises(SystemExit, match=names):
        script.parse_bind(text)


def test_aspect_weights_are_parsed_and_bad_ones_refused_by_name(script):
    assert script.parse_weights("Color=3,Spatial=2,Count=2") == {"Color": 3.0, "Spatial": 2.0, "Count": 2.0}
    with pytest.raises(SystemExit, match="weight of 'Count'"):
        script.parse_weights("Color=3,Count=two")
    with pytest.raises(SystemExit, match="NAME=WEIGHT pairs, got 'Color'"):
        script.parse_weights("Color")


def test_a_colours_bind_stage_asks_the_element_colour_question_beside_evalalign_aspects(script, tmp_path):
    for split, seeds in (("train", range(8)), ("heldout", range(100, 104))):
        script.write_split(tmp_path / split, seeds, exclude=scenes.HELD_OUT_PAIRS,
                           describe_seeds=range(1000, 1004))
    protocol = script.write_bind_stage(tmp_path, "bind1", script.parse_bind("colours,Color=3,Spatial:1000:4"),
                                       reverse=False, sides=True)
    loaded = protocol_from_dict(json.loads(Path(protocol).read_text()))
    rows = [json.loads(line) for line in (tmp_path / "train" / "bind1.jsonl").read_text().splitlines()]
    assert {r["aspect"] for r in rows} == {"colour_element", "Color", "Spatial"}
    # the colour rows are about the scenes the EvalAlign questions are asked about, three shapes each
    evalalign_images = {r["image"] for r in rows if r["aspect"] != "colour_element"}
    colour_rows = [r for r in rows if r["aspect"] == "colour_element"]
    assert len(colour_rows) == 3 * 8 and {r["image"] for r in colour_rows} >= evalalign_images
    assert len(read_jsonl(tmp_path / "train" / "bind1.jsonl", loaded)) == len(rows)  # every row is askable
    assert not {a.name for a in loaded.aspects} & {"Count", "Object", "object"}
    counting = script.write_bind_stage(tmp_path, "bind3", script.parse_bind("counts,Count=2:100:4"), reverse=False,
                                       sides=True)
    rows = [json.loads(line) for line in (tmp_path / "train" / "bind3.jsonl").read_text().splitlines()]
    assert {r["aspect"] for r in rows} == {"count_element", "Count"}
    assert len(read_jsonl(tmp_path / "train" / "bind3.jsonl",
                          protocol_from_dict(json.loads(Path(counting).read_text())))) == len(rows)
    # without direct questions the stage uses the shipped protocol and its rows only
    assert script.write_bind_stage(tmp_path, "bind2", script.parse_bind("Count:10"), reverse=False,
                                   sides=True) == "evalalign"
    assert {json.loads(line)["aspect"] for line in (tmp_path / "heldout" / "bind2.jsonl").open()} == {"Count"}


@pytest.mark.parametrize("argv", [
    ["--relations-like-evalalign", "--imatch-steps", "10"],  # no --base: a built judge has no token to start like
    ["--relations-like-evalalign", "--base", "j"],  # no iMatch stage: no iMatch relation token is added
    ["--relations-like-evalalign", "--base", "j", "--imatch-steps", "10", "--no-phrase-tokens"],
])
def test_relations_like_evalalign_without_what_it_starts_is_refused_before_any_work(script, tmp_path, argv):
    with pytest.raises(SystemExit, match="--relations-like-evalalign needs --base"):
        script.main([*argv, "--work", str(tmp_path / "w")])
    assert not (tmp_path / "w").exists()  # refused before a scene is drawn


def test_an_installed_judge_says_which_protocol_it_is_the_default_for(script, tmp_path):
    from evalalign_metric.testing import build_tiny_judge

    work = tmp_path / "run"
    judge = build_tiny_judge(work / "judge")
    recipe = ["--threads", "2", "--base", "/tmp/judge-v1", "--imatch-steps", "10"]
    (work / "result.json").write_text(json.dumps({"recipe": recipe, "threads": 2, "train_seconds": 12.0}))
    spec = {"text_layers": 2, "vision": "swin", "projector": "linear"}
    heldout = {"alignment/Count": {"srcc": 0.5, "accuracy": 0.6, "n": 10}}
    for name, title in (("judge", "Embedded default judge"), ("judge-imatch", "Embedded iMatch judge")):
        target = tmp_path / "assets" / name
        script.install(judge, target, score=lambda folder: heldout, n_train=100, spec=spec)
        readme = (target / "README.md").read_text()
        sidecar = json.loads((target / "evalalign_judge.json").read_text())
        assert readme.startswith(f"# {title}:") and sidecar["heldout_agreement"] == heldout
        reproduce = readme.split("Reproduce: `", 1)[1].split("`", 1)[0]
        assert reproduce.startswith("python benchmarks/train_scene_judge.py --threads 2 --base /tmp/judge-v1")
        if name == "judge":
            assert "--install-dir" not in reproduce and "evalalign demo` and `evalalign score`" in readme
            assert sidecar["description"].startswith("Default judge for")
        else:  # the command reinstalls it where it was, and the README says where it is the default
            assert reproduce.endswith("--install --install-dir evalalign_metric/assets/judge-imatch")
            assert "`evalalign score --protocol imatch`" in readme
            assert sidecar["description"].startswith("Default iMatch judge for")
