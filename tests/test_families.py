"""One parity suite over every judge family (transformers' shared-tester style).

Each family's tiny random judge is built in-process, saved and re-loaded through ``load_judge``
(``from_pretrained``). For images of different sizes and aspect ratios, one at a time and batched, the prefix
engine, the plain engine and an independent teacher-forced reference agree within 1e-4 (fp32). The reference
uses only the family's own processor (for Qwen-VL: the real ``Qwen2_5_VLProcessor`` / ``Qwen3VLProcessor``
built around the image processor, its missing video processor waved through in the test), transformers'
``apply_chat_template`` and one plain forward per option on the full text ``prompt + answer``.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from PIL import Image

from evalalign_metric.errors import InputError
from evalalign_metric.images import mean_colour, pad_to_square
from evalalign_metric.judge import load_judge
from evalalign_metric.judge.engine import ImageWork
from evalalign_metric.judge.families import FAMILIES, JudgeFamily, ProcessorParts
from evalalign_metric.judge.prefix_engine import PrefixEngine
from evalalign_metric.protocol import load_protocol
from evalalign_metric.testing import build_tiny_judge

FAMILY_CASES = ["llava", "llava_next", "qwen2_vl", "qwen2_5_vl", "qwen3_vl", "idefics3"]
EVALALIGN = load_protocol("evalalign")
IMATCH = load_protocol("imatch")
QUESTIONS = [(t, a.labels) for a, t in EVALALIGN.questions_for({"Object": "cat; dog;", "Color": "cat: red;"})]
QUESTIONS = [(EVALALIGN.aspects[0].template, EVALALIGN.aspects[0].labels)] + QUESTIONS
QUESTIONS += [(t, a.labels) for a, t in IMATCH.questions_for({"elements": ["cat (animal)"]}, "a red cat")][:1]


def _images():
    gen = torch.Generator().manual_seed(3)
    return [Image.fromarray(torch.randint(0, 256, (h, w, 3), generator=gen, dtype=torch.uint8).numpy())
            for h, w in ((24, 40), (33, 17), (64, 48), (16, 16))]


def _sharpen(model, seed=0, std=0.2):
    """Larger random weights: the tiny judges otherwise answer alike everywhere, making the comparison weak."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 2:
                p.copy_(torch.randn(p.shape, generator=gen) * std)


@pytest.fixture(scope="module")
def family_path(tmp_path_factory):
    paths = {}

    def get(architecture):
        if architecture not in paths:
            paths[architecture] = build_tiny_judge(tmp_path_factory.mktemp(architecture), architecture=architecture,
                                                   seed=1)
        return paths[architecture]
    return get


def _judge(path, engine, batch_size=8):
    judge = load_judge(path, engine=engine, batch_size=batch_size, cache=False)
    _sharpen(judge.model)
    return judge


def _reference_processor(judge, monkeypatch):
    """The family's real processor class. Where only its parts load (Qwen-VL without torchvision), build the
    processor class around them, letting its video processor be absent (images never reach it)."""
    if not isinstance(judge.processor, ProcessorParts):
        return judge.processor
    import transformers
    from transformers.processing_utils import ProcessorMixin

    name = {"qwen2_vl": "Qwen2VLProcessor", "qwen2_5_vl": "Qwen2_5_VLProcessor",
            "qwen3_vl": "Qwen3VLProcessor"}[judge.model.config.model_type]
    original = ProcessorMixin.check_argument_for_proper_class
    monkeypatch.setattr(ProcessorMixin, "check_argument_for_proper_class",
                        lambda self, n, a: None if n == "video_processor" and a is None else original(self, n, a))
    parts = judge.processor
    return getattr(transformers, name)(image_processor=parts.image_processor, tokenizer=parts.tokenizer,
                                       video_processor=None, chat_template=parts.chat_template)


def _messages(question, answer=None):
    text = question.split("<image>\n", 1)[1]
    turn = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]
    return turn + ([{"role": "assistant", "content": answer}] if answer is not None else [])


