"""One registry of judges and protocols: what ``model=`` can name, and the judge used when none is named.

Three kinds of judge share one namespace:

- ``"hub"``: the Hub judges of :mod:`evalalign_metric.hub.registry` (``evalalign-13b``, zero-shot instruct
  judges, ...), downloaded and converted on first use;
- ``"embedded"``: the judges shipped in the package, one per protocol that has one: ``embedded`` (EvalAlign's
  questions, ``assets/judge``) and ``embedded-<protocol>`` (``embedded-imatch``: ``assets/judge-imatch``);
- ``"user"``: names added by :func:`register_judge` (a local folder, a Hub repo id or another reference).

Every name resolves wherever a judge reference is taken (``EvalAlignScore(model=...)``, ``load_judge``, the
callback, the ``evaluate`` module, ``evalalign score --model``); a local folder of the same name wins.
:func:`judge_when_none_named` is the single answer of every entry point given no judge: the protocol's
embedded judge (``docs/judges.md`` says why), with a :class:`DemoJudgeWarning` when the package ships none
and the untrained demo judge stands in.

Example:
    >>> "embedded-imatch" in list_judges() and "evalalign-13b" in list_judges(kind="hub")
    True
    >>> list_protocols()
    ['evalalign', 'imatch']
    >>> judge_entry("embedded-imatch").protocol
    'imatch'
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from evalalign_metric.errors import InputError

KINDS = ("hub", "embedded", "user")


class DemoJudgeWarning(UserWarning):
    """No judge was named and the package ships no trained judge for the protocol: scores mean nothing."""


@dataclass(frozen=True)
class JudgeEntry:
    """One registered judge.

    ``reference`` is what :func:`~evalalign_metric.judge.load_judge` is given for it (the Hub name itself,
    the embedded folder, or the user's reference); ``protocol`` is the protocol it was made for.
    """

    name: str
    kind: str
    reference: str
    protocol: str = "evalalign"
    description: str = ""


_USER: dict[str, JudgeEntry] = {}


def list_protocols() -> list[str]:
    """Names of the shipped protocols (any other protocol is a ``.json``/``.yaml`` file)."""
    from evalalign_metric.protocol import available_protocols

    return available_protocols()


def _embedded_name(protocol: str) -> str:
    return "embedded" if protocol == "evalalign" else f"embedded-{protocol}"


def _embedded() -> dict[str, JudgeEntry]:
    from evalalign_metric.runs import defaults

    out = {}
    for protocol in list_protocols():
        folder = defaults.embedded_judge_dir(protocol)
        own = folder.name == ("judge" if protocol == "evalalign" else f"judge-{protocol}")
        if own and (folder / "config.json").is_file():
            name = _embedded_name(protocol)
            out[name] = JudgeEntry(name, "embedded", os.fspath(folder), protocol,
                                   "shipped with the package; trained on synthetic shape scenes only")
    return out


def _hub() -> dict[str, JudgeEntry]:
    from evalalign_metric.hub.registry import JUDGES

    return {name: JudgeEntry(name, "hub", name, spec.protocol, spec.description) for name, spec in JUDGES.items()}


def _entries() -> dict[str, JudgeEntry]:
    return {**_hub(), **_embedded(), **_USER}


def list_judges(kind: str | None = None) -> list[str]:
    """Sorted names of the known judges, of one ``kind`` (``"hub"``, ``"embedded"``, ``"user"``) or all.

    Raises:
        InputError: ``kind`` is not one of :data:`KINDS`.
    """
    if kind is not None and kind not in KINDS:
        raise InputError(f"kind={kind!r}; expected one of {KINDS} or None")
    return sorted(name for name, entry in _entries().items() if kind is None or entry.kind == kind)


def judge_entry(name: str) -> JudgeEntry | None:
    """The entry registered as ``name``, or None."""
    return _entries().get(name)


def register_judge(name, reference: str | os.PathLike | None = None, *, protocol: str = "evalalign",
                   description: str = "") -> JudgeEntry:
    """Make ``name`` usable wherever a judge is named (``EvalAlignScore(model=name)``, ``load_judge(name)``).

    Args:
        name: the new name; a :class:`~evalalign_metric.hub.registry.JudgeSpec` registers a Hub judge instead
            (as :func:`evalalign_metric.hub.register_judge` does).
        reference: a judge folder, Hub repo id or other judge reference.
        protocol: the protocol the judge was made for.
        description: shown by ``list_judges`` users and ``evalalign judges``.

    Returns:
        The new entry.

    Raises:
        InputError: no reference, or ``name`` is already a Hub or embedded judge.

    Example:
        >>> entry = register_judge("my-judge", "/data/judges/mine")
        >>> "my-judge" in list_judges(kind="user")
        True
        >>> unregister_judge("my-judge")
    """
    from evalalign_metric.hub.registry import JudgeSpec

    if isinstance(name, JudgeSpec):
        from evalalign_metric.hub import registry as hub

        hub.register_judge(name)
        return _hub()[name.name]
    if reference is None:
        raise InputError(f"register_judge({name!r}) needs a reference (a judge folder or model id)")
    taken = judge_entry(name)
    if taken is not None and taken.kind != "user":
        raise InputError(f"judge name {name!r} is already the {taken.kind} judge {taken.reference!r}; pick another")
    entry = JudgeEntry(str(name), "user", os.fspath(reference), protocol, description)
    _USER[entry.name] = entry
    return entry


def unregister_judge(name: str) -> None:
    """Forget the user-registered judge ``name`` (Hub and embedded judges stay)."""
    _USER.pop(name, None)


def local_reference(name: str) -> str | None:
    """The reference an embedded or user-registered ``name`` stands for (None for Hub and unknown names,
    which the Hub resolver handles)."""
    entry = judge_entry(name)
    if entry is None or entry.kind == "hub":
        return None
    return entry.reference


def judge_when_none_named(protocol="evalalign") -> Path:
    """The judge every entry point uses when given none: the embedded judge of ``protocol``.

    Args:
        protocol: what :func:`~evalalign_metric.protocol.load_protocol` takes.

    Returns:
        The judge folder: ``protocol``'s own embedded judge, else the EvalAlign one, else (a source tree
        without the embedded judges) the untrained demo judge, which is announced by a
        :class:`DemoJudgeWarning`.
    """
    from evalalign_metric.runs import defaults

    found = defaults.default_judge(protocol)
    if not found.trained:
        warnings.warn("no judge named and no trained judge installed: using the untrained demo judge, whose "
                      "scores mean nothing; pass model=<judge folder or name> (CLI: --model)", DemoJudgeWarning,
                      stacklevel=3)
    return found.path
