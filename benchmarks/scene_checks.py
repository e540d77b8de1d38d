"""Check a scene judge on held-out scenes: under each drawing variation, and on iMatch's questions.

A thin driver of :mod:`evalalign_metric.synthetic.checks` (what each check measures is said there): it prints
the figures the README reports, and writes them as JSON with ``--out``.

Example:
    python benchmarks/scene_checks.py evalalign_metric/assets/judge --threads 1
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from evalalign_metric.synthetic.checks import (  # noqa: F401 (re-exported for scripts that imported them here)
    IMATCH_SEEDS,
    VARIATION_SEEDS,
    imatch_items,
    print_imatch,
    print_variations,
    roc_auc,
    score_imatch,
    score_variations,
    variation_items,
)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("judge", help="a scene judge folder, e.g. evalalign_metric/assets/judge")
    parser.add_argument("--check", choices=("variations", "imatch", "both"), default="both")
    parser.add_argument("--scenes", type=int, default=120, help="scenes per variation")
    parser.add_argument("--imatch-scenes", type=int, default=200)
    parser.add_argument("--varied", action="store_true", help="iMatch check on scenes drawn with the variations")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from evalalign_metric.judge import load_judge

    judge = load_judge(args.judge, cache=False)
    out = {}
    if args.check in ("variations", "both"):
        out["variations"] = score_variations(judge, n_scenes=args.scenes)
        print(f"{args.judge}: EvalAlign alignment under each variation ({args.scenes} scenes each)")
        print_variations(out["variations"])
    if args.check in ("imatch", "both"):
        out["imatch"] = score_imatch(judge, n_scenes=args.imatch_scenes, varied=args.varied,
                                     max_count=4 if args.varied else 3)
        print(f"{args.judge}: iMatch protocol ({args.imatch_scenes} {'varied' if args.varied else 'classic'} scenes)")
        print_imatch(out["imatch"])
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
