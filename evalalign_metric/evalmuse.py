"""EvalMuse-40K records (``train_list.json`` / ``test.json``) and NTIRE 2025 track-1 submissions.

A record describes one generated image::

    {"prompt_id": ..., "prompt": "...", "type": "...", "img_path": "SDXL-Turbo/00805.png",
     "total_score": [4, 3, 3], "element_score": {"puffin (animal)": [1, 0, 1], ...},
     "promt_meaningless": [0, 0, 0], "split_confidence": [0, 0, 0], "attribute_confidence": [1, 1, 1]}

``total_score`` holds the annotators' 1-5 ratings and each element the annotators' 0/1 votes; the ground
truth is their mean. A processed file may already hold the means (numbers instead of lists), and the
test split has no scores (``null`` or absent) but still lists the element keys to predict. The
misspelling ``promt_meaningless`` is the dataset's own.

A submission ``output.json`` (challenge "Submission" page, CodaLab competition 21220) is a JSON *list*
with one object per image: ``{"prompt", "img_path", "total_score": float, "element_score": {key: float}}``
covering every element key of every image.

Example:
    >>> recs = parse_records([{"prompt": "a puffin", "img_path": "m/1.png", "total_score": [4, 3, 2],
    ...                        "element_score": {"puffin (animal)": [1, 0, 1]}}])
    >>> recs[0].overall_truth, recs[0].element_truth, split_element("puffin (animal)")
    (3.0, {'puffin (animal)': 0.6666666666666666}, ('puffin', 'animal'))
"""

from __future__ import annotations

import json
import math
import numbers
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from evalalign_metric.errors import InputError
from evalalign_metric.protocol import Protocol, load_protocol
from evalalign_metric.protocol.schema import SCORING_MODES

if TYPE_CHECKING:
    from evalalign_metric.scoring import ImageResult

CATEGORIES = ("object", "human", "animal", "food", "location", "activity", "attribute", "color", "material",
              "shape", "counting", "spatial", "other")
_CONFIDENCE_FIELDS = ("promt_meaningless", "split_confidence", "attribute_confidence")
_KNOWN_FIELDS = {"prompt_id", "prompt", "type", "img_path", "total_score", "element_score",
                 *_CONFIDENCE_FIELDS}


def split_element(key: str) -> tuple[str, str]:
    """Split an element key ``"name (category)"`` into ``(name, category)``.

    The category is the text in the last parentheses, lower-cased; compound labels keep their first part
    (``"attribute-texture"`` and ``"activity/action"`` read as ``attribute`` and ``activity``); a label
    outside :data:`CATEGORIES` reads as ``"other"``.

    Example:
        >>> split_element("Red Bull can (Object)"), split_element("three (counting)")
        (('Red Bull can', 'object'), ('three', 'counting'))
    """
    if not isinstance(key, str):
        raise InputError(f"an element key must be a string 'name (category)', got {key!r}")
    name, sep, rest = key.strip().rpartition("(")
    if not sep or not rest.endswith(")") or not name.strip():
        raise InputError(f"element key {key!r} is not of the form 'name (category)'")
    label = rest[:-1].strip().lower()
    for separator in ("-", "/"):
        label = label.split(separator)[0].strip()
    return name.strip(), label if label in CATEGORIES else "other"


def category_key(aspect_key: str, element: str) -> str:
    """The per-category result key of a per-element answer.

    Example:
        >>> category_key("element/match", "puffin (animal)")
        'element/match/animal'
    """
    return f"{aspect_key}/{split_element(element)[1]}"


def category_keys(protocol: Protocol | str) -> list[str]:
    """Every per-category key of the protocol's per-element aspects (empty for ``"evalalign"``).

    Example:
        >>> category_keys("imatch")[:2], category_keys("evalalign")
        (['element/match/object', 'element/match/human'], [])
    """
    protocol = load_protocol(protocol)
    return [f"{a.key}/{c}" for a in protocol.aspects if a.per_element for c in CATEGORIES]


