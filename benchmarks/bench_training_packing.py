"""Training throughput with and without question packing (``training.pack_questions``), measured in one run.

A judge is built from a config (the scene benchmark's: CLIP-style ViT, patch 8, 64x64 images -> 64 image
tokens; 2-layer Llama), and one batch of synthetic scenes with all their questions (the scene curriculum's
13 direct questions per image, or EvalAlign's alignment + faithfulness questions) is run forward and
backward through :class:`~evalalign_metric.training.features.AnswerLoss`, packed (each image's prefix once,
its questions behind it) and unpacked (one row per question). Prints language-model tokens, seconds per
step and the ratio, and the largest loss difference (the two must agree).

Example:
    python benchmarks/bench_training_packing.py --images 16 --repeats 5 --threads 1
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    import json
    from pathlib import Path

    import torch

    torch.set_num_threads(args.threads)
    from evalalign_metric.judge import load_judge
    from evalalign_metric.protocol import load_protocol
    from evalalign_metric.synthetic import scenes
    from evalalign_metric.training.build import BuildSpec, build_judge
    from evalalign_metric.training.features import AnswerLoss, TargetEncoder, collate, pack_by_image
    from evalalign_metric.training.readers import read_jsonl
    from evalalign_metric.training.targets import build_target

    work = Path(tempfile.mkdtemp())
    (work / "describe.json").write_text(json.dumps(scenes.describe_protocol()))
    describe, evalalign = load_protocol(work / "describe.json"), load_protocol("evalalign")
    spec = BuildSpec(image_size=64, vision="clip", patch_size=8, vision_hidden=128, vision_layers=3, vision_heads=4,
                     text_hidden=96, text_layers=2, text_heads=4, text_kv_heads=2, vocab_size=1200)
    aspects = [*describe.aspects, *evalalign.aspects]
    templates = [a.template for a in aspects]
    build_judge(spec, work / "judge", corpus=templates, templates=templates,
                answers=[label for a in aspects for label in a.labels])
    judge = load_judge(work / "judge", cache=False, device="cpu")
    encoder = TargetEncoder(judge)
    print(f"judge: {sum(p.numel() for p in judge.model.parameters()) / 1e6:.2f}M parameters, {args.threads} thread(s)")
    for name, protocol in (("scene curriculum (13 questions/image)", describe),
                           ("EvalAlign, 3 prompts/image", evalalign)):
        images, raw = [], []
        for i in range(args.images):
            scene = scenes.random_scene(scenes.random_state(i))
            scenes.render(scene).save(work / f"{i}.png")
            if protocol is describe:
                raw.extend(scenes.describe_annotations(scene, f"{i}.png"))
            else:
                raw.extend(scenes.scene_annotations(scene, f"{i}.png", random.Random(i)))
        (work / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in raw))
        names = {f"{i}.png": i for i in range(args.images)}
        from PIL import Image

        images = [judge.prepare_image(Image.open(work / f"{i}.png").convert("RGB")) for i in range(args.images)]
        rows = [(names[Path(a.image).name], *encoder.encode(build_target(protocol, a)))
                for a in read_jsonl(work / "rows.jsonl", protocol)]
        batch = collate(images, rows, image_token_id=judge.image_token_id, pad_token_id=judge.pad_token_id)
        packed_tokens = int(pack_by_image(batch).valid.sum())
        timings, losses = {}, {}
        for pack in (False, True, False, True):  # interleaved, so machine load hits both alike
            module = AnswerLoss(judge.model, image_token_id=judge.image_token_id, pack=pack)
            for _ in range(args.repeats):
                judge.model.zero_grad()
                start = time.perf_counter()
                loss, n = module(batch)
                loss.backward()
                timings.setdefault(pack, []).append(time.perf_counter() - start)
                losses[pack] = float(loss.detach() / n)
        plain, packed = statistics.median(timings[False]), statistics.median(timings[True])
        print(f"{name}: {args.images} images, {len(rows)} questions")
        print(f"  language-model tokens: rows {int(batch.attention_mask.sum())}, packed {packed_tokens} "
              f"({int(batch.attention_mask.sum()) / packed_tokens:.2f}x fewer)")
        print(f"  forward+backward: rows {plain:.3f} s, packed {packed:.3f} s -> {plain / packed:.2f}x faster "
              f"(median of {2 * args.repeats})")
        print(f"  mean answer-token loss: rows {losses[False]:.6f}, packed {losses[True]:.6f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
