"""The parser's first step: take out what a prompt says to the image generator rather than about the image.

Prompts pasted from Midjourney, Stable Diffusion or a chat window carry syntax that describes no element:
parameters (``--ar 3:2``), weights (``(masterpiece:1.3)``), a request (``"Generate an image of"``) or the
text to paint on a sign (``'OPEN'``). Left in, the parser reads them as objects, counts or actions.
:func:`strip_prompt_syntax` removes them and reports every removed piece as written:

- Midjourney: ``/imagine prompt:``, parameters ``--ar 3:2``, ``--v 6``, ``--style raw`` (a long dash too),
  multi-prompt weights ``cat::2``; ``--no text, people`` is a negative prompt: its things are returned as
  negated.
- Stable Diffusion: weights ``(red hair:1.2)`` and ``((cat))`` keep their words; prompt editing
  ``[cat:dog:0.5]`` keeps the word the image ends with (``dog``), ``[cat:0.5]`` and ``[cat|dog]`` the first,
  ``[blurry]`` its word (a single pair of round brackets is prose, and stays);
  ``<lora:name:0.8>`` / ``<embedding>`` go.
- Danbooru counts: ``1girl`` / ``2boys`` become ``a girl`` / ``two boys``; the tag ``solo`` goes.
- A leading request: ``"Generate an image of"``, ``"Please draw"``, ``"Can you make me a picture of"`` (only
  before an article, a number or ``me``, so ``"paint splashes"`` stays).
- Quoted text with the words that introduce it (``"a sign that says 'OPEN'"`` -> ``"a sign"``), and
  capitalised text after such words that ends the phrase (``"a sign saying OPEN on a door"``; not ``"reading
  TIME magazine"``): text to render, not things to depict.

Quality tags (``8k``, ``highly detailed``) are not syntax: the parser drops them while reading styles.

Example:
    >>> s = strip_prompt_syntax("Generate an image of a (red fox:1.2) in the snow --ar 3:2 --no people")
    >>> s.text
    'a red fox in the snow'
    >>> s.stripped
    ('Generate an image of', '(red fox:1.2)', '--ar 3:2', '--no people')
    >>> s.negated
    ('people',)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
_DASH = r"(?:--|\u2014)"
_IMAGINE = re.compile(r"^\s*/imagine\s+(?:prompt\s*:?\s*)?", re.IGNORECASE)
_REQUEST = re.compile(
    r"^\s*(?:please\s+)?(?:(?:can|could|would|will)\s+you\s+(?:please\s+)?)?"
    r"(?:generate|create|make|draw|paint|render|produce|design|imagine|illustrate|depict|visuali[sz]e|sketch"
    r"|show(?:\s+me)?|give\s+me|i\s+want|i'd\s+like)\s+(?:me\s+)?"
    r"(?:(?:an?|the|one)\s+(?:(?:high[- ]quality|detailed|realistic|beautiful|nice)\s+)*"
    r"(?:image|picture|pic|artwork|visual|scene)\s+(?:of|showing|depicting|that\s+shows|with)\s*:?\s*)?"
    r"(?=(?:an?|the|some|\d+|" + "|".join(_NUMBER_WORDS) + r")\b)",
    re.IGNORECASE)
_MJ_NO = re.compile(_DASH + r"no\s+(.+?)\s*(?=" + _DASH + r"|$)", re.IGNORECASE)
_MJ_PARAM = re.compile(_DASH + r"[A-Za-z]+(?:\s+(?!" + _DASH + r")[^\s,]+)?")
_MJ_WEIGHT = re.compile(r"::\s*-?\d*(?:\.\d+)?")
_ANGLE = re.compile(r"<[^<>]*>")
_WEIGHT = re.compile(r"\(([^():]+):\s*-?\d+(?:\.\d+)?\)")
_EMPHASIS = re.compile(r"\({2,}([^()]+)\){2,}|\[+([^\[\]:|]+)\]+|\{([^{}]+)\}")
_EDIT = re.compile(r"\[([^\[\]:|]*):([^\[\]:|]*):\s*\d+(?:\.\d+)?\]")
_EDIT_ONE = re.compile(r"\[([^\[\]:|]+):\s*\d+(?:\.\d+)?\]")
_ALTERNATE = re.compile(r"\[([^\[\]|]+)(?:\|[^\[\]|]+)+\]")
_DANBOORU = re.compile(r"\b(\d{1,2})(girl|boy|other)(s?)\b", re.IGNORECASE)
_SOLO = re.compile(r"(?:(?<=,)|^)\s*solo\s*(?=,|$)", re.IGNORECASE)
_QUOTE = re.compile(
    r"(?:\s*\b(?:(?:that|which)\s+(?:says|say|reads|read|spells(?:\s+out)?|shows|displays)|saying|reading"
    r"|with\s+(?:the\s+)?(?:words?|text|caption|inscription|slogan|title|letters)"
    r"|labell?ed|titled|captioned|written|inscribed)\s*:?)?"
    r"\s*(?:\"[^\"]*\"|\u201c[^\u201d]*\u201d|(?<![\w'])'[^']+'(?![\w]))")
_CAPS_TEXT = re.compile(
    r"\s*\b(?:(?:that|which)\s+(?:says|reads|spells(?:\s+out)?)|saying|reading|with\s+the\s+(?:words?|text))"
    r"\s*:?\s+[A-Z0-9][A-Z0-9!?&'\-]+(?:\s+[A-Z0-9][A-Z0-9!?&'\-]+)*\b[!?]?"
    r"(?=\s*$|\s*[,.;:)]|\s+(?:on|above|below|in|at|over|under|behind|near|next|beside|by|and|with|against)\b)")


@dataclass(frozen=True)
class StrippedPrompt:
    """The prompt without generator syntax, each removed piece as written, and the things of ``--no``."""

    text: str
    stripped: tuple[str, ...] = ()
    negated: tuple[str, ...] = ()


def strip_prompt_syntax(prompt: str) -> StrippedPrompt:
    """Remove generator syntax from ``prompt`` (see the module docstring); a prompt without any is unchanged.

    Args:
        prompt: an English T2I prompt.

    Returns:
        :class:`StrippedPrompt`: ``text`` (single spaces, no empty tags), ``stripped`` (the removed pieces,
        in the order of the prompt) and ``negated`` (the things of a Midjourney ``--no``).

    Example:
        >>> strip_prompt_syntax("1girl, solo, [cat:dog:0.5], a sign that says 'OPEN'").text
        'a girl, dog, a sign'
        >>> strip_prompt_syntax("a red car on a road").stripped
        ()
    """
    stripped: list[str] = []
    negated: list[str] = []
    text = prompt

    def drop(pattern: re.Pattern, keep) -> None:
        nonlocal text

        def replace(m: re.Match) -> str:
            stripped.append(m.group(0).strip())
            return keep(m)
        text = pattern.sub(replace, text)

    drop(_IMAGINE, lambda m: "")
    drop(_REQUEST, lambda m: "")
    for m in _MJ_NO.finditer(text):
        negated += [t.strip() for t in re.split(r",|\band\b", m.group(1)) if t.strip()]
    drop(_MJ_NO, lambda m: " ")
    drop(_MJ_PARAM, lambda m: " ")
    drop(_MJ_WEIGHT, lambda m: " ")
    drop(_ANGLE, lambda m: " ")
    drop(_QUOTE, lambda m: " ")
    drop(_CAPS_TEXT, lambda m: " ")
    for _ in range(3):  # nested weights: ((cat:1.2)), (a (red:1.1) hat:1.3)
        before = text
        drop(_WEIGHT, lambda m: m.group(1))
        drop(_EMPHASIS, lambda m: next(g for g in m.groups() if g is not None))
        if text == before:
            break
    drop(_EDIT, lambda m: m.group(2))
    drop(_EDIT_ONE, lambda m: m.group(1))
    drop(_ALTERNATE, lambda m: m.group(1))
    drop(_DANBOORU, lambda m: f"{_number_word(m.group(1))} {m.group(2).lower()}{m.group(3).lower()}")
    drop(_SOLO, lambda m: "")
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"\s+([,.;:!?])", r"\1", text)
    text = re.sub(r"(?:,\s*){2,}", ", ", text).strip(" ,")
    order = sorted(range(len(stripped)), key=lambda k: (prompt.find(stripped[k]) % (len(prompt) + 1), k))
    return StrippedPrompt(text, tuple(stripped[k] for k in order), tuple(negated))


def _number_word(digits: str) -> str:
    n = int(digits)
    return "a" if n == 1 else _NUMBER_WORDS[n] if n < len(_NUMBER_WORDS) else digits
