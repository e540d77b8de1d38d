"""``evalalign agree``: how far do a judge's scores agree with human scores?

Inputs (``--pred`` and ``--truth``) may each be:

- EvalMuse-style: a JSON list of objects with ``img_path``, ``total_score`` and ``element_score``, i.e. the
  challenge's ``output.json`` for predictions or ``train_list.json`` records for truth (annotator lists
  are averaged), or a JSON object ``img_path -> {"total_score": ..., "element_score": {...}}``;
- simple: a JSON object ``{id: score}``, or JSON Lines of ``{"id": ..., "score": ...}`` or ``{id: score}``.

Element statistics (element accuracy, the NTIRE 2025 track-1 score) are computed when both sides carry
element scores; every element key of the truth must then be predicted.

Example:
    >>> import argparse, json, tempfile, pathlib, contextlib, io
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "p.json").write_text(json.dumps({"a": 0.1, "b": 0.5, "c": 0.4, "d": 0.9}))
    >>> _ = (d / "t.json").write_text(json.dumps({"a": 1, "b": 2, "c": 3, "d": 4}))
    >>> parser = argparse.ArgumentParser(); register(parser.add_subparsers())
    >>> args = parser.parse_args(["agree", "--pred", str(d / "p.json"), "--truth", str(d / "t.json"),
    ...                           "--format", "json"])
    >>> out = io.StringIO()
    >>> with contextlib.redirect_stdout(out):
    ...     code = args.func(args)
    >>> code, round(json.loads(out.getvalue())["statistics"]["srcc"]["value"], 6)
    (0, 0.8)
"""

from __future__ import annotations

import json
import numbers
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

from evalalign_metric.agreement import AgreementWarning, agreement_report
from evalalign_metric.commands._args import add_command, add_format_option
from evalalign_metric.errors import InputError
from evalalign_metric.evalmuse import ground_truth, parse_records, read_json_or_jsonl
from evalalign_metric.fileio import json_safe


@dataclass(frozen=True)
class ScoreSet:
    """Scores read from one file: overall per id, element scores per ``(id, element)`` when present."""

    overall: dict[str, float]
    elements: dict[tuple[str, str], float] | None
    evalmuse: bool


