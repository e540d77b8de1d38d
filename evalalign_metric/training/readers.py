"""Readers for training data: EvalAlign conversations, EvalMuse-40K records, plain JSON Lines.

Each reader validates its file (errors name the record and the field), maps every judgement onto an aspect of
the protocol being trained and returns :class:`~evalalign_metric.training.annotations.Annotation` objects.
:func:`read_source` then checks the images under the source's image root: a missing or corrupt image is
reported, skipped and counted, never fatal.

Formats:

- ``"llava"``: LLaVA conversation JSON, ``[{"image": "a.png", "conversations": [{"from": "human", "value":
  "<image>\\n<protocol question>"}, {"from": "gpt", "value": "2"}, ...]}]``. Every (human, gpt) pair is one
  judgement; the question must be one of the protocol's questions and the answer one of its options
  (``"2"`` or ``"2.The body structure ..."``).
- ``"evalmuse"``: EvalMuse-40K ``train_list.json`` records (read by :mod:`evalalign_metric.evalmuse`): the
  mean ``total_score`` becomes the overall aspect's truth, each element's mean vote the element aspect's.
  Unscored records (the test split) become unlabelled annotations (score NaN) for pseudo-labelling.
- ``"jsonl"``: one object per line, ``{"image", "aspect", "score", "prompt"?, "elements"?}``; ``score``
  ``null`` is the not-applicable option.

Example:
    >>> import json, tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "t.jsonl").write_text(json.dumps({"image": "x.png", "aspect": "Object", "score": 2,
    ...                                            "elements": "cat; dog;"}) + "\\n")
    >>> [a] = read_jsonl(d / "t.jsonl", "evalalign")
    >>> a.aspect, a.score, a.elements
    ('alignment/Object', 2.0, 'cat; dog;')
"""

from __future__ import annotations

import json
import math
import numbers
import os
import re
from pathlib import Path
from typing import Any, Mapping

from evalalign_metric.errors import InputError, ProtocolError
from evalalign_metric.protocol import Aspect, Protocol, elements_apply, load_protocol
from evalalign_metric.protocol.schema import ELEMENT_PLACEHOLDER, ELEMENTS_PLACEHOLDER, PROMPT_PLACEHOLDER
from evalalign_metric.training.annotations import Annotation, ReadReport, check_images

FORMATS = ("llava", "evalmuse", "jsonl")
UNLABELLED = math.nan


def _name(path) -> str:
    return os.fspath(path)