@dataclass(frozen=True)
class EvalMuseRecord:
    """One validated record.

    Args:
        index: position in the source list (used in error messages).
        img_path: the image's path, relative to the dataset's image folder; it identifies the image.
        prompt, prompt_id, type: as in the file (``None`` when absent).
        total_score: the annotators' overall ratings (a stored mean becomes a 1-tuple), ``None`` if unscored.
        element_score: element key -> the annotators' votes, or ``None`` for an unscored element.
        confidence: ``promt_meaningless`` / ``split_confidence`` / ``attribute_confidence``, averaged.
        extra: any other fields, kept as they were.
    """

    index: int
    img_path: str
    prompt: str | None
    prompt_id: object = None
    type: str | None = None
    total_score: tuple[float, ...] | None = None
    element_score: dict[str, tuple[float, ...] | None] = field(default_factory=dict)
    confidence: dict[str, float] = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    @property
    def elements(self) -> tuple[str, ...]:
        """The element keys, in file order."""
        return tuple(self.element_score)

    @property
    def model(self) -> str | None:
        """The T2I model, read from the first folder of ``img_path`` (``None`` without a folder)."""
        head, sep, _ = self.img_path.replace("\\", "/").partition("/")
        return head if sep else None

    @property
    def overall_truth(self) -> float | None:
        """Mean overall rating, or ``None`` when unscored."""
        return None if self.total_score is None else math.fsum(self.total_score) / len(self.total_score)

    @property
    def element_truth(self) -> dict[str, float]:
        """Mean vote per scored element (unscored elements are left out)."""
        return {k: math.fsum(v) / len(v) for k, v in self.element_score.items() if v is not None}

    @property
    def is_scored(self) -> bool:
        """Whether the overall score and every element score are present."""
        return self.total_score is not None and all(v is not None for v in self.element_score.values())


def _where(index: int, item: Mapping) -> str:
    path = item.get("img_path") if isinstance(item, Mapping) else None
    return f"record {index}" + (f" (img_path {path!r})" if isinstance(path, str) and path.strip() else "")


def _scores(value, where: str, field_name: str, *, low: float | None = None, high: float | None = None):
    """``None``/``[]`` -> ``None``; a number -> 1-tuple; a list of numbers -> tuple; anything else: error."""
    if value is None or (isinstance(value, list) and not value):
        return None
    values = value if isinstance(value, list) else [value]
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
            raise InputError(f"{where}: field {field_name}: expected a number or a list of numbers, "
                             f"got {value!r}")
        if (low is not None and v < low) or (high is not None and v > high):
            raise InputError(f"{where}: field {field_name}: value {v!r} is outside [{low}, {high}]")
        out.append(float(v))
    return tuple(out)


def _parse_record(index: int, item, check_range: bool) -> EvalMuseRecord:
    where = _where(index, item)
    if not isinstance(item, Mapping):
        raise InputError(f"{where}: expected a JSON object, got {type(item).__name__}")
    img_path = item.get("img_path")
    if not isinstance(img_path, str) or not img_path.strip():
        raise InputError(f"{where}: field img_path: expected a non-empty string, got {img_path!r}")
    for name in ("prompt", "type"):
        if item.get(name) is not None and not isinstance(item[name], str):
            raise InputError(f"{where}: field {name}: expected a string, got {item[name]!r}")
    elements = item.get("element_score", {})
    if elements is None:
        elements = {}
    if not isinstance(elements, Mapping):
        raise InputError(f"{where}: field element_score: expected an object {{element key: votes}}, "
                         f"got {type(elements).__name__}")
    element_score = {}
    for key, votes in elements.items():
        try:
            split_element(key)
        except InputError as exc:
            raise InputError(f"{where}: field element_score: {exc}") from None
        bounds = {"low": 0.0, "high": 1.0} if check_range else {}
        element_score[key] = _scores(votes, where, f"element_score[{key!r}]", **bounds)
    confidence = {}
    for name in _CONFIDENCE_FIELDS:
        values = _scores(item.get(name), where, name)
        if values is not None:
            confidence[name] = math.fsum(values) / len(values)
    return EvalMuseRecord(
        index=index,
        img_path=img_path,
        prompt=item.get("prompt"),
        prompt_id=item.get("prompt_id"),
        type=item.get("type"),
        total_score=_scores(item.get("total_score"), where, "total_score"),
        element_score=element_score,
        confidence=confidence,
        extra={k: v for k, v in item.items() if k not in _KNOWN_FIELDS},
    )


def parse_records(data, *, check_range: bool = True) -> list[EvalMuseRecord]:
    """Validate a list of record dicts (or a submission-style mapping ``img_path -> entry``).

    Args:
        data: the parsed JSON.
        check_range: require element scores in [0, 1] (annotator votes and their means are).

    Raises:
        InputError: naming the record index and field that is wrong, or a repeated ``img_path``.

    Example:
        >>> parse_records({"m/1.png": {"total_score": 3.5, "element_score": {}}})[0].overall_truth
        3.5
    """
    if isinstance(data, Mapping):
        data = [_with_path(path, entry) for path, entry in data.items()]
    if isinstance(data, (str, bytes)) or not isinstance(data, Sequence):
        raise InputError(f"EvalMuse data must be a list of records, got {type(data).__name__}")
    records, seen = [], {}
    for index, item in enumerate(data):
        record = _parse_record(index, item, check_range)
        if record.img_path in seen:
            raise InputError(f"record {index}: field img_path: {record.img_path!r} repeats record "
                             f"{seen[record.img_path]}")
        seen[record.img_path] = index
        records.append(record)
    return records


