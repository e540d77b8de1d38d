"""An on-disk cache of extracted elements, so a benchmark's prompts are extracted once.

One JSON file per (extractor identity, cache format version) under ``$HF_HOME/evalalign/elements/`` (the
Hugging Face cache home, ``~/.cache/huggingface`` by default) or a folder you give. Entries are keyed by the
exact prompt text. Every write re-reads the file, merges, and replaces it atomically (write to a temporary
file, then ``os.replace``), so an interrupted run never leaves a half-written cache and two processes
extracting different prompts lose nothing but, at worst, one another's latest entry.

Example:
    >>> import tempfile
    >>> from evalalign_metric.extraction import FunctionExtractor
    >>> calls = []
    >>> def mine(prompt):
    ...     calls.append(prompt)
    ...     return {"Object": "cat;", "Count": "cat: a;", "Color": "none", "Style": "none",
    ...             "Spatial": "none", "Action": "none"}
    >>> cached = CachedExtractor(FunctionExtractor(mine, identity="demo-v1"), cache=tempfile.mkdtemp())
    >>> cached("a cat") == cached("a cat"), calls
    (True, ['a cat'])
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from pathlib import Path
from typing import Callable, Mapping

from evalalign_metric.errors import InputError
from evalalign_metric.extraction.errors import ElementsParseError
from evalalign_metric.extraction.result_info import validate_result_info
from evalalign_metric.fileio import write_atomic

CACHE_FORMAT_VERSION = 1


def default_cache_dir() -> Path:
    """``$HF_HOME/evalalign/elements`` (read when called, so a changed ``HF_HOME`` is honoured)."""
    from huggingface_hub import constants

    home = os.environ.get("HF_HOME") or constants.HF_HOME
    return Path(home).expanduser() / "evalalign" / "elements"


class ElementCache:
    """Elements per (prompt, extractor identity, format version), stored as JSON files in ``directory``."""

    def __init__(self, directory: str | os.PathLike | None = None):
        self.directory = Path(directory).expanduser() if directory is not None else default_cache_dir()

    def path_for(self, identity: str) -> Path:
        """The file holding ``identity``'s entries: a readable slug plus a hash of identity and version."""
        if not isinstance(identity, str) or not identity:
            raise InputError(f"identity must be a non-empty string naming the extractor; got {identity!r}")
        digest = hashlib.sha256(f"{CACHE_FORMAT_VERSION}\n{identity}".encode()).hexdigest()[:20]
        slug = re.sub(r"[^A-Za-z0-9]+", "-", identity.split("{")[0])[:48].strip("-") or "extractor"
        return self.directory / f"{slug}-{digest}.json"

    def _read(self, identity: str) -> dict[str, dict[str, str]]:
        path = self.path_for(identity)
        if not path.is_file():
            return {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            warnings.warn(f"ignoring unreadable element cache {path}: {exc}", stacklevel=3)
            return {}
        if (not isinstance(data, dict) or data.get("format_version") != CACHE_FORMAT_VERSION
                or data.get("extractor") != identity or not isinstance(data.get("entries"), dict)):
            warnings.warn(f"ignoring element cache {path}: written for another extractor or format",
                          stacklevel=3)
            return {}
        return data["entries"]

    def get(self, prompt: str, identity: str) -> dict[str, str] | None:
        """The cached elements of ``prompt`` by ``identity``, or ``None`` (also for a corrupt entry)."""
        found = self._read(identity).get(prompt)
        if found is None:
            return None
        try:
            return validate_result_info(found)
        except ElementsParseError:
            return None

    def put(self, prompt: str, identity: str, result_info: Mapping[str, str]) -> None:
        """Store one entry (validated first)."""
        self.put_many(identity, {prompt: result_info})

    def put_many(self, identity: str, entries: Mapping[str, Mapping[str, str]]) -> None:
        """Store several entries with one atomic rewrite of the file."""
        checked = {p: validate_result_info(r) for p, r in entries.items()}
        path = self.path_for(identity)
        path.parent.mkdir(parents=True, exist_ok=True)
        merged = self._read(identity)
        merged.update(checked)
        payload = {"format_version": CACHE_FORMAT_VERSION, "extractor": identity, "entries": merged}
        write_atomic(path, json.dumps(payload, ensure_ascii=False, indent=1))

    def entries(self, identity: str) -> dict[str, dict[str, str]]:
        """Every cached prompt of ``identity``."""
        return dict(self._read(identity))

    def clear(self, identity: str) -> None:
        """Forget ``identity``'s entries."""
        self.path_for(identity).unlink(missing_ok=True)


class CachedExtractor:
    """Wrap an extractor so each prompt is extracted once per extractor identity.

    Args:
        extractor: any ``extractor(prompt) -> dict``; its ``identity`` attribute names it, unless given.
        cache: an :class:`ElementCache`, a folder, or ``None`` for ``$HF_HOME/evalalign/elements``.
        identity: overrides ``extractor.identity`` (needed for plain functions).
    """

    def __init__(self, extractor: Callable[[str], Mapping[str, str]], *,
                 cache: ElementCache | str | os.PathLike | None = None, identity: str | None = None):
        identity = identity if identity is not None else getattr(extractor, "identity", None)
        if not isinstance(identity, str) or not identity:
            raise InputError(
                "caching needs an extractor identity: give identity='name-v1' (or wrap the function in "
                "FunctionExtractor(..., identity=...))"
            )
        self.extractor = extractor
        self.identity = identity
        self.cache = cache if isinstance(cache, ElementCache) else ElementCache(cache)
        self.hits = 0
        self.misses = 0

    def __call__(self, prompt: str) -> dict[str, str]:
        found = self.cache.get(prompt, self.identity)
        if found is not None:
            self.hits += 1
            return found
        self.misses += 1
        result = validate_result_info(self.extractor(prompt))
        self.cache.put(prompt, self.identity, result)
        return result

    def __repr__(self) -> str:
        return f"CachedExtractor({self.extractor!r}, cache={str(self.cache.directory)!r})"
