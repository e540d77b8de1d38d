"""evalalign_metric.fileio: data-file reads whose errors name the file, and atomic writes."""

from __future__ import annotations

import json
import math
import os
import re
import stat
import sys

import pytest

from evalalign_metric.errors import InputError, MissingExtraError, ProtocolError
from evalalign_metric.fileio import (
    check_writable,
    fsync_dir,
    json_safe,
    read_data_file,
    read_json,
    read_text,
    read_yaml,
    remove_stale_temporaries,
    write_atomic,
)
from evalalign_metric.protocol import load_protocol
from evalalign_metric.training.config import load_config


def _listing(folder):
    return sorted(p.name for p in folder.iterdir())


# ---- reading ---------------------------------------------------------------------------------------------


def test_read_json_returns_the_value_whatever_the_suffix(tmp_path):
    path = tmp_path / "scores.data"
    path.write_text('{"a": [1, 2.5, null], "é": "ü"}', encoding="utf-8")
    assert read_json(path) == {"a": [1, 2.5, None], "é": "ü"}


def test_invalid_json_names_the_file_and_the_place(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"a": 1,\n "b": }', encoding="utf-8")
    with pytest.raises(InputError) as info:
        read_json(path, what="scores file")
    message = str(info.value)
    assert message.startswith(f"scores file {str(path)!r} is not valid JSON: ")
    assert "line 2 column 7" in message  # where the value is missing


def test_the_error_class_is_the_callers(tmp_path):
    path = tmp_path / "p.json"
    path.write_text("[", encoding="utf-8")
    with pytest.raises(ProtocolError, match=r"^protocol file '.*p\.json' is not valid JSON"):
        read_data_file(path, what="protocol file", error=ProtocolError)


def test_the_path_is_named_as_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.json").write_text("nope", encoding="utf-8")
    with pytest.raises(InputError, match=r"^config './c\.json' is not valid JSON"):
        read_data_file("./c.json", what="config")


def test_a_missing_file_says_it_cannot_be_read_and_why(tmp_path):
    path = tmp_path / "absent.yaml"
    with pytest.raises(InputError) as info:
        read_data_file(path, what="config")
    assert str(info.value) == f"cannot read config {str(path)!r}: No such file or directory"


def test_a_folder_cannot_be_read_as_a_file(tmp_path):
    with pytest.raises(InputError, match=r"^cannot read file '.*': Is a directory"):
        read_text(tmp_path)


def test_text_that_is_not_utf8_is_refused_with_the_file_name(tmp_path):
    path = tmp_path / "latin1.json"
    path.write_bytes('{"name": "café"}'.encode("latin-1"))
    with pytest.raises(InputError, match=r"latin1\.json' is not UTF-8 text"):
        read_json(path, what="file")


@pytest.mark.parametrize("name", ["settings.toml", "settings", "settings.jsonl"])
def test_other_suffixes_are_refused(tmp_path, name):
    path = tmp_path / name
    path.write_text("{}", encoding="utf-8")
    with pytest.raises(InputError) as info:
        read_data_file(path, what="config")
    assert str(info.value) == f"config {str(path)!r} must end in .json, .yaml or .yml"


def test_the_suffix_is_read_in_any_case(tmp_path):
    path = tmp_path / "UPPER.JSON"
    path.write_text('{"x": 1}', encoding="utf-8")
    assert read_data_file(path) == {"x": 1}


def test_yaml_files_are_parsed_by_suffix(tmp_path):
    pytest.importorskip("yaml")
    for name in ("c.yaml", "c.yml", "C.YML"):
        path = tmp_path / name
        path.write_text("model:\n  base: judge\nsteps: [1, 2]\nrate: 0.5\n", encoding="utf-8")
        assert read_data_file(path) == {"model": {"base": "judge"}, "steps": [1, 2], "rate": 0.5}


