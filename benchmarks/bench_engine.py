"""Judge speed: the reference EvalAlign loop vs the plain engine vs the shared-prefix engine, in one run.

On one small random LLaVA built from a config with realistic proportions (336 px images, patch 14 ->
576 image tokens, a small CLIP-like tower, a Llama LM) and the same images and questions, it times:

(a) ``reference``: a re-creation of the reference scorer's loop: per (image, question) the image is padded,
    processed and encoded again, ``generate`` runs greedily at batch 1, the first integer of the text is
    parsed. The number of generated tokens is held fixed so the random model's babble does not decide it:
    ``(a1)`` generates 1 new token per question (the least any ``generate`` loop does: one prefill, one
    step) and ``(a8)`` 8 new tokens (a trained judge's short answer and end of sequence, with room to spare);
    the ratios are given against both;
(b) ``plain``: :class:`~evalalign_metric.judge.PlainEngine`, one teacher-forced forward per option row;
(c) ``prefix b1`` / ``prefix b8``: :class:`~evalalign_metric.judge.prefix_engine.PrefixEngine` at batch
    size 1 and 8 images.

Token counts are the real ones: the tokenizer is Llama-2's own 32,000-piece SentencePiece vocabulary (the
one EvalAlign's Vicuna judges use), read from ``ggml-vocab-llama-spm.gguf``, a vocabulary-only GGUF file (no
weights) that the ``llama-cpp-python`` 0.3.36 source distribution on PyPI ships. ``--fetch-vocab`` downloads
that sdist with pip once and keeps only this file (0.7 MB) in ``$HF_HOME/evalalign/bench/``; ``--vocab PATH``
uses a copy you have. Loading it needs the ``gguf`` package (``pip install 'evalalign-metric[bench]'``).
Without the file the run falls back to a 4k BPE trained on the protocol texts and says so on every table:
its questions are about 25% shorter than Llama-2's, so its ratios are not the ones in docs/speed.md.

It prints images/s and images per CPU-second of this process (medians of repeats), the speed-up over (a1)
and (a8), the LM tokens processed per image (counted by a hook on the language model) against the floor
(each image's shared prefix once, each question's remaining tokens once, each option-prefix once: counted
independently from the prompts), vision-tower images per image, and the peak resident memory each method
added over its starting point (sampled from /proc).

Example:
    python benchmarks/bench_engine.py --fetch-vocab --images 4 --repeats 3 --threads 1

On a machine shared with other busy processes use ``--threads 1`` and read the CPU-time ratios: with more
torch threads than free cores, OpenMP workers spin-waiting on preempted peers slow down workloads of many
small operations (the reference's token-by-token ``generate``) far more than a few large forwards, and the
wall-clock ratios become noise.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

import torch
from PIL import Image

from evalalign_metric.images import mean_colour, pad_to_square
from evalalign_metric.judge import PlainEngine, load_judge
from evalalign_metric.judge.chat import CHAT_FORMATS, SIDECAR_NAME
from evalalign_metric.judge.engine import expand_image_tokens
from evalalign_metric.judge.prefix_engine import PrefixEngine
from evalalign_metric.official import alignment_prompts, official_elements
from evalalign_metric.protocol import elements_apply, load_protocol
from evalalign_metric.testing import IMAGE_TOKEN, build_tiny_tokenizer

IMAGE_SIZE, PATCH = 336, 14
LLAMA_VOCAB = "ggml-vocab-llama-spm.gguf"
LLAMA_VOCAB_SDIST = "llama-cpp-python==0.3.36"
LLAMA_VOCAB_MEMBER = "vendor/llama.cpp/models/" + LLAMA_VOCAB


def default_vocab_path() -> Path:
    """Where ``--fetch-vocab`` keeps the Llama-2 vocabulary: ``$HF_HOME/evalalign/bench/``."""
    from huggingface_hub import constants

    return Path(os.environ.get("HF_HOME") or constants.HF_HOME).expanduser() / "evalalign" / "bench" / LLAMA_VOCAB


def fetch_llama_vocab(dest: Path) -> Path:
    """Download the ``llama-cpp-python`` sdist with pip (~77 MB, a few minutes) and keep only its Llama-2
    vocabulary file at ``dest``."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                        LLAMA_VOCAB_SDIST, "-d", tmp], check=True)
        [sdist] = Path(tmp).glob("*.tar.gz")
        with tarfile.open(sdist) as tar:
            member = next(m for m in tar.getmembers() if m.name.endswith("/" + LLAMA_VOCAB_MEMBER))
            data = tar.extractfile(member).read()
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_suffix(".partial")
    partial.write_bytes(data)
    os.replace(partial, dest)
    return dest


