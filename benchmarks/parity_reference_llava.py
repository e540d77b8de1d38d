#!/usr/bin/env python
"""Parity of the converted judge with the ORIGINAL LLaVA code (PyPI ``llava-torch`` 1.2.2.post1).

What it does, offline:
1. creates (or reuses) an isolated venv with ``torch==2.13.0``, ``transformers==4.37.2 tokenizers==0.15.1
   sentencepiece==0.1.99 accelerate==0.21.0 pillow protobuf`` and ``llava-torch==1.2.2.post1 --no-deps``
   (pillow is the one module-level import of ``llava`` the pins do not bring; protobuf is needed by the
   slow ``LlamaTokenizer`` with ``legacy=False``, as LLaVA's Vicuna tokenizers are configured);
2. in that venv, builds tiny original-format checkpoints WITH THE REFERENCE'S OWN CLASSES
   (``LlavaLlamaForCausalLM``: tiny Llama, ``mlp2x_gelu``, select layer -2, ``pad``; a tiny CLIP tower
   saved as its own folder; a SentencePiece tokenizer trained in-process) in two variants:
   ``flat`` (vision weights from the tower folder) and ``spatial_unpad`` (``image_newline``,
   ``unfreeze_mm_vision_tower`` with vision weights in the checkpoint that differ from the tower's);
3. runs the reference there (``load_pretrained_model``, ``process_images``, ``tokenizer_image_token``,
   ``conv_templates["v1"]``; fp16 weights upcast to fp32) for official EvalAlign questions on a square and
   a non-square image: last-position logits and teacher-forced option log-probabilities;
4. converts each checkpoint here (transformers 5.x) and compares: token ids identical, max |logit diff|
   <= 2e-4 (fp32), option log-probabilities and option probabilities (normalised over the options) within
   1e-4; then two deliberately wrong conversions
   (projector layers swapped; tower weights instead of the checkpoint's) must FAIL the same check.

Variants: ``flat`` and ``spatial_unpad`` are the 13B style (Vicuna v1, Llama-2 SentencePiece);
``yi_anyres_unpad`` the 34B style (Yi SentencePiece without dummy prefix and with ChatML markers, ChatML with
EvalAlign's system message, ``image_aspect_ratio: anyres`` run as EvalAlign runs it: padded to one tile).
The converter's tokenizer check (``evalalign_metric.convert.spm_reference``) is compared with the slow
tokenizer's ``tokenizer_image_token`` ids, both tokenizer styles in both ``legacy`` modes, on every EvalAlign
question and answer in both chat formats. Then one judge per checkpoint, as ``evalalign convert`` writes it,
answers through ``load_judge().answer`` and each question is compared with the reference path EvalAlign's
script for its dimension uses (faithfulness: a list of images; alignment: a 4-D tensor).

``spatial_unpad`` is compared on both reference paths: a list of images (its faithfulness script, one
``image_newline`` token -> single-tile ``LlavaNext``) and a batched tensor (its alignment script, no newline
-> ``convert(..., keep_image_newline=False)``).

Usage:
    python benchmarks/parity_reference_llava.py [--venv DIR] [--work DIR] [--json FILE]

Prints one line per check and the time of each stage; exits 1 if a check fails. llava's code stays in
the venv: nothing of it is copied here.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TORCH_PIN = "torch==2.13.0"
# pillow: the one module-level import of llava the pins do not bring; protobuf: the slow LlamaTokenizer
# needs it with legacy=False, which LLaVA's Vicuna tokenizer configs set.
REFERENCE_PINS = ["transformers==4.37.2", "tokenizers==0.15.1", "sentencepiece==0.1.99", "accelerate==0.21.0",
                  "pillow", "protobuf"]
LLAVA_PIN = "llava-torch==1.2.2.post1"
# fp32 differences between the reference's attention and transformers 5's over ~400 tokens: measured up to
# 1.2e-4 on the last-position logits (|logits| <= 2.4); deliberately wrong mappings move them by >= 0.36.
LOGIT_TOLERANCE = 2e-4
LOGPROB_TOLERANCE = 1e-4
PROB_TOLERANCE = 1e-4
# 13B style (Vicuna, Llama-2 SentencePiece) and 34B style (Yi SentencePiece without dummy prefix, ChatML,
# LLaVA-1.6 config: anyres + spatial_unpad).
VARIANTS = {"flat": {"merge": "flat", "unfreeze": False, "tokenizer": "llama", "chat": "vicuna_v1",
                     "aspect": "pad"},
            "spatial_unpad": {"merge": "spatial_unpad", "unfreeze": True, "tokenizer": "llama", "chat": "vicuna_v1",
                              "aspect": "pad"},
            "yi_anyres_unpad": {"merge": "spatial_unpad", "unfreeze": False, "tokenizer": "yi", "chat": "chatml",
                                "aspect": "anyres"}}
# (variant, reference image path) -> keep_image_newline of the matching conversion
PATHS = {("flat", "tensor"): True, ("spatial_unpad", "list"): True, ("spatial_unpad", "tensor"): False,
         ("yi_anyres_unpad", "list"): True, ("yi_anyres_unpad", "tensor"): False}
# EvalAlign's scripts: faithfulness passes a list of images, alignment a 4-D tensor.
SCRIPT_PATH = {"faithfulness": "list", "alignment": "tensor"}
IMAGE_SIZE, PATCH_SIZE, HIDDEN = 16, 4, 32


def default_venv() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "evalalign-metric" / "llava-reference-venv"


def _pip(python: Path, args: list[str]) -> None:
    cmd = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *args]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")


def ensure_reference_venv(path: Path) -> tuple[Path, float]:
    """The venv's python (created on first use, reused while its pins match) and the seconds spent."""
    start = time.perf_counter()
    python = path / "bin" / "python"
    marker = path / "evalalign-parity.json"
    pins = [TORCH_PIN, *REFERENCE_PINS, LLAVA_PIN]
    if python.is_file() and marker.is_file() and json.loads(marker.read_text()).get("pins") == pins:
        return python, time.perf_counter() - start
    shutil.rmtree(path, ignore_errors=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    _pip(python, [TORCH_PIN])
    _pip(python, REFERENCE_PINS)
    _pip(python, ["--no-deps", LLAVA_PIN])
    check = subprocess.run([str(python), "-c", "import llava.model.builder, llava.mm_utils, llava.conversation"],
                           capture_output=True, text=True)
    if check.returncode != 0:
        raise RuntimeError(f"llava does not import in {path}:\n{check.stderr[-2000:]}")
    marker.write_text(json.dumps({"pins": pins}))
    return python, time.perf_counter() - start


# ----------------------------------------------------------------------------------------------------
# Worker side: runs inside the reference venv (transformers 4.37 + llava), stdlib + torch + llava only.
# ----------------------------------------------------------------------------------------------------

def _worker_build(work: Path) -> None:
    import sentencepiece as spm
    import torch
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel, LlamaTokenizer

    spec = json.loads((work / "spec.json").read_text())
    tokenizers = {}
    for style in ("llama", "yi"):
        tok_dir = work / f"tokenizer-{style}"
        tok_dir.mkdir(exist_ok=True)
        yi = style == "yi"
        bos, eos = ("<|startoftext|>", "<|endoftext|>") if yi else ("<s>", "</s>")
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(spec["corpus"]), model_prefix=str(tok_dir / "sp"), vocab_size=500,
            model_type="bpe", byte_fallback=True, split_digits=True, character_coverage=1.0, unk_id=0, bos_id=1,
            eos_id=2, pad_id=-1, minloglevel=2, bos_piece=bos, eos_piece=eos,
            # Llama-2's settings: no normalisation, whitespace (and newlines) kept, a dummy prefix space;
            # Yi's: no dummy prefix, ChatML markers as symbols of the model.
            normalization_rule_name="identity", remove_extra_whitespaces=False, add_dummy_prefix=not yi,
            user_defined_symbols=["<|im_start|>", "<|im_end|>"] if yi else [],
        )
        if yi:  # Yi's config leaves legacy unset (slow tokenizer: legacy) and adds no BOS.
            tokenizer = LlamaTokenizer(vocab_file=str(tok_dir / "sp.model"), pad_token="<unk>", bos_token=bos,
                                       eos_token=eos, add_bos_token=False)
            tokenizer.add_tokens(["<|im_start|>", "<|im_end|>"], special_tokens=True)
        else:
            tokenizer = LlamaTokenizer(vocab_file=str(tok_dir / "sp.model"), legacy=False, pad_token="<unk>")
        tokenizers[style] = tokenizer
    torch.manual_seed(0)
    tower_dir = work / "clip-tower"
    vision = CLIPVisionConfig(hidden_size=HIDDEN, intermediate_size=2 * HIDDEN, num_hidden_layers=3,
                              num_attention_heads=4, image_size=IMAGE_SIZE, patch_size=PATCH_SIZE,
                              projection_dim=HIDDEN)
    CLIPVisionModel(vision).half().save_pretrained(str(tower_dir), safe_serialization=True)
    CLIPImageProcessor(size={"shortest_edge": IMAGE_SIZE},
                       crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}).save_pretrained(str(tower_dir))

    _register_llava_without_package_init()
    from llava.model.language_model.llava_llama import LlavaConfig, LlavaLlamaForCausalLM

    for name, variant in VARIANTS.items():
        torch.manual_seed(1)
        tokenizer = tokenizers[variant["tokenizer"]]
        config = LlavaConfig(vocab_size=len(tokenizer), hidden_size=HIDDEN, intermediate_size=2 * HIDDEN,
                             num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                             max_position_embeddings=2048, initializer_range=0.1, rms_norm_eps=1e-5,
                             bos_token_id=1, eos_token_id=2, pad_token_id=0)
        for key, value in dict(
            mm_vision_tower=str(tower_dir), mm_hidden_size=HIDDEN, mm_projector_type="mlp2x_gelu",
            mm_vision_select_layer=-2, mm_vision_select_feature="patch", mm_patch_merge_type=variant["merge"],
            image_aspect_ratio=variant["aspect"], mm_use_im_start_end=False, mm_use_im_patch_token=False,
            unfreeze_mm_vision_tower=variant["unfreeze"], use_mm_proj=True, tokenizer_padding_side="right",
        ).items():
            setattr(config, key, value)
        model = LlavaLlamaForCausalLM(config)
        generator = torch.Generator().manual_seed(2)
        with torch.no_grad():
            if variant["merge"] == "spatial_unpad":
                model.model.image_newline.copy_(torch.randn(HIDDEN, generator=generator))
            if variant["unfreeze"]:
                for param in model.model.vision_tower.vision_tower.parameters():
                    param.add_(torch.randn(param.shape, generator=generator) * 0.05)
        out = work / f"llava-tiny-{name}"
        model.half().save_pretrained(str(out), safe_serialization=True)
        tokenizer.save_pretrained(str(out))
        if variant["tokenizer"] == "yi":  # as Yi's tokenizer_config.json: no legacy key
            config_file = out / "tokenizer_config.json"
            saved = json.loads(config_file.read_text())
            saved.pop("legacy", None)
            config_file.write_text(json.dumps(saved, indent=1))


