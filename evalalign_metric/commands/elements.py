"""``evalalign elements PROMPTS_FILE --out FILE``: export each prompt's alignment elements for review.

Official EvalAlign prompts get their official elements (unless ``--no-official``); the others are read by
``--method parser`` (the default: the deterministic parser of :mod:`evalalign_metric.extraction.parser`,
no model; a prompt it finds nothing in is written with ``"none"`` everywhere and named on stderr) or
extracted with ``--method lm --model REF`` (a causal LM folder, a ``.gguf`` file or folder, a judge
checkpoint, or a cached Hub id), each prompt once per model and settings thanks to the on-disk cache. Edit
the written JSON file by hand if needed and give it to the metric (``load_elements_file``). A prompt the
model cannot answer in the ``result_info`` format (after one retry) stops the command with the prompt
named: nothing is ever written as a silent ``none``; entries extracted so far stay in the cache, so a
rerun resumes. With ``--skip-failed`` such prompts are left out of the file instead, listed with the
model's answers in ``FILE.failed.json``, and the command exits with status 2 after writing both.

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser(); register(parser.add_subparsers())
    >>> args = parser.parse_args(["elements", "prompts.txt", "--out", "elements.json", "--model", "lm/"])
    >>> args.prompts_file, args.out, args.model, args.prompt_style, args.no_cache, args.method
    ('prompts.txt', 'elements.json', 'lm/', 'completion', False, 'parser')
"""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "elements", help="export the alignment elements of a list of prompts (official or extracted)",
        description="Export each prompt's alignment elements (official, or extracted with --model) to an "
                    "editable JSON file that the metric accepts.",
    )
    parser.add_argument("prompts_file", metavar="PROMPTS_FILE",
                        help=".txt (one prompt per line), .json (list of strings or {prompt, prompt_id}) "
                             "or .jsonl")
    parser.add_argument("--out", required=True, metavar="FILE", help="elements file (JSON) to write")
    parser.add_argument("--method", choices=("parser", "lm"), default="parser",
                        help="parser: the deterministic offline parser (default); lm: a language model "
                             "(--model)")
    parser.add_argument("--model", metavar="REF_OR_PATH",
                        help="extraction LM for --method lm: causal LM folder, .gguf file/folder, judge "
                             "checkpoint or Hub id; needed unless every prompt is official")
    parser.add_argument("--gguf-file", help="the .gguf file inside --model when it holds several")
    parser.add_argument("--cache-dir", metavar="DIR",
                        help="element cache folder (default: $HF_HOME/evalalign/elements)")
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write the element cache")
    parser.add_argument("--no-official", action="store_true",
                        help="extract official prompts too instead of using their official elements")
    parser.add_argument("--prompt-style", choices=("completion", "chat"), default="completion",
                        help="plain few-shot text (default) or the tokenizer's chat template")
    parser.add_argument("--decoding", choices=("guided", "free"), default="guided",
                        help="guided: the model completes one aspect line at a time (default)")
    parser.add_argument("--n-examples", type=int, default=4, help="few-shot examples (default 4)")
    parser.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    parser.add_argument("--dtype", help="float32, float16 or bfloat16 (default: fp32 on CPU)")
    parser.add_argument("--skip-failed", action="store_true",
                        help="leave prompts the model cannot answer out of the file "
                             "(listed in FILE.failed.json)")
    parser.add_argument("--quiet", action="store_true", help="no per-prompt progress on stderr")
    parser.set_defaults(func=run)


def _extractor(args: argparse.Namespace):
    from evalalign_metric.extraction import CachedExtractor, LMElementExtractor

    extractor = LMElementExtractor.from_pretrained(
        args.model, gguf_file=args.gguf_file, device=args.device, dtype=args.dtype,
        prompt_style=args.prompt_style, decoding=args.decoding, n_examples=args.n_examples,
    )
    if args.no_cache:
        return extractor
    return CachedExtractor(extractor, cache=args.cache_dir)


