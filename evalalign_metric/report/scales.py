"""What a protocol's numbers mean, in words, read off the protocol itself (for the report's "How to read it").

Each dimension gets one sentence: its aspects, their options and scores, when they are asked, and which
answers mean "not applicable"; then one sentence on the scoring mode and one on how dimensions and the
overall score are formed. Nothing is written per protocol name: a new protocol file is explained too.

Example:
    >>> from evalalign_metric.protocol import load_protocol
    >>> notes = describe_scales(load_protocol("imatch"), "expectation")
    >>> notes[0]
    'imatch (overall): 15 levels A (worst) to O (best), scored 1 to 5; asked of every image.'
    >>> notes[1]
    'element (match): Yes = 1, No = 0; asked once per element of the prompt.'
"""

from __future__ import annotations

from typing import Sequence

from evalalign_metric.protocol import Protocol
from evalalign_metric.protocol.schema import Aspect


def protocol_title(protocol: Protocol) -> str:
    """The name a report shows for ``protocol``: its ``title`` field if the file has one, else its name."""
    return str(protocol.metadata.get("title") or protocol.name)


def _options(aspect: Aspect) -> str:
    scored = [o for o in aspect.options if o.score is not None]
    low, high = f"{aspect.min_score:g}", f"{aspect.max_score:g}"
    if all(o.label == f"{o.score:g}" for o in scored):
        return f"{low} (worst) to {high} (best)"
    if len(scored) <= 4:
        return ", ".join(f"{o.label} = {o.score:g}" for o in scored)
    worst = min(scored, key=lambda o: o.score)
    best = max(scored, key=lambda o: o.score)
    return f"{len(scored)} levels {worst.label} (worst) to {best.label} (best), scored {low} to {high}"


def _asked(aspect: Aspect) -> str:
    if aspect.per_element:
        return "asked once per element of the prompt"
    if aspect.needs_elements:
        return "asked only when the prompt has elements for that aspect"
    return "asked of every image"


def _not_applicable(aspects: Sequence[Aspect], scoring: str) -> str:
    with_na = [a for a in aspects if any(o.score is None for o in a.options)]
    if not with_na:
        return ""
    labels = sorted({o.label for a in with_na for o in a.options if o.score is None})
    which = "" if len(with_na) == len(aspects) else " (" + ", ".join(a.name for a in with_na) + ")"
    when = " when it gets at least half the probability" if scoring == "expectation" else ""
    return f"; the judge may answer {' or '.join(labels)} = not applicable{which}, which{when} does not count"


def describe_scales(protocol: Protocol, scoring: str) -> list[str]:
    """Plain-text sentences explaining ``protocol``'s scales under ``scoring`` (``"argmax"`` / ``"expectation"``).

    Args:
        protocol: the protocol the leaderboard was scored with.
        scoring: the scoring mode of its answers.

    Returns:
        One sentence per dimension (in protocol order), then one on scoring and one on aggregation.
    """
    notes = []
    for dim in protocol.dimensions:
        aspects = [a for a in protocol.aspects if a.dimension == dim]
        groups: dict[tuple[str, str], list[Aspect]] = {}
        for aspect in aspects:
            groups.setdefault((_options(aspect), _asked(aspect)), []).append(aspect)
        parts = []
        for (options, asked), members in groups.items():
            names = "" if len(groups) == 1 else ", ".join(a.name for a in members) + ": "
            parts.append(f"{names}{options}; {asked}")
        notes.append(f"{dim} ({', '.join(a.name for a in aspects)}): {'. '.join(parts)}"
                     f"{_not_applicable(aspects, scoring)}.")
    if scoring == "argmax":
        notes.append("Scoring argmax: each answer scores the option the judge finds most likely (a whole option).")
    else:
        notes.append("Scoring expectation: each answer scores the judge's expected option score (its option "
                     "probabilities renormalised over the scored options, as QAlign does), so it can fall "
                     "between two options.")
    dims = len(protocol.dimensions)
    notes.append("An aspect is the mean of its applicable answers (one per image asked, or per element for an "
                 "aspect asked per element); a dimension is the mean of all the applicable answers of its aspects. "
                 "overall normalises every answer to 0-1 by its "
                 f"aspect's range, averages within each dimension, then averages the {dims} dimension(s). "
                 "n/a: never asked or never applicable.")
    return notes
