"""The summary of a scoring run: aggregates over the images of the folder, and everything left out.

The aggregates are :func:`evalalign_metric.functional.aggregate` over the applicable answers of the scored
images (with the header's scoring, ``argmax`` or ``expectation``). Files that were not scored are listed
by reason, never counted: non-image files, corrupt images (unreadable header, undecodable pixels, too
small for the judge), images without a prompt. Results of images no longer in the folder are listed under
``results_without_image`` and left out of the aggregates. ``ignored_subfolders`` lists the subfolders
holding images (not searched: only the folder's top level is scored) and ``prompts_without_image`` the
prompts no image matched (see :mod:`~evalalign_metric.runs.scan`); neither makes the run fail.

Example:
    >>> from evalalign_metric.runs.resultsfile import ImageRecord
    >>> rec = ImageRecord("a.png", [{"kind": "answer", "aspect": "faithfulness/body", "argmax": 3.0,
    ...                             "expectation": 2.5, "outside_mass": 0.1}], [])
    >>> totals = image_totals([rec], "argmax")
    >>> totals.sums, totals.num_alignment_images
    ({'faithfulness/body': 3.0}, 0)
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from evalalign_metric.fileio import json_safe, write_atomic
from evalalign_metric.functional import AspectTotals, aggregate, category_key
from evalalign_metric.protocol import Protocol
from evalalign_metric.runs.prompts import ELEMENT_SOURCES
from evalalign_metric.runs.resultsfile import ImageRecord
from evalalign_metric.runs.scan import FolderScan

SUMMARY_VERSION = 1


@dataclass
class RunTotals(AspectTotals):
    """Per-aspect sums/counts of applicable answers plus what was asked."""

    asked: dict[str, int] = field(default_factory=dict)
    num_images: int = 0
    num_alignment_images: int = 0
    outside_mass_sum: float = 0.0


def record_score(record: Mapping[str, Any], scoring: str) -> float:
    """The answer's score under ``scoring``; NaN when not applicable."""
    value = record.get(scoring)
    return math.nan if value is None else float(value)


def image_totals(images: Iterable[ImageRecord], scoring: str) -> RunTotals:
    """Accumulate the answers of ``images`` (corrupt images contribute nothing)."""
    totals = RunTotals()
    for image in images:
        if image.kind == "corrupt":
            continue
        totals.num_images += 1
        answers = [r for r in image.records if r["kind"] == "answer"]
        if any(r["aspect"].startswith("alignment/") for r in answers):
            totals.num_alignment_images += 1
        for r in answers:
            totals.asked[r["aspect"]] = totals.asked.get(r["aspect"], 0) + 1
            totals.outside_mass_sum += float(r["outside_mass"])
            score = record_score(r, scoring)
            totals.add(r["aspect"], score)
            if r.get("element"):
                totals.add(category_key(r["aspect"], r["element"]), score)
    return totals


def elements_from(scan: FolderScan, protocol: Protocol) -> dict[str, int]:
    """How many prompts of the folder's images got their elements from each source (``prompts-file``,
    ``official``, ``parser``; ``none``: faithfulness questions only). A prompt shared by several images of
    a manifest counts once; protocols without element aspects count nothing.

    Example:
        >>> from types import SimpleNamespace as NS
        >>> from evalalign_metric.protocol import load_protocol
        >>> from evalalign_metric.runs.prompts import PromptEntry
        >>> items = [NS(entry=PromptEntry("a cat", "1", {"Object": "cat;"}, "parser")),
        ...          NS(entry=PromptEntry("a dog", "2", None, None)), NS(entry=PromptEntry("a cat", "3", None, None))]
        >>> elements_from(NS(items=items), load_protocol("evalalign"))
        {'prompts-file': 0, 'official': 0, 'parser': 1, 'none': 2}
    """
    counts = dict.fromkeys(ELEMENT_SOURCES, 0)
    if not any(a.needs_elements for a in protocol.aspects):
        return counts
    seen = set()
    for item in scan.items:
        entry = item.entry
        key = (entry.prompt_id, entry.prompt)
        if key not in seen:
            seen.add(key)
            counts[entry.elements_source if entry.elements is not None else "none"] += 1
    return counts


def elements_line(counts: Mapping[str, int]) -> str | None:
    """One line for the command's output: where the prompts' elements came from (``None``: no prompts).

    Example:
        >>> elements_line({"prompts-file": 0, "official": 2, "parser": 3, "none": 1})
        'elements: 3 prompt(s) from the parser, 2 official, 1 without elements (faithfulness only)'
    """
    what = {"prompts-file": "from the prompts file", "official": "official", "parser": "from the parser",
            "none": "without elements (faithfulness only)"}
    order = ("parser", "prompts-file", "official", "none")
    parts = [f"{counts[k]} {what[k]}" for k in order if counts.get(k)]
    if not parts:
        return None
    return "elements: " + parts[0].replace(" ", " prompt(s) ", 1) + "".join(f", {p}" for p in parts[1:])