def _save(path: str, entries) -> None:
    """``save_elements_file`` with a full disk or a lost permission as a one-line error."""
    from evalalign_metric.errors import InputError
    from evalalign_metric.extraction import save_elements_file

    try:
        save_elements_file(path, entries)
    except OSError as exc:
        raise InputError(f"--out {path!r} cannot be written: {exc.strerror or exc}") from None


def run(args: argparse.Namespace) -> int:
    from evalalign_metric.errors import InputError
    from evalalign_metric.extraction import extract_entries, read_prompts_file
    from evalalign_metric.fileio import check_writable, write_atomic
    from evalalign_metric.official import official_elements

    prompts = read_prompts_file(args.prompts_file)
    check_writable(args.out, what="--out")  # before any extraction, which can take long
    if args.method == "parser":
        if args.model:
            raise InputError(f"--model {args.model!r} is for --method lm; the parser (the default method) uses "
                             "no model")
        return _run_parser(args, prompts)
    to_extract = [p for _, p in prompts if args.no_official or official_elements(p) is None]
    if to_extract and not args.model:
        raise InputError(
            f"{len(to_extract)} of {len(prompts)} prompts are not official EvalAlign prompts (first: "
            f"{to_extract[0]!r}); give --model to extract their elements with --method lm"
        )
    extractor = _extractor(args) if to_extract else None

    def progress(i: int, entry: dict) -> None:
        if not args.quiet:
            print(f"[{i + 1}/{len(prompts)}] {entry['source']}: {entry['prompt'][:70]}", file=sys.stderr)

    failed: list[dict] = []

    def skip(i: int, prompt: str, error) -> None:
        failed.append({"prompt": prompt, "error": str(error), "answers": list(error.answers)})
        print(f"[{i + 1}/{len(prompts)}] FAILED: {prompt[:70]}", file=sys.stderr)

    entries = extract_entries(prompts, extractor, use_official=not args.no_official, on_entry=progress,
                              on_error=skip if args.skip_failed else None)
    _save(args.out, entries)
    official = sum(e["source"] == "official" for e in entries)
    cached = getattr(extractor, "hits", 0)
    print(f"wrote {len(entries)} prompts to {args.out}: {official} official, "
          f"{len(entries) - official} extracted ({cached} from the cache)")
    if failed:
        failed_path = f"{args.out}.failed.json"
        try:
            write_atomic(failed_path, json.dumps(failed, ensure_ascii=False, indent=2))
        except OSError as exc:
            raise InputError(f"{failed_path!r} cannot be written: {exc.strerror or exc}") from None
        print(f"{len(failed)} prompts failed extraction and are not in {args.out}: see {failed_path}",
              file=sys.stderr)
        return 2
    return 0


def _run_parser(args: argparse.Namespace, prompts) -> int:
    """``--method parser``: official elements where they exist, the parser's for the rest."""
    from evalalign_metric.extraction import extract_entries
    from evalalign_metric.extraction.parser import ParserElementExtractor

    extractor = ParserElementExtractor()
    notes: list[str] = []

    def parse(prompt: str) -> dict[str, str]:
        result = extractor.parse(prompt)
        notes.extend(result.notes)
        return result.result_info

    def progress(i: int, entry: dict) -> None:
        for note in notes:
            print(f"[{i + 1}/{len(prompts)}] note: {note}", file=sys.stderr)
        notes.clear()
        if not args.quiet:
            print(f"[{i + 1}/{len(prompts)}] {entry['source']}: {entry['prompt'][:70]}", file=sys.stderr)

    entries = extract_entries(prompts, parse, use_official=not args.no_official, on_entry=progress,
                              source="parsed")
    _save(args.out, entries)
    official = sum(e["source"] == "official" for e in entries)
    print(f"wrote {len(entries)} prompts to {args.out}: {official} official, {len(entries) - official} parsed")
    return 0
