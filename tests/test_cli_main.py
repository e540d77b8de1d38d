"""``evalalign`` itself: what ``--help`` says, and where the demo's output may go without being committed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from evalalign_metric.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_help_opens_with_a_whole_sentence(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    description = out.split("\n\n")[1]  # usage, then the description paragraph
    sentence = " ".join(description.split())
    assert sentence.endswith("."), sentence
    assert sentence[0].isupper() and "``" not in sentence, sentence
    assert "exposes" not in out


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="needs the git checkout")
def test_the_demo_folder_of_the_readme_command_is_ignored_by_git():
    # `evalalign demo` run from the repository root (the README's command) writes evalalign_demo/ there
    result = subprocess.run(["git", "check-ignore", "-q", "evalalign_demo/report.html"], cwd=ROOT)
    assert result.returncode == 0


def test_the_demo_prints_its_stages_only_without_a_progress_bar(capsys, monkeypatch):
    from evalalign_metric.commands.demo import stage_printer

    stage_printer(None)("scoring 10 images")  # stderr is captured here: not a terminal
    stage_printer(False)("drawing")
    stage_printer(True)("never shown")
    assert capsys.readouterr().err.splitlines() == ["evalalign demo: scoring 10 images", "evalalign demo: drawing"]
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    stage_printer(None)("the progress bars show this on a terminal")
    assert capsys.readouterr().err == ""
