"""The one judge registry: its contents, user names as model= references, and the single answer to "no judge
named" shared by every entry point."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import evalalign_metric
from evalalign_metric import EvalAlignScore, JudgeLoadError, list_judges, list_protocols, register_judge
from evalalign_metric import registry
from evalalign_metric.hub.registry import JUDGES

MODULE_DIR = Path(__file__).resolve().parents[1] / "adapters" / "evaluate" / "evalalign"


@pytest.fixture
def my_judge(tiny_judge_path):
    register_judge("my-tiny-judge", tiny_judge_path, description="a test judge")
    yield "my-tiny-judge"
    registry.unregister_judge("my-tiny-judge")


def test_list_judges_holds_hub_embedded_and_user_judges(my_judge, tiny_judge_path):
    assert list_judges(kind="hub") == sorted(JUDGES)
    assert list_judges(kind="embedded") == ["embedded", "embedded-imatch"]
    users = list_judges(kind="user")  # other tests' or docs' registrations may live in this process too
    assert my_judge in users
    assert list_judges() == sorted([*JUDGES, "embedded", "embedded-imatch", *users])
    assert Path(registry.judge_entry("embedded-imatch").reference).name == "judge-imatch"
    assert registry.judge_entry(my_judge).reference == os.fspath(tiny_judge_path)
    assert list_protocols() == ["evalalign", "imatch"]
    assert {"list_judges", "list_protocols", "register_judge"} <= set(evalalign_metric.__all__)
    registry.unregister_judge(my_judge)
    assert my_judge not in list_judges()


def test_registry_refuses_taken_names_and_bad_kinds(tiny_judge_path):
    with pytest.raises(evalalign_metric.InputError, match="already the hub judge"):
        register_judge("evalalign-13b", tiny_judge_path)
    with pytest.raises(evalalign_metric.InputError, match="already the embedded judge"):
        register_judge("embedded", tiny_judge_path)
    with pytest.raises(evalalign_metric.InputError, match="kind='local'"):
        list_judges(kind="local")


def test_a_registered_name_resolves_in_evalalign_score(my_judge, tiny_judge_path):
    from evalalign_metric.judge.loading import resolve_reference

    assert resolve_reference(my_judge) == tiny_judge_path
    metric = EvalAlignScore(model=my_judge)
    assert metric.judge.identity["model"] == os.fspath(tiny_judge_path)
    registry.unregister_judge(my_judge)
    with pytest.raises(JudgeLoadError, match="my-tiny-judge"):
        EvalAlignScore(model=my_judge)


def test_embedded_names_resolve_to_the_shipped_folders():
    from evalalign_metric.judge.loading import resolve_reference
    from evalalign_metric.runs.defaults import embedded_judge_dir

    assert resolve_reference("embedded") == embedded_judge_dir("evalalign")
    assert resolve_reference("embedded-imatch") == embedded_judge_dir("imatch")


def _entry_points(protocol):
    """Each entry point's judge folder when given no judge (the folder job's as the CLI runs it)."""
    from evalalign_metric.callbacks import EvalAlignValidation
    from evalalign_metric.runs.job import _resolve_model

    yield "EvalAlignScore", EvalAlignScore(protocol=protocol).judge.identity["model"]
    yield "callback", EvalAlignValidation(protocol=protocol).judge_for(torch.device("cpu")).identity["model"]
    yield "folder job", _resolve_model(None, protocol)[0]
    evaluate = pytest.importorskip("evaluate", reason="the 'evaluate' extra is not installed")
    module = evaluate.load(str(MODULE_DIR), protocol=protocol)
    yield "evaluate", module._judge().identity["model"]


def test_every_entry_point_asks_the_registry_when_no_judge_is_named(monkeypatch, tiny_judge_path):
    asked = []

    def answer(protocol="evalalign"):
        asked.append(evalalign_metric.load_protocol(protocol).name)
        return tiny_judge_path

    monkeypatch.setattr(registry, "judge_when_none_named", answer)
    for where, model in _entry_points("imatch"):
        assert Path(model) == tiny_judge_path, where
    assert asked == ["imatch"] * 4


@pytest.mark.parametrize("protocol, folder", [("evalalign", "judge"), ("imatch", "judge-imatch")])
def test_the_answer_is_the_protocols_embedded_judge(protocol, folder):
    assert registry.judge_when_none_named(protocol).name == folder
    for where, model in _entry_points(protocol):
        assert Path(model).name == folder, where


def test_without_an_embedded_judge_every_entry_point_warns_of_the_demo_judge(tmp_path, monkeypatch):
    from evalalign_metric.runs import defaults

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setattr(defaults, "embedded_judge_dir", lambda protocol=None: tmp_path / "no-embedded-judge")
    assert list_judges(kind="embedded") == []
    with pytest.warns(registry.DemoJudgeWarning, match="untrained demo judge"):
        assert registry.judge_when_none_named() == defaults.demo_judge_cache_dir()
    with pytest.warns(registry.DemoJudgeWarning):
        EvalAlignScore()


def test_judges_command_takes_a_registry_name(capsys):
    import json

    from evalalign_metric.cli import main

    assert main(["judges", "--model", "embedded-imatch", "--format", "json", "--batch-size", "1"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["name"] == "embedded-imatch" and Path(row["source"]).name == "judge-imatch" and row["parameters"] > 0


def test_the_command_line_shows_the_demo_judge_warning_as_one_line(capsys):
    from evalalign_metric.cli import _warning_line

    _warning_line("score")(registry.DemoJudgeWarning("using the untrained demo judge"), registry.DemoJudgeWarning,
                           "registry.py", 1)
    assert capsys.readouterr().err == "evalalign score: warning: using the untrained demo judge\n"


def test_register_judge_takes_a_hub_spec_as_the_hub_registry_does():
    from evalalign_metric.hub.registry import JudgeSpec, judge_spec

    try:
        entry = register_judge(JudgeSpec(name="org-judge", repo_id="org/judge", revision="main",
                                         chat_format="chatml", protocol="imatch"))
        assert (entry.kind, entry.reference, entry.protocol) == ("hub", "org-judge", "imatch")
        assert judge_spec("org-judge").repo_id == "org/judge" and "org-judge" in list_judges(kind="hub")
    finally:
        JUDGES.pop("org-judge", None)