def test_invalid_yaml_names_the_file(tmp_path):
    pytest.importorskip("yaml")
    path = tmp_path / "bad.yaml"
    path.write_text("a: [1, 2\nb: 3\n", encoding="utf-8")
    with pytest.raises(ProtocolError, match=r"^protocol file '.*bad\.yaml' is not valid YAML: "):
        read_yaml(path, what="protocol file", error=ProtocolError)


def test_yaml_without_pyyaml_names_the_extra_and_the_file(tmp_path, monkeypatch):
    path = tmp_path / "c.yaml"
    path.write_text("a: 1\n", encoding="utf-8")
    monkeypatch.setitem(sys.modules, "yaml", None)  # makes `import yaml` raise ImportError
    with pytest.raises(MissingExtraError) as info:
        read_data_file(path, what="config")
    message = str(info.value)
    assert "pip install 'evalalign-metric[yaml]'" in message
    assert str(path) in message and "'yaml' package" in message


def test_json_files_do_not_need_pyyaml(tmp_path, monkeypatch):
    path = tmp_path / "c.json"
    path.write_text('{"a": 1}', encoding="utf-8")
    monkeypatch.setitem(sys.modules, "yaml", None)
    assert read_data_file(path) == {"a": 1}


@pytest.mark.parametrize(
    "loader, error, what",
    [(load_protocol, ProtocolError, "protocol file"), (load_config, InputError, "config")],
)
def test_callers_keep_their_messages(tmp_path, loader, error, what):
    bad = tmp_path / "bad.json"
    bad.write_text("{", encoding="utf-8")
    with pytest.raises(error, match=rf"^{what} {re.escape(repr(str(bad)))} is not valid JSON: "):
        loader(bad)
    other = tmp_path / "c.ini"
    other.write_text("", encoding="utf-8")
    with pytest.raises(error, match=r"must end in \.json, \.yaml or \.yml$"):
        loader(other)


# ---- writing ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        "héllo\nwörld\n",
        "héllo\nwörld\n".encode("utf-8"),
        ["hé", b"llo\n", "wörld\n"],
        (c for c in "héllo\nwörld\n"),
    ],
    ids=["text", "bytes", "mixed-list", "generator"],
)
def test_write_atomic_writes_text_as_utf8_and_bytes_verbatim(tmp_path, data):
    path = tmp_path / "out.txt"
    write_atomic(path, data)
    assert path.read_bytes() == "héllo\nwörld\n".encode("utf-8")
    assert _listing(tmp_path) == ["out.txt"]


def test_write_atomic_replaces_an_existing_file(tmp_path):
    path = tmp_path / "out.json"
    path.write_text("old content that is longer than the new", encoding="utf-8")
    write_atomic(path, "[]")
    assert path.read_text(encoding="utf-8") == "[]"
    assert _listing(tmp_path) == ["out.json"]


