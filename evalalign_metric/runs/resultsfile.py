"""The results file: a header line, then one JSON line per (image, question), written image by image.

Layout (JSON Lines, UTF-8)::

    {"kind": "header", "format_version": 1, "model": {...}, "protocol": {...}, "scoring": ..., "dtype": ...}
    {"kind": "answer", "image": "45.png", "line": 0, "lines": 8, "aspect": "faithfulness/body", "probs": ...}
    ...

``line``/``lines`` number an image's lines, so a file is self-checking: an image is complete when its lines
``0 .. lines-1`` are all there. Each image's lines go out in one write followed by flush and fsync, so a
crash can only cut the file after the last complete image, inside the last line or inside the last
image's lines: :func:`read_results` detects both and reports the byte offset where the intact part ends.
Damage anywhere else is refused, never repaired silently. Kinds: ``answer`` (a question and the judge's
option probabilities), ``corrupt`` (the image could not be decoded), ``no_questions`` (the protocol asks
nothing of this image).

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "results.jsonl"
    >>> protocol = {"name": "p", "version": "1", "sha256": "s"}
    >>> header = make_header({"fingerprint": "f"}, protocol, "argmax", "float32")
    >>> with ResultsWriter(path, header) as w:
    ...     w.write_image([{"kind": "no_questions", "image": "a.png", "sha256": "0"}])
    >>> _ = path.open("a").write('{"kind": "answ')  # a crash in the middle of a line
    >>> content = read_results(path)
    >>> list(content.images), content.dropped
    (['a.png'], 'a truncated last line')
"""

from __future__ import annotations

import itertools
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from evalalign_metric.errors import InputError
from evalalign_metric.fileio import fsync_dir, write_atomic

FORMAT_VERSION = 1
RECORD_KINDS = ("answer", "corrupt", "no_questions")
_HEADER_START = b'{"kind":"header"'


