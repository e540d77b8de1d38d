"""Protocols as data: which questions a judge is asked, their options and the options' scores.

Example:
    >>> from evalalign_metric.protocol import load_protocol
    >>> p = load_protocol("evalalign")
    >>> [a.name for a in p.aspects if a.dimension == "faithfulness"]
    ['body', 'Hand', 'face', 'object', 'common']
    >>> p.render_question("Count", {"Count": "elephant: a; bird: a;"})[:60]
    '<image>\\nDoes the given image correctly reflect the numbers(e'
    >>> m = load_protocol("imatch")  # overall on 15 levels (A..O -> 1..5) + one Yes/No per element
    >>> [(a.key, len(a.options)) for a in m.aspects]
    [('imatch/overall', 15), ('element/match', 2)]
    >>> [a.key for a, _ in m.questions_for({"elements": ["puffin (animal)", "rock (object)"]}, "a puffin")]
    ['imatch/overall', 'element/match', 'element/match']
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from importlib import resources
from pathlib import Path

from evalalign_metric.errors import ProtocolError
from evalalign_metric.fileio import read_data_file
from evalalign_metric.protocol.schema import (
    AskedQuestion,
    Aspect,
    Option,
    Protocol,
    elements_apply,
    protocol_from_dict,
)

__all__ = ["AskedQuestion", "Aspect", "Option", "Protocol", "available_protocols", "elements_apply",
           "load_protocol"]

_DATA = resources.files("evalalign_metric.protocol") / "data"


def available_protocols() -> list[str]:
    """Names of the protocols shipped with the package."""
    return sorted(p.name[: -len(".json")] for p in _DATA.iterdir() if p.name.endswith(".json"))


@lru_cache(maxsize=None)
def _load_builtin(name: str) -> Protocol:
    return protocol_from_dict(json.loads((_DATA / f"{name}.json").read_text(encoding="utf-8")), where=name)


def load_protocol(name_or_path: str | os.PathLike | Protocol) -> Protocol:
    """A shipped protocol by name (``"evalalign"``), or a user protocol from a ``.json``/``.yaml`` file."""
    if isinstance(name_or_path, Protocol):
        return name_or_path
    text = os.fspath(name_or_path)
    if text in available_protocols():
        return _load_builtin(text)
    path = Path(text)
    if not path.suffix:
        raise ProtocolError(
            f"protocol={text!r} is neither a shipped protocol {available_protocols()} nor a .json/.yaml file"
        )
    if not path.is_file():
        raise ProtocolError(f"protocol file {text!r} does not exist")
    raw = read_data_file(text, what="protocol file", error=ProtocolError)
    return protocol_from_dict(raw, where=path.name)
