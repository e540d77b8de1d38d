"""Which protocols a judge was trained for, and a warning when it is asked another.

A judge trained by ``evalalign train`` names, in its sidecar (``evalalign_judge.json``, key ``protocols``),
the protocols whose questions it learned to answer: the protocol of every training stage that made it,
and each shipped protocol (``evalalign``, ``imatch``) whose questions a stage asked word for word. Asking
such a judge a protocol it does not name gives numbers with no known meaning, so the metric warns once,
naming both. A judge whose sidecar has no such list (an official checkpoint, a judge trained elsewhere)
is never warned about.

Example:
    >>> from evalalign_metric.protocol import load_protocol
    >>> trained_protocols(load_protocol("imatch"), base=["scene-describe"])
    ['scene-describe', 'imatch']
    >>> untrained_protocol_message({"model": "my-judge", "protocols": ["evalalign"]}, load_protocol("imatch"))[:60]
    "judge 'my-judge' was trained for protocol(s) 'evalalign', no"
    >>> untrained_protocol_message({"model": "official-13b"}, load_protocol("imatch")) is None
    True
"""

from __future__ import annotations

import warnings
from typing import Any, Iterable, Mapping

from evalalign_metric.protocol import Protocol, load_protocol

SHIPPED_PROTOCOLS = ("evalalign", "imatch")
SIDECAR_KEY = "protocols"


class UntrainedProtocolWarning(UserWarning):
    """A judge is asked the questions of a protocol its sidecar does not name."""


def _asked_as(aspect) -> tuple:
    return aspect.template, tuple(aspect.labels)


def asks_every_question(protocol: Protocol, of: Protocol) -> bool:
    """Whether ``protocol`` asks each of ``of``'s questions word for word, with the same options."""
    asked = {_asked_as(a) for a in protocol.aspects}
    return all(_asked_as(a) in asked for a in of.aspects)


def trained_protocols(protocol: Protocol, base: Iterable[str] = ()) -> list[str]:
    """The sidecar list of a judge trained on ``protocol`` from a judge trained for ``base``: ``base``, then
    ``protocol``'s name, then each shipped protocol whose every question ``protocol`` asks (a training stage
    that asks two protocols' questions together trains the judge for both)."""
    names = list(base) + [protocol.name]
    names += [name for name in SHIPPED_PROTOCOLS if asks_every_question(protocol, load_protocol(name))]
    return list(dict.fromkeys(names))


def untrained_protocol_message(identity: Mapping[str, Any], protocol: Protocol) -> str | None:
    """The warning for a judge (its ``identity``) asked ``protocol``, or ``None`` when there is nothing to say."""
    listed = identity.get(SIDECAR_KEY)
    if not listed or protocol.name in listed:
        return None
    names = ", ".join(repr(n) for n in listed)
    return (f"judge {identity.get('model')!r} was trained for protocol(s) {names}, not for {protocol.name!r}: its "
            f"answers to the questions of {protocol.name!r} have no known meaning. Use a judge trained for "
            f"{protocol.name!r} (its evalalign_judge.json lists it under {SIDECAR_KEY!r}), or train one with "
            "`evalalign train`.")


_warned: set[tuple[str, str]] = set()


def warn_if_untrained(identity: Mapping[str, Any], protocol: Protocol) -> None:
    """Warn (:class:`UntrainedProtocolWarning`), once per judge and protocol, when the judge's sidecar names
    other protocols than ``protocol``."""
    message = untrained_protocol_message(identity, protocol)
    key = (str(identity.get("model")), protocol.name)
    if message is not None and key not in _warned:
        _warned.add(key)
        warnings.warn(message, UntrainedProtocolWarning, stacklevel=3)