def _register_llava_without_package_init() -> None:
    """Nothing to do: ``import llava`` works once pillow is installed (its __init__ swallows import errors
    of the model modules, so a missing dependency would otherwise surface as a confusing ImportError)."""
    import llava  # noqa: F401


def _worker_reference(work: Path) -> None:
    import torch
    from PIL import Image

    from llava.constants import IMAGE_TOKEN_INDEX
    from llava.conversation import conv_templates
    from llava.mm_utils import process_images, tokenizer_image_token
    from llava.model.builder import load_pretrained_model

    import copy

    spec = json.loads((work / "spec.json").read_text())
    results = {}
    for (name, path) in [tuple(k.split("/")) for k in spec["paths"]]:
        tokenizer, model, image_processor, _ = load_pretrained_model(
            str(work / f"llava-tiny-{name}"), None, f"llava-tiny-{name}", device="cpu")
        model = model.float().eval()
        # EvalAlign's vendored mm_utils pads every image to one tile whatever image_aspect_ratio says.
        pad_config = copy.copy(model.config)
        pad_config.image_aspect_ratio = "pad"
        chatml = VARIANTS[name]["chat"] == "chatml"
        template = conv_templates["chatml_direct" if chatml else "v1"].copy()
        if chatml:  # EvalAlign's 34B system message on llava's ChatML conversation
            template.system = "<|im_start|>system\n" + spec["chatml_system"]
        entry = results.setdefault(f"{name}/{path}", {})
        for image_name in spec["images"]:
            image = Image.open(work / "images" / image_name).convert("RGB")
            tensor = process_images([image], image_processor, pad_config).float()
            images = [tensor] if path == "list" else tensor
            for qid, question in spec["questions"].items():
                conv = template.copy()
                conv.append_message(conv.roles[0], question["text"])
                conv.append_message(conv.roles[1], None)
                prompt = conv.get_prompt()
                ids = tokenizer_image_token(prompt, tokenizer, IMAGE_TOKEN_INDEX, return_tensors="pt")
                with torch.inference_mode():
                    logits = model(input_ids=ids[None], images=images, use_cache=False).logits[0, -1]
                options = {}
                for label in question["labels"]:
                    full = tokenizer_image_token(prompt + ("" if chatml else " ") + label, tokenizer,
                                                 IMAGE_TOKEN_INDEX, return_tensors="pt")
                    assert full[: len(ids)].tolist() == ids.tolist(), "option does not extend the prompt"
                    suffix = full[len(ids):]
                    with torch.inference_mode():
                        out = model(input_ids=full[None], images=images, use_cache=False).logits[0].float()
                    log_probs = torch.log_softmax(out, dim=-1)
                    # Image features expand the sequence: read the last len(suffix)+1 positions.
                    steps = log_probs[-len(suffix) - 1:-1]
                    per_token = steps[torch.arange(len(suffix)), suffix]
                    options[label] = {"suffix": suffix.tolist(), "log_prob": float(per_token.sum()),
                                      "steps": per_token.tolist()}
                entry[f"{image_name}/{qid}"] = {"prompt": prompt, "ids": ids.tolist(),
                                                "last_logits": logits.tolist(), "options": options}
    (work / "reference.json").write_text(json.dumps(results))


