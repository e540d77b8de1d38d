"""The editable elements file, and the prompt lists it is made from.

An elements file is a JSON list of ``{"prompt_id": optional, "prompt": ..., "result_info": {...}}`` (the
official ``test_alignment_prompt.json`` is one); ``"source"`` and ``"question_info"`` may be present and
are ignored. ``evalalign elements`` writes it, you review and edit it, and the metric takes
``load_elements_file(path)`` (a ``{prompt: result_info}`` mapping) as its elements.

Example:
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "elements.json")
    >>> info = {"Object": "cat;", "Count": "cat: a;", "Color": "cat: red;", "Style": "none",
    ...         "Spatial": "none", "Action": "none"}
    >>> save_elements_file(path, [{"prompt": "a red cat", "result_info": info}])
    >>> load_elements_file(path)["a red cat"]["Color"]
    'cat: red;'
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from evalalign_metric.errors import InputError
from evalalign_metric.extraction.errors import ElementsParseError, ExtractionError
from evalalign_metric.extraction.result_info import validate_result_info
from evalalign_metric.fileio import read_json, read_text, write_atomic

ENTRY_KEYS = frozenset({"prompt_id", "prompt", "result_info", "source", "question_info"})


def _describe(index: int, entry: Mapping[str, Any]) -> str:
    prompt = entry.get("prompt")
    shown = repr(prompt if not isinstance(prompt, str) or len(prompt) <= 60 else prompt[:57] + "...")
    pid = f"prompt_id {entry['prompt_id']!r}, " if entry.get("prompt_id") is not None else ""
    return f"entry {index} ({pid}prompt {shown})"


def _read_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise InputError(f"{what} {str(path)!r} does not exist")
    return read_json(path, what=what)


def load_elements_file(path: str | os.PathLike) -> dict[str, dict[str, str]]:
    """Read and strictly check an elements file; returns ``{prompt: result_info}`` (strings unchanged).

    Errors name the file, the entry (index, prompt id, prompt) and what is wrong with it.
    """
    path = Path(path)
    data = _read_json(path, "elements file")
    if not isinstance(data, list):
        raise InputError(
            f"elements file {str(path)!r} must hold a JSON list of entries; got {type(data).__name__}"
        )
    found: dict[str, dict[str, str]] = {}
    for i, entry in enumerate(data):
        if not isinstance(entry, Mapping):
            raise InputError(
                f"{path}: entry {i} must be an object with 'prompt' and 'result_info'; got {entry!r}"
            )
        where = f"{path}: {_describe(i, entry)}"
        unknown = sorted(set(entry) - ENTRY_KEYS)
        if unknown:
            raise InputError(f"{where} has unknown key(s) {unknown}; allowed: {sorted(ENTRY_KEYS)}")
        prompt = entry.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise InputError(f"{where}: 'prompt' must be non-empty text")
        if "result_info" not in entry:
            raise InputError(f"{where}: 'result_info' is missing")
        try:
            info = validate_result_info(entry["result_info"])
        except ElementsParseError as exc:
            raise InputError(f"{where}: {exc}") from exc
        if prompt in found and found[prompt] != info:
            raise InputError(f"{where} repeats an earlier prompt with different elements")
        found[prompt] = info
    return found


def save_elements_file(path: str | os.PathLike, entries: Iterable[Mapping[str, Any]]) -> None:
    """Write entries (checked) as an indented JSON list, atomically."""
    checked = []
    for i, entry in enumerate(entries):
        try:
            info = validate_result_info(entry["result_info"])
        except ElementsParseError as exc:
            raise InputError(f"{_describe(i, entry)}: {exc}") from exc
        out = {"prompt_id": entry.get("prompt_id"), "prompt": entry["prompt"], "result_info": info}
        if entry.get("source"):
            out["source"] = entry["source"]
        if out["prompt_id"] is None:
            del out["prompt_id"]
        checked.append(out)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(checked, ensure_ascii=False, indent=2) + "\n")


def _prompt_entry(item: Any, where: str) -> tuple[str | None, str]:
    if isinstance(item, str):
        prompt, prompt_id = item, None
    elif isinstance(item, Mapping) and "prompt" in item:
        prompt, prompt_id = item["prompt"], item.get("prompt_id")
    else:
        raise InputError(f"{where} must be a prompt string or an object with 'prompt'; got {item!r}")
    if not isinstance(prompt, str) or not prompt.strip():
        raise InputError(f"{where}: the prompt must be non-empty text; got {prompt!r}")
    return (None if prompt_id is None else str(prompt_id)), prompt


def read_prompts_file(path: str | os.PathLike) -> list[tuple[str | None, str]]:
    """``(prompt_id, prompt)`` pairs from a prompts file, first occurrence of each prompt kept.

    ``.txt``: one prompt per line (blank lines skipped). ``.json``: a list of strings or of objects with
    ``prompt`` (and optional ``prompt_id``), e.g. an elements file or the official prompt file.
    ``.jsonl``: one string or object per line.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".json":
        data = _read_json(path, "prompts file")
        if not isinstance(data, list):
            raise InputError(f"prompts file {str(path)!r} must hold a JSON list; got {type(data).__name__}")
        items = [_prompt_entry(item, f"{path}: item {i}") for i, item in enumerate(data)]
    elif suffix in (".txt", ".jsonl"):
        if not path.is_file():
            raise InputError(f"prompts file {str(path)!r} does not exist")
        items = []
        for number, line in enumerate(read_text(path, what="prompts file").splitlines(), start=1):
            if not line.strip():
                continue
            if suffix == ".txt":
                items.append((None, line.strip()))
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}: line {number} is not valid JSON: {exc}") from exc
            items.append(_prompt_entry(value, f"{path}: line {number}"))
    else:
        raise InputError(f"prompts file {str(path)!r} must end in .txt, .json or .jsonl")
    if not items:
        raise InputError(f"prompts file {str(path)!r} holds no prompts")
    unique: dict[str, str | None] = {}
    for prompt_id, prompt in items:
        unique.setdefault(prompt, prompt_id)
    return [(prompt_id, prompt) for prompt, prompt_id in unique.items()]


