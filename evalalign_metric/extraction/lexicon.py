"""The word lists of the parser element extractor, read once from ``data/parser_lexicon.json``.

The lists are general English text-to-image vocabulary (colour names, number words, quantifiers, style
names, spatial relation words, common verbs, irregular plurals); no NLP library or model is involved. Each
lookup is a dictionary or set probe, so the parser stays linear in the prompt's length. Multi-word phrases
(``"in front of"``, ``"oil painting"``, ``"a group of"``) are matched longest first from a token position
with :meth:`Lexicon.match`.

Example:
    >>> lex = load_lexicon()
    >>> lex.match("relations", ["in", "front", "of", "the", "house"], 0)
    3
    >>> lex.singular("knives"), lex.is_plural("people"), lex.is_plural("glass"), lex.verb_lemma("sitting")
    ('knife', True, False, 'sit')
    >>> lex.match_name("color_names", ["two", "red", "pandas"], 1)
    2
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Sequence

_PHRASE_LISTS = ("relations", "absolute_relations", "styles", "quality_tags", "quantifiers", "ing_compounds",
                 "color_names")
_WORD_SETS = ("colors", "color_modifiers", "color_nouns", "determiners", "pronouns", "auxiliaries",
              "conjunctions", "prepositions", "particles", "adverbs", "adjectives", "abstract_nouns",
              "ing_nouns", "singular_s", "uncountable", "style_heads", "keep_nouns", "possessives",
              "animate_nouns", "setting_nouns", "posture_verbs", "worn_nouns", "ly_nouns", "containers",
              "flat_containers", "ic_nouns", "noun_adjectives", "suffix_nouns", "media_heads")
_VOWELS = set("aeiou")


def _phrase_table(phrases: Sequence[str]) -> tuple[dict[str, list[tuple[str, ...]]], int]:
    """First word -> the phrases starting with it (as word tuples), longest first; and the longest length."""
    table: dict[str, list[tuple[str, ...]]] = {}
    for phrase in phrases:
        words = tuple(phrase.lower().split())
        table.setdefault(words[0], []).append(words)
    for entries in table.values():
        entries.sort(key=len, reverse=True)
    return table, max((len(p.split()) for p in phrases), default=0)


@dataclass(frozen=True)
class Lexicon:
    """Word sets and phrase tables; build with :func:`load_lexicon`."""

    words: dict[str, frozenset[str]]
    phrases: dict[str, dict[str, list[tuple[str, ...]]]]
    numbers: dict[str, str]
    quantifiers: dict[str, str]
    verbs: frozenset[str]
    verb_irregular: dict[str, str]
    plural_irregular: dict[str, str]

    def has(self, name: str, word: str) -> bool:
        """Whether ``word`` (any case) is in the word set ``name``."""
        return word.lower() in self.words[name]

    def match(self, name: str, tokens: Sequence[str], start: int) -> int:
        """Length in tokens of the longest phrase of list ``name`` at ``tokens[start:]`` (0: none)."""
        if start >= len(tokens):
            return 0
        for phrase in self.phrases[name].get(tokens[start].lower(), ()):
            end = start + len(phrase)
            if end <= len(tokens) and all(tokens[start + k].lower() == w for k, w in enumerate(phrase)):
                return len(phrase)
        return 0

    def match_name(self, name: str, tokens: Sequence[str], start: int) -> int:
        """Like :meth:`match`, the phrase's last word also matching its plural (``"red pandas"``)."""
        if start >= len(tokens):
            return 0
        for phrase in self.phrases[name].get(tokens[start].lower(), ()):
            end = start + len(phrase)
            if end <= len(tokens) and all(tokens[start + k].lower() == w for k, w in enumerate(phrase[:-1])) \
                    and phrase[-1] in (tokens[end - 1].lower(), self.singular(tokens[end - 1])):
                return len(phrase)
        return 0

    def is_plural(self, noun: str) -> bool:
        """Whether a noun reads as plural: an irregular plural, or ending in ``s`` (not ``ss``/``us``/...)."""
        word = noun.lower()
        if word in self.plural_irregular:
            return True
        if word in self.words["singular_s"] or len(word) < 3:
            return False
        return word.endswith("s") and not word.endswith(("ss", "us", "is", "'s"))

    def singular(self, noun: str) -> str:
        """The singular of a plural noun (``knives`` -> ``knife``, ``boxes`` -> ``box``); others unchanged."""
        word = noun.lower()
        if word in self.plural_irregular:
            return self.plural_irregular[word]
        if not self.is_plural(word):
            return word
        if word.endswith("ies") and len(word) > 4:
            return word[:-3] + "y"
        if word.endswith(("ches", "shes", "xes", "sses", "zes")):
            return word[:-2]
        return word[:-1]

    def verb_lemma(self, word: str) -> str | None:
        """The base form of a known verb form (``sitting`` -> ``sit``, ``stood`` -> ``stand``), else ``None``."""
        w = word.lower()
        if w in self.verb_irregular:
            return self.verb_irregular[w]
        for candidate in _lemma_candidates(w):
            if candidate in self.verbs:
                return candidate
        return None


def _lemma_candidates(w: str) -> list[str]:
    """Possible base forms of an inflected word, most likely first (``riding`` -> ``rid``, ``ride``...)."""
    out = [w]
    for suffix in ("ing", "ed"):
        if w.endswith(suffix) and len(w) > len(suffix) + 1:
            stem = w[: -len(suffix)]
            out += [stem, stem + "e"]
            if len(stem) > 2 and stem[-1] == stem[-2] and stem[-1] not in _VOWELS:
                out.append(stem[:-1])
            if suffix == "ing" and stem.endswith("y"):
                out.append(stem[:-1] + "ie")
            if suffix == "ed" and stem.endswith("i"):
                out.append(stem[:-1] + "y")
    if w.endswith("s") and len(w) > 2:
        out.append(w[:-1])
        if w.endswith("es"):
            out.append(w[:-2])
        if w.endswith("ies"):
            out.append(w[:-3] + "y")
    return out


@lru_cache(maxsize=None)
def load_lexicon() -> Lexicon:
    """Read the packaged lexicon (cached: the file is read once per process)."""
    path = resources.files("evalalign_metric.extraction") / "data" / "parser_lexicon.json"
    raw = json.loads(path.read_text(encoding="utf-8"))
    words = {name: frozenset(w.lower() for w in raw[name]) for name in _WORD_SETS}
    phrases = {}
    for name in _PHRASE_LISTS:
        entries = list(raw[name]) if name != "quantifiers" else list(raw["quantifiers"])
        phrases[name] = _phrase_table(entries)[0]
    return Lexicon(
        words=words,
        phrases=phrases,
        numbers={k.lower(): v for k, v in raw["numbers"].items()},
        quantifiers={k.lower(): v for k, v in raw["quantifiers"].items()},
        verbs=frozenset(raw["verbs"]),
        verb_irregular={k.lower(): v for k, v in raw["verb_irregular"].items()},
        plural_irregular={k.lower(): v for k, v in raw["plural_irregular"].items()},
    )