def _worker_tokenize(work: Path) -> None:
    """The reference's ids (``tokenizer_image_token`` with the slow tokenizer) for every probe prompt, with
    each tokenizer style in both ``legacy`` modes."""
    from transformers import LlamaTokenizer

    from llava.constants import IMAGE_TOKEN_INDEX
    from llava.mm_utils import tokenizer_image_token

    spec = json.loads((work / "spec.json").read_text())
    out = {}
    for style, variant in (("llama", "flat"), ("yi", "yi_anyres_unpad")):
        for legacy in (True, False):
            tokenizer = LlamaTokenizer.from_pretrained(str(work / f"llava-tiny-{variant}"), legacy=legacy)
            out[f"{style}/{legacy}"] = [tokenizer_image_token(p, tokenizer, IMAGE_TOKEN_INDEX)
                                        for p in spec["probe_prompts"]]
    (work / "tokenize.json").write_text(json.dumps(out))


# ----------------------------------------------------------------------------------------------------
# Main side: this project's environment (transformers 5.x).
# ----------------------------------------------------------------------------------------------------

def _spec(work: Path) -> dict:
    from PIL import Image
    import numpy as np

    from evalalign_metric.convert.processor import probe_prompts
    from evalalign_metric.convert.testing import _corpus
    from evalalign_metric.judge.chat import CHAT_FORMATS
    from evalalign_metric.official import alignment_prompts
    from evalalign_metric.protocol import load_protocol

    protocol = load_protocol("evalalign")
    aspects = {f"{a.dimension}/{a.name}": a for a in protocol.aspects}
    questions = {}
    for key in ("faithfulness/body", "faithfulness/face", "faithfulness/common"):
        aspect = aspects[key]
        questions[key] = {"text": aspect.template, "labels": [o.label for o in aspect.options]}
    official = alignment_prompts()[0]["question_info"]
    for aspect in ("Object", "Count"):
        if aspect in official:
            questions[f"alignment/{aspect}"] = {"text": official[aspect], "labels": ["0", "1", "2"]}
    (work / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    images = {"square.png": (24, 24), "wide.png": (30, 17), "tall.png": (17, 30)}
    for name, (w, h) in images.items():
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(work / "images" / name)
    spec = {"corpus": _corpus(), "questions": questions, "images": sorted(images),
            "paths": [f"{v}/{p}" for v, p in PATHS], "chatml_system": CHAT_FORMATS["chatml"].system,
            "probe_prompts": [p for fmt in CHAT_FORMATS for p in probe_prompts(fmt)]}
    (work / "spec.json").write_text(json.dumps(spec))
    return spec


def _run_worker(python: Path, command: str, work: Path) -> float:
    start = time.perf_counter()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    done = subprocess.run([str(python), os.path.abspath(__file__), "--worker", command, "--work", str(work)],
                          capture_output=True, text=True, env=env, cwd=str(work))
    if done.returncode != 0:
        raise RuntimeError(f"reference worker '{command}' failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def _corrupt(dst: Path, kind: str, tower_dir: Path) -> Path:
    """A copy of a converted folder with one deliberately wrong mapping."""
    import torch
    from safetensors.torch import load_file, save_file

    bad = dst.parent / f"{dst.name}-wrong-{kind}"
    shutil.rmtree(bad, ignore_errors=True)
    shutil.copytree(dst, bad)
    tower = {k.removeprefix("vision_model."): v for k, v in load_file(str(tower_dir / "model.safetensors")).items()}
    for shard in bad.glob("model-*.safetensors"):
        state = load_file(str(shard))
        if kind == "swapped-projector" and "model.multi_modal_projector.linear_1.weight" in state:
            for part in ("weight", "bias"):
                a, b = f"model.multi_modal_projector.linear_1.{part}", f"model.multi_modal_projector.linear_2.{part}"
                state[a], state[b] = state[b].clone(), state[a].clone()
        if kind == "tower-instead-of-checkpoint":
            for key in list(state):
                if key.startswith("model.vision_tower."):
                    state[key] = tower[key.removeprefix("model.vision_tower.")].to(state[key].dtype)
        save_file({k: v.contiguous() for k, v in state.items()}, str(shard), metadata={"format": "pt"})
    del torch
    return bad


def _compare(dst: Path, ref: dict, spec: dict, work: Path, chat: str = "vicuna_v1") -> dict:
    """Max differences between the converted model at ``dst`` and the reference results ``ref``."""
    import torch
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from evalalign_metric.images import mean_colour, pad_to_square
    from evalalign_metric.judge.chat import CHAT_FORMATS

    processor = AutoProcessor.from_pretrained(dst)
    model = AutoModelForImageTextToText.from_pretrained(dst, dtype=torch.float32).eval()
    tok = processor.tokenizer
    image_id = tok.convert_tokens_to_ids("<image>")
    fmt = CHAT_FORMATS[chat]
    stats = {"ids_equal": True, "prompts_equal": True, "max_logit_diff": 0.0, "max_logprob_diff": 0.0,
             "max_prob_diff": 0.0, "max_prob_diff_unmasked": 0.0}
    for image_name in spec["images"]:
        image = Image.open(work / "images" / image_name).convert("RGB")
        image = pad_to_square(image, mean_colour(processor.image_processor.image_mean))
        for qid, question in spec["questions"].items():
            r = ref[f"{image_name}/{qid}"]
            prompt = fmt.render(question["text"])
            stats["prompts_equal"] &= prompt == r["prompt"]
            inputs = processor(images=[image], text=[prompt], return_tensors="pt")
            ids = inputs["input_ids"][0].tolist()
            n_image = ids.count(image_id)
            expanded = []
            for t in r["ids"]:
                expanded.extend([image_id] * n_image if t < 0 else [t])
            stats["ids_equal"] &= ids == expanded
            pixels = {k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask")}
            with torch.inference_mode():
                logits = model(**inputs).logits[0, -1]
            vocab = len(r["last_logits"])
            diff = (logits[:vocab] - torch.tensor(r["last_logits"])).abs().max().item()
            stats["max_logit_diff"] = max(stats["max_logit_diff"], diff)
            ours, ours_full, theirs = [], [], []
            for label in question["labels"]:
                suffix = tok(prompt + fmt.answer_prefix + label)["input_ids"][len(tok(prompt)["input_ids"]):]
                stats["ids_equal"] &= suffix == r["options"][label]["suffix"]
                full = torch.tensor([ids + suffix])
                with torch.inference_mode():
                    out = model(input_ids=full, attention_mask=torch.ones_like(full), **pixels).logits[0]
                steps = torch.arange(len(suffix))
                positions = slice(len(ids) - 1, len(ids) - 1 + len(suffix))
                masked = torch.log_softmax(out[positions, :vocab], dim=-1)[steps, suffix].sum()
                unmasked = torch.log_softmax(out[positions], dim=-1)[steps, suffix].sum()
                ours.append(masked)
                ours_full.append(unmasked)
                theirs.append(r["options"][label]["log_prob"])
            theirs = torch.tensor(theirs)
            stats["max_logprob_diff"] = max(stats["max_logprob_diff"],
                                            (torch.stack(ours) - theirs).abs().max().item())
            # Probabilities normalised over the options (what the metric scores with).
            theirs_p = torch.softmax(theirs, dim=0)
            stats["max_prob_diff"] = max(stats["max_prob_diff"],
                                         (torch.softmax(torch.stack(ours), 0) - theirs_p).abs().max().item())
            stats["max_prob_diff_unmasked"] = max(
                stats["max_prob_diff_unmasked"],
                (torch.softmax(torch.stack(ours_full), 0) - theirs_p).abs().max().item())
    stats["passes"] = bool(stats["ids_equal"] and stats["prompts_equal"]
                           and stats["max_logit_diff"] <= LOGIT_TOLERANCE
                           and stats["max_logprob_diff"] <= LOGPROB_TOLERANCE
                           and stats["max_prob_diff"] <= PROB_TOLERANCE)
    return stats


def _tokenizer_level(work: Path, slow: dict, spec: dict) -> dict:
    """How many probe prompts :class:`SentencePieceReference` (the converter's check) tokenises exactly as
    the reference's slow tokenizer, per tokenizer style and ``legacy`` mode."""
    from evalalign_metric.convert.spm_reference import SentencePieceReference

    counts = {}
    for key, rows in slow.items():
        style, legacy = key.split("/")
        folder = work / f"llava-tiny-{'flat' if style == 'llama' else 'yi_anyres_unpad'}"
        config = json.loads((folder / "tokenizer_config.json").read_text())
        ref = SentencePieceReference(folder / "tokenizer.model", legacy=legacy == "True",
                                     add_bos=bool(config.get("add_bos_token", True)))
        same = sum(ref.ids(p) == ids for p, ids in zip(spec["probe_prompts"], rows))
        counts[key] = {"equal": same, "prompts": len(rows)}
    return counts


def reference_greedy(options: dict) -> str:
    """The option greedy decoding restricted to the options' tokens reaches, from the reference's per-token
    log-probabilities (``label -> {"suffix": ids, "steps": log P of each}``): at each node, the child token
    with the larger cumulative log-probability, until an option is complete."""
    node: tuple = ()
    while True:
        done = [label for label, o in options.items() if tuple(o["suffix"]) == node]
        if done:
            return done[0]
        children: dict[tuple, float] = {}
        for o in options.values():
            ids = tuple(o["suffix"])
            if ids[: len(node)] == node and len(ids) > len(node):
                children.setdefault(ids[: len(node) + 1], sum(o["steps"][: len(node) + 1]))
        node = max(children, key=children.get)


def _judge_level(dst: Path, refs: dict[str, dict], spec: dict, work: Path) -> dict:
    """Through the library's judge (``load_judge().answer``, its own rules for the newline and the reading):
    max |option probability difference| and arg-max agreement with the reference, each question compared
    with ``refs[path]`` for the path EvalAlign's script for its dimension uses (``SCRIPT_PATH``) or, when only
    one path was run, with that one."""
    import torch
    from PIL import Image

    from evalalign_metric.judge.loading import load_judge

    judge = load_judge(dst, dtype=torch.float32, device="cpu", cache=False)
    worst, same, greedy_same, readings_differ, total = 0.0, 0, 0, 0, 0
    for image_name in spec["images"]:
        image = Image.open(work / "images" / image_name).convert("RGB")
        questions = [(q["text"], tuple(q["labels"])) for q in spec["questions"].values()]
        answers = judge.answer([image], [questions])[0]
        for (qid, q), dist in zip(spec["questions"].items(), answers):
            ref = refs.get(SCRIPT_PATH[qid.split("/")[0]]) or next(iter(refs.values()))
            theirs = torch.tensor([ref[f"{image_name}/{qid}"]["options"][lab]["log_prob"] for lab in q["labels"]])
            worst = max(worst, (dist.probs - torch.softmax(theirs, dim=0)).abs().max().item())
            same += dist.argmax_label == q["labels"][int(theirs.argmax())]
            greedy = reference_greedy(ref[f"{image_name}/{qid}"]["options"])
            greedy_same += dist.greedy_label == greedy
            readings_differ += greedy != q["labels"][int(theirs.argmax())]
            total += 1
    return {"max_prob_diff": worst, "argmax_equal": same, "greedy_equal": greedy_same, "items": total,
            "reference_greedy_differs_from_argmax": readings_differ}


def run(venv: Path, work: Path) -> dict:
    import warnings

    from evalalign_metric.convert import convert_llava_checkpoint

    warnings.filterwarnings("ignore")
    timings, report = {}, {"checks": {}, "controls": {}, "judge_level": {}}
    total = time.perf_counter()
    python, timings["venv"] = ensure_reference_venv(venv)
    start = time.perf_counter()
    spec = _spec(work)
    timings["spec"] = time.perf_counter() - start
    timings["reference_build"] = _run_worker(python, "build", work)
    timings["reference_run"] = _run_worker(python, "reference", work)
    timings["reference_tokenize"] = _run_worker(python, "tokenize", work)
    reference = json.loads((work / "reference.json").read_text())
    report["tokenizer"] = _tokenizer_level(work, json.loads((work / "tokenize.json").read_text()), spec)
    start = time.perf_counter()
    for (variant, path), keep in PATHS.items():
        dst = work / f"native-{variant}-{path}"
        shutil.rmtree(dst, ignore_errors=True)
        convert_llava_checkpoint(work / f"llava-tiny-{variant}", dst, keep_image_newline=keep)
        ref = reference[f"{variant}/{path}"]
        chat = VARIANTS[variant]["chat"]
        report["checks"][f"{variant}/{path}"] = _compare(dst, ref, spec, work, chat)
        kinds = ["swapped-projector"] + (["tower-instead-of-checkpoint"] if VARIANTS[variant]["unfreeze"] else [])
        for kind in kinds:
            bad = _corrupt(dst, kind, work / "clip-tower")
            report["controls"][f"{variant}/{path}/{kind}"] = _compare(bad, ref, spec, work, chat)
    # One judge per checkpoint, as `evalalign convert` writes it by default, against EvalAlign's per-script
    # input shapes (faithfulness: a list of images; alignment: a 4-D tensor).
    for variant in VARIANTS:
        refs = {path: reference[f"{variant}/{path}"] for v, path in PATHS if v == variant}
        report["judge_level"][variant] = _judge_level(work / f"native-{variant}-{min(refs)}", refs, spec, work)
    timings["native"] = time.perf_counter() - start
    timings["total"] = time.perf_counter() - total
    report["timings_s"] = timings
    report["ok"] = all(t["equal"] == t["prompts"] for t in report["tokenizer"].values()) and all(
        c["passes"] for c in report["checks"].values()) and not any(
        c["passes"] for c in report["controls"].values())
    return report


def print_report(report: dict) -> None:
    for name, c in report["checks"].items():
        print(f"parity   {name:<22} ids_equal={c['ids_equal']} max|logit diff|={c['max_logit_diff']:.2e} "
              f"max|log P(option) diff|={c['max_logprob_diff']:.2e} max|option prob diff|={c['max_prob_diff']:.2e} "
              f"(softmax incl. <image>: {c['max_prob_diff_unmasked']:.2e}) -> {'PASS' if c['passes'] else 'FAIL'}")
    for name, t in report["tokenizer"].items():
        print(f"tokens   {name:<22} spm_reference == slow tokenizer (tokenizer_image_token) on "
              f"{t['equal']}/{t['prompts']} prompts")
    for name, value in report["judge_level"].items():
        print(f"judge    {name:<22} through load_judge().answer, per EvalAlign script: max|prob diff|="
              f"{value['max_prob_diff']:.2e} argmax equal {value['argmax_equal']}/{value['items']}, greedy "
              f"reading equal {value['greedy_equal']}/{value['items']} (the reference's greedy and argmax "
              f"differ on {value['reference_greedy_differs_from_argmax']})")
    for name, c in report["controls"].items():
        print(f"control  {name:<48} max|logit diff|={c['max_logit_diff']:.2e} "
              f"max|option prob diff|={c['max_prob_diff']:.2e} -> "
              f"{'detected' if not c['passes'] else 'NOT DETECTED'}")
    t = report["timings_s"]
    print("time     " + " ".join(f"{k}={v:.1f}s" for k, v in t.items()))
    print(f"result   {'OK' if report['ok'] else 'FAILED'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, default=default_venv(), help="reference venv (created if missing)")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--json", type=Path, default=None, help="also write the report as JSON")
    parser.add_argument("--worker", choices=["build", "reference", "tokenize"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        {"build": _worker_build, "reference": _worker_reference, "tokenize": _worker_tokenize}[args.worker](args.work)
        return 0
    work = args.work or Path(tempfile.mkdtemp(prefix="evalalign-parity-"))
    work.mkdir(parents=True, exist_ok=True)
    report = run(args.venv, work)
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