def reference_log_probs(judge, processor, image, question, labels):
    """log P(option) by one forward per option over the processor's inputs for the full text."""
    if judge.pad_to_square:
        image = pad_to_square(image, mean_colour(processor.image_processor.image_mean))
    prompt = processor.apply_chat_template(_messages(question), add_generation_prompt=True, tokenize=False)
    n_prompt = processor(images=[image], text=[prompt], return_tensors="pt")["input_ids"].shape[1]
    out = []
    for label in labels:
        full = processor.apply_chat_template(_messages(question, label), tokenize=False)
        full = full[: full.rindex(label) + len(label)]  # the answer, without the end-of-turn text
        inputs = processor(images=[image], text=[full], return_tensors="pt")
        inputs = {k: v for k, v in inputs.items() if k != "token_type_ids"}
        if "mm_token_type_ids" not in inputs and "image_grid_thw" in inputs:
            inputs["mm_token_type_ids"] = (inputs["input_ids"] == judge.image_token_id).int()
        with torch.no_grad():
            logits = judge.model(**inputs).logits[0].float()
        log_probs = torch.log_softmax(logits, -1)
        ids = inputs["input_ids"][0]
        assert ids[:n_prompt].tolist() == processor(images=[image], text=[prompt])["input_ids"][0]
        out.append(sum(float(log_probs[p - 1, ids[p]]) for p in range(n_prompt, len(ids))))
    return torch.tensor(out)


@pytest.mark.parametrize("architecture", FAMILY_CASES)
def test_prefix_equals_plain_equals_reference(family_path, architecture, monkeypatch):
    path = family_path(architecture)
    images = _images()
    questions = [QUESTIONS, QUESTIONS[1:], QUESTIONS, QUESTIONS[:2]]
    answers = {}
    for engine in ("plain", "prefix"):
        for batch_size in (1, 8):
            judge = _judge(path, engine, batch_size)
            answers[engine, batch_size] = judge.answer(images, questions)
            assert judge.engine.last_stats.fallback_images == 0 if engine == "prefix" else True
    processor = _reference_processor(judge, monkeypatch)
    for i, (image, asked) in enumerate(zip(images, questions)):
        for q, (text, labels) in enumerate(asked):
            expected = reference_log_probs(judge, processor, image, text, labels)
            for key, got in answers.items():
                torch.testing.assert_close(got[i][q].log_probs, expected, atol=1e-4, rtol=0, msg=f"{key} {i} {q}")


@pytest.mark.parametrize("architecture", FAMILY_CASES)
def test_prompt_ids_are_the_processors(family_path, architecture, monkeypatch):
    judge = _judge(family_path(architecture), "plain")
    processor = _reference_processor(judge, monkeypatch)
    for image in _images():
        inputs = judge.image_inputs(image)
        prepared = pad_to_square(image, mean_colour(processor.image_processor.image_mean)) \
            if judge.pad_to_square else image
        text, labels = QUESTIONS[1]
        prompt = processor.apply_chat_template(_messages(text), add_generation_prompt=True, tokenize=False)
        theirs = processor(images=[prepared], text=[prompt], return_tensors="pt")
        assert judge.prompt_ids(judge.encode(text, labels), inputs) == theirs["input_ids"][0].tolist()
        for key, value in inputs.pixels.items():
            torch.testing.assert_close(value, theirs[key], atol=0, rtol=0)


@pytest.mark.parametrize("architecture", ["qwen2_vl", "qwen2_5_vl", "qwen3_vl", "idefics3"])
def test_aspect_ratio_is_kept_so_token_counts_differ(family_path, architecture):
    judge = _judge(family_path(architecture), "prefix")
    counts = [judge.image_inputs(image).n_image_tokens for image in _images()]
    assert len(set(counts)) > 1


class _OneDimensional(JudgeFamily):
    """LLaVA's positions (a token's position is its index): what the prefix engine used for every model."""


@pytest.mark.parametrize("architecture", ["qwen2_vl", "qwen2_5_vl", "qwen3_vl"])
def test_one_dimensional_positions_would_be_wrong(family_path, architecture):
    """Sharing the prefix with 1-D positions changes Qwen's answers, so the suite above would catch an engine
    that ignored the rope deltas."""
    judge = _judge(family_path(architecture), "prefix")
    images = _images()[:2]
    right = judge.answer(images, [QUESTIONS, QUESTIONS])
    items = []
    for image in images:
        inputs = judge.image_inputs(image)
        encoded = [judge.encode(text, labels) for text, labels in QUESTIONS]
        items.append(ImageWork(inputs.pixels, inputs.n_image_tokens, encoded,
                               prompts=[judge.prompt_ids(e, inputs) for e in encoded]))
    naive = type("Naive", (type(judge.family),), {"prefill_inputs": _OneDimensional.prefill_inputs,
                                                  "suffix_positions": _OneDimensional.suffix_positions,
                                                  "prefix_unsupported_reason": lambda self, model: None})()
    wrong = PrefixEngine().run(judge.model, items, image_token_id=judge.image_token_id,
                               pad_token_id=judge.pad_token_id, family=naive)
    gap = max(float((a.log_probs - b).abs().max()) for ra, rb in zip(right, wrong) for a, b in zip(ra, rb))
    assert gap > 1e-2


