"""The shared-prefix engine: the plain engine's option log-probabilities, fewer tokens, a safe fallback."""

from __future__ import annotations

import os
import warnings
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from evalalign_metric.errors import InputError
from evalalign_metric.judge import PlainEngine, load_judge
from evalalign_metric.judge.backends import BACKENDS, Backend
from evalalign_metric.judge.engine import ImageWork, expand_image_tokens
from evalalign_metric.judge.prefix_engine import PrefixEngine, make_engine, shared_prefix_length
from evalalign_metric.judge.scheduler import pack_groups, padded_tokens
from evalalign_metric.official import alignment_prompts, official_elements
from evalalign_metric.protocol import elements_apply, load_protocol

PROTOCOL = load_protocol("evalalign")
COMBOS = [("llama", "llava"), ("bytelevel", "llava"), ("llama", "llava_next"), ("bytelevel", "llava_next")]


def _all_aspect_elements() -> dict[str, str]:
    """Official element strings covering all six alignment aspects (no single official prompt has all six)."""
    merged: dict[str, str] = {}
    for entry in alignment_prompts():
        for key, value in official_elements(entry["prompt"]).items():
            if elements_apply(value):
                merged.setdefault(key, value)
    return merged


def _questions(elements) -> list[tuple[str, tuple[str, ...]]]:
    return [(text, aspect.labels) for aspect, text in PROTOCOL.questions_for(elements)]


ALL_ELEVEN = _questions(_all_aspect_elements())
# Official prompts asking 5 to 10 questions, so images differ in suffix length (and groups need padding).
OFFICIAL_SETS = [_questions(official_elements(alignment_prompts()[i]["prompt"])) for i in (0, 8, 44, 3, 70)]


def _images():
    gen = torch.Generator().manual_seed(1)
    noise = [Image.fromarray(torch.randint(0, 256, (h, w, 3), generator=gen, dtype=torch.uint8).numpy())
             for h, w in ((24, 40), (33, 17), (16, 16))]
    plain = [Image.new("RGB", size, colour) for size, colour in (((24, 16), "red"), ((20, 30), "blue"),
                                                                 ((48, 48), "white"))]
    return noise + plain


