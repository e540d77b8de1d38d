"""EvalAlignValidation: in-process behaviour, and real 2-process runs (accelerate launch, gloo).

accelerate 1.x runs ``accelerate launch --cpu --num_processes N`` as ONE process (multi-CPU needs mpirun), so
the subprocess tests start N real processes with ``--multi_gpu`` and ``ACCELERATE_USE_CPU=1``: torchrun
workers that accelerate sets up as MULTI_CPU on the gloo backend.
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("accelerate", reason="the 'diffusers' extra (accelerate) is not installed")

from evalalign_metric import EvalAlignScore, InputError  # noqa: E402
from evalalign_metric.callbacks import (  # noqa: E402
    EvalAlignValidation,
    default_validation_prompts,
    image_grid,
)
from evalalign_metric.errors import MissingExtraError  # noqa: E402
from evalalign_metric.official import alignment_prompts, faithfulness_prompts, official_elements  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TRAIN_SCRIPT = REPO / "adapters" / "diffusers" / "train_text_to_image_lora_evalalign.py"

# A stand-in for a diffusers pipeline: the same call signature, images drawn from the given generators only.
FAKE_PIPELINE_SOURCE = '''
def fake_pipeline(prompts, generator, output_type, **kwargs):
    import torch
    from types import SimpleNamespace
    from PIL import Image

    assert output_type == "pil" and len(generator) == len(prompts)
    images = [Image.fromarray((torch.rand(20, 24, 3, generator=g) * 255).to(torch.uint8).numpy())
              for g in generator]
    return SimpleNamespace(images=images)
'''
_namespace: dict = {}
exec(FAKE_PIPELINE_SOURCE, _namespace)
fake_pipeline = _namespace["fake_pipeline"]


def fake_images(seeds):
    return fake_pipeline(["p"] * len(seeds), [torch.Generator().manual_seed(s) for s in seeds], "pil").images


@pytest.fixture(scope="module")
def judge_dir(tiny_judge_factory):
    # Its expected scores move with the image (per-image std ~0.02-0.07): a mix-up shows above the tolerance.
    return tiny_judge_factory(tokenizer="llama", architecture="llava", confident=True, seed=4,
                              confident_scale=0.5)


def _single_process(judge_dir, images, prompts, elements, scoring="expectation") -> dict:
    metric = EvalAlignScore(model=judge_dir, scoring=scoring)
    metric.update(images, prompts, elements)
    return {k: float(v) for k, v in metric.compute().items()}


def _assert_same(got: dict, expected: dict, where="", abs_tol=1e-5) -> None:
    assert got.keys() == expected.keys(), where
    for key, value in expected.items():
        if math.isnan(value):
            assert math.isnan(got[key]), (where, key)
        else:
            assert got[key] == pytest.approx(value, abs=abs_tol), (where, key)


def _read_tensorboard(logdir: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    scalars = {tag: {e.step: e.value for e in acc.Scalars(tag)} for tag in acc.Tags()["scalars"]}
    images = {tag: [(e.step, e.width, e.height) for e in acc.Images(tag)] for tag in acc.Tags()["images"]}
    return scalars, images


# -- prompts and grid ---------------------------------------------------------------------------------------
def test_default_prompts_are_a_seeded_subset_of_the_official_sets():
    prompts, elements = default_validation_prompts(5, seed=3)
    assert default_validation_prompts(5, seed=3) == (prompts, elements)
    assert default_validation_prompts(5, seed=4)[0] != prompts
    official_alignment = {e["prompt"] for e in alignment_prompts()}
    official_faithfulness = {e["prompt"] for e in faithfulness_prompts()}
    assert all(p in official_alignment for p in prompts[:3])
    assert all(p in official_faithfulness for p in prompts[3:])
    assert elements[:3] == [official_elements(p) for p in prompts[:3]] and elements[3:] == [{}, {}]
    assert len(set(prompts)) == 5
    with pytest.raises(InputError, match="num_prompts must be a positive integer; got 0"):
        default_validation_prompts(0)
    with pytest.raises(InputError, match="the official sets hold 220 prompts"):
        default_validation_prompts(300)


def test_image_grid_places_images_row_by_row():
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255)]
    images = [Image.new("RGB", (8, 6), c) for c in colours]
    images[4] = Image.new("RGB", (4, 3), colours[4])  # smaller: pasted top-left in its cell
    grid = image_grid(images)  # 3 columns x 2 rows of 8x6 cells
    assert grid.size == (24, 12)
    for i, colour in enumerate(colours):
        assert grid.getpixel(((i % 3) * 8, (i // 3) * 6)) == colour
    assert grid.getpixel((23, 11)) == (0, 0, 0)  # empty sixth cell
    assert image_grid(images, columns=5).size == (40, 6)
    with pytest.raises(InputError, match="at least one image"):
        image_grid([])


# -- single process -----------------------------------------------------------------------------------------
def test_single_process_scores_logs_every_aspect_and_saves(judge_dir, tmp_path):
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=True, log_with="tensorboard", project_dir=str(tmp_path))
    accelerator.init_trackers("run")
    validation = EvalAlignValidation(judge_dir, num_prompts=4, prompt_seed=2, scoring="expectation",
                                     batch_size=3, save_dir=tmp_path / "val")
    scores = validation(fake_pipeline, accelerator, step=7, seed=5)
    accelerator.end_training()

    prompts, elements = default_validation_prompts(4, seed=2)
    images = fake_images([5, 6, 7, 8])
    expected = _single_process(judge_dir, images, prompts, elements)
    _assert_same(scores, expected)
    assert expected["num_images"] == 4 and expected["num_without_elements"] == 0

    scalars, logged_images = _read_tensorboard(tmp_path / "run")
    for key, value in expected.items():
        tag = f"evalalign/{key}"
        assert list(scalars[tag]) == [7], tag
        assert (math.isnan(scalars[tag][7]) if math.isnan(value)
                else scalars[tag][7] == pytest.approx(value, abs=1e-6)), tag
    assert logged_images["evalalign/images"] == [(7, 48, 40)]  # 2x2 grid of 24x20 images

    folder = tmp_path / "val" / "step_000007"
    for i, image in enumerate(images):
        assert np.array_equal(np.asarray(Image.open(folder / f"{i:03d}.png")), np.asarray(image))
    records = json.loads((folder / "prompts.json").read_text())
    assert [(r["prompt"], r["elements"], r["seed"]) for r in records] == list(zip(prompts, elements, [5, 6, 7, 8]))
    _assert_same(json.loads((folder / "scores.json").read_text()), expected, abs_tol=0)


def test_image_for_a_prompt_does_not_depend_on_batching(judge_dir, tmp_path):
    from accelerate import Accelerator

    prompts = ["a red cube", "two cats", "a lighthouse"]
    got, saved = [], []
    for batch_size in (1, 3):
        validation = EvalAlignValidation(judge_dir, prompts=prompts, elements=[{"Object": "cube;"}, {}, {}],
                                         batch_size=batch_size, log_images=False,
                                         save_dir=tmp_path / str(batch_size), scoring="expectation")
        got.append(validation(fake_pipeline, Accelerator(cpu=True), step=1, seed=0))
        folder = tmp_path / str(batch_size) / "step_000001"
        saved.append([np.asarray(Image.open(folder / f"{i:03d}.png")) for i in range(3)])
    assert all(np.array_equal(a, b) for a, b in zip(*saved))
    _assert_same(got[0], got[1], abs_tol=0)


def test_offload_moves_the_judge_back_to_cpu_and_frees_memory(judge_dir, monkeypatch):
    from accelerate import Accelerator

    from evalalign_metric import callbacks
    from evalalign_metric.judge import Judge

    moves, collections = [], []
    original_to = Judge.to

    def recording_to(self, device=None, dtype=None):
        moves.append(str(device))
        return original_to(self, device, dtype)

    monkeypatch.setattr(Judge, "to", recording_to)
    monkeypatch.setattr(callbacks.gc, "collect", lambda: collections.append(1))
    kept = EvalAlignValidation(judge_dir, num_prompts=2, offload_judge=False, free_memory=False)
    kept(fake_pipeline, Accelerator(cpu=True), step=1)
    assert moves == [] and collections == []
    offloaded = EvalAlignValidation(judge_dir, num_prompts=2, offload_judge=True, free_memory=True)
    offloaded(fake_pipeline, Accelerator(cpu=True), step=1)
    assert moves[-1] == "cpu" and offloaded.judge_for(torch.device("cpu")).device.type == "cpu"
    assert collections == [1]


def test_bad_arguments_are_named(judge_dir):
    from accelerate import Accelerator

    with pytest.raises(InputError, match="elements were given without prompts"):
        EvalAlignValidation(judge_dir, elements=[{}])
    with pytest.raises(InputError, match=r"elements \(1\) and prompts \(2\) must have the same length"):
        EvalAlignValidation(judge_dir, prompts=["a", "b"], elements=[{}])
    with pytest.raises(InputError, match="prompts must be a non-empty list of non-empty strings"):
        EvalAlignValidation(judge_dir, prompts=["a cat", "  "])
    with pytest.raises(InputError, match="prompts must be a non-empty list"):
        EvalAlignValidation(judge_dir, prompts="a cat")
    with pytest.raises(InputError, match="batch_size must be a positive integer; got 0"):
        EvalAlignValidation(judge_dir, batch_size=0)
    with pytest.raises(InputError, match="rendezvous_timeout must be positive"):
        EvalAlignValidation(judge_dir, rendezvous_timeout=0)

    def two_images_per_prompt(prompts, generator, output_type, **kwargs):
        return SimpleNamespace(images=[Image.new("RGB", (16, 16))] * (2 * len(prompts)))

    validation = EvalAlignValidation(judge_dir, prompts=["a cat"])
    with pytest.raises(InputError, match="the pipeline returned 2 images for 1 prompts"):
        validation(two_images_per_prompt, Accelerator(cpu=True), step=1)


def test_missing_accelerate_names_the_extra(judge_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "accelerate", None)
    validation = EvalAlignValidation(judge_dir, prompts=["a cat"])
    with pytest.raises(MissingExtraError, match=r"evalalign-metric\[diffusers\]"):
        validation(fake_pipeline, SimpleNamespace(), step=1)


# -- two real processes -------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(script: Path, args: list[str], *, timeout: float) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(_free_port()), str(script), *args]
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_VERBOSITY": "error", "PYTHONPATH": str(REPO)}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    return done


MAIN_ONLY_SCRIPT = FAKE_PIPELINE_SOURCE + '''
import json, os, sys, warnings
import torch
from accelerate import Accelerator
from evalalign_metric.callbacks import EvalAlignValidation

judge, out_dir = sys.argv[1:3]
accelerator = Accelerator()
rank = accelerator.process_index
results = {"world": accelerator.num_processes}


def run(name, validation, step):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scores = validation(fake_pipeline, accelerator, step=step, seed=7)
    messages = [str(w.message) for w in caught]
    ours = [m for m in messages if "EvalAlignValidation at step" in m]
    results[name] = {"scores": scores, "warnings": ours}


three = ["a red cube on a blue sphere", "two cats", "a lighthouse at dusk"]
elements = [{"Object": "cube; sphere;", "Color": "cube: red; sphere: blue;"}, {"Count": "cat: two;"}, {}]
options = dict(prompts=three, elements=elements, scoring="expectation", log_images=False)
# Where every rank calls, a long wait keeps a slow rank on a loaded machine from being taken for absent.
run("uneven_split", EvalAlignValidation(judge, rendezvous_timeout=300, **options), 1)
run("fewer_prompts_than_ranks", EvalAlignValidation(judge, prompts=three[:1], elements=elements[:1],
                                                    scoring="expectation", rendezvous_timeout=300), 2)
alone = EvalAlignValidation(judge, rendezvous_timeout=3, **options)
if accelerator.is_main_process:
    run("main_only", alone, 3)
accelerator.wait_for_everyone()
run("all_ranks_after_main_only", alone, 4)
declared = EvalAlignValidation(judge, main_process_only=True, **options)
if accelerator.is_main_process:
    run("declared_main_only", declared, 5)
accelerator.wait_for_everyone()
total = torch.tensor([rank + 1.0])
torch.distributed.all_reduce(total)  # the process group still works after all of the above
results["all_reduce"] = float(total)
with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
    json.dump(results, f)
accelerator.wait_for_everyone()  # both ranks tear gloo down together: one that exits first can abort the other
torch.distributed.destroy_process_group()
'''


@pytest.mark.slow
@pytest.mark.subprocess
def test_two_processes_share_the_work_and_survive_main_process_only_calls(judge_dir, tmp_path):
    script = tmp_path / "validate.py"
    script.write_text(MAIN_ONLY_SCRIPT)
    _launch(script, [str(judge_dir), str(tmp_path)], timeout=600)  # a deadlock would hit the timeout
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["world"] for r in ranks] == [2, 2] and [r["all_reduce"] for r in ranks] == [3.0, 3.0]

    three = ["a red cube on a blue sphere", "two cats", "a lighthouse at dusk"]
    elements = [{"Object": "cube; sphere;", "Color": "cube: red; sphere: blue;"}, {"Count": "cat: two;"}, {}]
    all_three = _single_process(judge_dir, fake_images([7, 8, 9]), three, elements)
    first_only = _single_process(judge_dir, fake_images([7]), three[:1], elements[:1])

    for rank, result in enumerate(ranks):  # called on every rank: synced, identical, no warning
        _assert_same(result["uneven_split"]["scores"], all_three, f"rank {rank}")
        _assert_same(result["fewer_prompts_than_ranks"]["scores"], first_only, f"rank {rank}")
        assert result["uneven_split"]["warnings"] == [] == result["fewer_prompts_than_ranks"]["warnings"]
    # Called inside `if is_main_process`: rank 0 scored all prompts itself, warned, and nothing hung.
    assert "main_only" not in ranks[1] and "declared_main_only" not in ranks[1]
    _assert_same(ranks[0]["main_only"]["scores"], all_three, "main only")
    assert len(ranks[0]["main_only"]["warnings"]) == 1
    assert "runs on process 0 only" in ranks[0]["main_only"]["warnings"][0]
    _assert_same(ranks[0]["declared_main_only"]["scores"], all_three, "declared")
    assert ranks[0]["declared_main_only"]["warnings"] == []  # declared: no wait and no warning
    # Once alone, that instance scores locally even when every rank calls it (each rank warns).
    for rank, result in enumerate(ranks):
        _assert_same(result["all_ranks_after_main_only"]["scores"], all_three, f"rank {rank} after")
        assert f"runs on process {rank} only" in result["all_ranks_after_main_only"]["warnings"][0]


def build_tiny_sd_pipeline(path: Path) -> Path:
    """A tiny Stable Diffusion pipeline from configs; CLIP tokenizer: a byte-level vocabulary, no merges."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from tokenizers import pre_tokenizers
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    vocab.update({c: i + 2 for i, c in enumerate(alphabet)})
    vocab.update({c + "</w>": i + 2 + len(alphabet) for i, c in enumerate(alphabet)})
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=32)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=37, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=32, projection_dim=32, bos_token_id=0, eos_token_id=1,
        pad_token_id=1))
    unet = UNet2DConditionModel(
        sample_size=16, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(8, 16),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32, attention_head_dim=4,
        norm_num_groups=4)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16), latent_channels=4,
        layers_per_block=1, norm_num_groups=4, sample_size=32)
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    pipeline = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                       scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                       requires_safety_checker=False)
    pipeline.save_pretrained(path)
    return path


