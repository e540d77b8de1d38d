"""``evalalign`` itself: what ``--help`` says, and where the demo's output may go without being committed."""

from __future__ import annotations

import shutil
import subprocess
import sys
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


def test_the_command_starts_without_importing_torch():
    # `evalalign demo` prints its first stage line before the seconds that importing torch takes; that needs a
    # package __init__ and command modules that import the heavy libraries only where used.
    code = ("import sys, evalalign_metric.cli as cli; cli.build_parser(); "
            "print(sorted(m for m in ('torch', 'transformers', 'torchmetrics') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.strip() == "[]"


def test_the_package_exports_load_on_first_use():
    import evalalign_metric
    from evalalign_metric.metric import EvalAlignScore
    from evalalign_metric.protocol import load_protocol

    assert evalalign_metric.EvalAlignScore is EvalAlignScore
    assert evalalign_metric.load_protocol is load_protocol
    assert set(evalalign_metric.__all__) <= set(dir(evalalign_metric))
    with pytest.raises(AttributeError, match="no attribute 'nosuch'"):
        evalalign_metric.nosuch


def test_the_commands_hide_the_warnings_importing_torchao_logs():
    # transformers imports torchao (the quantize extra) whenever it is installed, and torchao logs a warning
    # per kernel library built for another machine: the commands' stderr must stay the library's own lines.
    pytest.importorskip("torchao")
    code = ("from evalalign_metric.commands.score import quiet_transformers; quiet_transformers(); "
            "import sys, transformers; transformers.LlavaForConditionalGeneration; "
            "print('torchao' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.strip() == "True"
    assert out.stderr == ""