def _load_json(path) -> Any:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read {_name(path)!r}: {exc.strerror or exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{_name(path)!r} is not valid JSON: {exc.msg} at line {exc.lineno}") from None


# ---------------------------------------------------------------- question text -> aspect
def _template_pattern(template: str) -> re.Pattern:
    body = template.split("<image>", 1)[-1].lstrip("\n")
    parts = re.split(r"(\{elements\}|\{element\}|\{prompt\})", body)
    names = {ELEMENTS_PLACEHOLDER: "elements", ELEMENT_PLACEHOLDER: "elements", PROMPT_PLACEHOLDER: "prompt"}
    regex = "".join(f"(?P<{names[p]}>.+?)" if p in names else re.escape(p) for p in parts)
    return re.compile(regex + r"\Z", re.S)


def match_question(protocol: Protocol, question: str) -> tuple[Aspect, str | None, str | None] | None:
    """The aspect whose template renders ``question`` (with or without its ``<image>\\n``), and the element
    string and prompt it was filled with; ``None`` if no aspect matches.

    Example:
        >>> from evalalign_metric.protocol import load_protocol
        >>> p = load_protocol("evalalign")
        >>> a, elements, _ = match_question(p, p.render_question("Color", {"Color": "car: red;"}))
        >>> a.key, elements
        ('alignment/Color', 'car: red;')
    """
    text = question.split("<image>", 1)[-1].lstrip("\n") if "<image>" in question else question
    for aspect in protocol.aspects:
        found = _template_pattern(aspect.template).match(text)
        if found:
            groups = found.groupdict()
            return aspect, groups.get("elements"), groups.get("prompt")
    return None


def parse_answer(aspect: Aspect, answer: str) -> str | None:
    """The option label an answer gives: the whole answer, or its start followed by a separator
    (``"2.The body ..."``, ``"2, All ..."``); letter labels compare case-insensitively. ``None`` if none.

    Example:
        >>> from evalalign_metric.protocol import load_protocol
        >>> body = load_protocol("evalalign").aspect("body")
        >>> parse_answer(body, "-1.There are no human"), parse_answer(body, " 3"), parse_answer(body, "7")
        ('-1', '3', None)
    """
    text = answer.strip()
    for fold in (False, True):
        for label in sorted(aspect.labels, key=len, reverse=True):
            candidate, wanted = (text.lower(), label.lower()) if fold else (text, label)
            if candidate == wanted or (candidate.startswith(wanted) and not candidate[len(wanted)].isalnum()):
                return label
    return None


def _score_of(aspect: Aspect, label: str) -> float | None:
    return next(o.score for o in aspect.options if o.label == label)


# ---------------------------------------------------------------- (a) LLaVA conversations
def read_llava(path, protocol: Protocol | str = "evalalign") -> list[Annotation]:
    """Judgements from a LLaVA conversation JSON file (see the module docstring)."""
    protocol = load_protocol(protocol)
    data = _load_json(path)
    if not isinstance(data, list):
        raise InputError(f"{_name(path)!r}: expected a JSON list of conversation records, got {type(data).__name__}")
    out = []
    for i, record in enumerate(data):
        where = f"{_name(path)} record {i}" + (f" (id {record.get('id')!r})" if isinstance(record, dict)
                                               and "id" in record else "")
        if not isinstance(record, Mapping):
            raise InputError(f"{where}: expected an object with 'image' and 'conversations'")
        image = record.get("image")
        if not isinstance(image, str) or not image.strip():
            raise InputError(f"{where}: field image: expected a non-empty path string, got {image!r}")
        turns = record.get("conversations")
        if not isinstance(turns, list) or not turns or len(turns) % 2:
            raise InputError(f"{where}: field conversations: expected a non-empty list of (human, gpt) turn "
                             f"pairs, got {turns!r:.80}")
        for j in range(0, len(turns), 2):
            for k, role in ((j, "human"), (j + 1, "gpt")):
                turn = turns[k]
                if not isinstance(turn, Mapping) or turn.get("from") != role or not isinstance(turn.get("value"), str):
                    raise InputError(f"{where}: field conversations[{k}]: expected {{'from': '{role}', "
                                     f"'value': text}}, got {turn!r:.80}")
            question, answer = turns[j]["value"], turns[j + 1]["value"]
            matched = match_question(protocol, question)
            if matched is None:
                raise InputError(f"{where}: field conversations[{j}].value: not a question of protocol "
                                 f"{protocol.name!r}: {question[:100]!r}")
            aspect, elements, prompt = matched
            label = parse_answer(aspect, answer)
            if label is None:
                raise InputError(f"{where}: field conversations[{j + 1}].value: answer {answer[:60]!r} is none of "
                                 f"aspect {aspect.key!r}'s options {list(aspect.labels)}")
            out.append(Annotation(image=image, aspect=aspect.key, score=_score_of(aspect, label), prompt=prompt,
                                  elements=elements, source=f"{where} turn {j // 2}"))
    return out


# ---------------------------------------------------------------- (b) EvalMuse-40K
def read_evalmuse(path, protocol: Protocol | str = "imatch", *, overall_aspect: str = "imatch/overall",
                  element_aspect: str = "element/match") -> list[Annotation]:
    """Overall and per-element judgements from EvalMuse-40K records (unscored ones get a NaN score)."""
    from evalalign_metric.evalmuse import load_records

    protocol = load_protocol(protocol)
    overall = protocol.aspect(overall_aspect)
    element = protocol.aspect(element_aspect)
    if not element.per_element:
        raise ProtocolError(f"element_aspect={element_aspect!r} must be a per-element aspect of protocol "
                            f"{protocol.name!r}")
    out = []
    for record in load_records(path):
        where = f"{_name(path)} record {record.index} (img_path {record.img_path!r})"
        if not isinstance(record.prompt, str) or not record.prompt.strip():
            raise InputError(f"{where}: field prompt: expected the text-to-image prompt, got {record.prompt!r}")
        truth = record.overall_truth
        out.append(Annotation(image=record.img_path, aspect=overall.key, prompt=record.prompt, source=where,
                              score=UNLABELLED if truth is None else truth))
        element_truth = record.element_truth
        for key in record.elements:
            out.append(Annotation(image=record.img_path, aspect=element.key, prompt=record.prompt, elements=key,
                                  source=f"{where} element {key!r}", score=element_truth.get(key, UNLABELLED)))
    return out


# ---------------------------------------------------------------- (c) JSON Lines
def _number(value, where: str, field: str, aspect: Aspect) -> float | None:
    if value is None:
        if not any(o.not_applicable for o in aspect.options):
            raise InputError(f"{where}: field {field}: null (not applicable) but aspect {aspect.key!r} has no "
                             "not-applicable option")
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise InputError(f"{where}: field {field}: expected a finite number or null, got {value!r}")
    if not aspect.min_score <= value <= aspect.max_score:
        raise InputError(f"{where}: field {field}: {value!r} is outside aspect {aspect.key!r}'s range "
                         f"[{aspect.min_score:g}, {aspect.max_score:g}]")
    return float(value)


def _elements_for(aspect: Aspect, row: Mapping, where: str) -> str | None:
    if not aspect.needs_elements:
        return None
    given = row.get("elements", row.get("element"))
    if isinstance(given, Mapping):
        given = given.get(aspect.elements_key)
    if given is None and not aspect.per_element and isinstance(row.get("prompt"), str):
        from evalalign_metric.official import official_elements

        official = official_elements(row["prompt"])
        given = official.get(aspect.elements_key) if official else None
    if not isinstance(given, str) or not elements_apply(given):
        what = "one element key like 'puffin (animal)'" if aspect.per_element else \
            f"an element string like 'cat; dog;' (or a mapping with key {aspect.elements_key!r})"
        raise InputError(f"{where}: field elements: aspect {aspect.key!r} needs {what}, got {given!r}")
    return given


def read_jsonl(path, protocol: Protocol | str = "evalalign") -> list[Annotation]:
    """Judgements from JSON Lines ``{"image", "aspect", "score", "prompt"?, "elements"?}``."""
    protocol = load_protocol(protocol)
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InputError(f"cannot read {_name(path)!r}: {exc.strerror or exc}") from None
    out = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{_name(path)} line {number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{where}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, Mapping):
            raise InputError(f"{where}: expected an object, got {type(row).__name__}")
        image = row.get("image")
        if not isinstance(image, str) or not image.strip():
            raise InputError(f"{where}: field image: expected a non-empty path string, got {image!r}")
        name = row.get("aspect")
        if not isinstance(name, str):
            raise InputError(f"{where}: field aspect: expected an aspect of protocol {protocol.name!r} "
                             f"{list(protocol.aspect_names)}, got {name!r}")
        try:
            aspect = protocol.aspect(name)
        except ProtocolError as exc:
            raise InputError(f"{where}: field aspect: {exc}") from None
        if "score" not in row:
            raise InputError(f"{where}: field score: missing")
        prompt = row.get("prompt")
        if aspect.needs_prompt and (not isinstance(prompt, str) or not prompt.strip()):
            raise InputError(f"{where}: field prompt: aspect {aspect.key!r} shows the prompt; expected a "
                             f"non-empty string, got {prompt!r}")
        out.append(Annotation(image=image, aspect=aspect.key, score=_number(row["score"], where, "score", aspect),
                              prompt=prompt if isinstance(prompt, str) else None,
                              elements=_elements_for(aspect, row, where), source=where))
    return out


# ---------------------------------------------------------------- dispatch
READERS = {"llava": read_llava, "evalmuse": read_evalmuse, "jsonl": read_jsonl}


def read_source(path, *, format: str, protocol: Protocol | str, image_root=None, **options
                ) -> tuple[list[Annotation], ReadReport]:
    """Read one data source and check its images (relative paths resolve under ``image_root``, default the
    file's folder). Returns the annotations with readable images and the report of what was skipped."""
    if format not in READERS:
        raise InputError(f"format={format!r} is not a known data format; expected one of {list(FORMATS)}")
    annotations = READERS[format](path, protocol, **options)
    root = image_root if image_root is not None else Path(path).expanduser().parent
    return check_images(annotations, root)