def _with_path(path, entry):
    if not isinstance(entry, Mapping):
        raise InputError(f"entry for img_path {path!r}: expected an object with total_score and "
                         "element_score")
    return {"img_path": path, **entry}


def read_json_or_jsonl(path) -> object:
    """Parse a JSON document, or JSON Lines (one JSON value per non-empty line) into a list."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise InputError(f"cannot read {os.fspath(path)!r}: {exc.strerror or exc}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as whole:
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    raise InputError(f"{os.fspath(path)!r} is neither JSON ({whole.msg} at line "
                                     f"{whole.lineno}) nor JSON Lines (line {number} does not parse)"
                                     ) from None
        return rows


def load_records(source, *, check_range: bool = True) -> list[EvalMuseRecord]:
    """Read records from a ``train_list.json`` / ``test.json``-style file (JSON or JSON Lines) or a list.

    Example:
        >>> len(load_records([{"img_path": "a/1.png", "prompt": "x", "element_score": {"x (object)": None}}]))
        1
    """
    if isinstance(source, (str, os.PathLike)):
        source = read_json_or_jsonl(source)
    return parse_records(source, check_range=check_range)


def ground_truth(records: Sequence[EvalMuseRecord]) -> tuple[dict[str, float], dict[tuple[str, str], float]]:
    """Human ground truth: ``({img_path: mean rating}, {(img_path, element key): mean vote})``.

    Raises:
        InputError: when a record has no overall score or an unscored element (e.g. the test split).

    Example:
        >>> recs = parse_records([{"img_path": "a.png", "total_score": [5, 4],
        ...                        "element_score": {"cat (animal)": [1, 0]}}])
        >>> ground_truth(recs)
        ({'a.png': 4.5}, {('a.png', 'cat (animal)'): 0.5})
    """
    overall, elements = {}, {}
    for r in records:
        if not r.is_scored:
            raise InputError(f"record {r.index} (img_path {r.img_path!r}) has no human scores "
                             "(total_score or an element score is missing); it cannot serve as ground truth")
        overall[r.img_path] = r.overall_truth
        elements.update({(r.img_path, k): v for k, v in r.element_truth.items()})
    return overall, elements


def _score(value, what: str) -> float:
    if hasattr(value, "item"):  # numpy / torch scalars
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise InputError(f"{what}: expected a finite number, got {value!r}")
    return float(value)


def evalmuse_predictions(records, results: Sequence[ImageResult], *, scoring: str = "expectation",
                         overall_aspect: str = "imatch/overall", element_aspect: str = "element/match",
                         ) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Per-image predictions ``(total_scores, element_scores)`` for
    :func:`evalalign_metric.evalmuse.write_submission`, from :func:`score_images` results.

    Args:
        records: the EvalMuse records that were scored, in the order of ``results``
            (see :func:`evalalign_metric.elements.evalmuse_inputs`), or anything
            :func:`~evalalign_metric.evalmuse.load_records` reads.
        results: one :class:`ImageResult` per record, scored with the ``"imatch"`` protocol (or any protocol
            with an overall aspect ``overall_aspect`` and a per-element aspect ``element_aspect``).
        scoring: ``"expectation"`` (continuous, the challenge's choice) or ``"argmax"``.

    Returns:
        ``{img_path: overall score}`` and ``{img_path: {element key: element score}}``.

    Example:
        >>> from evalalign_metric.scoring import ImageResult, QuestionResult
        >>> recs = parse_records([{"img_path": "m/1.png", "prompt": "a cat",
        ...                        "element_score": {"cat (animal)": None}}])
        >>> res = [ImageResult("a cat", [
        ...     QuestionResult("imatch/overall", "...", ("A", "O"), [0.25, 0.75], 0.0, 5.0, 4.0),
        ...     QuestionResult("element/match", "...", ("Yes", "No"), [0.9, 0.1], 0.0, 1.0, 0.9,
        ...                    element="cat (animal)")])]
        >>> evalmuse_predictions(recs, res)
        ({'m/1.png': 4.0}, {'m/1.png': {'cat (animal)': 0.9}})
    """
    if scoring not in SCORING_MODES:
        raise InputError(f"scoring={scoring!r}; expected one of {SCORING_MODES}")
    if not (isinstance(records, Sequence) and all(isinstance(r, EvalMuseRecord) for r in records)):
        records = load_records(records, check_range=False)
    if len(records) != len(results):
        raise InputError(f"records ({len(records)}) and results ({len(results)}) must have the same length")
    totals: dict[str, float] = {}
    elements: dict[str, dict[str, float]] = {}
    for i, (record, result) in enumerate(zip(records, results)):
        where = f"results[{i}] (img_path {record.img_path!r})"
        if record.prompt is not None and result.prompt != record.prompt:
            raise InputError(f"{where} was scored against prompt {result.prompt!r}, not the record's "
                             f"{record.prompt!r}: results must follow the records' order")
        overall = [q.score(scoring) for q in result.questions if q.aspect == overall_aspect]
        if len(overall) != 1 or math.isnan(overall[0]):
            raise InputError(f"{where} has no {overall_aspect!r} score; score the images with a protocol "
                             "that asks it (protocol='imatch')")
        totals[record.img_path] = overall[0]
        found = {q.element: q.score(scoring) for q in result.questions
                 if q.aspect == element_aspect and q.element is not None}
        missing = [k for k in record.elements if k not in found]
        if missing:
            raise InputError(f"{where} has no {element_aspect!r} answer for element(s) {missing}; pass the "
                             "records' elements when scoring (evalmuse_inputs)")
        elements[record.img_path] = {k: found[k] for k in record.elements}
    return totals, elements


