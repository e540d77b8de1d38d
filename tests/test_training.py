"""Training: readers, targets, augmentations, loss masking, resume-after-kill equality, learning, CLI, export."""

from __future__ import annotations

import dataclasses
import json
import math
import collections
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance

from evalalign_metric.errors import InputError
from evalalign_metric.protocol import load_protocol
from evalalign_metric.synthetic import scenes
from evalalign_metric.training.annotations import Annotation
from evalalign_metric.training.augment import (
    IMATCH_PHRASINGS,
    AugmentConfig,
    apply_lighting,
    augment_image,
    perturb_score,
    sample_rng,
)
from evalalign_metric.training.config import config_from_dict
from evalalign_metric.training.features import IGNORE, AnswerLoss, TargetEncoder, collate, pack_by_image
from evalalign_metric.training.readers import match_question, read_evalmuse, read_jsonl, read_llava, read_source
from evalalign_metric.training.targets import Target, build_target, nearest_option

YESNO = {"name": "yesno", "version": "1", "default_scoring": "expectation", "aspects": [
    {"name": "Match", "dimension": "alignment", "template": "<image>\nDoes the image show {prompt}? Answer yes or no.",
     "options": [{"label": "yes", "score": 1}, {"label": "no", "score": 0}]}]}
COLOURS = {"red": (220, 30, 30), "blue": (30, 30, 220)}


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def data_dir(yesno_colour_data) -> Path:
    """24 one-colour images and yes/no rows: 'a red square' / 'a blue square' for each."""
    return yesno_colour_data(24, 40)


@pytest.fixture(scope="module")
def base_judge(data_dir, tmp_path_factory) -> Path:
    from evalalign_metric.training.build import BuildSpec, build_judge

    spec = BuildSpec(image_size=16, vision="clip", patch_size=8, vision_hidden=16, vision_layers=1, vision_heads=2,
                     text_hidden=16, text_layers=1, text_heads=2, text_kv_heads=1, vocab_size=300)
    corpus = [f"<image>\nDoes the image show a {c} square? Answer yes or no." for c in COLOURS]
    return build_judge(spec, tmp_path_factory.mktemp("base") / "judge", corpus=corpus,
                       templates=[YESNO["aspects"][0]["template"]], protocol_name="yesno")


def _config(data_dir: Path, out: Path, base: Path, **training) -> dict:
    return {"output_dir": str(out), "protocol": str(data_dir / "p.json"), "model": {"base": str(base)},
            "data": {"train": [{"format": "jsonl", "path": str(data_dir / "train.jsonl")}],
                     "eval": [{"format": "jsonl", "path": str(data_dir / "eval.jsonl")}]},
            "training": {"batch_size": 4, "lr": 5e-3, "seed": 3, **training}}