def test_min_and_max_pixels_bound_the_image_tokens(family_path):
    path = family_path("qwen2_5_vl")
    image = _images()[2]  # 48x64
    default = load_judge(path, cache=False).image_inputs(image)
    small = load_judge(path, cache=False, image_options={"max_pixels": 16 * 16}).image_inputs(image)
    large = load_judge(path, cache=False, image_options={"min_pixels": 96 * 96, "max_pixels": 128 * 128})
    assert small.n_image_tokens < default.n_image_tokens < large.image_inputs(image).n_image_tokens
    assert small.pixels["image_grid_thw"].prod() * 4 <= 16 * 16 // 16 * 4
    with pytest.raises(InputError, match="min_pixels"):
        load_judge(path, cache=False, image_options={"min_pixels": 0})
    with pytest.raises(InputError, match="do not apply"):
        load_judge(family_path("llava"), cache=False, image_options={"max_pixels": 100})


def test_a_family_that_cannot_share_the_prefix_falls_back_with_a_warning(family_path, monkeypatch):
    judge = _judge(family_path("qwen2_5_vl"), "prefix")
    images, questions = _images()[:2], [QUESTIONS, QUESTIONS[:2]]
    expected = _judge(family_path("qwen2_5_vl"), "plain").answer(images, questions)
    later = type("Later", (type(judge.family),), {"prefix_sharing": False})()
    monkeypatch.setitem(FAMILIES, "qwen2_5_vl", later)
    with pytest.warns(RuntimeWarning, match="falls back to the plain engine"):
        got = judge.answer(images, questions)
    assert judge.engine.last_stats.fallback_images == 2
    for ra, rb in zip(expected, got):
        for a, b in zip(ra, rb):
            torch.testing.assert_close(a.log_probs, b.log_probs, atol=1e-5, rtol=0)


def test_zero_shot_instruct_judge_scores_through_its_template(tmp_path):
    """A standard checkpoint folder of a supported family, no sidecar: the metric loads it and asks it through
    its own chat template (default system prompt included)."""
    from evalalign_metric import EvalAlignScore

    path = build_tiny_judge(tmp_path / "instruct", architecture="qwen2_5_vl", write_sidecar=False, confident=True)
    judge = load_judge(path, cache=False)
    assert judge.chat_format.name == "chat_template"
    assert judge.prompt_text("<image>\nIs it red?").startswith("<|im_start|>system\nYou are a helpful assistant.")
    metric = EvalAlignScore(model=str(path), protocol="imatch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metric.update([Image.new("RGB", (32, 24), "red")], ["a red car"], elements=[["car (object)"]])
        result = metric.compute()
    assert torch.isfinite(torch.as_tensor(result["overall"])).all()


def test_a_qwen_model_registered_as_a_llava_style_backend_falls_back_instead_of_being_wrong(family_path, monkeypatch):
    """The extension point as a new user would try it (``register_backend(Backend(...))`` for a Qwen-VL model)
    must not give silently wrong answers: the prefix engine sees the 3-D positions and falls back."""
    from evalalign_metric.judge.backends import Backend, register_backend

    judge = _judge(family_path("qwen2_5_vl"), "prefix")
    images, questions = _images()[:2], [QUESTIONS, QUESTIONS[:2]]
    expected = _judge(family_path("qwen2_5_vl"), "plain").answer(images, questions)
    monkeypatch.setitem(FAMILIES, "qwen2_5_vl", FAMILIES["qwen2_5_vl"])
    llava_style = Backend("qwen2_5_vl", "Qwen2_5_VLForConditionalGeneration", image_placeholder="<|image_pad|>",
                          image_token="<|image_pad|>")
    register_backend(llava_style)
    one_dimensional = {"prefill_inputs": JudgeFamily.prefill_inputs, "suffix_positions": JudgeFamily.suffix_positions}
    judge.family = type("QwenInputs", (type(judge.family),), one_dimensional)()
    with pytest.warns(RuntimeWarning, match="M-RoPE"):
        got = judge.answer(images, questions)
    for ra, rb in zip(expected, got):
        for a, b in zip(ra, rb):
            torch.testing.assert_close(a.log_probs, b.log_probs, atol=1e-5, rtol=0)