def _sharpen(judge, std: float = 0.2, seed: int = 0):
    """Re-draw every weight matrix with a larger spread: the tiny random judges otherwise answer the same
    option everywhere and barely react to their inputs, which would make the comparison weak."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in judge.model.parameters():
            if p.ndim == 2:
                p.copy_(torch.randn(p.shape, generator=gen) * std)
    return judge


@pytest.fixture(scope="module")
def judges(tiny_judge_factory):
    built = {}

    def get(tokenizer, architecture):
        if (tokenizer, architecture) not in built:
            path = tiny_judge_factory(tokenizer=tokenizer, architecture=architecture)
            built[tokenizer, architecture] = _sharpen(load_judge(path, cache=False))
        return built[tokenizer, architecture]

    return get


def _answer(judge, engine, images, questions):
    judge.engine = engine
    return judge.answer(images, questions)


def _assert_same(expected, got, atol=1e-4):
    assert len(expected) == len(got)
    for per_e, per_g in zip(expected, got):
        assert len(per_e) == len(per_g)
        for e, g in zip(per_e, per_g):
            assert e.labels == g.labels
            assert g.log_probs.dtype == torch.float32 and g.log_probs.device.type == "cpu"
            assert torch.isfinite(g.log_probs).all()
            torch.testing.assert_close(g.log_probs, e.log_probs, atol=atol, rtol=0)
            assert g.argmax_label == e.argmax_label


@pytest.mark.parametrize("tokenizer,architecture", COMBOS)
def test_every_protocol_question_matches_the_plain_engine(judges, tokenizer, architecture):
    judge = judges(tokenizer, architecture)
    images = _images()
    questions = [ALL_ELEVEN] + OFFICIAL_SETS
    expected = _answer(judge, PlainEngine(batch_size=5), images, questions)
    # The judge must react to its input, or the comparison would be weak: the first question, asked of
    # every image, gets clearly different answers.
    first = torch.stack([per[0].log_probs for per in expected])
    assert float((first - first[0]).abs().max()) > 0.05
    for batch_size in (1, 3, 8):
        engine = PrefixEngine(batch_size=batch_size)
        _assert_same(expected, _answer(judge, engine, images, questions))
        stats = engine.last_stats
        assert stats.fallback_images == 0 and stats.vision_passes == len(images)
        assert stats.groups == -(-len(images) // batch_size)


def test_the_cache_goes_by_the_name_the_installed_transformers_gives_it(judges):
    """transformers 5.24 renamed ``past_key_values`` to ``cache`` (the old name warns, and goes in 5.40)."""
    import warnings

    judge = judges("llama", "llava")
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*past_key_values.*")
        _answer(judge, PrefixEngine(batch_size=2), _images()[:2], [ALL_ELEVEN, OFFICIAL_SETS[0]])


@pytest.mark.parametrize("chunk", [1, 200, 10**6])
def test_suffix_chunking_does_not_change_answers(judges, chunk):
    """1: every question its own suffix forward; 10**6: all questions of an image in one forward."""
    judge = judges("llama", "llava")
    images = _images()[:4]
    questions = [ALL_ELEVEN, OFFICIAL_SETS[0], OFFICIAL_SETS[3], ALL_ELEVEN]
    expected = _answer(judge, PlainEngine(batch_size=8), images, questions)
    engine = PrefixEngine(batch_size=3, suffix_chunk_tokens=chunk)
    _assert_same(expected, _answer(judge, engine, images, questions))
    single = PrefixEngine(batch_size=1, suffix_chunk_tokens=chunk)
    _answer(judge, single, images, questions)
    assert single.last_stats.lm_tokens == single.last_stats.floor_tokens


def test_images_with_different_token_counts(judges):
    """LLaVA-NeXT without square padding gives each aspect ratio its own number of image tokens, so the
    shared prefixes of one batch differ in length."""
    judge = judges("llama", "llava_next")
    judge.pad_to_square = False
    try:
        images = [Image.new("RGB", (24, 16), "red"), Image.new("RGB", (16, 16), "blue"),
                  Image.new("RGB", (20, 40), "green"), Image.new("RGB", (64, 16), "white")]
        counts = {judge.prepare_image(im)[1] for im in images}
        assert len(counts) > 1
        questions = [ALL_ELEVEN, OFFICIAL_SETS[0], ALL_ELEVEN, OFFICIAL_SETS[2]]
        expected = _answer(judge, PlainEngine(batch_size=4), images, questions)
        for batch_size in (1, 3, 8):
            _assert_same(expected, _answer(judge, PrefixEngine(batch_size=batch_size), images, questions))
    finally:
        judge.pad_to_square = True


def test_tokens_processed_equal_the_floor(judges):
    judge = judges("llama", "llava")
    image = _images()[0]
    engine = PrefixEngine(batch_size=1)
    _answer(judge, engine, [image, image], [ALL_ELEVEN, ALL_ELEVEN])
    # Independent count: common prefix by os.path.commonprefix on the expanded prompts, then each
    # question's remaining tokens and each distinct option-prefix once.
    _, n_image = judge.prepare_image(image)
    encoded = [judge.encode(text, labels) for text, labels in ALL_ELEVEN]
    prompts = [expand_image_tokens(q.prompt_ids, judge.image_token_id, n_image) for q in encoded]
    common = len(os.path.commonprefix(prompts))
    assert judge.image_token_id in prompts[0][:common]
    suffix = sum(len(p) - common for p in prompts)
    branches = sum(sum(len(prefix) for prefix in {ids[:-1] for ids in q.option_ids}) for q in encoded)
    floor = common + suffix + branches
    assert engine.last_stats.lm_tokens == engine.last_stats.floor_tokens == 2 * floor
    assert engine.last_stats.vision_passes == 2
    plain_tokens = sum(len(p) + len(prefix) for p, q in zip(prompts, encoded) for prefix, _ in q.rows())
    assert plain_tokens > 2 * floor  # the plain path re-reads everything per option row


def test_results_come_back_in_input_order_with_empty_items(judges):
    judge = judges("bytelevel", "llava")
    images = _images()[:4]
    questions = [OFFICIAL_SETS[1], [], ALL_ELEVEN, OFFICIAL_SETS[3]]
    expected = _answer(judge, PlainEngine(batch_size=3), images, questions)
    got = _answer(judge, PrefixEngine(batch_size=2), images, questions)
    assert got[1] == []
    _assert_same(expected, got)


def test_token_budget_splits_groups_without_changing_answers(judges):
    judge = judges("llama", "llava")
    images = _images()
    questions = [ALL_ELEVEN] * len(images)
    engine = PrefixEngine(batch_size=8)
    expected = _answer(judge, engine, images, questions)
    one_image = engine.last_stats.lm_tokens // len(images)
    budgeted = PrefixEngine(batch_size=8, token_budget=2 * one_image)
    _assert_same(expected, _answer(judge, budgeted, images, questions))
    assert budgeted.last_stats.groups == len(images) // 2


def test_bfloat16_runs_and_stays_close(tiny_judge_factory):
    path = tiny_judge_factory(tokenizer="llama", architecture="llava")
    judge = load_judge(path, dtype="bfloat16", cache=False)
    images = _images()[:3]
    questions = [ALL_ELEVEN, OFFICIAL_SETS[0], OFFICIAL_SETS[4]]
    expected = _answer(judge, PlainEngine(batch_size=4), images, questions)
    got = _answer(judge, PrefixEngine(batch_size=3), images, questions)
    assert [len(per) for per in got] == [len(q) for q in questions]
    for per_e, per_g in zip(expected, got):
        for e, g in zip(per_e, per_g):
            assert g.log_probs.dtype == torch.float32
            torch.testing.assert_close(g.log_probs, e.log_probs, atol=2e-2, rtol=0)


def test_falls_back_once_when_the_backend_puts_the_image_later(judges, monkeypatch):
    judge = judges("llama", "llava")
    later = Backend("llava", "LlavaForConditionalGeneration", image_first=False)
    monkeypatch.setitem(BACKENDS, "llava", later)
    images, questions = _images()[:2], [ALL_ELEVEN, OFFICIAL_SETS[0]]
    engine = PrefixEngine(batch_size=4)
    with pytest.warns(RuntimeWarning, match="falls back to the plain engine.*image before the question"):
        got = _answer(judge, engine, images, questions)
    assert engine.last_stats.fallback_images == 2 and engine.last_stats.vision_passes == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = _answer(judge, engine, images, questions)
    monkeypatch.undo()
    expected = _answer(judge, PlainEngine(batch_size=4), images, questions)
    _assert_same(expected, got, atol=0)
    _assert_same(expected, again, atol=0)


def test_only_the_image_whose_questions_differ_before_the_image_falls_back(judges):
    judge = judges("llama", "llava")
    images = _images()[:3]
    before = [("Look first. <image>\nIs it red? Answer:", ("0", "1")),
              ("Now look again. <image>\nIs it blue? Answer:", ("0", "1"))]
    questions = [ALL_ELEVEN, before, OFFICIAL_SETS[2]]
    engine = PrefixEngine(batch_size=8)
    with pytest.warns(RuntimeWarning, match="do not share a prefix holding the image"):
        got = _answer(judge, engine, images, questions)
    assert engine.last_stats.fallback_images == 1 and engine.last_stats.vision_passes == 2
    _assert_same(_answer(judge, PlainEngine(batch_size=8), images, questions), got)


def test_attention_without_custom_masks_is_refused():
    stub = SimpleNamespace(config=SimpleNamespace(
        model_type="llava", text_config=SimpleNamespace(_attn_implementation="flash_attention_2")))
    assert "flash_attention_2" in PrefixEngine.unsupported_reason(stub)
    stub.config.text_config._attn_implementation = "sdpa"
    assert PrefixEngine.unsupported_reason(stub) is None


def test_shared_prefix_length_keeps_one_token_per_prompt():
    assert shared_prefix_length([[5, 6, 7, 8], [5, 6, 7, 9, 9]]) == 3
    assert shared_prefix_length([[5, 6, 7], [5, 6, 7, 1]]) == 2  # the shorter prompt keeps its last token
    assert shared_prefix_length([[4, 6], [5, 6]]) == 0


def test_scheduler_groups_cover_everything_within_bounds():
    gen = torch.Generator().manual_seed(3)
    costs = [(int(p), int(s)) for p, s in zip(torch.randint(1, 50, (40,), generator=gen),
                                              torch.randint(1, 90, (40,), generator=gen))]
    for batch_size, budget in ((1, None), (3, None), (8, 400), (64, 1000)):
        groups = pack_groups(costs, batch_size=batch_size, token_budget=budget)
        assert sorted(i for g in groups for i in g) == list(range(len(costs)))
        for g in groups:
            assert len(g) <= batch_size
            assert budget is None or len(g) == 1 or padded_tokens([costs[i] for i in g]) <= budget
        totals = [costs[i][0] + costs[i][1] for g in groups for i in g]
        assert totals == sorted(totals, reverse=True)
    with pytest.raises(InputError, match="batch_size"):
        pack_groups(costs, batch_size=0)
    with pytest.raises(InputError, match="token_budget"):
        pack_groups(costs, batch_size=2, token_budget=0)


def test_make_engine_by_name(tiny_judge_path):
    assert isinstance(make_engine("plain", batch_size=3, token_budget=None), PlainEngine)
    engine = make_engine("prefix", batch_size=2, token_budget=4096)
    assert (engine.batch_size, engine.token_budget) == (2, 4096)
    with pytest.raises(InputError, match="engine='fast'"):
        make_engine("fast")
    with pytest.raises(InputError, match="engine='plain' does not take"):
        make_engine("plain", token_budget=100)
    with pytest.raises(InputError, match="batch_size"):
        PrefixEngine(batch_size=0)
    with pytest.raises(InputError, match="suffix_chunk_tokens"):
        PrefixEngine(suffix_chunk_tokens=0)
    judge = load_judge(tiny_judge_path, engine=make_engine("prefix"), cache=False)
    [[dist]] = judge.answer([Image.new("RGB", (20, 20), "red")], [ALL_ELEVEN[:1]])
    assert dist.labels == ALL_ELEVEN[0][1]


def test_engine_contract_on_raw_work_items(judges):
    """The engine runs on ImageWork directly (the seam a Judge uses), CPU float32 out."""
    judge = judges("bytelevel", "llava")
    pixels, n = judge.prepare_image(_images()[1])
    items = [ImageWork(pixels, n, [judge.encode(t, l) for t, l in ALL_ELEVEN])]
    out = PrefixEngine().run(judge.model, items, image_token_id=judge.image_token_id,
                             pad_token_id=judge.pad_token_id)
    ref = PlainEngine().run(judge.model, items, image_token_id=judge.image_token_id,
                            pad_token_id=judge.pad_token_id)
    assert [len(v) for v in out[0]] == [len(l) for _, l in ALL_ELEVEN]
    for a, b in zip(out[0], ref[0]):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=0)