def _trainable(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    from evalalign_metric.training.checkpoint import latest_checkpoint

    return load_file(str(latest_checkpoint(path) / "trainable.safetensors"))


# ---------------------------------------------------------------- readers
def test_jsonl_reader_maps_aspects_elements_and_na(tmp_path):
    rows = [{"image": "a.png", "aspect": "Object", "score": 1.5, "elements": {"Object": "cat; dog;"}},
            {"image": "a.png", "aspect": "faithfulness/body", "score": None},
            {"image": "a.png", "aspect": "Count", "score": 2,
             "prompt": "The elephant was standing in the center of the room, with the bird to its left."}]
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    got = read_jsonl(tmp_path / "t.jsonl", "evalalign")
    assert [(a.aspect, a.score, a.elements) for a in got] == [
        ("alignment/Object", 1.5, "cat; dog;"), ("faithfulness/body", None, None),
        ("alignment/Count", 2.0, "elephant: a; bird: a;")]  # the official elements of that prompt
    assert got[2].source.endswith("t.jsonl line 3")


@pytest.mark.parametrize("row, field", [
    ({"image": "a.png", "aspect": "Nope", "score": 1}, "field aspect"),
    ({"image": "a.png", "aspect": "Object", "score": 3, "elements": "cat;"}, "field score"),
    ({"image": "a.png", "aspect": "object", "score": None}, "field score"),
    ({"image": "a.png", "aspect": "Object", "score": 1}, "field elements"),
    ({"aspect": "object", "score": 1}, "field image"),
    ({"image": "a.png", "aspect": "object"}, "field score"),
])
def test_jsonl_reader_errors_name_line_and_field(tmp_path, row, field):
    (tmp_path / "t.jsonl").write_text(json.dumps({"image": "ok.png", "aspect": "object", "score": 4}) + "\n"
                                      + json.dumps(row) + "\n")
    with pytest.raises(InputError, match=rf"t.jsonl line 2: {field}"):
        read_jsonl(tmp_path / "t.jsonl", "evalalign")


def test_llava_reader_parses_protocol_questions_and_answers(tmp_path):
    p = load_protocol("evalalign")
    records = [{"id": "x1", "image": "m/1.png", "conversations": [
        {"from": "human", "value": p.render_question("Color", {"Color": "car: red;"})},
        {"from": "gpt", "value": "1"},
        {"from": "human", "value": p.render_question("body").replace("<image>\n", "")},
        {"from": "gpt", "value": "-1.There are no human or animal body in the picture"}]}]
    (tmp_path / "c.json").write_text(json.dumps(records))
    got = read_llava(tmp_path / "c.json", p)
    assert [(a.aspect, a.score, a.elements) for a in got] == [("alignment/Color", 1.0, "car: red;"),
                                                              ("faithfulness/body", None, None)]
    # the same question rendered again from the annotation is byte-identical to the file's
    assert build_target(p, got[0]).question == records[0]["conversations"][0]["value"]
    assert match_question(p, "<image>\nWhat is this?") is None


@pytest.mark.parametrize("change, message", [
    (lambda r: r["conversations"][1].update(value="7"), r"record 0 \(id 'x1'\): field conversations\[1\]\.value"),
    (lambda r: r["conversations"][0].update(value="<image>\nHow old?"),
     r"field conversations\[0\]\.value: not a question"),
    (lambda r: r.pop("image"), "field image"),
    (lambda r: r["conversations"].pop(), "field conversations"),
])
def test_llava_reader_errors(tmp_path, change, message):
    p = load_protocol("evalalign")
    record = {"id": "x1", "image": "a.png", "conversations": [{"from": "human", "value": p.render_question("common")},
                                                              {"from": "gpt", "value": "3"}]}
    change(record)
    (tmp_path / "c.json").write_text(json.dumps([record]))
    with pytest.raises(InputError, match=message):
        read_llava(tmp_path / "c.json", p)


def test_evalmuse_reader_means_elements_and_unscored(tmp_path):
    records = [{"prompt": "a puffin on a rock", "img_path": "m/1.png", "total_score": [4, 3, 2],
                "element_score": {"puffin (animal)": [1, 0, 1], "rock (object)": [1, 1, 1]}},
               {"prompt": "a cat", "img_path": "m/2.png", "element_score": {"cat (animal)": None}}]
    (tmp_path / "train_list.json").write_text(json.dumps(records))
    got = read_evalmuse(tmp_path / "train_list.json")
    assert [(a.aspect, a.elements, a.score) for a in got[:3]] == [
        ("imatch/overall", None, 3.0), ("element/match", "puffin (animal)", pytest.approx(2 / 3)),
        ("element/match", "rock (object)", 1.0)]
    assert math.isnan(got[3].score) and math.isnan(got[4].score)  # the unscored record: unlabelled
    target = build_target(load_protocol("imatch"), got[1])
    assert '"puffin (animal)"' in target.question and target.answer == "Yes"
    (tmp_path / "bad.json").write_text(json.dumps([{"img_path": "m/3.png", "total_score": [3]}]))
    with pytest.raises(InputError, match=r"record 0 \(img_path 'm/3.png'\): field prompt"):
        read_evalmuse(tmp_path / "bad.json")


def test_missing_and_corrupt_images_are_skipped_and_counted(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "ok.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    rows = [{"image": name, "aspect": "common", "score": 3} for name in ("ok.png", "bad.png", "gone.png", "ok.png")]
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    kept, report = read_source(tmp_path / "t.jsonl", format="jsonl", protocol="evalalign")
    assert [Path(a.image).name for a in kept] == ["ok.png", "ok.png"]
    assert (report.read, report.kept, len(report.skipped)) == (4, 2, 2)
    assert report.skipped[0][0].endswith("line 2") and report.skipped[0][1].startswith("unreadable")
    assert report.skipped[1][1].startswith("missing")
    with pytest.raises(InputError, match="format='csv'"):
        read_source(tmp_path / "t.jsonl", format="csv", protocol="evalalign")


# ---------------------------------------------------------------- targets
def test_binning_into_levels_and_yes_no():
    imatch = load_protocol("imatch")
    overall = imatch.aspect("imatch/overall")
    # 15 levels 1 + 4 (i - 1) / 14: 3.6 is nearest level 10 (3.571..) = "J"; 1.0 -> "A"; 5.0 -> "O"
    assert [nearest_option(overall, s) for s in (1.0, 3.6, 5.0, 1.14, 1.15)] == ["A", "J", "O", "A", "B"]
    match = imatch.aspect("element/match")
    assert [nearest_option(match, s) for s in (0.0, 0.49, 0.5, 2 / 3)] == ["No", "No", "Yes", "Yes"]
    body = load_protocol("evalalign").aspect("body")
    assert nearest_option(body, None) == "-1"
    with pytest.raises(InputError, match="no not-applicable option"):
        nearest_option(match, None)
    with pytest.raises(InputError, match="unlabelled"):
        nearest_option(match, math.nan)


def test_targets_render_exactly_the_protocol_question():
    p = load_protocol("evalalign")
    elements = {"Count": "elephant: a; bird: a;"}
    t = build_target(p, Annotation("x.png", "Count", 2.0, elements=elements["Count"]))
    assert t.question == p.render_question("Count", elements) and t.answer == "2" and t.labels == ("0", "1", "2")
    imatch = load_protocol("imatch")
    t = build_target(imatch, Annotation("x.png", "element/match", 0.0, prompt="a cat", elements="cat (animal)"))
    assert t.question == imatch.render_question("element/match", "cat (animal)", prompt="a cat") and t.answer == "No"


# ---------------------------------------------------------------- augmentations
def test_lighting_is_seeded_and_is_brightness_contrast_colour():
    img = Image.new("RGB", (6, 6), (90, 140, 200))
    img.putpixel((0, 0), (10, 20, 30))
    out = apply_lighting(img, sample_rng(1, 2, 3), 0.3)
    rng = sample_rng(1, 2, 3)
    expected = img
    for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        factor = rng.uniform(0.7, 1.3)
        assert 0.7 <= factor <= 1.3
        expected = enhancer(expected).enhance(factor)
    assert list(out.get_flattened_data()) == list(expected.get_flattened_data()) != list(img.get_flattened_data())
    assert list(apply_lighting(img, sample_rng(1, 2, 4), 0.3).get_flattened_data()) != list(out.get_flattened_data())
    assert augment_image(img, AugmentConfig(), sample_rng(0, 0, 0)) is img  # off: untouched


def test_flip_switch():
    img = Image.new("RGB", (4, 4), "white")
    img.putpixel((0, 0), (255, 0, 0))
    seen = {augment_image(img, AugmentConfig(flip=True), sample_rng(0, 0, i)).getpixel((3, 3)) for i in range(20)}
    assert (255, 0, 0) in seen and (255, 255, 255) in seen


def test_category_labels_switch():
    imatch = load_protocol("imatch")
    ann = Annotation("x.png", "element/match", 1.0, prompt="a puffin", elements="puffin (animal)")
    on = build_target(imatch, ann, augment=AugmentConfig(category_labels=True))
    off = build_target(imatch, ann, augment=AugmentConfig(category_labels=False))
    assert '"puffin (animal)"' in on.question and '"puffin"' in off.question and "(animal)" not in off.question


def test_prompt_type_switch_uses_every_phrasing_with_the_same_content():
    imatch = load_protocol("imatch")
    ann = Annotation("x.png", "imatch/overall", 4.0, prompt="a puffin on a rock")
    seen = {build_target(imatch, ann, augment=AugmentConfig(prompt_types=True), rng=sample_rng(0, 0, i)).question
            for i in range(60)}
    assert len(seen) == 1 + len(IMATCH_PHRASINGS["imatch/overall"])
    assert imatch.render_question("imatch/overall", prompt=ann.prompt) in seen
    assert all("a puffin on a rock" in q and q.startswith("<image>\n") for q in seen)
    assert {build_target(imatch, ann, rng=sample_rng(0, 0, i)).question for i in range(20)} == {
        imatch.render_question("imatch/overall", prompt=ann.prompt)}  # off: the protocol's own question


def test_score_noise_switch():
    values = [perturb_score(3.0, sample_rng(0, 0, i), 0.1, 1.0, 5.0) for i in range(4000)]
    mean = sum(values) / len(values)
    std = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5
    assert abs(mean - 3.0) < 0.03 and abs(std - 0.4) < 0.03  # std = 0.1 x the 1-5 range
    assert min(perturb_score(1.0, sample_rng(0, 0, i), 0.5, 1.0, 5.0) for i in range(200)) == 1.0  # clipped
    assert perturb_score(3.0, sample_rng(0, 0, 0), 0.0, 1.0, 5.0) == 3.0
    imatch = load_protocol("imatch")
    ann = Annotation("x.png", "imatch/overall", 3.0, prompt="p")
    answers = {build_target(imatch, ann, augment=AugmentConfig(score_noise=0.1), rng=sample_rng(0, 0, i)).answer
               for i in range(200)}
    assert "H" in answers and len(answers) >= 4  # 3.0 is level H; noise spreads it over neighbours


def test_pseudo_label_selection_keeps_confident_answers():
    from evalalign_metric.training.evaluation import Prediction
    from evalalign_metric.training.pseudo import select_confident

    p = load_protocol("evalalign")
    ann = Annotation("x.png", "faithfulness/body", math.nan)
    preds = [Prediction(ann, ("-1", "0", "1", "2", "3", "4"), probs, label, 0.0, 0.0, 0.0)
             for probs, label in (([0.92, 0.02, 0.02, 0.02, 0.01, 0.01], "-1"),
                                  ([0.0, 0.0, 0.05, 0.05, 0.9, 0.0], "3"), ([0.5, 0.5, 0, 0, 0, 0], "-1"))]
    kept = select_confident(p, preds, threshold=0.9)
    assert [(a.score, a.pseudo) for a in kept] == [(None, True), (3.0, True)]
    with pytest.raises(InputError, match="threshold"):
        select_confident(p, preds, threshold=0.0)


# ---------------------------------------------------------------- encoding and loss
def test_loss_mask_covers_only_answer_tokens(base_judge):
    from evalalign_metric.judge import load_judge

    judge = load_judge(base_judge, cache=False)
    target = Target("<image>\nDoes the image show a red square? Answer yes or no.", ("yes", "no"), "no", "a")
    ids, labels = TargetEncoder(judge).encode(target)
    encoded = judge.encode(target.question, target.labels)
    answer = list(encoded.option_ids[1])
    assert ids[: len(encoded.prompt_ids)] == list(encoded.prompt_ids)
    assert [t for t in labels if t != IGNORE] == answer + [judge.tokenizer.eos_token_id]
    assert labels[: len(encoded.prompt_ids)] == [IGNORE] * len(encoded.prompt_ids)
    pixels, n = judge.prepare_image(Image.new("RGB", (16, 16)))
    batch = collate([(pixels, n)], [(0, ids, labels)], image_token_id=judge.image_token_id,
                    pad_token_id=judge.pad_token_id)
    row = batch.labels[0]
    image_positions = batch.input_ids[0] == judge.image_token_id
    assert int(image_positions.sum()) == n and bool((row[image_positions] == IGNORE).all())
    assert int((row != IGNORE).sum()) == len(answer) + 1


def test_shared_vision_loss_equals_model_forward(base_judge):
    """The loss with one vision pass per image equals cross-entropy on the model's own full forward."""
    from evalalign_metric.judge import load_judge

    judge = load_judge(base_judge, cache=False)
    enc = TargetEncoder(judge)
    imgs = [judge.prepare_image(Image.new("RGB", (16, 16), c)) for c in ((200, 0, 0), (0, 0, 200))]
    rows = []
    for i, (colour, answer) in enumerate([("red", "yes"), ("blue", "no"), ("red", "no")]):
        ids, labels = enc.encode(Target(f"<image>\nDoes the image show a {colour} square? Answer yes or no.",
                                        ("yes", "no"), answer, "a"))
        rows.append((i % 2, ids, labels))
    batch = collate(imgs, rows, image_token_id=judge.image_token_id, pad_token_id=judge.pad_token_id)
    shared, n_shared = AnswerLoss(judge.model, image_token_id=judge.image_token_id)(batch)
    per_row, n_row = AnswerLoss(judge.model, image_token_id=judge.image_token_id, shared_vision=False)(batch)
    pixels = {k: v[batch.row_image] for k, v in batch.pixels.items()}
    logits = judge.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, **pixels).logits
    reference = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                                  batch.labels[:, 1:].reshape(-1), ignore_index=IGNORE,
                                                  reduction="sum")
    assert int(n_shared) == int(n_row) == int((batch.labels != IGNORE).sum())
    assert torch.allclose(shared, reference, atol=1e-4) and torch.allclose(per_row, reference, atol=1e-4)