def dumps(record: Mapping[str, Any]) -> str:
    """One compact JSON line; NaN (not applicable) is written as ``null``."""
    clean = {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in record.items()}
    return json.dumps(clean, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def make_header(
    model: Mapping[str, Any], protocol: Mapping[str, Any], scoring: str, dtype: str
) -> dict[str, Any]:
    """The first line of a results file. No time stamps or host names: equal runs give equal files."""
    from evalalign_metric import __version__

    return {
        "kind": "header",
        "format_version": FORMAT_VERSION,
        "model": dict(model),
        "protocol": dict(protocol),
        "scoring": scoring,
        "dtype": dtype,
        "library_version": __version__,
    }


def header_mismatch(found: Mapping[str, Any], expected: Mapping[str, Any]) -> str | None:
    """Why a results file written with header ``found`` must not be continued by a run of ``expected``."""
    fm, em = found.get("model") or {}, expected.get("model") or {}
    if fm.get("fingerprint") != em.get("fingerprint") or fm.get("model_type") != em.get("model_type"):
        return (
            f"it was scored by another judge model ({fm.get('reference')!r}, fingerprint "
            f"{str(fm.get('fingerprint'))[:12]}; this run: {em.get('reference')!r}, fingerprint "
            f"{str(em.get('fingerprint'))[:12]})"
        )
    fp, ep = found.get("protocol") or {}, expected.get("protocol") or {}
    if (fp.get("name"), fp.get("version"), fp.get("sha256")) != (
        ep.get("name"),
        ep.get("version"),
        ep.get("sha256"),
    ):
        return (
            f"it was scored with protocol {fp.get('name')!r} version {fp.get('version')!r} "
            f"(sha256 {str(fp.get('sha256'))[:12]}); this run uses {ep.get('name')!r} version "
            f"{ep.get('version')!r} (sha256 {str(ep.get('sha256'))[:12]})"
        )
    for key in ("scoring", "dtype"):
        if found.get(key) != expected.get(key):
            return f"it was scored with {key} {found.get(key)!r}; this run uses {expected.get(key)!r}"
    return None


def check_header(found: Mapping[str, Any], expected: Mapping[str, Any], path: Path) -> None:
    """Raise a clear :class:`InputError` when ``found`` and ``expected`` may not be mixed."""
    why = header_mismatch(found, expected)
    if why:
        raise InputError(
            f"results file {str(path)!r} cannot be continued: {why}; pass another --out, or "
            "delete the file to score again from scratch"
        )


@dataclass
class ImageRecord:
    """All lines of one image, parsed and as written (so merges copy them byte for byte)."""

    key: str
    records: list[dict[str, Any]]
    text: list[str]

    @property
    def kind(self) -> str:
        return self.records[0]["kind"]

    @property
    def sha256(self) -> str | None:
        return self.records[0].get("sha256")


@dataclass
class ResultsContent:
    """A results file as read: header, complete images in file order, and what was dropped at the end."""

    path: Path
    header: dict[str, Any] | None
    images: dict[str, ImageRecord] = field(default_factory=dict)
    intact_bytes: int = 0
    dropped: str | None = None


def _damaged(path: Path, number: int, why: str) -> InputError:
    return InputError(
        f"results file {str(path)!r} is damaged at line {number}: {why} (only the end of the file "
        "can be cut by a crash); move it away and score again, or pass another --out"
    )


def _parse_header(path: Path, line: bytes) -> dict[str, Any]:
    try:
        header = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        header = None
    if not isinstance(header, dict) or header.get("kind") != "header":
        raise InputError(
            f"{str(path)!r} exists and is not an evalalign results file (its first line is not a "
            "results header); pass another --out"
        )
    if header.get("format_version") != FORMAT_VERSION:
        raise InputError(
            f"results file {str(path)!r} has format_version {header.get('format_version')!r}; this "
            f"version reads {FORMAT_VERSION}"
        )
    return header


def read_results(path: str | os.PathLike) -> ResultsContent | None:
    """Parse a results file; ``None`` if it does not exist or is empty (see the module docs)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise InputError(f"--out {str(path)!r} is a folder; expected a results file path") from None
    except OSError as exc:
        raise InputError(f"results file {str(path)!r} cannot be read: {exc.strerror or exc}") from None
    if not data:
        return None
    lines = data.split(b"\n")
    tail = lines.pop()  # after the last newline: empty for an intact file
    if not lines:
        if not (tail.startswith(_HEADER_START) or _HEADER_START.startswith(tail)):
            raise InputError(f"{str(path)!r} exists and is not an evalalign results file; pass another --out")
        return ResultsContent(path, None, dropped="a truncated header line")
    header = _parse_header(path, lines[0])
    content = ResultsContent(path, header, intact_bytes=len(lines[0]) + 1)
    dropped = "a truncated last line" if tail else None
    offset = content.intact_bytes
    group: list[tuple[dict[str, Any], str]] = []
    group_start = offset
    for number, raw in enumerate(lines[1:], start=2):
        try:
            text = raw.decode("utf-8")
            record = json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError):
            if number == len(lines) and not tail:
                dropped = "a damaged last line"
                break
            raise _damaged(path, number, "not a JSON line") from None
        if (
            not isinstance(record, dict)
            or record.get("kind") not in RECORD_KINDS
            or not isinstance(record.get("image"), str)
            or not isinstance(record.get("line"), int)
            or not isinstance(record.get("lines"), int)
        ):
            raise _damaged(path, number, "not a results record")
        if group and record["image"] == group[0][0]["image"] and record["line"] == len(group):
            group.append((record, text))
        elif record["line"] == 0:
            if group:
                raise _damaged(
                    path,
                    number,
                    f"image {group[0][0]['image']!r} has only {len(group)} of its "
                    f"{group[0][0]['lines']} lines",
                )
            group = [(record, text)]
            group_start = offset
        else:
            raise _damaged(
                path, number, f"line {record['line']} of image {record['image']!r} is out of order"
            )
        offset += len(raw) + 1
        if len(group) == group[0][0]["lines"]:
            key = group[0][0]["image"]
            if key in content.images:
                raise _damaged(path, number, f"image {key!r} appears twice")
            content.images[key] = ImageRecord(key, [r for r, _ in group], [t for _, t in group])
            content.intact_bytes = offset
            group = []
    if group:
        dropped = f"the incomplete lines of image {group[0][0]['image']!r}"
        content.intact_bytes = group_start
    content.dropped = dropped
    return content


class ResultsWriter:
    """Append images to a results file: the header goes first in a new file, ``truncate_to`` cuts a crashed
    file back to its intact part, every :meth:`write_image` is flushed and fsynced before it returns."""

    def __init__(self, path: str | os.PathLike, header: Mapping[str, Any], *, truncate_to: int | None = None):
        self.path = Path(path)
        new = not self.path.exists() or self.path.stat().st_size == 0 or truncate_to == 0
        self._handle = self.path.open("r+b" if self.path.exists() else "wb")
        if new:
            self._handle.truncate(0)
            self._write((dumps(header) + "\n").encode("utf-8"))
            fsync_dir(self.path.parent)
        elif truncate_to is not None:
            self._handle.truncate(truncate_to)
        self._handle.seek(0, os.SEEK_END)

    def _write(self, data: bytes) -> None:
        self._handle.write(data)
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def write_image(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Write one image's records (``line``/``lines`` are filled in) in one go, durably."""
        records = list(records)
        lines = [
            dumps(
                {
                    "kind": r["kind"],
                    "image": r["image"],
                    "line": i,
                    "lines": len(records),
                    **{k: v for k, v in r.items() if k not in ("kind", "image")},
                }
            )
            for i, r in enumerate(records)
        ]
        self._write(("\n".join(lines) + "\n").encode("utf-8"))

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> "ResultsWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_atomically(
    path: str | os.PathLike, header: Mapping[str, Any], images: Iterable[ImageRecord]
) -> None:
    """Replace ``path`` by header + images (their lines copied verbatim), atomically and durably."""
    lines = (("\n".join(image.text) + "\n") for image in images)
    write_atomic(path, itertools.chain([dumps(header) + "\n"], lines))
