"""Where each image's prompt comes from: the official EvalAlign sets, a prompts file, or an image manifest.

``--prompts`` takes:

- ``official`` (default): the official test sets. Images are named ``<prompt_id>.<ext>`` as the reference
  scorer expects; an alignment prompt id brings its official elements, a faithfulness prompt id is asked
  the faithfulness questions only. Five ids exist in both sets with different prompts: they resolve to the
  set the rest of the folder belongs to (a folder of one set's images), and are refused as ambiguous
  otherwise. ``official-alignment`` / ``official-faithfulness`` pick one set explicitly.
- a ``.json`` list or ``.jsonl`` file of ``{"prompt_id", "prompt", "elements"?}`` entries (``result_info``
  is accepted for ``elements``, so the official ``test_alignment_prompt.json`` and the elements file of
  ``evalalign elements`` are prompts files as they are); images are matched by ``<prompt_id>.<ext>``;
- a manifest: the same with an ``"image"`` path (relative to the images folder) in every entry; images are
  matched by path, several images may share a prompt.

Entries without elements get the official ones when their prompt is an official alignment prompt; otherwise
the deterministic parser's (:mod:`evalalign_metric.extraction.parser`, source ``parser``), unless
``parse_elements=False`` (``evalalign score --no-parse-elements``) or the protocol's element aspects are not
EvalAlign's six. Prompts of the official faithfulness set are never parsed: the reference asks them no
alignment questions. Entries left without elements are scored on faithfulness only (and listed as such in
the summary, whose ``counts.elements_from`` says how many prompts' elements came from each source).

Example:
    >>> from evalalign_metric.protocol import load_protocol
    >>> source = load_prompts("official", load_protocol("evalalign"))
    >>> table = source.id_table({"45", "1852"})
    >>> table["45"].elements_source, table["1852"].elements
    ('official', None)
    >>> import json, pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "prompts.json"
    >>> _ = path.write_text(json.dumps([{"prompt_id": "1", "prompt": "two cats on a sofa"}]))
    >>> entry = load_prompts(path, load_protocol("evalalign")).by_id["1"]
    >>> entry.elements_source, entry.elements["Count"]
    ('parser', 'cats: two; sofa: a;')
    >>> load_prompts(path, load_protocol("evalalign"), parse_elements=False).by_id["1"].elements is None
    True
"""

from __future__ import annotations

import json
import os
import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from functools import lru_cache

from evalalign_metric.elements import parse_protocol_elements, parser_applies, validate_elements
from evalalign_metric.errors import EvalAlignError, InputError
from evalalign_metric.official import alignment_prompts, faithfulness_prompts, official_elements
from evalalign_metric.protocol import Protocol

OFFICIAL_SOURCES = ("official", "official-alignment", "official-faithfulness")
# Where a folder run's prompt elements come from; "none": faithfulness questions only.
ELEMENT_SOURCES = ("prompts-file", "official", "parser", "none")
_KNOWN_KEYS = {"image", "prompt", "prompt_id", "elements", "result_info", "question_info", "source"}


@dataclass(frozen=True)
class PromptEntry:
    """One prompt, its id and its alignment elements (``None``: faithfulness questions only)."""

    prompt: str
    prompt_id: str | None = None
    elements: Mapping[str, str] | None = None
    elements_source: str | None = None  # "prompts-file", "official", "parser" or None (see ELEMENT_SOURCES)


