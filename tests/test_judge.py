"""The judge: option tokenisation, teacher-forced option probabilities, greedy agreement, batching, loading."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from PIL import Image

from evalalign_metric.errors import InputError, JudgeLoadError, UnsupportedModelError
from evalalign_metric.images import mean_colour, pad_to_square
from evalalign_metric.judge import PlainEngine, load_judge
from evalalign_metric.judge.engine import expand_image_tokens
from evalalign_metric.protocol import load_protocol

PROTOCOL = load_protocol("evalalign")
ELEMENTS = {"Object": "cat; mat;", "Count": "cat: a;", "Color": "cat: black;", "Style": "photo;",
            "Spatial": "cat on mat;", "Action": "cat: sleeping;"}
ALL_QUESTIONS = [(text, aspect.labels) for aspect, text in PROTOCOL.questions_for(ELEMENTS)]


def _tokens(judge, question, labels):
    enc = judge.encode(question, labels)
    return [judge.tokenizer.convert_ids_to_tokens(list(ids)) for ids in enc.option_ids]


def test_llama_tokenizer_options_are_multi_token(tiny_judge_factory):
    judge = load_judge(tiny_judge_factory(tokenizer="llama"))
    tokens = _tokens(judge, *ALL_QUESTIONS[0])
    assert tokens[0] == ["▁-", "1"]
    assert tokens[1:] == [["▁", d] for d in "01234"]


def test_bytelevel_tokenizer_options_are_single_token(tiny_judge_factory):
    judge = load_judge(tiny_judge_factory(tokenizer="bytelevel"))
    tokens = _tokens(judge, *ALL_QUESTIONS[0])
    assert tokens[1:] == [["Ġ" + d] for d in "01234"]


def test_image_token_expansion_matches_the_processor(tiny_judge_path):
    judge = load_judge(tiny_judge_path)
    image = Image.new("RGB", (20, 20), "red")
    question, labels = ALL_QUESTIONS[6]
    enc = judge.encode(question, labels)
    pixels, n_tokens = judge.prepare_image(image)
    ours = expand_image_tokens(enc.prompt_ids, judge.image_token_id, n_tokens)
    theirs = judge.processor(images=[image], text=[judge.prompt_text(question)], return_tensors="pt")
    assert ours == theirs["input_ids"][0].tolist()
    assert torch.equal(pixels["pixel_values"], theirs["pixel_values"])


def _reference_log_probs(judge, image, question, labels):
    """Independent path: the processor on the full text 'prompt + answer', one forward per option."""
    padded = pad_to_square(image, mean_colour(judge.processor.image_processor.image_mean))
    prompt = judge.prompt_text(question)
    n_prompt = judge.processor(images=[padded], text=[prompt], return_tensors="pt")["input_ids"].shape[1]
    out = []
    for label in labels:
        full = judge.processor(images=[padded], text=[prompt + judge.chat_format.answer_prefix + label],
                               return_tensors="pt")
        with torch.no_grad():
            logits = judge.model(**full).logits[0].float()
        log_probs = torch.log_softmax(logits, -1)
        ids = full["input_ids"][0]
        out.append(sum(float(log_probs[p - 1, ids[p]]) for p in range(n_prompt, len(ids))))
    return torch.tensor(out)


@pytest.mark.parametrize("engine", ["plain", "prefix"])
@pytest.mark.parametrize("tokenizer,architecture", [("llama", "llava"), ("bytelevel", "llava"),
                                                    ("llama", "llava_next")])
def test_option_log_probs_equal_independent_teacher_forcing(tiny_judge_factory, tokenizer, architecture, engine):
    judge = load_judge(tiny_judge_factory(tokenizer=tokenizer, architecture=architecture), engine=engine)
    image = Image.new("RGB", (24, 16), (200, 30, 40))
    picks = [ALL_QUESTIONS[0], ALL_QUESTIONS[4], ALL_QUESTIONS[5]]
    [answers] = judge.answer([image], [picks])
    for (question, labels), dist in zip(picks, answers):
        expected = _reference_log_probs(judge, image, question, labels)
        torch.testing.assert_close(dist.log_probs, expected, atol=1e-5, rtol=0)
        assert dist.probs.sum().item() == pytest.approx(1.0, abs=1e-6)
        assert 0.0 <= dist.outside_mass <= 1.0


@pytest.mark.parametrize("engine", ["plain", "prefix"])
@pytest.mark.parametrize("architecture", ["llava", "llava_next"])
def test_batched_equals_unbatched(tiny_judge_factory, colour_images, architecture, engine):
    path = tiny_judge_factory(tokenizer="llama", architecture=architecture)
    one = load_judge(path, batch_size=1, engine=engine, cache=False)
    many = load_judge(path, batch_size=8, engine=engine, cache=False)
    questions = [ALL_QUESTIONS] * len(colour_images)
    for a_row, b_row in zip(one.answer(colour_images, questions), many.answer(colour_images, questions)):
        for a, b in zip(a_row, b_row):
            torch.testing.assert_close(a.log_probs, b.log_probs, atol=1e-5, rtol=0)


def _teach(judge, lessons, steps=80, lr=1e-2):
    """Fine-tune the tiny judge to answer `label` (then end of answer) for (image, question, label) lessons."""
    eos = judge.tokenizer.convert_tokens_to_ids(judge.chat_format.answer_suffix)
    batch = []
    for image, question, labels, label in lessons:
        enc = judge.encode(question, labels)
        pixels, n = judge.prepare_image(image)
        prompt = expand_image_tokens(enc.prompt_ids, judge.image_token_id, n)
        answer = list(enc.option_ids[labels.index(label)]) + [eos]
        ids = torch.tensor([prompt + answer])
        target = torch.tensor([[-100] * len(prompt) + answer])
        batch.append((ids, target, pixels))
    model = judge.model.train()
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr)
    for _ in range(steps):
        optimiser.zero_grad()
        loss = sum(model(input_ids=ids, labels=target, **pixels).loss for ids, target, pixels in batch)
        loss.backward()
        optimiser.step()
    model.eval()


def _greedy_option(judge, image, question, labels):
    padded = pad_to_square(image, mean_colour(judge.processor.image_processor.image_mean))
    inputs = judge.processor(images=[padded], text=[judge.prompt_text(question)], return_tensors="pt")
    with torch.no_grad():
        out = judge.model.generate(**inputs, max_new_tokens=4, do_sample=False)
    generated = out[0, inputs["input_ids"].shape[1]:].tolist()
    enc = judge.encode(question, labels)
    matches = [label for label, ids in zip(labels, enc.option_ids) if generated[: len(ids)] == list(ids)]
    return matches[0] if len(matches) == 1 else None


@pytest.mark.parametrize("tokenizer", ["llama", "bytelevel"])
def test_argmax_option_equals_greedy_generate(tiny_judge_factory, colour_images, tokenizer):
    judge = load_judge(tiny_judge_factory(tokenizer=tokenizer), cache=False)
    labels = PROTOCOL.aspect("body").labels
    # Short questions keep the fine-tuning fast; the options are the protocol's, "-1" included.
    faith = [(f"<image>\nQuestion {i}: rate the body, the answer is", labels) for i in range(3)]
    # One answer per colour, including "-1" (three tokens with both tokenizers) and single digits.
    answers = {"red": "2", "green": "-1", "blue": "4", "white": "0"}
    lessons = [(img, q, labels, answers[c]) for img, c in zip(colour_images, answers) for q, labels in faith[:2]]
    _teach(judge, lessons)
    compared = 0
    for image in colour_images:
        dists = judge.answer([image], [faith])[0]
        for (question, labels), dist in zip(faith, dists):
            greedy = _greedy_option(judge, image, question, labels)
            if greedy is None:
                continue
            assert dist.argmax_label == greedy
            compared += 1
    # Every taught (image, question) pair must be among the compared ones.
    assert compared >= len(lessons)
    taught = judge.answer([colour_images[1]], [faith[:1]])[0][0]
    assert taught.argmax_label == "-1"


def test_chat_format_comes_from_the_checkpoint_not_the_folder_name(tiny_judge_factory, tmp_path):
    plain = tiny_judge_factory(tokenizer="llama", write_sidecar=False)
    renamed = tmp_path / "evalalign-v1.0-34b"
    shutil.copytree(plain, renamed)
    assert load_judge(renamed, cache=False).chat_format.name == "vicuna_v1"
    chatml = tiny_judge_factory(tokenizer="llama", chat_format="chatml", write_sidecar=False)
    judge = load_judge(chatml, cache=False)
    assert judge.chat_format.name == "chatml"
    assert judge.prompt_text("<image>\nQ?").endswith("<|im_start|>user\n<image>\nQ?<|im_end|><|im_start|>assistant\n")
    assert load_judge(plain, chat_format="chatml", cache=False).chat_format.name == "chatml"


def test_processor_chat_template_agrees_with_the_chat_format(tiny_judge_path):
    judge = load_judge(tiny_judge_path)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Q?"}]}]
    rendered = judge.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert rendered == judge.prompt_text("<image>\nQ?")


def test_too_small_image_is_refused(tiny_judge_path):
    judge = load_judge(tiny_judge_path)
    with pytest.raises(InputError, match=r"images\[0\] is 3x2"):
        judge.answer([Image.new("RGB", (3, 2))], [ALL_QUESTIONS[:1]])


def test_question_without_image_token_is_refused(tiny_judge_path):
    judge = load_judge(tiny_judge_path)
    with pytest.raises(InputError, match="must contain '<image>'"):
        judge.answer([Image.new("RGB", (16, 16))], [[("Is it red?", ("0", "1"))]])


def test_pickle_weights_and_unknown_architectures_are_refused(tiny_judge_path, tmp_path):
    copy = tmp_path / "pickled"
    shutil.copytree(tiny_judge_path, copy)
    for weights in copy.glob("*.safetensors"):
        weights.rename(weights.with_suffix(".bin"))
    with pytest.raises(JudgeLoadError, match="no .safetensors weights"):
        load_judge(copy, cache=False)
    other = tmp_path / "other"
    shutil.copytree(tiny_judge_path, other)
    config = json.loads((other / "config.json").read_text())
    config["model_type"] = "llava_llama"
    (other / "config.json").write_text(json.dumps(config))
    with pytest.raises(UnsupportedModelError, match="evalalign convert"):
        load_judge(other, cache=False)
    with pytest.raises(JudgeLoadError, match="no config.json"):
        load_judge(tmp_path, cache=False)


def test_plain_engine_rejects_bad_batch_size():
    with pytest.raises(InputError, match="batch_size must be >= 1"):
        PlainEngine(batch_size=0)


@pytest.mark.parametrize("gpus, device, message", [
    (0, "tpu:0", "device='tpu:0' is not a device torch knows; expected 'cpu', 'cuda'"),
    (0, "meta", "device='meta' is not a device a judge runs on"),
    (0, "cuda", "device='cuda': this machine has no cuda device available to torch"),
    (1, "cuda:1", r"device='cuda:1': only 1 cuda device\(s\) here \(indices 0..0\)"),
])
def test_unavailable_device_is_refused_before_loading(tiny_judge_path, monkeypatch, gpus, device, message):
    import evalalign_metric.judge.loading as loading

    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)

    def load_nothing(*args, **kwargs):
        raise AssertionError("the checkpoint was opened before the device was checked")

    monkeypatch.setattr(loading, "resolve_reference", load_nothing)
    with pytest.raises(InputError, match=message):
        load_judge(tiny_judge_path, device=device, cache=False)
