"""Parse and render a prompt's elements in the official ``result_info`` form.

Each of the six alignment aspects holds one element string: elements separated by ``;`` (the official files
usually end with one too), ``none`` (or ``none;``) where the aspect does not apply.

- ``Object`` and ``Style``: plain names, ``"elephant; bird;"``, ``"anime style;"``.
- ``Count``: ``name: quantity``, ``"elephant: a; bird: two;"``; the quantity is made of number words,
  digits and quantifiers (``a``, ``some``, ``several``, ``a group``, ...).
- ``Color``, ``Spatial``, ``Action``: ``subject: detail`` or a free phrase, ``"wine: red;"``,
  ``"cats are sitting;"``.

Parsing is strict (an error names the aspect and the bad text) but accepts every irregularity of the official
file (missing final ``;``, stray spaces, ``none;``); :class:`AspectElements` keeps the text it was parsed
from, so rendering it again gives the same bytes. :meth:`AspectElements.canonical` gives the normalised form
(``"a; b;"``, ``"none"``) that extractors write.

Example:
    >>> parsed = parse_aspect("Count", " birds: two; fence: a; carrots: three")
    >>> [(e.subject, e.value) for e in parsed.elements]
    [('birds', 'two'), ('fence', 'a'), ('carrots', 'three')]
    >>> parsed.render(), parsed.canonical()
    (' birds: two; fence: a; carrots: three', 'birds: two; fence: a; carrots: three;')
    >>> parse_aspect("Color", "none;").applies
    False
    >>> parse_aspect("Count", "cat: red;")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    evalalign_metric.extraction.errors.ElementsParseError: Count elements ... quantity 'red' of 'cat' is not a number...
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping

from evalalign_metric.extraction.errors import ElementsParseError

ASPECTS = ("Object", "Count", "Color", "Style", "Spatial", "Action")
NONE = "none"

# How each aspect uses "subject: detail": never (plain names), always, or optional (free phrases allowed).
_SUBJECTS = {"Object": "never", "Style": "never", "Count": "always",
             "Color": "optional", "Spatial": "optional", "Action": "optional"}

_NUMBER_WORDS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred hundreds "
    "thousand thousands million millions dozen dozens single double triple pair pairs couple"
)
_QUANTIFIERS = (
    "a an of some several many few lot lots group groups bunch crowd herd flock row rows set sets "
    "multiple numerous countless various both each every more most less than over under about around "
    "approximately at least or and to no"
)
QUANTITY_WORDS = frozenset((_NUMBER_WORDS + " " + _QUANTIFIERS).split())
_NUMBER = re.compile(r"^\d+(?:[.,]\d+)?\+?$")
_SPACES = re.compile(r"\s+")


def _squash(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


def is_quantity(text: str) -> bool:
    """Whether ``text`` reads as a count: number words, digits and quantifiers only.

    Example:
        >>> is_quantity("a group"), is_quantity("twenty-one"), is_quantity("3"), is_quantity("red")
        (True, True, True, False)
    """
    words = [w for w in re.split(r"[\s\-]+", text.lower()) if w]
    return bool(words) and all(w in QUANTITY_WORDS or _NUMBER.match(w) for w in words)


@dataclass(frozen=True)
class Element:
    """One element: ``value`` alone (``"elephant"``) or about a ``subject`` (``"elephant: a"``)."""

    value: str
    subject: str | None = None

    def render(self) -> str:
        return self.value if self.subject is None else f"{self.subject}: {self.value}"


@dataclass(frozen=True)
class AspectElements:
    """The parsed elements of one aspect; no elements means the aspect does not apply.

    ``raw`` is the text this was parsed from (not part of equality): :meth:`render` returns it unchanged as
    long as it still holds the same elements, so official strings keep their exact bytes.
    """

    aspect: str
    elements: tuple[Element, ...]
    raw: str | None = field(default=None, compare=False, repr=False)

    @property
    def applies(self) -> bool:
        return bool(self.elements)

    def canonical(self) -> str:
        """The normalised string: ``"a; b;"``, ``"name: quantity;"``, or ``"none"``."""
        if not self.elements:
            return NONE
        return "; ".join(e.render() for e in self.elements) + ";"

    def render(self) -> str:
        """The original text when it still holds these elements, else :meth:`canonical`."""
        if self.raw is not None and parse_aspect(self.aspect, self.raw).elements == self.elements:
            return self.raw
        return self.canonical()


def _check_aspect(aspect: str) -> None:
    if aspect not in _SUBJECTS:
        raise ElementsParseError(None, str(aspect), f"unknown aspect; expected one of {list(ASPECTS)}")


def _parse_item(aspect: str, text: str, item: str) -> Element:
    rule = _SUBJECTS[aspect]
    if item.lower() == NONE:
        raise ElementsParseError(aspect, text, "'none' cannot be listed together with other elements")
    if ":" not in item:
        if rule == "always":
            raise ElementsParseError(
                aspect, text, f"element {item!r} lacks its quantity; write 'name: quantity' (e.g. 'cat: two')"
            )
        return Element(_squash(item))
    if rule == "never":
        raise ElementsParseError(
            aspect, text,
            f"element {item!r} contains ':'; {aspect} elements are plain names (e.g. 'cat; dog;')",
        )
    subject, value = (_squash(part) for part in item.split(":", 1))
    if not subject or not value:
        missing = "before" if not subject else "after"
        raise ElementsParseError(aspect, text, f"element {item!r} has nothing {missing} ':'")
    if rule == "always" and not is_quantity(value):
        raise ElementsParseError(
            aspect, text,
            f"quantity {value!r} of {subject!r} is not a number or quantifier "
            "(e.g. 'a', 'two', 'some', 'several')",
        )
    return Element(value, subject)


def parse_aspect(aspect: str, text: str) -> AspectElements:
    """Parse one aspect's element string strictly (see the module docstring for the rules)."""
    _check_aspect(aspect)
    if not isinstance(text, str):
        raise ElementsParseError(aspect, repr(text), f"must be a string; got {type(text).__name__}")
    if "\n" in text or "\r" in text:
        raise ElementsParseError(aspect, text, "an element string is one line")
    stripped = text.strip()
    if not stripped:
        raise ElementsParseError(aspect, text, "is empty; write 'none' when the aspect does not apply")
    if stripped.count(";") <= 1 and stripped.rstrip(";").strip().lower() == NONE:
        return AspectElements(aspect, (), raw=text)
    parts = text.split(";")
    if not parts[-1].strip():
        parts.pop()
    items = []
    for part in parts:
        item = part.strip()
        if not item:
            raise ElementsParseError(aspect, text, "empty element between ';' separators")
        items.append(_parse_item(aspect, text, item))
    return AspectElements(aspect, tuple(items), raw=text)


