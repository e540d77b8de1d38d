"""Training judges of the families beyond LLaVA: the loss is the judge's own answer probability, LoRA
trains the family's language model, and the trained adapter loads through the metric."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from evalalign_metric.judge import load_judge
from evalalign_metric.protocol import load_protocol
from evalalign_metric.testing import build_tiny_judge
from evalalign_metric.training.features import AnswerLoss, TargetEncoder, collate
from evalalign_metric.training.targets import Target

pytest.importorskip("peft")

ARCHITECTURES = ["qwen2_5_vl", "qwen3_vl", "idefics3"]


@pytest.fixture(scope="module")
def data_dir(yesno_colour_data) -> Path:
    """16 one-colour images of three widths (the families' token counts differ with the aspect ratio)."""
    return yesno_colour_data(16, 24, size=lambda i: (24 + 8 * (i % 3), 16))


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_training_loss_is_minus_the_judges_answer_log_probability(tmp_path, architecture):
    """Without the end-of-answer suffix, each row's loss is -log P(answer) as the judge scores it."""
    judge = load_judge(build_tiny_judge(tmp_path, architecture=architecture, seed=2), engine="plain", cache=False)
    images = [Image.new("RGB", (40, 24), "red"), Image.new("RGB", (17, 33), "blue")]
    question = "<image>\nDoes the image show a red square? Answer yes or no."
    encoder = TargetEncoder(judge, train_on_suffix=False)
    prepared, rows = [], []
    for i, image in enumerate(images):
        inputs = judge.image_inputs(image)
        prepared.append((inputs.pixels, judge.tokenizer(inputs.text, add_special_tokens=False)["input_ids"]))
        for answer in ("yes", "no"):
            rows.append((i, *encoder.encode(Target(question, ("yes", "no"), answer, f"{i}.png"))))
    batch = collate(prepared, rows, image_token_id=judge.image_token_id, pad_token_id=judge.pad_token_id,
                    family=judge.family)
    loss_module = AnswerLoss(judge.model, image_token_id=judge.image_token_id,
                             shared_vision=judge.family.training_shared_vision)
    per_row = []
    for r in range(len(rows)):
        keep = torch.zeros(len(rows), dtype=torch.bool)
        keep[r] = True
        labels = batch.labels.clone()
        labels[~keep] = -100
        masked = type(batch)(**{**batch.__dict__, "labels": labels})
        with torch.no_grad():
            loss, _ = loss_module(masked)
        per_row.append(float(loss))
    answers = judge.answer(images, [[(question, ("yes", "no"))]] * 2)
    expected = [-float(answers[i][0].log_probs[k]) for i in range(2) for k in range(2)]
    assert per_row == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("method", ["lora", "full"])
@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_training_lowers_the_loss_and_the_judge_loads_in_the_metric(data_dir, tmp_path, architecture, method):
    from evalalign_metric import EvalAlignScore
    from evalalign_metric.training import train

    base = build_tiny_judge(tmp_path / "base", architecture=architecture, seed=2)
    cfg = {"output_dir": str(tmp_path / "out"), "protocol": str(data_dir / "p.json"), "model": {"base": str(base)},
           "data": {"train": [{"format": "jsonl", "path": str(data_dir / "train.jsonl")}],
                    "eval": [{"format": "jsonl", "path": str(data_dir / "eval.jsonl")}]},
           "training": {"batch_size": 4, "lr": 2e-2, "seed": 3, "max_steps": 10, "log_every": 1,
                        "warmup_steps": 1, "method": method, "lora": {"r": 4, "alpha": 8}}}
    if method == "full":
        cfg["training"]["lr"] = 2e-3
    result = train(cfg, progress=False, log=lambda m: None)
    losses = [h["loss"] for h in result.history if "loss" in h]
    assert len(losses) == 10 and sum(losses[-3:]) / 3 < sum(losses[:3]) / 3
    out = tmp_path / "out"
    sidecar = json.loads((out / "evalalign_judge.json").read_text())
    assert sidecar["chat_format"] == "chat_template" and sidecar["pad_to_square"] is False
    if method == "lora":
        adapter = json.loads((out / "adapter_config.json").read_text())
        layer = "text_model" if architecture == "idefics3" else "language_model"
        assert layer in str(adapter["target_modules"])
    metric = EvalAlignScore(model=str(out), protocol=str(out / "protocol.json"))
    metric.update([Image.open(data_dir / "0.png")], ["a red square"])
    assert 0.0 <= float(metric.compute()["alignment/Match"]) <= 1.0
    trained = load_judge(out, cache=False)
    assert trained.family.model_type == architecture and load_protocol(str(out / "protocol.json")).name == "yesno"