def llama2_tokenizer(vocab: Path):
    """Llama-2's tokenizer from its vocabulary-only GGUF file, with LLaVA's ``<image>`` and a pad token added
    (as the llava-hf checkpoints add them)."""
    from transformers import AutoTokenizer

    from evalalign_metric.errors import require_extra

    require_extra("gguf", "bench", "Reading Llama-2's vocabulary from its GGUF file")
    tok = AutoTokenizer.from_pretrained(vocab.parent, gguf_file=vocab.name)
    tok.add_special_tokens({"pad_token": "<pad>", "additional_special_tokens": [IMAGE_TOKEN]})
    return tok


def build_judge_folder(path: Path, tok, *, lm_hidden: int, lm_layers: int, vision_hidden: int, vision_layers: int,
                       seed: int) -> Path:
    """A random LLaVA with 576 image tokens and tokenizer ``tok``, saved like a real judge (weights, processor,
    sidecar)."""
    from transformers import (CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration,
                              LlavaProcessor)
    from transformers.models.llava.image_processing_pil_llava import LlavaImageProcessorPil

    torch.manual_seed(seed)
    vision = CLIPVisionConfig(hidden_size=vision_hidden, intermediate_size=4 * vision_hidden,
                              num_hidden_layers=vision_layers, num_attention_heads=4, image_size=IMAGE_SIZE,
                              patch_size=PATCH, projection_dim=vision_hidden)
    heads = max(1, lm_hidden // 64)
    text = LlamaConfig(vocab_size=len(tok), hidden_size=lm_hidden, intermediate_size=int(lm_hidden * 8 / 3),
                       num_hidden_layers=lm_layers, num_attention_heads=heads, num_key_value_heads=heads,
                       max_position_embeddings=4096, pad_token_id=tok.pad_token_id,
                       bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    config = LlavaConfig(vision_config=vision, text_config=text,
                         image_token_id=tok.convert_tokens_to_ids(IMAGE_TOKEN),
                         vision_feature_select_strategy="default", vision_feature_layer=-2)
    model = LlavaForConditionalGeneration(config)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    square = {"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    image_processor = LlavaImageProcessorPil(size={"shortest_edge": IMAGE_SIZE}, crop_size=square,
                                             do_pad=False)
    processor = LlavaProcessor(
        image_processor=image_processor, tokenizer=tok, patch_size=PATCH,
        vision_feature_select_strategy="default", num_additional_image_tokens=1,
        chat_template=CHAT_FORMATS["vicuna_v1"].jinja_template(),
    )
    model.save_pretrained(path)
    processor.save_pretrained(path)
    (path / SIDECAR_NAME).write_text(json.dumps({"format_version": 1, "chat_format": "vicuna_v1",
                                                 "protocol": "evalalign", "pad_to_square": True}))
    return path


def evalalign_questions() -> list[tuple[str, tuple[str, ...]]]:
    """EvalAlign's 11 questions: 5 faithfulness + 6 alignment, filled with official element strings."""
    elements: dict[str, str] = {}
    for entry in alignment_prompts():
        for key, value in official_elements(entry["prompt"]).items():
            if elements_apply(value):
                elements.setdefault(key, value)
    return [(text, aspect.labels) for aspect, text in load_protocol("evalalign").questions_for(elements)]


def make_images(n: int, seed: int) -> list[Image.Image]:
    sizes = [(512, 384), (336, 336), (640, 480), (256, 512), (420, 280), (300, 450), (800, 600), (384, 384)]
    gen = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        w, h = sizes[i % len(sizes)]
        coarse = torch.randint(0, 256, (h // 16 + 1, w // 16 + 1, 3), generator=gen, dtype=torch.uint8)
        out.append(Image.fromarray(coarse.numpy()).resize((w, h), Image.BILINEAR))
    return out


def reference_loop(judge, images, questions, n_new: int) -> list[list[int]]:
    """(a): per (image, question): pad + process the image again, greedy generate ``n_new`` tokens at batch 1,
    parse an int."""
    processor, model, tok = judge.processor, judge.model, judge.tokenizer
    colour = mean_colour(processor.image_processor.image_mean)
    scores = []
    with torch.inference_mode():
        for image in images:
            row = []
            for text, _ in questions:
                inputs = processor(images=[pad_to_square(image, colour)], text=[judge.prompt_text(text)],
                                   return_tensors="pt")
                out = model.generate(**inputs, do_sample=False, max_new_tokens=n_new, min_new_tokens=n_new,
                                     pad_token_id=tok.pad_token_id)
                text = tok.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
                found = re.search(r"-?\d+", text)
                row.append(int(found.group()) if found else 0)  # the reference scores an unparseable answer 0
            scores.append(row)
    return scores


def floor_tokens_per_image(judge, images, questions) -> float:
    """Prefix once + each question's remaining tokens once + each distinct option prefix once, per image."""
    total = 0
    encoded = [judge.encode(text, labels) for text, labels in questions]
    for image in images:
        _, n_image = judge.prepare_image(image)
        prompts = [expand_image_tokens(q.prompt_ids, judge.image_token_id, n_image) for q in encoded]
        common = len(os.path.commonprefix(prompts))
        common = min(common, min(len(p) for p in prompts) - 1)
        total += common + sum(len(p) - common for p in prompts)
        total += sum(sum(len(prefix) for prefix in {ids[:-1] for ids in q.option_ids}) for q in encoded)
    return total / len(images)


class Counter:
    """Counts LM tokens (batch x length of every language-model forward) and images through the tower."""

    def __init__(self, model):
        self.lm_tokens = 0
        self.vision_images = 0
        self.handles = [
            model.model.language_model.register_forward_pre_hook(self._lm, with_kwargs=True),
            model.model.vision_tower.register_forward_pre_hook(self._vision, with_kwargs=True),
        ]

    def _lm(self, module, args, kwargs):
        embeds = kwargs.get("inputs_embeds")
        shape = embeds.shape if embeds is not None else kwargs["input_ids"].shape
        self.lm_tokens += int(shape[0]) * int(shape[1])

    def _vision(self, module, args, kwargs):
        pixels = args[0] if args else kwargs["pixel_values"]
        self.vision_images += int(pixels.shape[0])

    def close(self):
        for h in self.handles:
            h.remove()


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    """Peak resident memory above the starting point, sampled every millisecond in a thread."""

    def __enter__(self):
        _trim()
        self.start = self.peak = _rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.001):
            self.peak = max(self.peak, _rss_bytes())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())
        self.added_mb = (self.peak - self.start) / 2**20


def _libc():
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def _trim():
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def _malloc_thresholds(measuring: bool) -> None:
    """While measuring memory, large blocks go to mmap and back to the system at free, so each method's
    peak is taken from a clean start; while timing, glibc keeps them (as its own dynamic threshold would
    after warm-up), so that page faults on fresh memory do not slow down whichever method allocates more."""
    libc = _libc()
    if libc is not None:
        size = 1 << 20 if measuring else 1 << 30
        libc.mallopt(-3, size)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, size)  # M_TRIM_THRESHOLD


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per method (median reported)")
    parser.add_argument("--lm-hidden", type=int, default=256)
    parser.add_argument("--lm-layers", type=int, default=4)
    parser.add_argument("--vision-hidden", type=int, default=128)
    parser.add_argument("--vision-layers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vocab", type=Path, default=None,
                        help=f"Llama-2's {LLAMA_VOCAB} (default: where --fetch-vocab puts it)")
    parser.add_argument("--fetch-vocab", action="store_true",
                        help=f"download it (pip download {LLAMA_VOCAB_SDIST}, keep that one file) if missing")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()

    import transformers

    vocab = args.vocab or default_vocab_path()
    if not vocab.is_file() and args.fetch_vocab:
        fetch_llama_vocab(vocab)
    if vocab.is_file():
        tok, tokenizer_note = llama2_tokenizer(vocab), f"Llama-2 SentencePiece ({vocab})"
    else:
        tok = build_tiny_tokenizer("llama", vocab_size=4000)
        tokenizer_note = (f"FALLBACK 4k BPE trained on the protocol texts ({vocab} not found: run with "
                          "--fetch-vocab); questions ~25% shorter than Llama-2's, ratios NOT those of docs/speed.md")
        print(f"warning: {tokenizer_note}", file=sys.stderr)
    folder = build_judge_folder(Path(tempfile.mkdtemp(prefix="bench_engine_")), tok, lm_hidden=args.lm_hidden,
                                lm_layers=args.lm_layers, vision_hidden=args.vision_hidden,
                                vision_layers=args.vision_layers, seed=args.seed)
    judge = load_judge(folder, device="cpu", dtype="float32", cache=False)
    images = make_images(args.images, args.seed)
    questions = evalalign_questions()
    _, n_image = judge.prepare_image(images[0])
    lm_params = sum(p.numel() for p in judge.model.model.language_model.parameters())
    vision_params = sum(p.numel() for p in judge.model.model.vision_tower.parameters())
    encoded = [judge.encode(t, labels) for t, labels in questions]
    prompt_lengths = [len(q.prompt_ids) - 1 + n_image for q in encoded]
    image_share = sum(n_image / n for n in prompt_lengths) / len(prompt_lengths)
    shared = len(os.path.commonprefix([q.prompt_ids for q in encoded])) - 1 + n_image
    option_tokens = sorted({len(ids) for q in encoded for ids in q.option_ids})

    print(f"machine: {cpu_name()}, {os.cpu_count()} CPUs, torch threads "
          f"{torch.get_num_threads()}; python {platform.python_version()}, torch {torch.__version__}, "
          f"transformers {transformers.__version__}")
    print(f"model: LLaVA, LM {lm_params / 1e6:.1f}M params ({args.lm_layers} layers x {args.lm_hidden}), "
          f"vision {vision_params / 1e6:.2f}M ({args.vision_layers} layers x {args.vision_hidden}), vocab "
          f"{len(judge.tokenizer)}, fp32, sdpa")
    print(f"tokenizer: {tokenizer_note}")
    print(f"inputs: {len(images)} images of {len({im.size for im in images})} sizes, "
          f"{len(questions)} questions each, {n_image} image tokens; prompts "
          f"{min(prompt_lengths)}-{max(prompt_lengths)} tokens ({shared} shared by all), image "
          f"tokens {100 * image_share:.0f}% of a prompt on average; options {option_tokens} tokens; "
          f"reference loops (a1) 1 and (a8) 8 new tokens per question")

    engines = {"(b) plain b8": PlainEngine(batch_size=8), "(c) prefix b1": PrefixEngine(batch_size=1),
               "(c) prefix b8": PrefixEngine(batch_size=8)}
    asked = [questions] * len(images)
    methods = {"(a1) reference": lambda: reference_loop(judge, images, questions, 1),
               "(a8) reference": lambda: reference_loop(judge, images, questions, 8)}
    for name, engine in engines.items():
        methods[name] = (lambda e: lambda: _answer(judge, e, images, asked))(engine)

    floor = floor_tokens_per_image(judge, images, questions)
    counts, outputs = {}, {}
    _malloc_thresholds(measuring=True)
    for name, fn in methods.items():
        counter = Counter(judge.model)
        with PeakRSS() as mem:  # untimed first pass: warm-up, token counts, memory
            outputs[name] = fn()
        counter.close()
        counts[name] = dict(tokens=counter.lm_tokens / len(images),
                            vision=counter.vision_images / len(images), mem=mem.added_mb)
    _malloc_thresholds(measuring=False)
    # Repeats go round-robin over the methods so that load from other processes hits them alike.
    times: dict[str, list[float]] = {name: [] for name in methods}
    cpu: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(args.repeats):
        for name, fn in methods.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            times[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    for name, t in times.items():
        wall, used = ", ".join(f"{x:.2f}" for x in t), ", ".join(f"{x:.2f}" for x in cpu[name])
        print(f"  {name}: wall {wall} s; cpu {used} s", file=sys.stderr, flush=True)
    rows = {name: dict(seconds=statistics.median(times[name]), cpu=statistics.median(cpu[name]),
                       **counts[name]) for name in methods}

    engine_floor = engines["(c) prefix b1"].last_stats.floor_tokens / len(images)
    assert engine_floor == floor, (engine_floor, floor)
    _report_agreement(outputs)
    refs = ("(a1) reference", "(a8) reference")
    print(f"\nfloor: 1 vision pass + {floor:.0f} LM tokens per image (prefix once, each question suffix "
          "once, each option prefix once)")
    print(f"{'method':<15} {'images/s':>9} {'x (a1)':>7} {'x (a8)':>7} {'img/cpu-s':>10} {'x (a1)':>7} "
          f"{'x (a8)':>7} {'LM tokens/img':>14} {'x floor':>8} {'vision/img':>11} {'peak +RSS MB':>13}")
    for name, r in rows.items():
        wall = " ".join(f"{rows[ref]['seconds'] / r['seconds']:>7.2f}" for ref in refs)
        used = " ".join(f"{rows[ref]['cpu'] / r['cpu']:>7.2f}" for ref in refs)
        print(f"{name:<15} {len(images) / r['seconds']:>9.3f} {wall} {len(images) / r['cpu']:>10.3f} {used} "
              f"{r['tokens']:>14.0f} {r['tokens'] / floor:>8.2f} {r['vision']:>11.1f} {r['mem']:>13.1f}")
    print(f"median of {args.repeats} timed repeats (round-robin over methods) after one untimed pass; "
          "images/s is wall clock, img/cpu-s is per CPU-second of this process (less sensitive to other "
          "load on the machine); x (a1) / x (a8): speed-up over the reference loop generating 1 / 8 new tokens "
          f"per question; ru_maxrss of the process {_maxrss_mb():.0f} MB")
    print(f"tokenizer: {tokenizer_note}")
    return 0


def _answer(judge, engine, images, asked):
    judge.engine = engine
    return judge.answer(images, asked)


def _report_agreement(outputs) -> None:
    """The engines must agree with each other exactly; (a) parses text and is only a timing model here."""
    plain = outputs["(b) plain b8"]
    worst = 0.0
    for name in ("(c) prefix b1", "(c) prefix b8"):
        for per_p, per_e in zip(plain, outputs[name]):
            for p, e in zip(per_p, per_e):
                worst = max(worst, float((p.log_probs - e.log_probs).abs().max()))
                assert p.argmax_label == e.argmax_label
    print(f"check: prefix engine vs plain engine, max |log-prob diff| {worst:.2e}, arg-max identical")


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _maxrss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    sys.exit(main())