def write_tiny_imagefolder(path: Path) -> Path:
    path.mkdir(parents=True)
    colours = ["red", "green", "blue", "yellow", "white", "black", "orange", "purple"]
    with open(path / "metadata.jsonl", "w") as f:
        for i, colour in enumerate(colours):
            Image.new("RGB", (40, 36), colour).save(path / f"{i}.png")
            f.write(json.dumps({"file_name": f"{i}.png", "text": f"a {colour} square"}) + "\n")
    return path


@pytest.mark.slow
@pytest.mark.subprocess
def test_example_training_script_on_two_processes(judge_dir, tmp_path):
    pytest.importorskip("diffusers", reason="the 'diffusers' extra is not installed")
    pytest.importorskip("peft", reason="the 'train' extra (peft) is not installed")
    pytest.importorskip("tensorboard", reason="the 'diffusers' extra (tensorboard) is not installed")
    model = build_tiny_sd_pipeline(tmp_path / "tiny-sd")
    data = write_tiny_imagefolder(tmp_path / "data")
    out = tmp_path / "out"
    done = _launch(TRAIN_SCRIPT, [
        "--pretrained_model_name_or_path", str(model), "--train_data_dir", str(data), "--resolution", "32",
        "--max_train_steps", "4", "--validation_steps", "2", "--num_validation_prompts", "3",
        "--validation_inference_steps", "2", "--judge", str(judge_dir), "--scoring", "expectation",
        "--learning_rate", "1e-2", "--save_validation_images", "--output_dir", str(out)], timeout=900)

    logged = {}
    for match in re.finditer(r"EvalAlign validation \(process (\d)\) at step (\d+): (\{.*\})", done.stderr):
        logged[int(match[1]), int(match[2])] = json.loads(match[3])
    assert sorted(logged) == [(0, 2), (0, 4), (1, 2), (1, 4)]  # validation ran at steps 2 and 4 on both ranks

    scalars, logged_images = _read_tensorboard(out / "logs" / "text2image-lora-evalalign")
    saved = {}
    for step in (2, 4):
        folder = out / "validation" / f"step_{step:06d}"
        records = json.loads((folder / "prompts.json").read_text())
        assert [r["seed"] for r in records] == [0, 1, 2]
        saved[step] = [Image.open(folder / f"{r['index']:03d}.png").convert("RGB") for r in records]
        expected = _single_process(judge_dir, saved[step], [r["prompt"] for r in records],
                                   [r["elements"] for r in records])
        for rank in (0, 1):
            _assert_same(logged[rank, step], expected, f"rank {rank} step {step}")
        for key, value in expected.items():
            got = scalars[f"evalalign/{key}"][step]
            same = math.isnan(got) if math.isnan(value) else got == pytest.approx(value, abs=1e-5)
            assert same, (step, key, got, value)
    assert [step for step, _, _ in logged_images["evalalign/images"]] == [2, 4]
    assert sorted(scalars["train_loss"]) == [1, 2, 3, 4]
    # The validation pipeline shares the trained UNet: the LoRA updates between steps 2 and 4 show.
    assert any(not np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(saved[2], saved[4]))
    assert (out / "pytorch_lora_weights.safetensors").is_file()


@pytest.mark.parametrize("protocol, folder", [("evalalign", "judge"), ("imatch", "judge-imatch")])
def test_with_no_judge_named_the_callback_loads_the_embedded_judge_of_its_protocol(protocol, folder):
    judge = EvalAlignValidation(protocol=protocol).judge_for(torch.device("cpu"))
    assert Path(judge.identity["model"]).name == folder
    assert protocol in judge.identity["protocols"]