def render_aspect(parsed: AspectElements) -> str:
    """The element string of ``parsed`` (same as ``parsed.render()``)."""
    return parsed.render()


def parse_result_info(result_info: Mapping[str, str]) -> dict[str, AspectElements]:
    """Parse a whole ``result_info`` mapping; it must hold exactly the six aspects.

    Example:
        >>> from evalalign_metric.official import alignment_prompts
        >>> info = alignment_prompts()[2]["result_info"]
        >>> render_result_info(parse_result_info(info)) == info
        True
    """
    if not isinstance(result_info, Mapping):
        raise ElementsParseError(None, repr(result_info)[:80],
                                 f"must be a mapping of {list(ASPECTS)} to element strings",
                                 label="result_info")
    unknown = [k for k in result_info if k not in _SUBJECTS]
    if unknown:
        raise ElementsParseError(None, repr(dict(result_info))[:200],
                                 f"unknown aspect(s) {unknown}; expected exactly {list(ASPECTS)}",
                                 label="result_info")
    missing = [a for a in ASPECTS if a not in result_info]
    if missing:
        raise ElementsParseError(None, repr(dict(result_info))[:200],
                                 f"missing aspect(s) {missing}; write 'none' where an aspect does not apply",
                                 label="result_info")
    return {a: parse_aspect(a, result_info[a]) for a in ASPECTS}