def extract_entries(
    prompts: Sequence[tuple[str | None, str]],
    extractor: Callable[[str], Mapping[str, str]] | None,
    *,
    use_official: bool = True,
    on_entry: Callable[[int, dict[str, Any]], None] | None = None,
    on_error: Callable[[int, str, ExtractionError], None] | None = None,
    source: str = "extracted",
) -> list[dict[str, Any]]:
    """Elements file entries for ``prompts``: the official elements for official prompts (unless
    ``use_official=False``), the extractor's for the others (``source`` says which: ``"official"``, or
    ``source``, ``"extracted"`` by default, ``"parsed"`` for the parser).

    An :class:`ExtractionError` propagates, unless ``on_error`` is given: then it receives
    ``(index, prompt, error)`` and the prompt is left out of the entries. Raises :class:`InputError` when a
    prompt needs extraction and no extractor is given.
    """
    from evalalign_metric.official import official_elements

    entries = []
    for i, (prompt_id, prompt) in enumerate(prompts):
        official = official_elements(prompt) if use_official else None
        if official is not None:
            entry = {"prompt_id": prompt_id, "prompt": prompt, "result_info": official, "source": "official"}
        elif extractor is None:
            raise InputError(
                f"prompt {prompt!r} is not an official EvalAlign prompt: give an extraction model to extract "
                "its elements"
            )
        else:
            try:
                info = dict(extractor(prompt))
            except ExtractionError as exc:
                if on_error is None:
                    raise
                on_error(i, prompt, exc)
                continue
            entry = {"prompt_id": prompt_id, "prompt": prompt, "result_info": info, "source": source}
        entries.append(entry)
        if on_entry is not None:
            on_entry(i, entry)
    return entries
