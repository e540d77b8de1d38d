"""A judge's sidecar names the protocols it was trained for; asking it another one warns once, naming both."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

from evalalign_metric import EvalAlignScore
from evalalign_metric.judge import protocols as judge_protocols
from evalalign_metric.judge.protocols import UntrainedProtocolWarning, asks_every_question, trained_protocols
from evalalign_metric.protocol import load_protocol, protocol_from_dict
from evalalign_metric.testing import build_tiny_judge


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return build_tiny_judge(tmp_path_factory.mktemp("judge") / "tiny")


@pytest.fixture(autouse=True)
def fresh_warnings():
    judge_protocols._warned.clear()
    yield
    judge_protocols._warned.clear()


def _with_protocols(folder, names):
    """Rewrite the judge's sidecar list (and forget the judge loaded before: the loader caches judges)."""
    from evalalign_metric.judge import clear_judge_cache

    clear_judge_cache()
    sidecar = folder / "evalalign_judge.json"
    data = json.loads(sidecar.read_text())
    if names is None:
        data.pop("protocols", None)
    else:
        data["protocols"] = names
    sidecar.write_text(json.dumps(data))
    return folder


def _untrained_warnings(caught):
    return [w for w in caught if issubclass(w.category, UntrainedProtocolWarning)]


def test_a_judge_asked_a_protocol_its_sidecar_does_not_name_warns_once_naming_both(tiny_dir):
    _with_protocols(tiny_dir, ["evalalign"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        EvalAlignScore(model=str(tiny_dir), protocol="imatch")
        EvalAlignScore(model=str(tiny_dir), protocol="imatch")  # the same judge and protocol again: silent
    [warning] = _untrained_warnings(caught)
    text = str(warning.message)
    assert "trained for protocol(s) 'evalalign', not for 'imatch'" in text and str(tiny_dir) in text


def test_a_judge_asked_a_protocol_it_names_or_with_no_list_does_not_warn(tiny_dir):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _with_protocols(tiny_dir, ["evalalign", "imatch"])
        EvalAlignScore(model=str(tiny_dir), protocol="imatch")
        EvalAlignScore(model=str(tiny_dir), protocol="evalalign")
        _with_protocols(tiny_dir, None)  # an official or user judge with no list
        EvalAlignScore(model=str(tiny_dir), protocol="imatch")
    assert _untrained_warnings(caught) == []


@pytest.mark.parametrize("protocol", ["evalalign", "imatch"])
def test_each_shipped_protocol_gets_an_embedded_judge_trained_for_it(protocol):
    from evalalign_metric.judge.chat import read_sidecar
    from evalalign_metric.runs.defaults import default_judge

    found = default_judge(protocol)
    assert found.trained and protocol in read_sidecar(found.path)["protocols"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        EvalAlignScore(model=str(found.path), protocol=protocol)
    assert _untrained_warnings(caught) == []


def test_the_imatch_protocol_however_given_goes_to_the_embedded_imatch_judge():
    from importlib import resources

    from evalalign_metric.runs.defaults import default_judge_path, embedded_judge_dir

    imatch = default_judge_path("imatch")
    assert imatch.name == "judge-imatch" and imatch.parent == embedded_judge_dir().parent
    assert default_judge_path(load_protocol("imatch")) == imatch
    shipped_file = resources.files("evalalign_metric.protocol") / "data" / "imatch.json"
    assert default_judge_path(str(shipped_file)) == imatch  # the shipped protocol file, given by its path
    assert default_judge_path() == default_judge_path("evalalign") == embedded_judge_dir()
    assert embedded_judge_dir().name == "judge"


def test_trained_protocols_name_each_shipped_protocol_a_stage_asks_word_for_word():
    evalalign, imatch = (json.loads(json.dumps(_raw(n))) for n in ("evalalign", "imatch"))
    both = protocol_from_dict({**evalalign, "name": "both", "aspects": evalalign["aspects"] + imatch["aspects"]})
    assert trained_protocols(both, ["scene-describe"]) == ["scene-describe", "both", "evalalign", "imatch"]
    spatial_only = protocol_from_dict({**evalalign, "name": "spatial",
                                       "aspects": [a for a in evalalign["aspects"] if a["name"] == "Spatial"]})
    assert trained_protocols(spatial_only) == ["spatial"]  # one of EvalAlign's questions is not its protocol
    reworded = dict(imatch["aspects"][1], template=imatch["aspects"][1]["template"].replace("Yes or No", "yes/no"))
    assert not asks_every_question(protocol_from_dict({**imatch, "aspects": [imatch["aspects"][0], reworded]}),
                                   load_protocol("imatch"))
    assert trained_protocols(load_protocol("imatch"), ["imatch"]) == ["imatch"]  # no repeats


def _raw(name):
    from importlib import resources

    return json.loads((resources.files("evalalign_metric.protocol") / "data" / f"{name}.json").read_text())


def test_training_writes_the_list_and_a_judge_trained_from_it_carries_it_over(tmp_path):
    from evalalign_metric.judge.chat import read_sidecar
    from evalalign_metric.training import train

    torch.manual_seed(0)
    base = build_tiny_judge(tmp_path / "base")
    protocol = load_protocol("imatch")
    from PIL import Image

    Image.new("RGB", (32, 32), (200, 30, 30)).save(tmp_path / "0.png")
    rows = [{"image": "0.png", "prompt": "a red square", "aspect": "imatch/overall", "score": 4.0},
            {"image": "0.png", "prompt": "a red square", "aspect": "element/match", "elements": "square (shape)",
             "score": 1}]
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    def run(out, model, stage_protocol):
        train({"output_dir": str(tmp_path / out), "protocol": stage_protocol, "model": {"base": str(model)},
               "data": {"train": [{"format": "jsonl", "path": str(tmp_path / "rows.jsonl")}]},
               "training": {"batch_size": 2, "max_steps": 1, "seed": 0}}, progress=False, log=lambda m: None)
        return read_sidecar(tmp_path / out)["protocols"]

    assert run("first", base, protocol.name) == ["imatch"]
    custom = dict(_raw("imatch"), name="my-imatch")
    (tmp_path / "custom.json").write_text(json.dumps(custom))
    assert run("second", tmp_path / "first", str(tmp_path / "custom.json")) == ["imatch", "my-imatch"]


def test_scoring_a_folder_with_a_judge_trained_for_another_protocol_warns(tiny_dir, tmp_path):
    from evalalign_metric.runs import score_folder
    from evalalign_metric.runs.demo_set import PROMPTS_FILE, write_demo_images

    _with_protocols(tiny_dir, ["imatch"])
    folders = write_demo_images(tmp_path / "images")
    with pytest.warns(UntrainedProtocolWarning, match="trained for protocol\\(s\\) 'imatch', not for 'evalalign'"):
        score_folder(folders["painter"], prompts=tmp_path / "images" / PROMPTS_FILE, model=str(tiny_dir),
                     out=tmp_path / "results.jsonl", progress=False)


def test_the_command_line_prints_the_warning_as_one_line(tiny_dir, tmp_path, capsys):
    from evalalign_metric import cli
    from evalalign_metric.runs.demo_set import PROMPTS_FILE, write_demo_images

    _with_protocols(tiny_dir, ["imatch"])
    folders = write_demo_images(tmp_path / "images")
    code = cli.main(["score", str(folders["painter"]), "--prompts", str(tmp_path / "images" / PROMPTS_FILE),
                     "--model", str(tiny_dir), "--out", str(tmp_path / "r.jsonl"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 0
    [line] = [w for w in err.splitlines() if "warning" in w]
    assert line.startswith("evalalign score: warning: judge ") and "not for 'evalalign'" in line
    assert "UntrainedProtocolWarning" not in err  # no Python warning format (file, line, class, source)