def test_packed_questions_give_the_loss_and_gradients_of_one_row_per_question(base_judge):
    """Packing an image's questions behind one shared prefix is an optimisation only."""
    from evalalign_metric.judge import load_judge

    judge = load_judge(base_judge, cache=False)
    enc = TargetEncoder(judge)
    imgs = [judge.prepare_image(Image.new("RGB", (16, 16), c)) for c in ((200, 0, 0), (0, 0, 200), (0, 150, 0))]
    questions = [(0, "red square", "yes"), (1, "blue square", "no"), (0, "red circle", "no"), (0, "square", "yes"),
                 (2, "green thing", "yes")]  # image 0 asked three times, the others once; rows interleaved
    rows = []
    for image, what, answer in questions:
        ids, labels = enc.encode(Target(f"<image>\nDoes the image show a {what}? Answer yes or no.",
                                        ("yes", "no"), answer, "a"))
        rows.append((image, ids, labels))
    batch = collate(imgs, rows, image_token_id=judge.image_token_id, pad_token_id=judge.pad_token_id)
    results = []
    for pack in (False, True):
        judge.model.zero_grad()
        module = AnswerLoss(judge.model, image_token_id=judge.image_token_id, pack=pack)
        assert module.pack is pack
        loss, n = module(batch)
        loss.backward()
        grads = {k: p.grad.clone() for k, p in judge.model.named_parameters() if p.grad is not None}
        results.append((float(loss), int(n), grads))
    (plain, n_plain, g_plain), (packed, n_packed, g_packed) = results
    assert n_plain == n_packed == int((batch.labels != IGNORE).sum())
    assert abs(plain - packed) < 1e-4 * max(1.0, abs(plain))
    assert g_plain.keys() == g_packed.keys() and len(g_plain) > 10
    for k in g_plain:
        assert torch.allclose(g_plain[k], g_packed[k], atol=1e-5, rtol=1e-4), k
    packed_tokens = int(pack_by_image(batch).valid.sum())
    assert packed_tokens < int(batch.attention_mask.sum())  # fewer language-model tokens


# ---------------------------------------------------------------- training runs
def test_few_steps_lower_the_loss_and_the_output_loads_in_the_metric(data_dir, base_judge, tmp_path):
    from evalalign_metric import EvalAlignScore
    from evalalign_metric.judge import load_judge
    from evalalign_metric.training import train
    from evalalign_metric.training.features import AnswerLoss

    cfg = _config(data_dir, tmp_path / "out", base_judge, max_steps=12, log_every=1, warmup_steps=2)
    result = train(cfg, progress=False, log=lambda m: None)
    losses = [h["loss"] for h in result.history if "loss" in h]
    assert len(losses) == 12 and sum(losses[-3:]) / 3 < sum(losses[:3]) / 3
    # the same fixed batch, before and after
    before, after = load_judge(base_judge, cache=False), load_judge(tmp_path / "out", cache=False)
    protocol = load_protocol(str(data_dir / "p.json"))
    anns = read_jsonl(data_dir / "train.jsonl", protocol)[:8]
    values = []
    for judge in (before, after):
        enc = TargetEncoder(judge)
        images = [judge.prepare_image(Image.open(data_dir / a.image).convert("RGB")) for a in anns]
        rows = [(i, *enc.encode(build_target(protocol, a))) for i, a in enumerate(anns)]
        batch = collate(images, rows, image_token_id=judge.image_token_id, pad_token_id=judge.pad_token_id)
        with torch.no_grad():
            loss, n = AnswerLoss(judge.model, image_token_id=judge.image_token_id)(batch)
        values.append(float(loss / n))
    assert values[1] < values[0]
    assert result.evaluation["alignment/Match"]["n"] == 8
    metric = EvalAlignScore(model=str(tmp_path / "out"), protocol=str(tmp_path / "out" / "protocol.json"))
    metric.update([Image.open(data_dir / "0.png")], ["a red square"])
    assert 0.0 <= float(metric.compute()["alignment/Match"]) <= 1.0
    summary = json.loads((tmp_path / "out" / "training_summary.json").read_text())
    assert summary["steps"] == 12 and summary["data"]["train"]["kept"] == 40


@pytest.mark.parametrize("method", ["full", "lora"])
def test_resume_after_interruption_gives_identical_weights(data_dir, base_judge, tmp_path, method):
    from evalalign_metric.training import TrainingInterrupted, train

    extra = {"method": method, "lora": {"r": 2, "alpha": 4, "dropout": 0.2}} if method == "lora" else {}
    common = dict(max_steps=6, checkpoint_every=2, grad_accum=2, warmup_steps=1, **extra)
    aug = {"lighting": True, "score_noise": 0.05}
    whole = _config(data_dir, tmp_path / "whole", base_judge, **common) | {"augment": aug}
    train(whole, progress=False, log=lambda m: None)
    broken = _config(data_dir, tmp_path / "broken", base_judge, **common) | {"augment": aug}
    with pytest.raises(TrainingInterrupted):
        train(broken, progress=False, stop_after_steps=3, log=lambda m: None)  # killed after step 3; last save: 2
    assert (tmp_path / "broken" / "checkpoints" / "step-2").is_dir()
    assert not (tmp_path / "broken" / "checkpoints" / "step-4").exists()
    resumed = train(broken, progress=False, log=lambda m: None)
    assert resumed.resumed_from.endswith("step-2") and resumed.steps == 6
    a, b = _trainable(tmp_path / "whole"), _trainable(tmp_path / "broken")
    assert a.keys() == b.keys() and len(a) > 0
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_checkpoints_trained_on_another_base_or_method(data_dir, base_judge, tmp_path):
    from evalalign_metric.training import train

    base = tmp_path / "base"
    shutil.copytree(base_judge, base)
    cfg = _config(data_dir, tmp_path / "out", base, max_steps=2, checkpoint_every=2)
    train(cfg, progress=False, log=lambda m: None)
    moved = tmp_path / "moved"
    shutil.copytree(base, moved)  # the same weights and protocol in other folders: the same run, resumed
    shutil.copy(data_dir / "p.json", tmp_path / "p-copy.json")
    same = {**cfg, "model": {"base": str(moved)}, "protocol": str(tmp_path / "p-copy.json")}
    assert train(same, progress=False, log=lambda m: None).resumed_from
    weights = base / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # the last weight changed: another base judge at the same path
    weights.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"holds checkpoints of another run: model.base_weights was "
                                         r"'other weights', now 'these weights'; set training.resume: false"):
        train(cfg, progress=False, log=lambda m: None)
    lora = _config(data_dir, tmp_path / "out", moved, max_steps=2, method="lora")
    with pytest.raises(InputError, match="method was 'full', now 'lora'"):
        train(lora, progress=False, log=lambda m: None)
    fresh = _config(data_dir, tmp_path / "out", base, max_steps=2, resume=False)
    assert train(fresh, progress=False, log=lambda m: None).resumed_from is None  # starting over is allowed


