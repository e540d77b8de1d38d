"""The resumable scoring job: a folder of generated images in, a results file and a summary out.

What a run does (:func:`score_folder`):

1. reads the prompts and the folder, and lists what cannot be scored (see :mod:`~evalalign_metric.runs.scan`);
2. reads what an earlier run already wrote (the results file and any part files) and checks it was scored
   by the same judge, protocol, scoring and dtype, and that its images and prompts have not changed;
3. scores every image not yet written, one at a time, appending its lines with flush + fsync (a run killed
   at any moment loses at most the image in progress);
4. puts the results file in its canonical form (images in natural key order, each image's questions in
   protocol order) and writes the summary next to it (``results.summary.json`` for ``results.jsonl``).

A run holds a lock on its results file from step 2 to the end (:mod:`~evalalign_metric.runs.lock`): a
second run on the same ``--out`` stops at once, naming the holder. Under the lock, the hidden temporary
files a killed run left beside the results file and the summary are removed. A full disk (or any other
failed write) stops the run with one :class:`~evalalign_metric.errors.InputError` line; what was written
before it stays, and rerunning the same command continues from there.

Each image is scored alone, so its numbers do not depend on which other images share a batch: an
interrupted and resumed run, and a run split across processes, give byte-identical results files.

Several processes: launched by ``torchrun --nproc_per_node N`` or ``accelerate launch --multi_gpu`` (on
one machine or several, with ``--nnodes``/``--node_rank``/``--master_addr``), each rank scores every N-th
remaining image into ``<out>.rank<R>-of-<N>.part`` on its own device (``cuda:LOCAL_RANK`` on GPUs); rank 0
then merges the parts into ``<out>``. ``--out`` must be on storage every rank can read (a shared file
system across nodes).
An interrupted multi-process run resumes from its part files, with any number of processes.

Example:
    >>> import tempfile, pathlib
    >>> from PIL import Image
    >>> from evalalign_metric.testing import build_tiny_judge
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> Image.new("RGB", (32, 32), "red").save(d / "45.png")
    >>> run = score_folder(d, model=build_tiny_judge(d / "judge"), progress=False)
    >>> run.results_path.name, run.data["counts"]["images_scored"], run.num_skipped
    ('results.jsonl', 1, 0)
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from PIL import Image

from evalalign_metric.errors import EvalAlignError, InputError
from evalalign_metric.fileio import check_writable, remove_stale_temporaries
from evalalign_metric.functional import SCORING_MODES, score_images
from evalalign_metric.judge.quantization import check_quantize
from evalalign_metric.protocol import Protocol, load_protocol
from evalalign_metric.runs.distributed import DistContext
from evalalign_metric.runs.identity import file_sha256, model_identity, protocol_identity
from evalalign_metric.runs.lock import RunLock
from evalalign_metric.runs.prompts import load_prompts
from evalalign_metric.runs.resultsfile import (
    ImageRecord,
    ResultsContent,
    ResultsWriter,
    check_header,
    make_header,
    read_results,
    write_atomically,
)
from evalalign_metric.runs.scan import (
    UNREADABLE_IMAGE_ERRORS,
    FolderScan,
    ImageItem,
    bombs_as_errors,
    natural_key,
    scan_folder,
    scan_notes,
)
from evalalign_metric.runs.summary import RunSummary, build_summary, write_summary

DEFAULT_OUT = Path("evalalign") / "results.jsonl"


class RunPaths:
    """The files of one run: ``results.jsonl``, ``results.summary.json`` and per-rank part files."""

    def __init__(self, out: Path):
        self.out = out
        self.summary = out.with_name((out.stem if out.suffix else out.name) + ".summary.json")

    def part(self, rank: int, world_size: int) -> Path:
        return self.out.with_name(f"{self.out.name}.rank{rank}-of-{world_size}.part")

    def existing_parts(self) -> list[Path]:
        if not self.out.parent.is_dir():
            return []
        return sorted(
            self.out.parent.glob(f"{self.out.name}.rank*-of-*.part"), key=lambda p: natural_key(p.name)
        )


def _resolve_out(images_dir: str | os.PathLike, out: str | os.PathLike | None) -> Path:
    path = Path(images_dir).expanduser() / DEFAULT_OUT if out is None else Path(out).expanduser()
    if path.suffix != ".jsonl":
        raise InputError(f"--out {os.fspath(path)!r} must end in .jsonl (a JSON Lines results file)")
    if path.is_dir():
        raise InputError(f"--out {os.fspath(path)!r} is a folder; expected a results file path")
    return path


def _check_writable(paths: RunPaths) -> None:
    check_writable(paths.out, what="--out")
    for path in (paths.out, paths.summary):
        if path.exists() and not (path.is_file() and os.access(path, os.R_OK | os.W_OK)):
            raise InputError(f"{os.fspath(path)!r} exists and cannot be read and written; pass another --out")


def _dtype_name(dtype: Any, device: str | None) -> str:
    """The dtype the judge will run in (``"auto"`` resolved for the device), as recorded in the header."""
    import torch

    from evalalign_metric.judge.loading import parse_dtype, default_device

    try:
        resolved = torch.device(device) if device is not None else default_device()
    except (RuntimeError, TypeError, ValueError):
        raise InputError(
            f"--device {device!r} is not a device; expected cpu, cuda, cuda:N, mps ..."
        ) from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {device!r} asks for CUDA, but torch sees no CUDA GPU here")
    return str(parse_dtype(dtype, resolved)).replace("torch.", "")


def _resolve_model(model: str | os.PathLike | None, protocol) -> tuple[str, Path]:
    from evalalign_metric.judge.loading import resolve_reference
    from evalalign_metric.registry import judge_when_none_named

    reference = os.fspath(model) if model is not None else os.fspath(judge_when_none_named(protocol))
    return reference, resolve_reference(reference)


def _load_image(item: ImageItem) -> tuple[str, Image.Image | None, str | None]:
    """(sha256 of the file, decoded RGB image or None, why it could not be decoded)."""
    try:
        data = item.path.read_bytes()
    except OSError as exc:
        return "", None, f"cannot be read: {exc.strerror or exc}"
    sha = file_sha256(data)
    try:
        with bombs_as_errors():
            image = Image.open(io.BytesIO(data))
            image.load()
        return sha, image.convert("RGB"), None
    except UNREADABLE_IMAGE_ERRORS as exc:
        return sha, None, f"cannot be decoded ({type(exc).__name__}: {exc})"


def score_item(judge, protocol: Protocol, item: ImageItem) -> list[dict[str, Any]]:
    """The records of one image: one per question, or a single ``corrupt`` / ``no_questions`` record."""
    sha, image, error = _load_image(item)
    base = {
        "image": item.key,
        "sha256": sha,
        "prompt_id": item.entry.prompt_id,
        "prompt": item.entry.prompt,
        "elements_source": item.entry.elements_source,
    }
    if image is None:
        return [{"kind": "corrupt", **base, "error": error}]
    if not protocol.questions_for(item.entry.elements, item.entry.prompt):
        return [{"kind": "no_questions", **base}]
    elements = dict(item.entry.elements) if item.entry.elements is not None else None
    try:
        # The entry's elements were resolved when the prompts were read (load_prompts: prompts file,
        # official set, parser); nothing is looked up again here, so an official faithfulness prompt stays
        # without alignment questions, as in the reference.
        [result] = score_images(
            judge, protocol, [image], [item.entry.prompt], [elements], use_official_elements=False,
            parse_elements=False,
        )
    except InputError as exc:  # e.g. smaller than the judge's patch size: this image only
        return [{"kind": "corrupt", **base, "error": str(exc).replace("images[0]", "the image")}]
    return [
        {
            "kind": "answer",
            **base,
            "aspect": q.aspect,
            **({"element": q.element} if q.element else {}),
            "question": q.question,
            "labels": list(q.labels),
            "probs": q.probs,
            "outside_mass": q.outside_mass,
            "argmax": q.argmax,
            "expectation": q.expectation,
        }
        for q in result.questions
    ]


def _check_done(done: dict[str, ImageRecord], scan: FolderScan, protocol: Protocol, out: Path) -> None:
    """Refuse to mix: a written image whose file, prompt or questions changed since."""
    hint = f"pass another --out, or delete {os.fspath(out)!r} to score again from scratch"
    for item in scan.items:
        record = done.get(item.key)
        if record is None:
            continue
        try:
            sha = file_sha256(item.path.read_bytes())
        except OSError as exc:
            raise InputError(f"image {item.key!r} cannot be read: {exc.strerror or exc}") from None
        first = record.records[0]
        if record.sha256 != sha:
            raise InputError(
                f"image {item.key!r} changed since it was scored into {os.fspath(out)!r} (its sha256 "
                f"differs); {hint}"
            )
        if first.get("prompt") != item.entry.prompt:
            raise InputError(
                f"image {item.key!r} was scored with prompt {first.get('prompt')!r}, but the prompts "
                f"now give {item.entry.prompt!r}; {hint}"
            )
        if record.kind == "answer":
            asked = [r["question"] for r in record.records]
            expected = [text for _, text in protocol.questions_for(item.entry.elements, item.entry.prompt)]
            if asked != expected:
                why = {"parser": " (they now come from the parser: pass --no-parse-elements / "
                                 "parse_elements=False to resume a run scored without it)"}
                raise InputError(
                    f"image {item.key!r} was asked other questions than its prompt's elements now "
                    f"give (the elements changed){why.get(item.entry.elements_source, '')}; {hint}"
                )


def _read_existing(
    paths: RunPaths, header: dict[str, Any]
) -> tuple[ResultsContent | None, dict[Path, ResultsContent]]:
    main = read_results(paths.out)
    parts = {}
    for part in paths.existing_parts():
        content = read_results(part)
        if content is not None:
            parts[part] = content
    for content in [main, *parts.values()]:
        if content is not None and content.header is not None:
            check_header(content.header, header, content.path)
    return main, parts


def _merged_images(contents: Sequence[ResultsContent | None]) -> dict[str, ImageRecord]:
    images: dict[str, ImageRecord] = {}
    for content in contents:
        if content is not None:
            for key, record in content.images.items():
                images.setdefault(key, record)
    return images


def _finalise(paths: RunPaths, header: dict[str, Any]) -> tuple[dict[str, Any], dict[str, ImageRecord]]:
    """Merge part files into the results file, in canonical order; returns (header, images)."""
    main = read_results(paths.out)
    parts = [p for p in paths.existing_parts()]
    contents = [main, *[read_results(p) for p in parts]]
    images = _merged_images(contents)
    order = sorted(images, key=natural_key)
    final_header = main.header if main is not None and main.header is not None else header
    canonical = (
        main is not None and main.header is not None and main.dropped is None and list(main.images) == order
    )
    if not canonical:
        write_atomically(paths.out, final_header, [images[k] for k in order])
    for part in parts:
        part.unlink(missing_ok=True)
    return final_header, {k: images[k] for k in order}


@contextlib.contextmanager
def _writing(path: Path, written: Callable[[], int]) -> Iterator[None]:
    """Within: a failed write (disk full, permission lost) becomes one InputError naming ``path`` and saying
    how to continue; ``written()`` is the number of images safely written so far."""
    try:
        yield
    except EvalAlignError:
        raise
    except OSError as exc:
        raise InputError(
            f"cannot write {os.fspath(path)!r}: {exc.strerror or exc}; {written()} image(s) are safely "
            "written: make room (or fix the cause) and rerun the same command to continue"
        ) from None


def _progress(total: int, done: int, ctx: DistContext, enabled: bool | None):
    from tqdm.auto import tqdm

    desc = "scoring" if not ctx.distributed else f"scoring (rank {ctx.rank}/{ctx.world_size})"
    bar = tqdm(
        total=total,
        unit="img",
        desc=desc,
        disable=None if enabled is None else not enabled,
        dynamic_ncols=True,
        position=ctx.rank if ctx.distributed else None,
    )
    if done:
        bar.set_postfix_str(f"{done} already scored")
    return bar


def score_folder(
    images_dir: str | os.PathLike,
    *,
    prompts: str | os.PathLike = "official",
    model: str | os.PathLike | None = None,
    protocol: str | os.PathLike | Protocol = "evalalign",
    out: str | os.PathLike | None = None,
    device: str | None = None,
    dtype: str | None = None,
    batch_size: int = 8,
    scoring: str | None = None,
    progress: bool | None = None,
    dist: DistContext | None = None,
    parse_elements: bool = True,
    quantize: str | None = None,
    device_map: str | None = None,
    max_memory: dict | None = None,
    notify: Callable[[str], None] | None = None,
) -> RunSummary:
    """Score every image of ``images_dir`` against its prompt; resumable, shardable across processes.

    Args:
        images_dir: folder of generated images (``<prompt_id>.<ext>``, or the paths of a manifest).
        prompts: ``"official"`` (default), ``"official-alignment"``, ``"official-faithfulness"``, a prompts
            file or a manifest (see :mod:`evalalign_metric.runs.prompts`).
        model: judge folder or reference; default the embedded judge for ``protocol``
            (:func:`~evalalign_metric.registry.judge_when_none_named`).
        protocol: protocol name or file.
        out: results file (``.jsonl``); default ``<images_dir>/evalalign/results.jsonl``.
        device, dtype: where and in which precision the judge runs (default CUDA/bf16 if available, CPU/fp32).
        batch_size: judge rows (question x option-prefix) per forward pass.
        scoring: ``"argmax"`` or ``"expectation"`` for the summary (both are written per answer).
        progress: show a progress bar (default: when stderr is a terminal).
        dist: the process's rank; default read from ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``.
        parse_elements: prompts of a prompts file or manifest without elements (and not official) get the
            parser's elements (:mod:`evalalign_metric.extraction.parser`); ``False`` scores them on
            faithfulness only. The summary's ``counts.elements_from`` counts the prompts per source.
        quantize, device_map, max_memory: quantized, sharded or offloaded judge loading (see
            :func:`~evalalign_metric.judge.load_judge`); a quantized run records ``"<dtype>+<quantize>"`` as its
            dtype, so it never resumes a run of another precision.
        notify: called (on rank 0) with one line for each thing worth telling before the scoring starts:
            how many images an earlier run already scored, images in subfolders, prompts without an image.

    Returns:
        a :class:`~evalalign_metric.runs.summary.RunSummary` (on every rank); its ``already_scored`` is the
        number of the folder's images found already scored when the run started.

    Raises:
        InputError: bad input (named), another run holding the results file (naming its pid and host), or a
            failed write (disk full: what was written stays, rerun to continue).
    """
    protocol = load_protocol(protocol)
    scoring = scoring or protocol.default_scoring
    if scoring not in SCORING_MODES:
        raise InputError(f"scoring={scoring!r}; expected one of {', '.join(SCORING_MODES)}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size must be an integer >= 1; got {batch_size!r}")
    source = load_prompts(prompts, protocol, parse_elements=parse_elements)
    paths = RunPaths(_resolve_out(images_dir, out))
    scan = scan_folder(images_dir, source, exclude=[paths.out, paths.summary, *paths.existing_parts()])
    _check_writable(paths)
    ctx = dist if dist is not None else DistContext.from_env()
    device = ctx.device(device)
    reference, folder = _resolve_model(model, protocol)
    header = make_header(
        model_identity(reference, folder), protocol_identity(protocol), scoring,
        _dtype_name(dtype, device) + (f"+{check_quantize(quantize)}" if quantize else ""),
    )
    # Rank 0 alone locks: a second job's rank 0 stops, and its launcher (torchrun) stops the other ranks.
    lock = RunLock(paths.out) if ctx.is_main else contextlib.nullcontext()
    with lock:
        if ctx.is_main:
            for path in (paths.out, paths.summary):
                remove_stale_temporaries(path)  # left by a run killed while writing it; we hold the lock
        created = ctx.setup()
        try:
            main, parts = _read_existing(paths, header)
            done = _merged_images([main, *parts.values()])
            _check_done(done, scan, protocol, paths.out)
            ctx.barrier()  # every rank has read the same files before any rank writes
            remaining = [item for item in scan.items if item.key not in done]
            already = len(scan.items) - len(remaining)
            mine = ctx.shard(remaining)
            target = paths.part(ctx.rank, ctx.world_size) if ctx.distributed else paths.out
            own = parts.get(target) if ctx.distributed else main
            judge = None
            if mine:
                from evalalign_metric.judge import load_judge

                from evalalign_metric.judge.protocols import warn_if_untrained

                judge = load_judge(folder, device=device, dtype=dtype, batch_size=batch_size, quantize=quantize,
                                   device_map=device_map, max_memory=max_memory)
                warn_if_untrained(judge.identity, protocol)
            if ctx.is_main and notify is not None:  # once the judge has loaded: no note before an early error
                if already:
                    notify(f"resuming {os.fspath(paths.out)!r}: {already} of the {len(scan.items)} image(s) were "
                           f"already scored by an earlier run; {len(remaining)} left to score")
                for line in scan_notes(scan, f"--prompts {os.fspath(prompts)}"):
                    notify(line)
            if judge is not None:
                truncate_to = None
                if own is not None:
                    truncate_to = 0 if own.header is None else (own.intact_bytes if own.dropped else None)
                written = [already]
                with (
                    _writing(target, lambda: written[0]),
                    ResultsWriter(target, header, truncate_to=truncate_to) as writer,
                    _progress(len(mine), already, ctx, progress) as bar,
                ):
                    for item in mine:
                        writer.write_image(score_item(judge, protocol, item))
                        written[0] += 1
                        bar.update(1)
            ctx.barrier()
            if ctx.is_main:
                with _writing(paths.out, lambda: len(scan.items)):
                    final_header, images = _finalise(paths, header)
                summary = build_summary(protocol, final_header, scan, images, paths.out)
                with _writing(paths.summary, lambda: len(scan.items)):
                    write_summary(paths.summary, summary)
            ctx.barrier()
            run = RunSummary.load(paths.out, paths.summary)
            run.already_scored = already
            return run
        finally:
            if created:
                ctx.close()
