"""Data files in and out: JSON/YAML reads whose errors name the file, and atomic, durable writes.

Reads raise an :class:`~evalalign_metric.errors.EvalAlignError` subclass of the caller's choosing (``error=``,
:class:`~evalalign_metric.errors.InputError` by default) whose message names the file as ``<what> '<path>'``
and says what is wrong with it. Writes go to a hidden temporary file beside the target, which is flushed,
fsynced and renamed over the target (``os.replace``), so a reader or a crash sees the old file or the new
one, never a part of one, and a failed write leaves the old file as it was.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "settings.json"
    >>> write_atomic(path, '{"threshold": 0.5, "spread": NaN}\\n')
    >>> read_data_file(path, what="settings file")["threshold"]
    0.5
    >>> json_safe(read_json(path, what="settings file"))
    {'threshold': 0.5, 'spread': None}
    >>> _ = path.write_text("[1, 2")
    >>> try:
    ...     read_json(path, what="settings file")
    ... except InputError as exc:
    ...     print(str(exc).replace(str(path), "PATH"))
    settings file 'PATH' is not valid JSON: Expecting ',' delimiter: line 1 column 6 (char 5)
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable

from evalalign_metric.errors import EvalAlignError, InputError, require_extra

__all__ = [
    "check_writable",
    "fsync_dir",
    "json_safe",
    "read_data_file",
    "read_json",
    "read_text",
    "read_yaml",
    "remove_stale_temporaries",
    "write_atomic",
]


def _named(what: str, path: str | os.PathLike) -> str:
    return f"{what} {os.fspath(path)!r}"


def read_text(
    path: str | os.PathLike, *, what: str = "file", error: type[EvalAlignError] = InputError
) -> str:
    """The UTF-8 text of ``path``; ``error("cannot read <what> '<path>': <reason>")`` when it cannot be read.

    Example:
        >>> read_text("/no/such/file.json", what="config")
        Traceback (most recent call last):
        ...
        evalalign_metric.errors.InputError: cannot read config '/no/such/file.json': No such file or directory
    """
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"cannot read {_named(what, path)}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise error(f"{_named(what, path)} is not UTF-8 text: {exc}") from exc


def _parse(
    path: str | os.PathLike,
    what: str,
    error: type[EvalAlignError],
    language: str,
    parse: Callable[[str], Any],
    syntax_error: type[Exception],
) -> Any:
    text = read_text(path, what=what, error=error)
    try:
        return parse(text)
    except syntax_error as exc:
        raise error(f"{_named(what, path)} is not valid {language}: {exc}") from exc


def read_json(
    path: str | os.PathLike, *, what: str = "file", error: type[EvalAlignError] = InputError
) -> Any:
    """The JSON value in ``path`` (whatever its suffix); errors name the file and the syntax error's place.

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "list.json")
        >>> write_atomic(path, "[1, 2]")
        >>> read_json(path)
        [1, 2]
    """
    return _parse(path, what, error, "JSON", json.loads, json.JSONDecodeError)


def read_yaml(
    path: str | os.PathLike, *, what: str = "file", error: type[EvalAlignError] = InputError
) -> Any:
    """The YAML value in ``path`` (``yaml.safe_load``); needs the ``yaml`` extra (PyYAML).

    Without PyYAML this raises :class:`~evalalign_metric.errors.MissingExtraError` naming the file and the
    extra to install.

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "c.yaml")
        >>> write_atomic(path, "model:\\n  base: judge\\nsteps: 3\\n")
        >>> read_yaml(path)
        {'model': {'base': 'judge'}, 'steps': 3}
    """
    yaml = require_extra("yaml", "yaml", f"Reading the YAML {_named(what, path)}")
    return _parse(path, what, error, "YAML", yaml.safe_load, yaml.YAMLError)


def read_data_file(
    path: str | os.PathLike, *, what: str = "file", error: type[EvalAlignError] = InputError
) -> Any:
    """A ``.json``, ``.yaml`` or ``.yml`` file's value, parsed by its suffix (any letter case).

    Args:
        path: the file; it is named in every error exactly as given (``os.fspath(path)``).
        what: what the file is, as the errors call it (``"config"``, ``"protocol file"``).
        error: the error class raised for a file that cannot be read, parsed or has another suffix.

    Example:
        >>> read_data_file("settings.toml", what="config")
        Traceback (most recent call last):
        ...
        evalalign_metric.errors.InputError: cannot read config 'settings.toml': No such file or directory
    """
    suffix = Path(path).suffix.lower()
    if suffix == ".json":
        return read_json(path, what=what, error=error)
    if suffix in (".yaml", ".yml"):
        return read_yaml(path, what=what, error=error)
    read_text(path, what=what, error=error)  # a missing file is reported as such before its suffix
    raise error(f"{_named(what, path)} must end in .json, .yaml or .yml")


def json_safe(value: Any) -> Any:
    """A copy of ``value`` with every float NaN (in nested dicts and lists) replaced by ``None`` (``null``).

    Example:
        >>> json_safe({"srcc": float("nan"), "per_model": [0.5, float("nan")]})
        {'srcc': None, 'per_model': [0.5, None]}
    """
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value


def fsync_dir(folder: str | os.PathLike) -> None:
    """Make a rename or a new file in ``folder`` durable (best effort: skipped where it cannot be done).

    Example:
        >>> import tempfile
        >>> fsync_dir(tempfile.mkdtemp())
    """
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: str | os.PathLike, data: str | bytes | Iterable[str | bytes]) -> None:
    """Replace ``path`` by ``data`` at once: readers see the old content or the new, never a part.

    The data go to a hidden temporary file in the same folder (created with the permissions a plain write
    would give), which is flushed, fsynced and renamed over ``path``; the folder is then fsynced. If anything
    fails on the way, including an iterable ``data`` raising part-way, the temporary file is removed and
    ``path`` keeps its old content. The folder must exist.

    Args:
        path: the file to write.
        data: text (written as UTF-8), bytes, or an iterable of text/bytes chunks written in order.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "lines.txt"
        >>> write_atomic(path, (f"line {i}\\n" for i in range(3)))
        >>> path.read_text().splitlines(), [p.name for p in path.parent.iterdir()]
        (['line 0', 'line 1', 'line 2'], ['lines.txt'])
    """
    path = Path(path)
    chunks = [data] if isinstance(data, (str, bytes, bytearray)) else data
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    # os.open with mode 0o666 lets the umask decide the permissions, as a plain open() would (mkstemp: 0o600).
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk.encode("utf-8") if isinstance(chunk, str) else chunk)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def check_writable(path: str | os.PathLike, *, what: str = "file", error: type[EvalAlignError] = InputError) -> None:
    """Make sure a file can be written at ``path`` before any long work: its folder is created if missing and
    a probe file is written there and removed.

    Raises ``error("<what> '<path>' cannot be written: <reason>")`` when a parent is a file, the folder cannot be
    created or written (permission denied, read-only file system, disk full), or ``path`` is a folder.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> check_writable(d / "new" / "out.json", what="--out")
        >>> _ = (d / "blocker").write_text("x")
        >>> try:
        ...     check_writable(d / "blocker" / "out.json", what="--out")
        ... except InputError as exc:
        ...     print(str(exc).replace(str(d), "D"))
        --out 'D/blocker/out.json' cannot be written: 'D/blocker' is a file, not a folder
    """
    path = Path(path)
    folder = path.parent
    for parent in [folder, *folder.parents]:
        if parent.exists():
            if not parent.is_dir():
                raise error(f"{_named(what, path)} cannot be written: {os.fspath(parent)!r} is a file, not a folder")
            break
    if path.is_dir():
        raise error(f"{_named(what, path)} is a folder; expected a file path")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".evalalign-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise error(
            f"{_named(what, path)} cannot be written: {exc.strerror or exc} (folder {os.fspath(folder)!r})"
        ) from None


_TEMPORARY = re.compile(r"\.[0-9a-f]{12}\.tmp")


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove the hidden temporary files that :func:`write_atomic` left beside ``path`` when its process was
    killed mid-write; returns them. Call it only while no other process can be writing ``path``.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "summary.json"
        >>> _ = path.with_name(".summary.json.0123456789ab.tmp").write_text("{")  # a killed write
        >>> [p.name for p in remove_stale_temporaries(path)], list(path.parent.iterdir())
        (['.summary.json.0123456789ab.tmp'], [])
    """
    path = Path(path)
    prefix = f".{path.name}"
    removed = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return removed
    for entry in entries:
        if entry.name.startswith(prefix) and _TEMPORARY.fullmatch(entry.name[len(prefix):]) and entry.is_file():
            try:
                os.unlink(entry.path)
            except FileNotFoundError:
                continue
            removed.append(Path(entry.path))
    return removed