@dataclass
class PromptSource:
    """Prompts keyed by id (``<prompt_id>.<ext>`` naming) or by image path (manifest)."""

    description: str
    by_id: dict[str, PromptEntry] | None = None
    by_image: dict[str, PromptEntry] | None = None
    # Official ids present in both sets: {id: {"alignment": entry, "faithfulness": entry}}.
    shared_ids: dict[str, dict[str, PromptEntry]] = field(default_factory=dict)
    official_sets: dict[str, frozenset[str]] = field(default_factory=dict)

    @property
    def is_manifest(self) -> bool:
        return self.by_image is not None

    def id_table(self, stems: Iterable[str]) -> dict[str, PromptEntry]:
        """The id -> entry table for a folder whose file stems are ``stems`` (resolves the shared
        official ids)."""
        table = dict(self.by_id or {})
        if not self.shared_ids:
            return table
        stems = set(stems)
        present = {
            name: bool(stems & (ids - self.shared_ids.keys())) for name, ids in self.official_sets.items()
        }
        shared = sorted(stems & self.shared_ids.keys())
        if present["alignment"] != present["faithfulness"]:
            chosen = "alignment" if present["alignment"] else "faithfulness"
            table.update({i: self.shared_ids[i][chosen] for i in shared})
        elif shared:
            raise InputError(
                f"image id(s) {', '.join(shared[:5])} are prompt ids of both official sets (alignment and "
                "faithfulness, with different prompts) and the folder does not show which set it holds: keep "
                "each set's images in its own folder, or pass --prompts official-alignment or "
                "official-faithfulness"
            )
        return table


@lru_cache(maxsize=None)
def _faithfulness_prompt_texts() -> frozenset[str]:
    return frozenset(e["prompt"] for e in faithfulness_prompts())


def takes_official_elements(protocol: Protocol) -> bool:
    """Whether the protocol asks element questions in the official ``result_info`` form (EvalAlign's)."""
    return any(a.needs_elements and not a.per_element for a in protocol.aspects)


def _official(name: str, protocol: Protocol) -> PromptSource:
    official = takes_official_elements(protocol)
    align = {
        e["prompt_id"]: PromptEntry(
            e["prompt"],
            e["prompt_id"],
            dict(e["result_info"]) if official else None,
            "official" if official else None,
        )
        for e in alignment_prompts()
    }
    faith = {e["prompt_id"]: PromptEntry(e["prompt"], e["prompt_id"]) for e in faithfulness_prompts()}
    if name == "official-alignment":
        return PromptSource(name, by_id=align)
    if name == "official-faithfulness":
        return PromptSource(name, by_id=faith)
    shared = align.keys() & faith.keys()
    by_id = {k: v for k, v in {**align, **faith}.items() if k not in shared}
    return PromptSource(
        name,
        by_id=by_id,
        shared_ids={k: {"alignment": align[k], "faithfulness": faith[k]} for k in shared},
        official_sets={"alignment": frozenset(align), "faithfulness": frozenset(faith)},
    )


