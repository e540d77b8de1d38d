"""How well the parser element extractor recovers the official elements of EvalAlign's 120 alignment prompts.

The rules were developed looking only at the prompts with an even index in the shipped
``test_alignment_prompt.json``; the odd-index half is held out and reported separately.

Per aspect, precision / recall / F1 (micro-averaged over the prompts of a half):

- ``elements``: which things the aspect names, compared by their head noun (last word, lower case,
  singular): the Object names, and the subjects of Count, Color, Spatial and Action (an Action written
  ``"cats are sitting"`` has the subject ``cats``); Style by its whole lower-cased text.
- ``values``: (element, value) pairs: the count as written, the set of colour words, the first relation
  phrase of the relation lexicon in the detail (synonyms such as ``atop`` / ``on`` or ``beside`` /
  ``next to`` as one), the first verb (base form) of the action. An action written without ``subject:``
  has as subject the words before ``is/are`` or, failing that, before its first verb.

Beside them, how much of the official annotation the prompt states at all (:func:`grounded`): the share of
official elements whose head noun the prompt contains and of official values it states, a bound on the
recall of any extractor that reads the prompt.

And the share of the 417 official alignment questions the protocol renders byte-identically from the
extracted elements (``load_protocol("evalalign").render_question(aspect, elements)``), and the CPU time per
prompt (``time.process_time``, so other processes on a shared machine do not count; 500 and 5,000 words, to
show the linear growth).

Run: ``OMP_NUM_THREADS=1 python benchmarks/extract_elements_parser.py`` (``--json`` for machine output).
"""

from __future__ import annotations

import argparse
import json
import re
import time

from evalalign_metric.extraction.lexicon import load_lexicon
from evalalign_metric.extraction.parser import ParserElementExtractor, parse_elements
from evalalign_metric.extraction.result_info import ASPECTS, parse_aspect
from evalalign_metric.official import alignment_prompts
from evalalign_metric.protocol import load_protocol

LEX = load_lexicon()
_ACTION_SUBJECT = re.compile(r"^(.*?)\s+(?:is|are|was|were)\s+(.*)$")
_ITEM = r"[^;:\s][^;:]*?(?:: [^;:\s][^;]*?)?;"
_CANONICAL = re.compile(rf"^(?:{_ITEM} )*{_ITEM}$")


def head(name: str) -> str:
    words = re.findall(r"[A-Za-z0-9'\-]+", name.lower())
    return LEX.singular(words[-1]) if words else ""


# Relation phrases that say the same thing, compared as one (the judge is asked the meaning, not the word).
SAME_RELATION = {
    "atop": "on", "on top of": "on", "upon": "on", "beside": "next to", "besides": "next to", "by": "next to",
    "close to": "near", "inside of": "inside", "within": "inside", "underneath": "under", "beneath": "under",
    "in the centre of": "in the center of", "in the middle of": "in the center of", "in the centre": "in the center",
    "in the middle": "in the center", "on the left of": "left of", "to the left of": "left of",
    "on the left side of": "left of", "to the left side of": "left of", "on the right of": "right of",
    "to the right of": "right of", "on the right side of": "right of", "to the right side of": "right of",
    "to the left": "on the left", "to the right": "on the right", "side-by-side": "side by side",
    "amongst": "among", "opposite to": "opposite", "across from": "opposite",
}


def relation(detail: str) -> str | None:
    """The first relation phrase of the detail (longest match), synonyms as one (:data:`SAME_RELATION`)."""
    words = detail.lower().split()
    for i in range(len(words)):
        n = max(LEX.match("relations", words, i), LEX.match("absolute_relations", words, i))
        if n:
            found = " ".join(words[i:i + n])
            return SAME_RELATION.get(found, found)
    return None