def render_result_info(parsed: Mapping[str, AspectElements]) -> dict[str, str]:
    """Element strings of parsed aspects, in the official aspect order."""
    return {a: parsed[a].render() for a in ASPECTS if a in parsed}


def canonical_result_info(result_info: Mapping[str, str]) -> dict[str, str]:
    """Parse strictly and return the normalised strings.

    Example:
        >>> canonical_result_info({"Object": "cat;dog", "Count": "cat: a ;dog:two", "Color": "none;",
        ...                        "Style": "none", "Spatial": "none", "Action": "cat is sleeping"})["Count"]
        'cat: a; dog: two;'
    """
    return {a: p.canonical() for a, p in parse_result_info(result_info).items()}


def validate_result_info(result_info: Mapping[str, str]) -> dict[str, str]:
    """Check ``result_info`` strictly and return it unchanged (as a plain dict in aspect order)."""
    return render_result_info(parse_result_info(result_info))


def format_answer(result_info: Mapping[str, str]) -> str:
    """The six ``Aspect: elements`` lines an extractor answers with (normalised strings).

    Example:
        >>> print(format_answer({"Object": "cat;", "Count": "cat: a;", "Color": "none", "Style": "none",
        ...                      "Spatial": "none", "Action": "cat: sleeping;"}))
        Object: cat;
        Count: cat: a;
        Color: none
        Style: none
        Spatial: none
        Action: cat: sleeping;
    """
    return "\n".join(f"{a}: {v}" for a, v in canonical_result_info(result_info).items())


_LINE = re.compile(r"^\s*([A-Za-z]+)\s*:(.*)$")


def parse_answer(text: str) -> dict[str, str]:
    """Read an extractor's answer: six lines ``Aspect: elements``, each aspect once, in any order.

    Blank lines before the first aspect are skipped; reading stops once all six aspects are seen (a language
    model goes on inventing the next example). Returns normalised element strings in aspect order.

    Example:
        >>> parse_answer("Object: cat\\nCount: cat: a\\nColor: none\\nStyle: none\\nSpatial: none\\n"
        ...              "Action: none\\n\\nPrompt: a dog")["Object"]
        'cat;'
        >>> parse_answer("Object: cat;\\nCount: cat: a;\\n\\nColor: none")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        evalalign_metric.extraction.errors.ElementsParseError: answer ... ends after Object, Count; missing aspect...
    """
    if not isinstance(text, str):
        raise ElementsParseError(None, repr(text)[:80], f"answer must be text; got {type(text).__name__}")
    found: dict[str, AspectElements] = {}
    labels = {a.lower(): a for a in ASPECTS}
    for number, line in enumerate(text.split("\n"), start=1):
        if len(found) == len(ASPECTS):
            break
        if not line.strip():
            if found:
                break
            continue
        match = _LINE.match(line)
        aspect = labels.get(match.group(1).lower()) if match else None
        if aspect is None:
            raise ElementsParseError(
                None, text, f"line {number} {line.strip()!r} is not 'Aspect: elements' with Aspect one of "
                f"{list(ASPECTS)}"
            )
        if aspect in found:
            raise ElementsParseError(None, text, f"aspect {aspect} appears twice (line {number})")
        found[aspect] = parse_aspect(aspect, match.group(2).strip())
    missing = [a for a in ASPECTS if a not in found]
    if missing:
        seen = ", ".join(found) if found else "no aspect line"
        raise ElementsParseError(
            None, text, f"the answer ends after {seen}; missing aspect lines for {', '.join(missing)}"
        )
    return {a: found[a].canonical() for a in ASPECTS}