def _read_entries(path: Path, flag: str) -> list[tuple[str, Any]]:
    """(location, raw entry) pairs from a JSON list or a JSON Lines file."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{flag} {str(path)!r} is not UTF-8 text") from None
    except OSError as exc:
        raise InputError(f"{flag} {str(path)!r} cannot be read: {exc.strerror or exc}") from None
    if path.suffix.lower() == ".jsonl":
        entries = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                entries.append((f"line {number}", json.loads(line)))
            except json.JSONDecodeError as exc:
                raise InputError(f"{flag} {str(path)!r} line {number} is not valid JSON: {exc.msg}") from None
        return entries
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{flag} {str(path)!r} is not valid JSON: {exc.msg} (line {exc.lineno})") from None
    if not isinstance(data, list):
        raise InputError(
            f"{flag} {str(path)!r} must hold a JSON list of prompt entries; got a {type(data).__name__}"
        )
    return [(f"entry {i}", e) for i, e in enumerate(data)]


def _normalise_image_path(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InputError(
            f"{where}: 'image' must be a non-empty path relative to the images folder; got {value!r}"
        )
    if os.path.isabs(value):
        raise InputError(f"{where}: 'image' {value!r} must be relative to the images folder, not absolute")
    norm = posixpath.normpath(value.replace("\\", "/"))
    if norm.startswith("../") or norm == "..":
        raise InputError(f"{where}: 'image' {value!r} points outside the images folder")
    return norm


def _entry(raw: Any, where: str, protocol: Protocol, manifest: bool, parse: bool
           ) -> tuple[str | None, PromptEntry]:
    if not isinstance(raw, Mapping):
        raise InputError(
            f'{where} must be a JSON object like {{"prompt_id": ..., "prompt": ...}}; '
            f"got {type(raw).__name__}"
        )
    unknown = sorted(set(raw) - _KNOWN_KEYS)
    if unknown:
        raise InputError(f"{where} has unknown key(s) {unknown}; expected keys among {sorted(_KNOWN_KEYS)}")
    prompt = raw.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise InputError(f"{where}: 'prompt' must be a non-empty string; got {prompt!r}")
    pid = raw.get("prompt_id")
    if pid is not None and (isinstance(pid, bool) or not isinstance(pid, (str, int)) or not str(pid).strip()):
        raise InputError(f"{where}: 'prompt_id' must be a non-empty string or integer; got {pid!r}")
    if not manifest and pid is None:
        raise InputError(
            f"{where} has no 'prompt_id': a prompts file without 'image' paths matches images "
            "named <prompt_id>.<ext>, so every entry needs one"
        )
    pid = None if pid is None else str(pid)
    if pid is not None and ("/" in pid or "\\" in pid):
        raise InputError(f"{where}: 'prompt_id' {pid!r} cannot be a file name (contains a path separator)")
    if "elements" in raw and "result_info" in raw:
        raise InputError(f"{where} has both 'elements' and 'result_info'; give the elements once")
    given = raw.get("elements", raw.get("result_info"))
    if given is not None:
        elements, source = validate_elements(protocol, given, f"{where} elements"), "prompts-file"
    else:
        found = official_elements(prompt) if takes_official_elements(protocol) else None
        elements, source = (found, "official") if found is not None else (None, None)
        if elements is None and parse and prompt not in _faithfulness_prompt_texts():
            parsed = parse_protocol_elements(protocol, prompt)
            elements, source = (parsed, "parser") if parsed is not None else (None, None)
    image = _normalise_image_path(raw.get("image"), where) if manifest else None
    return image, PromptEntry(prompt, pid, elements, source)


def load_prompts(spec: str | os.PathLike, protocol: Protocol, *, flag: str = "--prompts",
                 parse_elements: bool = True) -> PromptSource:
    """Read a prompt source: an official set name, a prompts file or a manifest (see the module docs).

    ``parse_elements``: entries of a prompts file or manifest that have no elements and no official ones get
    the parser's (not for the official sets, nor for prompts of the official faithfulness set).
    """
    text = os.fspath(spec)
    if text in OFFICIAL_SOURCES:
        return _official(text, protocol)
    path = Path(text).expanduser()
    if not path.exists():
        raise InputError(f"{flag} {text!r} is neither a file nor one of {', '.join(OFFICIAL_SOURCES)}")
    if not path.is_file():
        raise InputError(f"{flag} {text!r} is not a file")
    if path.suffix.lower() not in (".json", ".jsonl"):
        raise InputError(
            f"{flag} {text!r} must be a .json or .jsonl file (or one of {', '.join(OFFICIAL_SOURCES)})"
        )
    raw_entries = _read_entries(path, flag)
    if not raw_entries:
        raise InputError(f"{flag} {text!r} holds no prompt entries")
    manifest = any(isinstance(r, Mapping) and "image" in r for _, r in raw_entries)
    by_key: dict[str, PromptEntry] = {}
    prompt_of_id: dict[str, tuple[str, str]] = {}
    for where, raw in raw_entries:
        where = f"{flag} {path.name} {where}"
        try:
            image, entry = _entry(raw, where, protocol, manifest, parse_elements and parser_applies(protocol))
        except InputError:
            raise
        except EvalAlignError as exc:
            raise InputError(f"{where}: {exc}") from None
        if manifest and image is None:
            raise InputError(f"{where} has no 'image' while other entries do: a manifest needs one per entry")
        key = image if manifest else entry.prompt_id
        if key in by_key:
            what = "image" if manifest else "prompt_id"
            raise InputError(f"{where}: duplicate {what} {key!r} (each {what} may appear once)")
        if entry.prompt_id is not None:
            seen = prompt_of_id.get(entry.prompt_id)
            if seen is not None and seen[0] != entry.prompt:
                raise InputError(
                    f"{where}: prompt_id {entry.prompt_id!r} has a different prompt than in {seen[1]}"
                )
            prompt_of_id.setdefault(entry.prompt_id, (entry.prompt, where))
        by_key[key] = entry
    if manifest:
        return PromptSource(str(path), by_image=by_key)
    return PromptSource(str(path), by_id=by_key)