def build_submission(records: Sequence[EvalMuseRecord], total_scores: Mapping[str, float],
                     element_scores: Mapping[str, Mapping[str, float]]) -> list[dict]:
    """The challenge's ``output.json`` content for ``records``, in record order.

    Args:
        records: the records to predict (e.g. :func:`load_records` of ``test.json``).
        total_scores: ``img_path -> predicted overall score``.
        element_scores: ``img_path -> {element key -> predicted element score}``; every element key of
            every record must be present, and no other.

    Raises:
        InputError: an image or element key is missing or unknown, or a score is not a finite number.
    """
    wanted = {r.img_path for r in records}
    for name, given in (("total_scores", total_scores), ("element_scores", element_scores)):
        unknown = [p for p in given if p not in wanted]
        if unknown:
            raise InputError(f"{name} has {len(unknown)} img_path(s) that are not in the records, "
                             f"e.g. {unknown[0]!r}")
    out = []
    for r in records:
        if r.img_path not in total_scores:
            raise InputError(f"total_scores has no prediction for record {r.index} (img_path {r.img_path!r})")
        predicted = element_scores.get(r.img_path, {})
        if not isinstance(predicted, Mapping):
            raise InputError(f"element_scores[{r.img_path!r}]: expected a mapping element key -> score, "
                             f"got {type(predicted).__name__}")
        missing = [k for k in r.elements if k not in predicted]
        if missing:
            raise InputError(f"element_scores[{r.img_path!r}] is missing {len(missing)} element key(s) of "
                             f"record {r.index}: {', '.join(repr(k) for k in missing)}")
        extra = [k for k in predicted if k not in r.element_score]
        if extra:
            raise InputError(f"element_scores[{r.img_path!r}] has element key(s) not in record {r.index}: "
                             f"{', '.join(repr(k) for k in extra)}")
        out.append({
            "prompt": r.prompt,
            "img_path": r.img_path,
            "total_score": _score(total_scores[r.img_path], f"total_scores[{r.img_path!r}]"),
            "element_score": {k: _score(predicted[k], f"element_scores[{r.img_path!r}][{k!r}]")
                              for k in r.elements},
        })
    return out


def write_submission(path, records: Sequence[EvalMuseRecord], total_scores: Mapping[str, float],
                     element_scores: Mapping[str, Mapping[str, float]]) -> list[dict]:
    """Validate with :func:`build_submission` and write ``output.json`` (UTF-8, indented); returns the list.

    The challenge expects the file to be named ``output.json`` and zipped with a ``readme.txt``.

    Example:
        >>> import tempfile, pathlib
        >>> recs = parse_records([{"img_path": "m/1.png", "prompt": "a cat",
        ...                        "element_score": {"cat (animal)": None}}])
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "output.json"
        >>> rows = write_submission(out, recs, {"m/1.png": 4.2}, {"m/1.png": {"cat (animal)": 0.9}})
        >>> rows[0]["element_score"]
        {'cat (animal)': 0.9}
    """
    submission = build_submission(records, total_scores, element_scores)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(submission, handle, ensure_ascii=False, indent=2)
        handle.write("\n")
    return submission


def read_submission(source) -> list[EvalMuseRecord]:
    """Read predictions in the ``output.json`` layout (a list), or a mapping ``img_path -> entry``.

    Every image must have a ``total_score`` and every listed element a score (any finite number: a judge's
    element scores need not lie in [0, 1]).

    Example:
        >>> read_submission([{"img_path": "m/1.png", "total_score": 3.9,
        ...                   "element_score": {"cat (animal)": 0.8}}])[0].element_truth
        {'cat (animal)': 0.8}
    """
    records = load_records(source, check_range=False)
    for r in records:
        if not r.is_scored:
            raise InputError(f"prediction record {r.index} (img_path {r.img_path!r}) lacks total_score or an "
                             "element score")
    return records