def verb(detail: str) -> str | None:
    for word in re.findall(r"[a-z\-]+", detail.lower()):
        lemma = LEX.verb_lemma(word)
        if lemma and lemma not in ("be", "have", "do"):
            return lemma
        if word.endswith("ing") and len(word) > 4:
            return word[:-3]
    return None


def action_subject(text: str) -> tuple[str | None, str]:
    """(subject, rest) of an action written without ``subject:``: before ``is/are/was/were``, else before
    the first verb form (``"trucks drive by"``, ``"three dogs happily chase ..."``); (None, text) if neither."""
    if m := _ACTION_SUBJECT.match(text):
        return m.group(1), m.group(2)
    words = text.split()
    for i, word in enumerate(words):
        if i and verb(word) is not None:
            subject = [w for w in words[:i] if not (w.lower().endswith("ly") and len(w) > 4)]
            return (" ".join(subject), " ".join(words[i:])) if subject else (None, text)
    return None, text


def canonical(text: str) -> bool:
    """Whether an official element string is in the form an extractor writes: ``"x; y;"`` / ``"x: v; y: w;"``
    with ``"; "`` between elements, a closing ``;``, no stray spaces (the ceiling of byte-identity)."""
    return bool(_CANONICAL.match(text)) and "  " not in text and not re.search(r" [;:]", text)


def colours(detail: str) -> frozenset[str]:
    return frozenset(w for w in re.findall(r"[a-z]+", detail.lower()) if LEX.has("colors", w))


def pairs(aspect: str, text: str) -> tuple[set, set]:
    """(elements, (element, value) pairs) of one aspect string, normalised for comparison."""
    parsed = parse_aspect(aspect, text)
    keys, values = set(), set()
    for e in parsed.elements:
        subject, detail = e.subject, e.value
        if aspect == "Style":
            keys.add(detail.lower().strip(" ,"))
            continue
        if aspect == "Object":
            keys.add(head(detail))
            continue
        if subject is None and aspect == "Action":
            subject, detail = action_subject(detail)
        key = head(subject) if subject else ""
        keys.add(key)
        value = {"Count": lambda d: d.lower(), "Color": colours, "Spatial": relation, "Action": verb}[aspect](detail)
        values.add((key, value))
    return keys, values


def relations_in(text: str) -> set[str]:
    """Every relation phrase of the text (longest match at each word), synonyms as one."""
    words = text.lower().split()
    found = set()
    for i in range(len(words)):
        n = max(LEX.match("relations", words, i), LEX.match("absolute_relations", words, i))
        if n:
            phrase = " ".join(words[i:i + n])
            found.add(SAME_RELATION.get(phrase, phrase))
    return found


def grounded(entries) -> dict[str, tuple[float, float | None]]:
    """Per aspect, the share of the official elements whose head noun (Style: whose text) the prompt contains,
    and the share of their values the prompt states (the colour words, a relation phrase, the verb; Count:
    the count word, or ``a`` for a bare noun). What the prompt does not say no extractor reading it can find:
    these shares bound the recall of any extractor, this parser or another."""
    out = {}
    for aspect in ASPECTS:
        n = hit = n_values = hit_values = 0
        for entry in entries:
            words = re.findall(r"[a-z0-9'\-]+", entry["prompt"].lower())
            heads, text = {LEX.singular(w) for w in words} | set(words), " ".join(words)
            keys, values = pairs(aspect, entry["result_info"][aspect])
            n += len(keys)
            hit += sum((k in text) if aspect == "Style" else (k in heads) for k in keys)
            if aspect in ("Object", "Style"):
                continue
            stated = {"Count": lambda v: set(v.split()) <= set(words) or v == "a",
                      "Color": lambda v: bool(v) and v <= set(words),
                      "Spatial": lambda v: v in relations_in(entry["prompt"]),
                      "Action": lambda v: v in {verb(w) for w in words}}[aspect]
            n_values += len(values)
            hit_values += sum(k in heads and v is not None and stated(v) for k, v in values)
        out[aspect] = (hit / n if n else float("nan"), hit_values / n_values if n_values else None)
    return out