def test_the_old_file_stays_whole_while_the_new_one_is_written(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old\n", encoding="utf-8")
    seen = []

    def chunks():
        for i in range(3):
            seen.append(path.read_text(encoding="utf-8"))
            yield f"new {i}\n"

    write_atomic(path, chunks())
    assert seen == ["old\n"] * 3
    assert path.read_text(encoding="utf-8") == "new 0\nnew 1\nnew 2\n"


def test_a_writer_failing_midway_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text('{"kind": "header"}\n', encoding="utf-8")

    def chunks():
        yield '{"kind": "header", "new": true}\n'
        yield '{"kind": "answer"}\n'
        raise RuntimeError("scoring crashed")

    with pytest.raises(RuntimeError, match="scoring crashed"):
        write_atomic(path, chunks())
    assert path.read_text(encoding="utf-8") == '{"kind": "header"}\n'
    assert _listing(tmp_path) == ["results.jsonl"]


def test_a_failing_rename_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "summary.json"
    path.write_text('{"old": 1}', encoding="utf-8")

    def refuse(src, dst):
        raise PermissionError(13, "Permission denied", os.fspath(dst))

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(PermissionError):
        write_atomic(path, '{"new": 2}')
    monkeypatch.undo()
    assert json.loads(path.read_text(encoding="utf-8")) == {"old": 1}
    assert _listing(tmp_path) == ["summary.json"]


def test_a_new_file_failing_midway_leaves_nothing(tmp_path):
    def chunks():
        yield b"partial"
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomic(tmp_path / "new.bin", chunks())
    assert _listing(tmp_path) == []


def test_written_files_get_the_permissions_of_a_plain_write(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("x", encoding="utf-8")
    atomic = tmp_path / "atomic.txt"
    write_atomic(atomic, "x")
    assert stat.S_IMODE(atomic.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)


def test_writing_into_a_missing_folder_fails_without_creating_it(tmp_path):
    with pytest.raises(FileNotFoundError):
        write_atomic(tmp_path / "nowhere" / "out.txt", "x")
    assert _listing(tmp_path) == []


def test_fsync_dir_tolerates_a_missing_folder(tmp_path):
    fsync_dir(tmp_path / "missing")  # best effort: no error
    fsync_dir(tmp_path)


def test_a_write_killed_midway_leaves_a_temporary_that_only_its_own_cleanup_removes(tmp_path):
    import signal
    import subprocess

    path = tmp_path / "results.summary.json"
    path.write_text('{"old": 1}', encoding="utf-8")
    script = (
        "import os, signal, sys\n"
        "from evalalign_metric.fileio import write_atomic\n"
        "def chunks():\n"
        "    yield '{\"new\": '\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "write_atomic(sys.argv[1], chunks())\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr
    left = [name for name in _listing(tmp_path) if name.endswith(".tmp")]
    assert len(left) == 1 and left[0].startswith(".results.summary.json.")  # what the issue saw
    others = [".results.jsonl.0123456789ab.tmp", ".results.summary.json.lock", ".results.summary.json.x.tmp",
              "results.summary.json.0123456789ab.tmp"]
    for name in others:
        (tmp_path / name).write_text("not ours")
    assert [p.name for p in remove_stale_temporaries(path)] == left
    assert _listing(tmp_path) == sorted(others + ["results.summary.json"])
    assert json.loads(path.read_text(encoding="utf-8")) == {"old": 1}
    assert remove_stale_temporaries(tmp_path / "missing" / "x.json") == []


def test_check_writable_names_what_blocks_the_write(tmp_path, monkeypatch):
    check_writable(tmp_path / "a" / "b" / "out.json")
    assert (tmp_path / "a" / "b").is_dir() and _listing(tmp_path / "a" / "b") == []  # the probe is gone
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match=r"^--out '.*file/sub/out\.json' cannot be written: '.*file' is a file"):
        check_writable(tmp_path / "file" / "sub" / "out.json", what="--out")
    with pytest.raises(InputError, match=r"^--out '.*a' is a folder"):
        check_writable(tmp_path / "a", what="--out")
    import tempfile

    def read_only(*args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    with pytest.raises(ProtocolError, match=r"^report '.*x\.html' cannot be written: Read-only file system \(folder "):
        check_writable(tmp_path / "x.html", what="report", error=ProtocolError)


# ---- JSON-ready values -----------------------------------------------------------------------------------


def test_json_safe_replaces_nan_at_any_depth_and_nothing_else():
    value = {"srcc": math.nan, "ci": [0.1, math.nan], "per": {"m": {"n": math.nan, "k": 3}}, "s": "nan",
             "inf": math.inf, "none": None, "flag": True}
    out = json_safe(value)
    assert out == {"srcc": None, "ci": [0.1, None], "per": {"m": {"n": None, "k": 3}}, "s": "nan",
                   "inf": math.inf, "none": None, "flag": True}
    assert math.isnan(value["srcc"])  # the input is left as it was
    json.dumps(json_safe({"a": [math.nan]}), allow_nan=False)
