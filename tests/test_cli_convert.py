"""``evalalign convert``: a SRC that is neither a folder here nor a Hub repo id is named as such, in one line."""

from __future__ import annotations

import pytest

from evalalign_metric.cli import main


@pytest.mark.parametrize("src", ["./nosuch", "../models/nosuch/", "~/nosuch_evalalign_judge"])
def test_a_missing_local_folder_is_no_such_folder(src, tmp_path, capsys):
    assert main(["convert", src, str(tmp_path / "dst")]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"evalalign convert: error: SRC {src!r}: no such folder (expected the folder of an original LLaVA "
        "checkpoint, or a Hub repo id 'org/name')"
    ]
    assert not (tmp_path / "dst").exists()


def test_a_file_is_not_a_checkpoint_folder(tmp_path, capsys):
    (tmp_path / "model.safetensors").write_bytes(b"\0")
    assert main(["convert", str(tmp_path / "model.safetensors"), str(tmp_path / "dst")]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "is a file; expected the folder of an original LLaVA checkpoint" in err