def build_summary(
    protocol: Protocol,
    header: Mapping[str, Any],
    scan: FolderScan,
    images: Mapping[str, ImageRecord],
    results_path: Path,
) -> dict[str, Any]:
    """The summary dictionary (JSON-ready; NaN becomes ``null``)."""
    scoring = header["scoring"]
    present = {item.key for item in scan.items}
    scored = [images[item.key] for item in scan.items if item.key in images]
    totals = image_totals(scored, scoring)
    scores = aggregate(protocol, totals.sums, totals.counts, num_alignment_images=totals.num_alignment_images)
    corrupt = list(scan.unreadable) + [
        {"image": r.key, "error": r.records[0].get("error", "")} for r in scored if r.kind == "corrupt"
    ]
    asked_total = sum(totals.asked.values())
    has_element_aspects = any(a.needs_elements for a in protocol.aspects)
    summary = {
        "summary_version": SUMMARY_VERSION,
        "results": os.fspath(results_path),
        "images_dir": os.fspath(scan.images_dir),
        "model": header["model"],
        "protocol": header["protocol"],
        "scoring": scoring,
        "dtype": header["dtype"],
        "scores": scores,
        "counts": {
            "files": scan.num_files,
            "images_scored": totals.num_images,
            "images_with_alignment_questions": totals.num_alignment_images,
            "asked": {a.key: totals.asked.get(a.key, 0) for a in protocol.aspects},
            "applicable": {a.key: totals.counts.get(a.key, 0) for a in protocol.aspects},
            "elements_from": elements_from(scan, protocol),
        },
        "mean_outside_mass": totals.outside_mass_sum / asked_total if asked_total else math.nan,
        "skipped": {
            "non_image_files": list(scan.non_image_files),
            "corrupt_images": corrupt,
            "images_without_prompt": list(scan.without_prompt),
        },
        "faithfulness_only_images": [
            item.key for item in scan.items if has_element_aspects and item.entry.elements is None
        ],
        "results_without_image": [k for k in images if k not in present],
        "ignored_subfolders": list(scan.ignored_subfolders),
        "prompts_without_image": list(scan.prompts_without_image),
        "scored_images": [r.key for r in scored if r.kind != "corrupt"],
    }
    return json_safe(summary)


def write_summary(path: Path, summary: Mapping[str, Any]) -> None:
    """Write the summary JSON atomically (a reader never sees half of it)."""
    write_atomic(path, json.dumps(summary, indent=1, ensure_ascii=False, allow_nan=False) + "\n")


@dataclass
class RunSummary:
    """What :func:`~evalalign_metric.runs.score_folder` returns: the summary and where things are."""

    results_path: Path
    summary_path: Path
    data: dict[str, Any]
    already_scored: int = 0  # images found in the results file when the run started (resumed), not rescored

    @property
    def scores(self) -> dict[str, float]:
        """Aggregates; ``nan`` where undefined (``null`` in the JSON)."""
        return {k: math.nan if v is None else v for k, v in self.data["scores"].items()}

    @property
    def skipped(self) -> dict[str, list]:
        return self.data["skipped"]

    @property
    def num_skipped(self) -> int:
        return sum(len(v) for v in self.skipped.values())

    @property
    def scored_images(self) -> list[str]:
        return list(self.data["scored_images"])

    def skipped_message(self) -> str | None:
        """One line about the files that were not scored, or ``None``."""
        parts = []
        for key, what in (
            ("non_image_files", "not an image"),
            ("corrupt_images", "corrupt or unreadable"),
            ("images_without_prompt", "without a prompt"),
        ):
            entries = self.skipped[key]
            if entries:
                first = entries[0]["image"] if isinstance(entries[0], dict) else entries[0]
                parts.append(f"{len(entries)} {what} (e.g. {first!r})")
        if not parts:
            return None
        return (
            f"{self.num_skipped} file(s) in {self.data['images_dir']!r} were not scored: {'; '.join(parts)}; "
            f"they are listed in {os.fspath(self.summary_path)!r}"
        )

    @classmethod
    def load(cls, results_path: Path, summary_path: Path) -> "RunSummary":
        return cls(results_path, summary_path, json.loads(summary_path.read_text(encoding="utf-8")))