def prf(tp: int, n_pred: int, n_gold: int) -> tuple[float, float, float]:
    p = tp / n_pred if n_pred else float("nan")
    r = tp / n_gold if n_gold else float("nan")
    f = 2 * p * r / (p + r) if n_pred and n_gold and (p + r) else 0.0 if n_pred and n_gold else float("nan")
    return p, r, f


def evaluate(entries) -> dict:
    protocol = load_protocol("evalalign")
    counts = {a: {"elements": [0, 0, 0], "values": [0, 0, 0]} for a in ASPECTS}
    same = total = ceiling = 0
    for entry in entries:
        predicted = parse_elements(entry["prompt"]).result_info
        for aspect in ASPECTS:
            gold_keys, gold_values = pairs(aspect, entry["result_info"][aspect])
            pred_keys, pred_values = pairs(aspect, predicted[aspect])
            for kind, g, p in (("elements", gold_keys, pred_keys), ("values", gold_values, pred_values)):
                c = counts[aspect][kind]
                c[0] += len(g & p)
                c[1] += len(p)
                c[2] += len(g)
        for aspect, text in entry["question_info"].items():
            total += 1
            ceiling += canonical(entry["result_info"][aspect])
            if predicted[aspect] != "none" and protocol.render_question(aspect, predicted) == text:
                same += 1
    out = {a: {kind: prf(*c) for kind, c in kinds.items()} for a, kinds in counts.items()}
    return {"aspects": out, "questions_identical": same, "questions": total, "questions_canonical": ceiling}


def timing() -> dict[int, float]:
    sentence = "two brown dogs are chasing a red ball next to a wooden fence in a sunny park, oil painting, "
    words = len(sentence.split())
    out = {}
    for n in (500, 5000):
        prompt = sentence * (n // words + 1)
        start = time.process_time()
        for _ in range(3):
            parse_elements(prompt)
        out[n] = (time.process_time() - start) / 3 * 1000
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    entries = alignment_prompts()
    halves = {"even (development)": entries[0::2], "odd (held out)": entries[1::2]}
    results = {name: {**evaluate(half), "grounded": grounded(half)} for name, half in halves.items()}
    start = time.process_time()
    for e in entries:
        parse_elements(e["prompt"])
    per_prompt = (time.process_time() - start) / len(entries) * 1000
    results["ms_per_official_prompt"] = per_prompt
    results["ms_by_words"] = timing()
    results["parser"] = ParserElementExtractor().identity
    if args.json:
        print(json.dumps(results, indent=1))
        return
    print("| half | aspect | elements P / R / F1 | values P / R / F1 | official elements / values the prompt states |")
    print("|---|---|---|---|---|")
    for name in halves:
        for aspect, kinds in results[name]["aspects"].items():
            cells = [" / ".join(f"{x:.2f}" for x in kinds[k]) for k in ("elements", "values")]
            values = cells[1] if aspect not in ("Object", "Style") else "-"
            stated = results[name]["grounded"][aspect]
            stated = f"{stated[0]:.2f}" + (f" / {stated[1]:.2f}" if stated[1] is not None else "")
            print(f"| {name} | {aspect} | {cells[0]} | {values} | {stated} |")
    for name in halves:
        r = results[name]
        print(f"{name}: {r['questions_identical']} of {r['questions']} official questions byte-identical "
              f"({r['questions_identical'] / r['questions']:.1%}); ceiling: {r['questions_canonical']} "
              f"({r['questions_canonical'] / r['questions']:.1%}) official element strings are in canonical form")
    print(f"{results['parser']}, CPU time: {per_prompt:.2f} ms per official prompt; "
          + ", ".join(f"{n} words: {ms:.1f} ms" for n, ms in results["ms_by_words"].items()))


if __name__ == "__main__":
    main()