@pytest.mark.slow
def test_resume_after_killing_a_real_process(data_dir, base_judge, tmp_path):
    """``evalalign train`` in a subprocess, killed once its first checkpoint exists, then run again."""
    import os
    import signal
    import subprocess
    import sys
    import time

    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # both runs in processes alike (threads change float sums)
    commands = {}
    for name in ("ref", "run"):
        cfg = _config(data_dir, tmp_path / name, base_judge, max_steps=30, checkpoint_every=2)
        (tmp_path / f"{name}.json").write_text(json.dumps(cfg))
        commands[name] = [sys.executable, "-m", "evalalign_metric.commands.train", "--config",
                          str(tmp_path / f"{name}.json"), "--no-progress"]
    assert subprocess.run(commands["ref"], capture_output=True, env=env).returncode == 0
    proc = subprocess.Popen(commands["run"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    # any checkpoint: step-2 itself is deleted once newer ones exist, and a loaded machine can poll past it
    checkpoints = tmp_path / "run" / "checkpoints"
    while not any(checkpoints.glob("step-*")) and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before its first checkpoint was seen"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL  # killed, not finished
    done = subprocess.run(commands["run"], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert "resumed from" in done.stdout
    a, b = _trainable(tmp_path / "ref"), _trainable(tmp_path / "run")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
@pytest.mark.subprocess
def test_two_processes_train_data_parallel(data_dir, base_judge, tmp_path):
    """``torchrun --nproc_per_node 2``: gloo data parallelism on CPU, each process on its slice of a batch."""
    import os
    import subprocess
    import sys

    cfg = _config(data_dir, tmp_path / "ddp", base_judge, max_steps=3, batch_size=2)
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m",
                           "evalalign_metric.commands.train", "--config", str(tmp_path / "c.json"), "--no-progress"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("judge saved to") == 1 and "; 2 processes" in done.stdout
    assert (tmp_path / "ddp" / "model.safetensors").is_file()


def test_pseudo_label_phase_adds_confident_unlabelled_data(data_dir, base_judge, tmp_path):
    from evalalign_metric.training import train

    cfg = _config(data_dir, tmp_path / "out", base_judge, max_steps=4)
    cfg["data"]["unlabelled"] = [{"format": "jsonl", "path": str(data_dir / "eval.jsonl")}]
    cfg["pseudo_labels"] = {"enabled": True, "threshold": 0.5, "epochs": 1}
    result = train(cfg, progress=False, log=lambda m: None)
    assert result.pseudo_labels == 8  # threshold 0.5 keeps every yes/no answer
    assert result.steps == 4 + 24 // 4  # then one epoch over 20 train + 4 pseudo-labelled images, 4 per step
    assert "pseudo-labels used: 8" in result.summary()


def test_lora_adapter_is_saved_alone_and_loads_through_the_metric(data_dir, base_judge, tmp_path):
    from evalalign_metric import EvalAlignScore
    from evalalign_metric.training import load_trained_judge, train

    cfg = _config(data_dir, tmp_path / "ad", base_judge, max_steps=3, method="lora", lora={"r": 2, "alpha": 4})
    train(cfg, progress=False, log=lambda m: None)
    out = tmp_path / "ad"
    files = {p.name for p in out.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "evalalign_judge.json", "protocol.json"} <= files
    assert "config.json" not in files and "model.safetensors" not in files
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == str(base_judge)
    images, prompts = [Image.open(data_dir / f"{i}.png") for i in (1, 2)], ["a blue square", "a red circle"]
    metric = EvalAlignScore(model=str(out), protocol=str(out / "protocol.json"))  # the adapter folder itself
    metric.update(images, prompts)
    merged = metric.compute()["alignment/Match"]
    # reference: the same adapter applied with peft, unmerged, on a separately loaded base judge
    import peft

    from evalalign_metric.judge import Judge, load_judge

    base = load_judge(base_judge, cache=False)
    unmerged = peft.PeftModel.from_pretrained(base.model, str(out))
    reference = EvalAlignScore(judge=Judge(unmerged, base.processor, backend=base.backend,
                                           chat_format=base.chat_format),
                               protocol=str(out / "protocol.json"))
    reference.update(images, prompts)
    assert abs(float(merged) - float(reference.compute()["alignment/Match"])) < 1e-5
    moved = load_trained_judge(out, base=str(base_judge))  # an explicit base gives the same judge
    again = EvalAlignScore(judge=moved, protocol=str(out / "protocol.json"))
    again.update(images, prompts)
    assert abs(float(again.compute()["alignment/Match"]) - float(merged)) < 1e-5
    lora_b = [v for k, v in unmerged.state_dict().items() if "lora_B" in k]
    assert lora_b and any(float(v.abs().max()) > 0 for v in lora_b)  # training moved the adapter off zero


def test_push_to_hub_uploads_the_folder_without_work_files(tmp_path):
    from evalalign_metric.training.config import HubConfig
    from evalalign_metric.training.export import push_to_hub

    calls = []

    class Api:
        def create_repo(self, repo_id, **kw):
            calls.append(("create", repo_id, kw))

        def upload_folder(self, **kw):
            calls.append(("upload", kw))
            return type("Info", (), {"commit_url": "https://hub/commit/1"})()

    url = push_to_hub(tmp_path, HubConfig(repo_id="me/judge", private=True), api=Api())
    assert url == "https://hub/commit/1"
    assert calls[0] == ("create", "me/judge", {"private": True, "exist_ok": True})
    assert calls[1][1]["repo_id"] == "me/judge" and "checkpoints/*" in calls[1][1]["ignore_patterns"]


def test_cli_train_prints_a_summary(data_dir, base_judge, tmp_path, capsys):
    from evalalign_metric.cli import main

    cfg = _config(data_dir, "out", base_judge, max_steps=2)
    (tmp_path / "run.json").write_text(json.dumps(cfg))
    assert main(["train", "--config", str(tmp_path / "run.json"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"judge saved to {tmp_path / 'out'}" in out and "optimizer steps: 2" in out and "eval alignment/Match" in out
    (tmp_path / "bad.json").write_text(json.dumps({**cfg, "training": {"lr": -1}}))
    assert main(["train", "--config", str(tmp_path / "bad.json")]) == 2
    assert "training.lr must be positive" in capsys.readouterr().err


@pytest.mark.parametrize("change, message", [
    ({"model": {}}, "config.model needs exactly one"),
    ({"training": {"method": "qlora"}}, "config.training.method must be one of"),
    ({"training": {"batch_size": 0}}, "config.training.batch_size must be positive"),
    ({"augment": {"lighting": "yes"}}, "config.augment.lighting must be true or false"),
    ({"data": {"train": [{"format": "csv", "path": "x"}]}}, r"config.data.train\[0\].format"),
    ({"push_to_hub": {"repo_id": "nope"}}, "config.push_to_hub.repo_id"),
    ({"extra": 1}, r"config has unknown key\(s\) \['extra'\]"),
    ({"training": {"freeze": "model.*"}}, "config.training.freeze must be a list of parameter-name patterns"),
    ({"training": {"freeze": [""]}}, r"config.training.freeze\[0\] must be a non-empty string"),
    ({"model": {"build": {}, "phrase_tokens": "a red square"}}, "config.model.phrase_tokens must be a list of texts"),
    ({"model": {"build": {}, "phrase_tokens": [" red"]}}, "without leading or trailing spaces; got"),
    ({"model": {"base": "b", "vocabulary": ["a red square"]}},
     r"config.model.vocabulary applies to a judge built from scratch \(config.model.build\).*only "
     r"config.model.phrase_tokens and the template text of config.model.protocols can be added"),
    ({"model": {"base": "b", "protocols": "imatch"}}, "config.model.protocols must be a list of protocol names"),
    ({"model": {"base": "b", "phrase_tokens": [" red"]}}, "without leading or trailing spaces; got"),
])
def test_config_errors_name_the_key(change, message):
    raw = {"output_dir": "o", "model": {"base": "b"}, "data": {"train": [{"format": "jsonl", "path": "t"}]}}
    with pytest.raises(InputError, match=message):
        config_from_dict({**raw, **change})


def test_phrase_tokens_are_single_tokens_of_a_judge_built_by_the_trainer(data_dir, tmp_path):
    from transformers import AutoTokenizer

    from evalalign_metric.training import train

    build = {"image_size": 16, "vision": "clip", "patch_size": 8, "vision_hidden": 16, "vision_layers": 1,
             "vision_heads": 2, "text_hidden": 16, "text_layers": 1, "text_heads": 2, "text_kv_heads": 1,
             "vocab_size": 300}
    cfg = _config(data_dir, tmp_path / "out", data_dir, max_steps=1)
    cfg["model"] = {"build": build, "phrase_tokens": ["a red square"]}
    result = train(cfg, progress=False)
    tok = AutoTokenizer.from_pretrained(result.output_dir)
    question = "Does the image show a red square? Does the image show a blue square?"
    pieces = tok.tokenize(question)
    assert pieces.count("a red square") == 1  # the listed phrase, wherever it occurs, is one token
    assert "a blue square" not in pieces and len(tok.tokenize("a blue square")) > 1  # an unlisted one is not
    plain = AutoTokenizer.from_pretrained(tmp_path / "out" / "base")
    assert plain.tokenize(question) == pieces  # the built base and the trained judge share the tokenizer


def test_phrase_tokens_added_to_a_base_judge_start_as_the_mean_of_their_pieces(tmp_path):
    from evalalign_metric.judge import load_judge
    from evalalign_metric.training.build import add_phrase_tokens

    judge = load_judge(_tiny_built_judge(tmp_path), cache=False)
    tok, model = judge.processor.tokenizer, judge.model.eval()
    phrase = "red square on the left"
    pieces = tok(phrase, add_special_tokens=False)["input_ids"]
    assert len(pieces) > 1
    other = tok("a blue circle", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        before = model(input_ids=other).logits
    old_in = model.get_input_embeddings().weight.detach().clone()
    old_out = model.get_output_embeddings().weight.detach().clone()
    assert add_phrase_tokens(model, tok, [phrase, phrase]) == [phrase]
    assert add_phrase_tokens(model, tok, [phrase]) == []  # already held: nothing added twice
    new_id = tok.convert_tokens_to_ids(phrase)
    assert tok.tokenize("a " + phrase)[-1] == phrase
    new_in, new_out = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    assert new_in.shape[0] == new_out.shape[0] == len(tok) == old_in.shape[0] + 1
    torch.testing.assert_close(new_in[new_id], old_in[pieces].mean(dim=0))
    torch.testing.assert_close(new_out[new_id], old_out[pieces].mean(dim=0))
    torch.testing.assert_close(new_in[: old_in.shape[0]], old_in)  # every other token keeps its row
    with torch.no_grad():  # a text without the phrase reads as before (one more logit: the new token)
        torch.testing.assert_close(model(input_ids=other).logits[..., : before.shape[-1]], before)


def test_a_phrase_token_can_start_like_another_text(tmp_path):
    from evalalign_metric.judge import load_judge
    from evalalign_metric.training.build import add_phrase_tokens

    judge = load_judge(_tiny_built_judge(tmp_path), cache=False)
    tok, model = judge.processor.tokenizer, judge.model
    source = tok("red square on the left", add_special_tokens=False)["input_ids"]
    old_in = model.get_input_embeddings().weight.detach().clone()
    assert add_phrase_tokens(model, tok, ["blue circle left"], like={"blue circle left": "red square on the left"})
    new_id = tok.convert_tokens_to_ids("blue circle left")
    torch.testing.assert_close(model.get_input_embeddings().weight[new_id], old_in[source].mean(dim=0))


@pytest.mark.parametrize("model, message", [
    ({"base": "b", "phrase_tokens": ["a b"], "phrase_tokens_like": {"c d": "x"}}, r"names \['c d'\], not in"),
    ({"base": "b", "phrase_tokens": ["a b"], "phrase_tokens_like": {"a b": ""}}, "must map phrases to non-empty"),
    ({"build": {}, "phrase_tokens": ["a b"], "phrase_tokens_like": {"a b": "x"}}, "applies to a base judge"),
])
def test_phrase_tokens_like_errors_name_the_key(model, message):
    raw = {"output_dir": "o", "model": model, "data": {"train": [{"format": "jsonl", "path": "t"}]}}
    with pytest.raises(InputError, match=message):
        config_from_dict(raw)


def test_trainer_adds_phrase_tokens_to_a_base_judge(data_dir, tmp_path):
    from transformers import AutoTokenizer

    from evalalign_metric.training import train

    base = _tiny_built_judge(tmp_path)
    cfg = _config(data_dir, tmp_path / "out", base, max_steps=1)
    cfg["model"] = {"base": str(base), "phrase_tokens": ["a red square"]}
    result = train(cfg, progress=False)
    tok = AutoTokenizer.from_pretrained(result.output_dir)
    assert tok.tokenize("Does the image show a red square?").count("a red square") == 1
    assert "a red square" not in AutoTokenizer.from_pretrained(base).get_vocab()  # the base is left as it was


def test_trainer_adds_the_template_text_of_further_protocols_to_a_base_judge(data_dir, tmp_path):
    from transformers import AutoTokenizer

    from evalalign_metric.protocol import load_protocol
    from evalalign_metric.training import train
    from evalalign_metric.training.build import template_pieces

    base = _tiny_built_judge(tmp_path)
    cfg = _config(data_dir, tmp_path / "out", base, max_steps=1)
    cfg["model"] = {"base": str(base), "protocols": ["imatch"]}
    logged = []
    result = train(cfg, progress=False, log=logged.append)
    tok, plain = AutoTokenizer.from_pretrained(result.output_dir), AutoTokenizer.from_pretrained(base)
    element = load_protocol("imatch").aspect("element/match").template
    pieces = [p for p in template_pieces(element) if len(p) > 1]
    question = element.replace("{prompt}", "a red square").replace("{element}", "red square (color)")
    assert all(p in tok.tokenize(question) for p in pieces)  # each piece of the template is one token
    assert len(tok.tokenize(question)) < len(plain.tokenize(question)) / 3
    other = "<image>\nDoes the image show a red square on the left? Answer yes or no."
    assert tok.tokenize(other) == plain.tokenize(other)  # a question of another protocol reads as before
    assert any("template tokens of ['imatch']" in line for line in logged)


def test_an_element_category_weight_weighs_only_that_category_of_a_per_element_aspect():
    from evalalign_metric.protocol import load_protocol
    from evalalign_metric.training.annotations import Annotation
    from evalalign_metric.training.trainer import aspect_weight_keys, question_weight

    weights = aspect_weight_keys(load_protocol("imatch"), {"element/match": 2, "element/match (spatial)": 5})
    rows = [Annotation("a.png", "element/match", 1, prompt="p", elements="circle left of the square (spatial)"),
            Annotation("a.png", "element/match", 1, prompt="p", elements="red circle (color)"),
            Annotation("a.png", "imatch/overall", 3, prompt="p")]
    assert [question_weight(weights, a) for a in rows] == [5, 2, 1.0]
    with pytest.raises(InputError, match=r"'overall \(spatial\)': a category weight needs a per-element aspect"):
        aspect_weight_keys(load_protocol("imatch"), {"overall (spatial)": 2})
    with pytest.raises(InputError, match="one of the categories"):
        aspect_weight_keys(load_protocol("imatch"), {"element/match (colour)": 2})
    with pytest.raises(InputError, match=r"names 'nope \(spatial\)', not an aspect of protocol 'imatch'"):
        aspect_weight_keys(load_protocol("imatch"), {"nope (spatial)": 2})


def _tiny_built_judge(tmp_path):
    from evalalign_metric.training.build import BuildSpec, build_judge

    spec = BuildSpec(image_size=16, vision="clip", patch_size=8, vision_hidden=16, vision_layers=1, vision_heads=2,
                     text_hidden=16, text_layers=1, text_heads=2, text_kv_heads=1, vocab_size=300)
    corpus = ["<image>\nDoes the image show a red square on the left? Answer yes or no.", "a blue circle"]
    return build_judge(spec, tmp_path / "built", corpus=corpus)


def test_spatial_phrases_are_the_elements_scene_prompts_write():
    from evalalign_metric.synthetic import scenes

    phrases = set(scenes.spatial_phrases())
    written = set()
    for seed in range(400):
        scene = scenes.random_scene(scenes.random_state(seed))
        for row in scenes.scene_annotations(scene, "x.png", random.Random(seed), prompts=3, faithfulness=False):
            if row["elements"]["Spatial"] != "none":
                written.add(row["elements"]["Spatial"])
    assert written == phrases  # every phrase occurs, and prompts write no other
    assert "triangle: on the right of the circle;" in phrases and len(phrases) == 3 * 2 * 4


def test_config_yaml_and_relative_paths(tmp_path):
    from evalalign_metric.training.config import load_config

    pytest.importorskip("yaml")
    (tmp_path / "c.yaml").write_text("output_dir: out\nmodel: {base: judge}\ndata:\n  train:\n"
                                     "    - {format: jsonl, path: t.jsonl, image_root: imgs}\n"
                                     "training: {method: lora, lora: {r: 4, alpha: 8}}\n")
    cfg = load_config(tmp_path / "c.yaml")
    assert cfg.output_dir == str(tmp_path / "out") and cfg.data.train[0].image_root == str(tmp_path / "imgs")
    assert (cfg.training.method, cfg.training.lora.r) == ("lora", 4)


# ---------------------------------------------------------------- scenes
def test_scene_truth_by_hand():
    scene = scenes.Scene((scenes.Group("circle", "red", 2), scenes.Group("square", "blue", 1)), "left", 3, seed=1)
    exact = scene.claims()
    assert scenes.claims_prompt(exact) == ("two red circles on the left of a blue square", {
        "Object": "circle; square;", "Count": "circle: two; square: a;", "Color": "circle: red; square: blue;",
        "Style": "none", "Action": "none", "Spatial": "circle: on the left of the square;"})
    wrong = scenes.Claims((scenes.Group("circle", "red", 3), scenes.Group("triangle", "blue", 1)), "right")
    # circle present, triangle absent; counts: circle wrong (3 != 2), triangle absent; colours: circle right
    assert scenes.alignment_truth(scene, wrong) == {"Object": 1, "Count": 0, "Color": 1, "Spatial": 0}
    swapped = scenes.Claims((scenes.Group("square", "blue", 1), scenes.Group("circle", "red", 2)), "right")
    assert scenes.alignment_truth(scene, swapped)["Spatial"] == 2  # the same relation, seen from the square
    assert scenes.imatch_truth(scene, exact) == 5.0
    assert scenes.imatch_truth(scene, wrong) == 1.0 + 4.0 * 2 / 7  # 2 of 7 claims hold


def test_scene_rendering_is_deterministic_and_rows_are_readable(tmp_path):
    scene = scenes.random_scene(scenes.random_state(4))
    assert list(scenes.render(scene).get_flattened_data()) == list(scenes.render(scene).get_flattened_data())
    clean = dataclasses.replace(scene, level=4, relation=None, groups=scene.groups[:1])
    # a clean single shape shows exactly its colour; a distorted one has cracks of background colour
    assert scenes.COLOURS[clean.groups[0].colour] in set(scenes.render(clean).get_flattened_data())
    scenes.render(scene).save(tmp_path / "s.png")
    rows = scenes.scene_annotations(scene, "s.png", random.Random(0), prompts=3)
    (tmp_path / "s.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    anns, report = read_source(tmp_path / "s.jsonl", format="jsonl", protocol="evalalign")
    assert report.kept == len(rows) and {a.aspect for a in anns} >= {"alignment/Object", "faithfulness/object",
                                                                     "faithfulness/body"}
    assert [a.score for a in anns if a.aspect == "faithfulness/body"] == [None]


def test_perturbed_claims_never_name_an_excluded_pair_but_still_vary():
    held_out = (("circle", "red"), ("square", "blue"), ("triangle", "green"))
    named, changed = set(), 0
    for seed in range(300):
        scene = scenes.random_scene(scenes.random_state(seed), exclude=held_out)
        claims = scenes.perturb(scene, random.Random(seed), p=0.8, exclude=held_out)
        named |= {(g.shape, g.colour) for g in claims.groups}
        changed += claims != scene.claims()
    assert not named & set(held_out)
    assert len(named) == 3 * len(scenes.COLOURS) - len(held_out)  # every other pair still appears
    assert changed > 250


def test_one_change_claims_differ_from_the_truth_in_exactly_one_attribute():
    held_out = (("circle", "red"), ("square", "blue"), ("triangle", "green"))
    kinds = collections.Counter()
    for seed in range(400):
        scene = scenes.random_scene(scenes.random_state(seed), exclude=held_out)
        claims = scenes.one_change(scene, random.Random(seed), exclude=held_out)
        true = scene.claims()
        assert not {(g.shape, g.colour) for g in claims.groups} & set(held_out)
        if [g.shape for g in claims.groups] != [g.shape for g in true.groups]:  # named the other way round
            assert claims.groups == true.groups[::-1] and claims.relation == scenes.OPPOSITE[true.relation]
            kinds["reordered"] += 1
            continue
        diffs = [(i, f) for i, (a, b) in enumerate(zip(claims.groups, true.groups))
                 for f in ("colour", "count") if getattr(a, f) != getattr(b, f)]
        diffs += [(None, "relation")] if claims.relation != true.relation else []
        assert len(diffs) == 1, (scene, claims)
        kinds[diffs[0][1]] += 1
    assert min(kinds.values()) > 30 and set(kinds) == {"colour", "count", "relation", "reordered"}
    # by hand: the square above the triangle, claimed below it (wrong) and the triangle below it (right)
    scene = scenes.Scene((scenes.Group("square", "red", 1), scenes.Group("triangle", "blue", 2)), "above", 4, seed=0)
    reversed_ = scenes.Claims(scene.groups, "below")
    assert scenes.alignment_truth(scene, reversed_) == {"Object": 2, "Count": 2, "Color": 2, "Spatial": 0}
    rows = scenes.scene_annotations(scene, "x.png", random.Random(0), prompts=3, one_changes=2, faithfulness=False)
    assert len({r["prompt"] for r in rows}) <= 5 and len(rows) == 5 * 4  # 5 prompts, 4 aspects each


def test_describe_rows_answer_where_each_kind_is_relative_to_each_other():
    scene = scenes.Scene((scenes.Group("triangle", "red", 1), scenes.Group("circle", "blue", 2)), "above", 4, seed=0)
    rows = {r["aspect"]: r["score"] for r in scenes.describe_annotations(scene, "x.png")}
    options = {a["name"]: [o["label"] for o in a["options"]] for a in scenes.describe_protocol()["aspects"]}
    answer = {k: options[k][int(v)] for k, v in rows.items()}
    assert answer["where_triangle_circle"] == "above" and answer["where_circle_triangle"] == "below"
    assert {answer[k] for k in answer if k.startswith("where_") and "square" in k} == {"none"}
    assert answer["count_circle"] == "2" and answer["colour_circle"] == "blue" and answer["count_square"] == "0"
    assert (answer["side_triangle"], answer["side_circle"], answer["side_square"]) == ("top", "bottom", "none")
    alone = scenes.Scene((scenes.Group("circle", "red", 3),), None, 4, seed=0)
    assert not any(r["aspect"].startswith("side_") for r in scenes.describe_annotations(alone, "x.png"))
    assert answer["shape_red"] == "triangle" and answer["shape_blue"] == "circle" and answer["shape_green"] == "none"
    assert (answer["shape_above"], answer["shape_below"], answer["shape_left"]) == ("triangle", "circle", "none")
    same = scenes.Scene((scenes.Group("triangle", "red", 1), scenes.Group("circle", "red", 1)), "left", 4, seed=0)
    asked = {r["aspect"] for r in scenes.describe_annotations(same, "x.png")}
    assert "shape_red" not in asked and "shape_blue" in asked  # two red groups: no single answer


def test_element_colour_rows_name_each_shape_as_an_element_and_answer_its_colour(tmp_path):
    from evalalign_metric.protocol.schema import protocol_from_dict

    protocol = protocol_from_dict(scenes.describe_protocol(element_colours=True))
    assert "colour_element" not in {a["name"] for a in scenes.describe_protocol()["aspects"]}
    scene = scenes.Scene((scenes.Group("triangle", "red", 1), scenes.Group("circle", "blue", 2)), "above", 4, seed=0)
    rows = scenes.element_colour_annotations(scene, "x.png")
    path = tmp_path / "colours.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    targets = [build_target(protocol, a) for a in read_jsonl(path, protocol)]
    asked = {t.question.splitlines()[-1]: t.answer for t in targets}
    assert asked == {"What color is (triangle;)?": "red", "What color is (circle;)?": "blue",
                     "What color is (square;)?": "none"}
    assert targets[0].labels == ("none", *scenes.COLOURS)
    rng = scenes.random_state(7)  # a shape painted off the palette has no colour word to answer: not asked
    painted = scenes.recolour(scene, rng)
    assert [r["elements"]["Shape"] for r in scenes.element_colour_annotations(painted, "x.png")] == ["square;"]


def test_element_count_rows_name_each_shape_as_an_element_and_answer_how_many(tmp_path):
    from evalalign_metric.protocol.schema import protocol_from_dict

    protocol = protocol_from_dict(scenes.describe_protocol(element_counts=True, max_count=4))
    assert "count_element" not in {a["name"] for a in scenes.describe_protocol()["aspects"]}
    scene = scenes.Scene((scenes.Group("triangle", "red", 4), scenes.Group("circle", "blue", 1)), "above", 4, seed=0)
    path = tmp_path / "counts.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in scenes.element_count_annotations(scene, "x.png")))
    targets = [build_target(protocol, a) for a in read_jsonl(path, protocol)]
    asked = {t.question.splitlines()[-1]: t.answer for t in targets}
    assert asked == {"How many (triangle;) are in the image?": "4", "How many (circle;) are in the image?": "1",
                     "How many (square;) are in the image?": "0"}
    assert targets[0].labels == ("0", "1", "2", "3", "4")


def test_recoloured_scenes_keep_clear_of_held_out_colours_and_ask_no_colour():
    held_out = scenes.HELD_OUT_PAIRS
    for seed in range(200):
        rng = scenes.random_state(seed)
        scene = scenes.recolour(scenes.random_scene(rng, exclude=held_out), rng, exclude=held_out)
        for g in scene.groups:
            rgb = tuple(int(g.colour[i:i + 2], 16) for i in (1, 3, 5))
            assert g.colour not in scenes.COLOURS and min(rgb) < 150
            for shape, colour in held_out:
                if shape == g.shape:
                    assert sum((a - b) ** 2 for a, b in zip(rgb, scenes.COLOURS[colour])) ** 0.5 >= scenes.NEAR_HELD_OUT
        pixels = set(scenes.render(dataclasses.replace(scene, level=scenes.MAX_LEVEL)).get_flattened_data())
        assert all(tuple(int(g.colour[i:i + 2], 16) for i in (1, 3, 5)) in pixels for g in scene.groups)
        asked = {r["aspect"] for r in scenes.describe_annotations(scene, "x.png")}
        present = {g.shape for g in scene.groups}
        assert {f"colour_{s}" for s in present} & asked == set()  # no colour word names these
        assert {f"count_{s}" for s in scenes.SHAPES} <= asked and "distortion" in asked


def test_swin_judges_know_where_their_image_tokens_are(tmp_path):
    """On a blank image every Swin token is alike unless the tower adds absolute positions (the default)."""
    import torch
    from transformers import LlavaForConditionalGeneration

    from evalalign_metric.training.build import BuildSpec, build_judge

    spec = BuildSpec(image_size=16, patch_size=4, vision_hidden=8, vision_layers=1, vision_heads=1, window_size=2,
                     text_hidden=16, text_layers=1, text_heads=2, text_kv_heads=1, vocab_size=300)
    spread = {}
    for positions in (True, False):
        path = build_judge(dataclasses.replace(spec, absolute_positions=positions), tmp_path / str(positions),
                           corpus=["a red circle"] * 4)
        model = LlavaForConditionalGeneration.from_pretrained(path).eval()
        with torch.no_grad():
            tokens = model.model.vision_tower(torch.full((1, 3, 16, 16), 0.3),
                                              output_hidden_states=True).hidden_states[-1]
        assert tokens.shape[1] == 16  # a 4x4 grid of tokens
        spread[positions] = (tokens - tokens.mean(1, keepdim=True)).abs().max().item()
    assert spread[False] < 1e-5 < 1e-2 < spread[True]


def test_clean_scenes_draw_every_shape_apart():
    """Counting questions need separate shapes: in a clean scene, one connected blob per shape."""
    from scipy import ndimage

    for seed in range(60):
        scene = dataclasses.replace(scenes.random_scene(scenes.random_state(seed)), level=scenes.MAX_LEVEL)
        pixels = np.asarray(scenes.render(scene)).astype(int)
        drawn = np.abs(pixels - pixels[0, 0]).sum(-1) > 30
        assert ndimage.label(drawn)[1] == sum(g.count for g in scene.groups), seed


def test_adapter_folders_without_a_base_or_weights_are_refused_by_name(tmp_path):
    from evalalign_metric.errors import JudgeLoadError
    from evalalign_metric.judge import load_judge

    (tmp_path / "adapter_config.json").write_text("{}")
    with pytest.raises(JudgeLoadError, match="does not name its base judge"):
        load_judge(tmp_path, cache=False)
    (tmp_path / "adapter_config.json").write_text('{"base_model_name_or_path": "x"')
    with pytest.raises(JudgeLoadError, match="adapter config .*adapter_config.json"):
        load_judge(tmp_path, cache=False)
    (tmp_path / "adapter_config.json").write_text('{"base_model_name_or_path": "somewhere"}')
    with pytest.raises(JudgeLoadError, match="no adapter_model.safetensors"):
        load_judge(tmp_path, cache=False)


def test_aspect_weights_choose_which_questions_an_image_gets():
    from evalalign_metric.training.trainer import draw_questions

    # uniform weights: every pair of 4 questions about equally often; a heavy aspect: nearly always drawn
    uniform = collections.Counter(tuple(draw_questions([1.0] * 4, 2, random.Random(s))) for s in range(6000))
    assert len(uniform) == 6 and max(uniform.values()) / min(uniform.values()) < 1.2
    heavy = collections.Counter(i for s in range(2000) for i in draw_questions([1, 1, 20, 1], 1, random.Random(s)))
    assert 0.85 < heavy[2] / 2000 < 0.92  # 20 / 23 = 0.870 by hand
    assert draw_questions([5.0, 0.5], 2, random.Random(0)) == [0, 1]  # k >= n: all of them


def test_aspect_weights_are_checked_against_config_and_protocol(tmp_path):
    from evalalign_metric.training.config import config_from_dict

    raw = {"output_dir": "out", "model": {"base": "judge"}, "data": {"train": [{"format": "jsonl", "path": "t.jsonl"}]}}
    with pytest.raises(InputError, match="data.aspect_weights needs config.data.questions_per_image"):
        config_from_dict({**raw, "data": {**raw["data"], "aspect_weights": {"Color": 3}}})
    with pytest.raises(InputError, match=r"aspect_weights\['Color'\] must be a positive number; got -1"):
        config_from_dict({**raw, "data": {**raw["data"], "aspect_weights": {"Color": -1}, "questions_per_image": 2}})
    cfg = config_from_dict({**raw, "data": {**raw["data"], "aspect_weights": {"Color": 3}, "questions_per_image": 2}})
    assert cfg.data.aspect_weights == {"Color": 3.0}


def test_aspect_weights_naming_no_aspect_of_the_protocol_are_refused(data_dir, base_judge, tmp_path):
    from evalalign_metric.training.config import config_from_dict
    from evalalign_metric.training.trainer import Trainer

    cfg = _config(data_dir, tmp_path / "out", base_judge, max_steps=1)
    cfg["data"] |= {"questions_per_image": 1, "aspect_weights": {"Colour": 2}}
    with pytest.raises(InputError, match="aspect_weights names 'Colour', not an aspect of protocol"):
        Trainer(config_from_dict(cfg), progress=False).run()


def test_each_group_of_a_relation_is_drawn_inside_the_half_its_side_question_names():
    checked = 0
    for seed in range(150):
        scene = scenes.random_scene(scenes.random_state(seed))
        if scene.relation is None or scene.groups[0].colour == scene.groups[1].colour:
            continue
        pixels = np.asarray(scenes.render(dataclasses.replace(scene, level=scenes.MAX_LEVEL))).astype(int)
        answers = {r["aspect"]: r["score"] for r in scenes.describe_annotations(scene, "x.png")}
        for g in scene.groups:
            ys, xs = np.nonzero(np.abs(pixels - np.array(scenes.COLOURS[g.colour])).sum(-1) < 30)
            half = list(scenes.HALVES)[answers[f"side_{g.shape}"] - 1]
            assert {"left": xs.max() < 32, "right": xs.min() >= 32, "above": ys.max() < 32,
                    "below": ys.min() >= 32}[half], (seed, g)
            checked += 1
    assert checked > 100


def test_the_trainer_draws_each_images_questions_by_aspect_weight(data_dir, base_judge, tmp_path):
    import accelerate

    from evalalign_metric.training.trainer import Trainer

    two = {**YESNO, "aspects": YESNO["aspects"] + [
        {"name": "Other", "dimension": "alignment", "template": "<image>\nIs it {prompt}? Answer yes or no.",
         "options": [{"label": "yes", "score": 1}, {"label": "no", "score": 0}]}]}
    (tmp_path / "two.json").write_text(json.dumps(two))
    rows = [json.loads(line) for line in (data_dir / "train.jsonl").read_text().splitlines()]
    rows += [{**r, "aspect": "Other"} for r in rows]  # every image: two Match and two Other questions
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    def asked(weights) -> collections.Counter:
        cfg = _config(data_dir, tmp_path / "out", base_judge, batch_size=20)
        cfg["protocol"] = str(tmp_path / "two.json")
        cfg["data"] = {"train": [{"format": "jsonl", "path": str(tmp_path / "t.jsonl"), "image_root": str(data_dir)}],
                       "questions_per_image": 1, "aspect_weights": weights}
        trainer = Trainer(config_from_dict(cfg), progress=False)
        trainer.accelerator = accelerate.Accelerator(cpu=True)
        trainer._data()
        trainer._model()
        units = trainer._units(trainer.train_annotations)
        counts = collections.Counter()
        for micro in range(4):
            batch = trainer._batch(units, 0, micro, trainer._micro_per_epoch(len(units)), {})
            for ids in batch.input_ids:
                counts["Other" if "Is it" in trainer.judge.tokenizer.decode(ids) else "Match"] += 1
        return counts

    even, heavy = asked({}), asked({"Other": 50})
    assert sum(even.values()) == sum(heavy.values()) == 80  # one question per image, 20 images per batch
    assert 25 < even["Other"] < 55 and heavy["Other"] > 70  # 100 / 102 = 0.98 of 80 by hand


def test_frozen_parameters_keep_their_values_and_the_rest_trains(data_dir, base_judge, tmp_path):
    from safetensors.torch import load_file

    from evalalign_metric.training import train

    cfg = _config(data_dir, tmp_path / "out", base_judge, max_steps=3, freeze=["model.multi_modal_projector.*"])
    train(cfg, progress=False, log=lambda m: None)
    before = load_file(str(base_judge / "model.safetensors"))
    after = load_file(str(tmp_path / "out" / "model.safetensors"))
    projector = [k for k in before if "multi_modal_projector" in k]
    assert len(projector) == 4 and all(torch.equal(before[k], after[k]) for k in projector)
    assert not torch.equal(before["language_model.model.layers.0.mlp.up_proj.weight"],
                           after["language_model.model.layers.0.mlp.up_proj.weight"])
    assert not any("multi_modal_projector" in k for k in _trainable(tmp_path / "out"))  # nor checkpointed


def test_a_freeze_pattern_matching_no_parameter_is_refused(data_dir, base_judge, tmp_path):
    from evalalign_metric.training import train

    cfg = _config(data_dir, tmp_path / "out", base_judge, max_steps=1, freeze=["model.projector.*"])
    with pytest.raises(InputError, match=r"training.freeze: pattern 'model.projector.\*' matches no parameter"):
        train(cfg, progress=False, log=lambda m: None)


def test_feature_layers_hand_the_projector_several_vision_stages_concatenated(tmp_path):
    from PIL import Image
    from transformers import LlavaForConditionalGeneration

    from evalalign_metric.judge import load_judge
    from evalalign_metric.training.build import BuildSpec, build_judge
    from evalalign_metric.training.features import image_features

    spec = BuildSpec(image_size=16, patch_size=4, vision_hidden=8, vision_layers=2, vision_heads=1, window_size=2,
                     text_hidden=16, text_layers=1, text_heads=2, text_kv_heads=1, vocab_size=300,
                     feature_layers=[1, -1])
    path = build_judge(spec, tmp_path / "j", corpus=["a red circle"] * 4)
    model = LlavaForConditionalGeneration.from_pretrained(path).eval()
    assert model.config.vision_feature_layer == [1, -1]
    assert model.model.multi_modal_projector.linear_1.in_features == 2 * 16  # both stages: 16 channels each
    pixels = load_judge(path, cache=False).prepare_image(Image.new("RGB", (16, 16), "red"))[0]["pixel_values"]
    with torch.no_grad():
        hidden = model.model.vision_tower(pixels, output_hidden_states=True).hidden_states
        expected = model.model.multi_modal_projector(torch.cat([hidden[1], hidden[-1]], dim=-1))
        features = image_features(model, pixels)
    assert torch.allclose(features, expected, atol=1e-6)
    with pytest.raises(InputError, match="model.build.feature_layers must be a non-empty list"):
        BuildSpec(feature_layers=[])


def test_a_linear_projector_hands_the_language_model_the_tower_features_at_their_length(tmp_path):
    from PIL import Image
    from transformers import LlavaForConditionalGeneration

    from evalalign_metric.judge import load_judge
    from evalalign_metric.training.build import BuildSpec, build_judge
    from evalalign_metric.training.features import image_features

    # the Swin tower's last stage has 2 * 8 = 16 channels, as wide as the language model: an isometry
    spec = BuildSpec(image_size=16, patch_size=4, vision_hidden=8, vision_layers=2, vision_heads=1, window_size=2,
                     text_hidden=16, text_layers=1, text_heads=2, text_kv_heads=1, vocab_size=300, projector="linear")
    path = build_judge(spec, tmp_path / "j", corpus=["a red circle"] * 4)
    model = LlavaForConditionalGeneration.from_pretrained(path).eval()
    assert model.config.projector_hidden_act == "linear"
    judge = load_judge(path, cache=False)
    pixels = torch.cat([judge.prepare_image(Image.new("RGB", (16, 16), c))[0]["pixel_values"]
                        for c in ("red", "navy")])
    with torch.no_grad():
        tower = model.model.vision_tower(pixels, output_hidden_states=True).hidden_states[-1]
        features = image_features(model, pixels)
    assert features.shape == tower.shape
    # every length and every distance between image tokens (of both images) is kept
    flat_in, flat_out = tower.reshape(-1, 16), features.reshape(-1, 16)
    assert torch.allclose(flat_out.norm(dim=-1), flat_in.norm(dim=-1), rtol=1e-4)
    assert torch.allclose(torch.cdist(flat_out, flat_out), torch.cdist(flat_in, flat_in), atol=1e-4)
    # the default stays LLaVA's GELU MLP, which does not
    mlp = LlavaForConditionalGeneration.from_pretrained(
        build_judge(dataclasses.replace(spec, projector="mlp"), tmp_path / "m", corpus=["a red circle"] * 4))
    assert mlp.config.projector_hidden_act == "gelu"
    with pytest.raises(InputError, match=r"model.build.projector must be one of \('mlp', 'linear'\); got 'conv'"):
        BuildSpec(projector="conv")


def test_rope_columns_give_tokens_of_one_image_column_one_rotary_phase(tmp_path):
    from transformers import LlavaForConditionalGeneration

    from evalalign_metric.training.build import BuildSpec, build_judge

    # 32 px / (4 px * 2) = 4 image tokens per row; head_dim 16 / 2 = 8
    spec = BuildSpec(image_size=32, patch_size=4, vision_hidden=8, vision_layers=2, vision_heads=1, window_size=2,
                     text_hidden=16, text_layers=1, text_heads=2, text_kv_heads=1, vocab_size=300, rope_columns=True)
    model = LlavaForConditionalGeneration.from_pretrained(build_judge(spec, tmp_path / "j", corpus=["a circle"] * 4))
    theta = model.config.text_config.rope_parameters["rope_theta"]
    assert theta == pytest.approx((4 / (2 * math.pi)) ** 4)
    # the rotary angles the model itself applies: position p and p + 4 (same column, next row) agree in the
    # second frequency (cos and sin), and no two columns of a row do
    positions = torch.arange(16)[None]
    cos, sin = model.model.language_model.rotary_emb(torch.zeros(1, 16, 16), positions)
    second = torch.stack([cos[0, :, 1], sin[0, :, 1]], dim=-1)  # frequency index 1 of 8
    assert torch.allclose(second[:12], second[4:], atol=1e-5)
    assert torch.cdist(second[:4], second[:4]).add(torch.eye(4)).min() > 0.5
    plain = LlavaForConditionalGeneration.from_pretrained(
        build_judge(dataclasses.replace(spec, rope_columns=False), tmp_path / "p", corpus=["a circle"] * 4))
    assert plain.config.text_config.rope_parameters["rope_theta"] == 10000.0  # Llama's own, by default
    with pytest.raises(InputError, match="model.build.rope_columns must be true or false; got 'yes'"):
        BuildSpec(rope_columns="yes")


def test_a_narrower_language_model_gets_an_orthonormal_linear_projection(tmp_path):
    from transformers import LlavaForConditionalGeneration

    from evalalign_metric.training.build import BuildSpec, build_judge

    spec = BuildSpec(image_size=16, patch_size=4, vision_hidden=16, vision_layers=2, vision_heads=1, window_size=2,
                     text_hidden=24, text_layers=1, text_heads=2, text_kv_heads=1, vocab_size=300, projector="linear")
    projector = LlavaForConditionalGeneration.from_pretrained(
        build_judge(spec, tmp_path / "j", corpus=["a red circle"] * 4)).model.multi_modal_projector
    w = projector.linear_1.weight.detach()  # 24 x 32: the tower is wider
    assert w.shape == (24, 32)
    assert torch.allclose(w @ w.T, torch.eye(24), atol=1e-5)  # orthonormal rows: no direction is zeroed
    assert torch.equal(projector.linear_2.weight.detach(), torch.eye(24))
    assert not projector.linear_1.bias.any() and not projector.linear_2.bias.any()


def test_freeze_patterns_use_the_checkpoints_own_names_under_lora_too(data_dir, base_judge, tmp_path):
    from evalalign_metric.training import train

    # peft renames parameters (base_model.model....); the patterns are matched before it wraps the model
    cfg = _config(data_dir, tmp_path / "out", base_judge, max_steps=1, method="lora",
                  freeze=["model.multi_modal_projector.*"])
    assert train(cfg, progress=False, log=lambda m: None).steps == 1


# ---------------------------------------------------------------- varied scenes and iMatch rows
def test_varied_scenes_hold_up_to_five_shapes_counts_to_four_and_every_look():
    from scipy import ndimage

    drawn, counts, backgrounds, scales, outlines = [], set(), set(), [], set()
    for seed in range(300):
        scene = scenes.random_scene(scenes.random_state(seed), varied=True, level=scenes.MAX_LEVEL)
        total = sum(g.count for g in scene.groups)
        drawn.append(total)
        counts |= {g.count for g in scene.groups}
        back = scene.look.background
        backgrounds.add("light" if back is None else "grey" if max(back) - min(back) <= 12 else "colour")
        scales.append(scene.look.scale)
        outlines.add(scene.look.outline)
        pixels = np.asarray(scenes.render(scene)).astype(int)
        blobs = np.abs(pixels - pixels[0, 0]).sum(-1) > 30
        assert ndimage.label(blobs)[1] == total, seed  # every shape apart, however many and however large
    assert max(drawn) == 5 and counts == {1, 2, 3, 4}
    assert backgrounds == {"light", "grey", "colour"} and outlines == {True, False}
    assert 0.5 <= min(scales) < 0.6 and 1.4 < max(scales) <= 1.5


def test_varied_scenes_leave_classic_scenes_as_they_were():
    # a classic scene draws nothing for its look: the same groups, seed and picture as before looks existed
    scene = scenes.random_scene(scenes.random_state(4))
    assert scene.look == scenes.Look() and max(g.count for g in scene.groups) <= scenes.MAX_COUNT
    dark = dataclasses.replace(scene, look=scenes.Look(background=(128, 128, 128)))
    assert scenes.render(dark).getpixel((0, 0)) == (128, 128, 128)
    assert scenes.render(scene).getpixel((0, 0)) != (128, 128, 128)


def test_scene_annotations_from_claims_already_drawn_are_the_rows_it_draws_itself():
    for seed in range(30):
        scene = scenes.random_scene(scenes.random_state(seed), varied=True)
        drawn = scenes.scene_claims(scene, random.Random(seed), prompts=3, one_changes=2, max_count=4)
        rows = scenes.scene_annotations(scene, "x.png", random.Random(seed), prompts=3, one_changes=2, max_count=4)
        assert scenes.scene_annotations(scene, "x.png", random.Random(seed), claims=drawn) == rows
        assert len({r["prompt"] for r in rows if "prompt" in r}) <= 5


def test_each_variation_changes_only_what_it_names():
    base = scenes.Scene((scenes.Group("circle", "red", 2),), None, 4, seed=5)
    rng = random.Random(0)
    assert scenes.vary(base, "clean", rng) == base
    assert scenes.vary(base, "half size", rng).look == scenes.Look(scale=0.5)
    assert scenes.vary(base, "outline", rng).look == scenes.Look(outline=True)
    coloured = scenes.vary(base, "coloured background", rng)
    assert min(math.dist(coloured.look.background, c) for c in scenes.COLOURS.values()) >= 110
    assert coloured.groups == base.groups
    many = scenes.vary(base, "4-5 shapes", rng)
    assert sum(g.count for g in many.groups) in (4, 5) and many.look == scenes.Look() and many.level == 4
    with pytest.raises(ValueError, match="variation 'sepia'"):
        scenes.vary(base, "sepia", rng)


def test_aspect_changes_make_only_the_named_aspect_false():
    scene = scenes.Scene((scenes.Group("circle", "red", 2), scenes.Group("square", "blue", 1)), "left", 4, seed=0)
    for seed in range(20):
        for aspect in ("Count", "Color", "Spatial"):
            truth = scenes.alignment_truth(scene, scenes.aspect_change(scene, aspect, random.Random(seed), max_count=4))
            assert {a for a, v in truth.items() if v < 2} == {aspect}
        # a shape swapped for the absent triangle: Object fails, and with it what is said about that shape
        swapped = scenes.aspect_change(scene, "Object", random.Random(seed))
        assert "triangle" in {g.shape for g in swapped.groups} and scenes.alignment_truth(scene, swapped)["Object"] == 1
    assert scenes.aspect_change(dataclasses.replace(scene, relation=None, groups=scene.groups[:1]), "Spatial",
                                random.Random(0)) is None


def test_imatch_rows_by_hand_and_readable_with_the_shipped_protocol(tmp_path):
    scene = scenes.Scene((scenes.Group("circle", "red", 2), scenes.Group("square", "blue", 1)), "left", 4, seed=1)
    wrong = scenes.Claims((scenes.Group("circle", "red", 3), scenes.Group("square", "green", 1)), "right")
    rows = scenes.imatch_annotations(scene, "s.png", [wrong])
    assert [(r["aspect"], r.get("elements"), r["score"]) for r in rows] == [
        ("imatch/overall", None, 1.0 + 4.0 * 4 / 7),  # both shapes, the circle's colour, the square's count: 4 of 7
        ("element/match", "circle (shape)", 1), ("element/match", "red circle (color)", 1),
        ("element/match", "three circles (counting)", 0), ("element/match", "square (shape)", 1),
        ("element/match", "green square (color)", 0), ("element/match", "a square (counting)", 1),
        ("element/match", "circle on the right of the square (spatial)", 0)]
    assert all(r["prompt"] == "three red circles on the right of a green square" for r in rows)
    assert "circle on the right of the square" in scenes.imatch_spatial_phrases()
    scenes.render(scene).save(tmp_path / "s.png")
    (tmp_path / "i.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    anns, report = read_source(tmp_path / "i.jsonl", format="jsonl", protocol="imatch")
    assert report.kept == 8
    overall = build_target(load_protocol("imatch"), anns[0])
    assert overall.answer == "I"  # 1 + 4 * 4/7 = 3.29 on 1-5 = 1 + 4 * (9 - 1) / 14: level 9 of 15, I
