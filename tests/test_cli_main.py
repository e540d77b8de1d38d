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