def _is_number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _simple_rows(rows: list, flag: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line, row in enumerate(rows, start=1):
        if isinstance(row, Mapping) and "id" in row and "score" in row:
            pairs = [(row["id"], row["score"])]
        elif isinstance(row, Mapping) and len(row) == 1:
            pairs = list(row.items())
        else:
            raise InputError(f"{flag}: entry {line} is not {{\"id\": ..., \"score\": ...}} nor {{id: score}}")
        for key, score in pairs:
            if not _is_number(score):
                raise InputError(f"{flag}: entry {line}: score of {key!r} must be a number, got {score!r}")
            if str(key) in out:
                raise InputError(f"{flag}: id {str(key)!r} appears twice")
            out[str(key)] = float(score)
    return out


def load_scores(path: str, *, flag: str, truth: bool) -> ScoreSet:
    """Read ``path`` in any supported layout (see the module docstring)."""
    data = read_json_or_jsonl(path)
    as_list = isinstance(data, list) and data and all(isinstance(r, Mapping) and "img_path" in r
                                                      for r in data)
    as_mapping = isinstance(data, Mapping) and data and all(isinstance(v, Mapping) for v in data.values())
    evalmuse = as_list or as_mapping
    if evalmuse:
        try:
            records = parse_records(data, check_range=truth)
        except InputError as exc:
            raise InputError(f"{flag}: {exc}") from None
        if truth:
            try:
                overall, elements = ground_truth(records)
            except InputError as exc:
                raise InputError(f"{flag}: {exc}") from None
        else:
            for r in records:
                if not r.is_scored:
                    raise InputError(f"{flag}: record {r.index} (img_path {r.img_path!r}) lacks total_score "
                                     "or an element score")
            overall = {r.img_path: r.overall_truth for r in records}
            elements = {(r.img_path, k): v for r in records for k, v in r.element_truth.items()}
        return ScoreSet(overall, elements if any(r.elements for r in records) else None, True)
    if isinstance(data, Mapping) and data and all(_is_number(v) for v in data.values()):
        return ScoreSet({str(k): float(v) for k, v in data.items()}, None, False)
    if isinstance(data, list) and data:
        return ScoreSet(_simple_rows(data, flag), None, False)
    raise InputError(f"{flag}: {path!r} is not a recognised score file: expected EvalMuse records / "
                     "output.json (objects with img_path), a JSON object {id: score}, "
                     "or JSON Lines of scores")


def _check_ids(pred: ScoreSet, truth: ScoreSet) -> None:
    missing = [k for k in truth.overall if k not in pred.overall]
    extra = [k for k in pred.overall if k not in truth.overall]
    problems = []
    if missing:
        problems.append(f"--pred lacks {len(missing)} id(s) of --truth, first {missing[0]!r}")
    if extra:
        problems.append(f"--pred has {len(extra)} id(s) not in --truth, first {extra[0]!r}")
    if problems:
        raise InputError("the ids of --pred and --truth differ: " + "; ".join(problems))


def _check_elements(pred: ScoreSet, truth: ScoreSet) -> None:
    missing = [k for k in truth.elements if k not in pred.elements]
    if missing:
        image, element = missing[0]
        raise InputError(f"--pred is missing {len(missing)} element score(s) of the truth, first: element "
                         f"{element!r} of image {image!r}")
    extra = [k for k in pred.elements if k not in truth.elements]
    if extra:
        image, element = extra[0]
        raise InputError(f"--pred has {len(extra)} element score(s) not in the truth, first: element "
                         f"{element!r} of image {image!r}")


def _models(ids) -> dict[str, str]:
    models = {}
    for i in ids:
        head, sep, _ = i.replace("\\", "/").partition("/")
        if not sep:
            raise InputError(f"--by-model reads the model from the first folder of each id, "
                             f"but {i!r} has none")
        models[i] = head
    return models


def register(subparsers) -> None:
    """Add the ``agree`` subcommand."""
    parser = add_command(
        subparsers, "agree", doc=__doc__,
        help="agreement of predicted scores with human scores (SRCC, PLCC, NTIRE 2025 track-1, ...)",
    )
    parser.add_argument("--pred", required=True, metavar="FILE", help="predicted scores")
    parser.add_argument("--truth", required=True, metavar="FILE", help="human scores")
    add_format_option(parser)
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="element decision threshold applied to both sides (default 0.5)")
    parser.add_argument("--bootstrap", type=int, default=0, metavar="N",
                        help="bootstrap resamples for percentile confidence intervals (default 0: none)")
    parser.add_argument("--confidence", type=float, default=0.95, help="interval level (default 0.95)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resampling (default 0)")
    parser.add_argument("--by-model", action="store_true",
                        help="also rank T2I models (the first folder of each image id) "
                             "by judge and by humans")
    parser.set_defaults(func=run)


def run(args) -> int:
    """Compute the report and print it; returns the exit code."""
    if args.bootstrap < 0:
        raise InputError(f"--bootstrap must be >= 0, got {args.bootstrap}")
    pred = load_scores(args.pred, flag="--pred", truth=False)
    truth = load_scores(args.truth, flag="--truth", truth=True)
    _check_ids(pred, truth)
    use_elements = pred.elements is not None and truth.elements is not None
    if use_elements:
        _check_elements(pred, truth)
    elif (pred.elements is None) != (truth.elements is None):
        side = "--pred" if pred.elements is None else "--truth"
        print(f"evalalign agree: note: {side} has no element scores; element statistics are skipped",
              file=sys.stderr)
    models = _models(truth.overall) if args.by_model else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AgreementWarning)
        report = agreement_report(
            pred.overall, truth.overall,
            element_pred=pred.elements if use_elements else None,
            element_truth=truth.elements if use_elements else None,
            models=models, threshold=args.threshold, n_resamples=args.bootstrap,
            confidence=args.confidence, seed=args.seed,
        )
    for w in caught:
        print(f"evalalign agree: warning: {w.message}", file=sys.stderr)
    n_elements = len(truth.elements) if use_elements else 0
    if args.format == "json":
        out = {"n_items": len(truth.overall), "n_elements": n_elements, **report.as_dict()}
        print(json.dumps(json_safe(out), indent=2, allow_nan=False))
    else:
        print(f"{len(truth.overall)} items" + (f", {n_elements} elements" if use_elements else "")
              + (f", element threshold {args.threshold:g}" if use_elements else ""))
        print(report.to_table())
    return 0
