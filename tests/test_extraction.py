"""Element extraction: the result_info grammar on the official data, few-shot selection, LM extractors driven
by tiny real models (prompt building, strict parsing, retry), the disk cache and the elements file."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

from evalalign_metric.errors import EvalAlignError, InputError, JudgeLoadError
from evalalign_metric.extraction import (
    ASPECTS,
    AspectElements,
    CachedExtractor,
    Element,
    ElementCache,
    ElementsParseError,
    ExtractionError,
    FunctionExtractor,
    LMElementExtractor,
    build_prompt,
    canonical_result_info,
    default_cache_dir,
    load_elements_file,
    load_extraction_model,
    parse_answer,
    parse_aspect,
    parse_result_info,
    read_prompts_file,
    render_result_info,
    save_elements_file,
    select_examples,
)
from evalalign_metric.extraction.prompting import DEFAULT_EXAMPLE_IDS, SUBSTITUTE_EXAMPLE_IDS
from evalalign_metric.official import alignment_prompts

OFFICIAL = alignment_prompts()
GOOD = {"Object": "elephant; bird;", "Count": "elephant: a; bird: two;", "Color": "bird: blue;",
        "Style": "none", "Spatial": "bird: on the elephant;", "Action": "elephant is walking;"}
LABELS = [f"{a}:" for a in ASPECTS]


# --------------------------------------------------------------------------- tiny models
def build_fixed_answer_lm(values: dict[str, str], hidden: int = 64):
    """A real LlamaForCausalLM whose weights make greedy decoding map each ``Aspect:`` token to the token
    ``" <value>\\n"`` and every value token to end-of-text: the residual stream carries the one-hot embedding
    of the current token (attention and MLP outputs are zeroed), and ``lm_head`` is a successor table.
    The tokenizer is a word-level one built in-process, each answer line one added token."""
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<unk>", "<s>", "</s>", "<pad>"]
    vocab = {w: i for i, w in enumerate(specials + LABELS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    lines = [f" {values[a]}\n" for a in ASPECTS]
    tok.add_tokens([AddedToken(line, normalized=False) for line in dict.fromkeys(lines)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>")
    size = len(fast)
    assert size <= hidden
    config = LlamaConfig(vocab_size=size, hidden_size=hidden, intermediate_size=16, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=4096,
                         bos_token_id=1, eos_token_id=2, pad_token_id=3, rms_norm_eps=1e-6)
    model = LlamaForCausalLM(config).eval()
    eos = fast.eos_token_id
    successor = torch.full((size,), eos)
    for aspect, line in zip(ASPECTS, lines):
        successor[fast.convert_tokens_to_ids(f"{aspect}:")] = fast.convert_tokens_to_ids(line)
    with torch.no_grad():
        model.model.embed_tokens.weight.copy_(torch.eye(size, hidden))
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        head = torch.zeros(size, hidden)
        head[successor, torch.arange(size)] = 1.0
        model.lm_head.weight.copy_(head)
    model.generation_config.eos_token_id = eos
    model.generation_config.pad_token_id = fast.pad_token_id
    return model, fast


def record_generate(model, on_call):
    """Wrap ``model.generate`` to see the full ``input_ids`` of each call (with the prefix cache, the forward
    passes only see the uncached tail)."""
    original = model.generate

    def generate(*args, **kwargs):
        on_call(kwargs["input_ids"])
        return original(*args, **kwargs)

    model.generate = generate


class Scripted:
    """A test double driving a real model's greedy decoding: it records the text of each ``generate`` call
    and a hook overwrites ``lm_head``'s logits so that the continuation is ``respond(context)`` then
    end-of-text."""

    def __init__(self, model, tokenizer, respond):
        self.model, self.tokenizer, self.respond = model, tokenizer, respond
        self.contexts: list[str] = []
        self._target: list[int] = []
        self._step = 0
        record_generate(model, self._read)
        model.get_output_embeddings().register_forward_hook(self._write)

    def _read(self, ids):
        context = self.tokenizer.decode(ids[0], skip_special_tokens=True)
        self.contexts.append(context)
        answer = self.respond(context)
        self._target = self.tokenizer(answer, add_special_tokens=False)["input_ids"] + [self.tokenizer.eos_token_id]
        self._step = 0

    def _write(self, module, inputs, output):
        if not self._target:  # a forward outside generate(): the prefix cache being filled
            return output
        forced = torch.full_like(output, -1e4)
        forced[..., self._target[min(self._step, len(self._target) - 1)]] = 1e4
        self._step += 1
        return forced


def line_responder(values: dict[str, str], *, on_retry: dict[str, str] | None = None):
    """Answer the line asked by guided decoding (the context ends with ``Aspect:``); ``on_retry`` values are
    used once the prompt says a previous answer was rejected."""

    def respond(context: str) -> str:
        chosen = on_retry if on_retry is not None and "was rejected" in context else values
        for aspect in ASPECTS:
            if context.endswith(f"{aspect}:"):
                return f" {chosen[aspect]}\n"
        raise AssertionError(f"unexpected context end {context[-40:]!r}")

    return respond


@pytest.fixture(scope="module")
def tiny_bytelevel():
    from transformers import LlamaConfig

    from evalalign_metric.testing import build_tiny_tokenizer

    tok = build_tiny_tokenizer("bytelevel")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=8192,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    return config, tok


def scripted_lm(tiny_bytelevel, respond):
    from transformers import LlamaForCausalLM

    config, tok = tiny_bytelevel
    model = LlamaForCausalLM(config).eval()
    return Scripted(model, tok, respond), model, tok


# --------------------------------------------------------------------------- result_info grammar
def test_every_official_result_info_round_trips_byte_for_byte():
    checked = 0
    for entry in OFFICIAL:
        info = entry["result_info"]
        assert render_result_info(parse_result_info(info)) == info
        for aspect, text in info.items():
            parsed = parse_aspect(aspect, text)
            assert parsed.render() == text
            canonical = parsed.canonical()
            again = parse_aspect(aspect, canonical)
            assert again == parsed and again.render() == canonical and again.canonical() == canonical
            checked += 1
    assert checked == 120 * 6


def test_official_irregular_strings_parse_to_what_they_say():
    assert [(e.subject, e.value) for e in parse_aspect("Count", "people : two ;traffic lights: three ").elements] \
        == [("people", "two"), ("traffic lights", "three")]
    assert parse_aspect("Count", "woodcarved:a").canonical() == "woodcarved: a;"
    assert [e.value for e in parse_aspect("Object", "apples;  microwaves").elements] == ["apples", "microwaves"]
    assert [e.value for e in parse_aspect("Action", "cats are sitting; cats are sniffing and pawing; ").elements] \
        == ["cats are sitting", "cats are sniffing and pawing"]
    assert parse_aspect("Color", "black and gold;").elements == (Element("black and gold"),)
    for none in ("none", "none;", "None", " none ; "):
        parsed = parse_aspect("Spatial", none)
        assert not parsed.applies and parsed.render() == none and parsed.canonical() == "none"
    # Aspect applicability agrees with the protocol's own rule on every official string.
    from evalalign_metric.protocol import elements_apply

    assert all(parse_aspect(a, v).applies == elements_apply(v) for e in OFFICIAL for a, v in e["result_info"].items())


def test_structured_elements_render_canonically_and_stale_raw_text_is_not_reused():
    built = AspectElements("Count", (Element("a", "cat"), Element("two", "dogs")))
    assert built.render() == "cat: a; dogs: two;"
    assert parse_aspect("Count", built.render()) == built
    parsed = parse_aspect("Count", " cat: a;dogs:two")
    assert parsed.render() == " cat: a;dogs:two"
    edited = AspectElements("Count", parsed.elements[:1], raw=parsed.raw)
    assert edited.render() == "cat: a;"
    assert AspectElements("Style", ()).render() == "none"


@pytest.mark.parametrize("aspect, text, fragment", [
    ("Count", "cat;", "lacks its quantity"),
    ("Count", "cat: red;", "quantity 'red' of 'cat' is not a number"),
    ("Object", "cat: a;", "contains ':'"),
    ("Style", "  ", "is empty"),
    ("Object", "cat;; dog;", "empty element"),
    ("Color", ": red;", "nothing before ':'"),
    ("Spatial", "cat: ;", "nothing after ':'"),
    ("Object", "none; cat;", "'none' cannot be listed"),
    ("Action", "cat runs\ndog sits", "one line"),
])
def test_strict_parse_names_the_aspect_and_the_bad_text(aspect, text, fragment):
    with pytest.raises(ElementsParseError) as info:
        parse_aspect(aspect, text)
    assert info.value.aspect == aspect and info.value.text == text
    message = str(info.value)
    assert message.startswith(f"{aspect} elements {text!r}") and fragment in message


def test_parse_rejects_unknown_aspects_non_strings_and_incomplete_mappings():
    with pytest.raises(ElementsParseError, match="unknown aspect"):
        parse_aspect("Size", "big;")
    with pytest.raises(ElementsParseError, match="must be a string; got int"):
        parse_aspect("Count", 3)
    with pytest.raises(ElementsParseError, match=r"missing aspect\(s\) \['Action'\]"):
        parse_result_info({a: "none" for a in ASPECTS[:-1]})
    with pytest.raises(ElementsParseError, match=r"unknown aspect\(s\) \['Size'\]"):
        parse_result_info({**GOOD, "Size": "big;"})
    with pytest.raises(ElementsParseError, match="must be a mapping"):
        parse_result_info(["Object"])


def test_parse_answer_reads_six_lines_in_any_order_and_stops_after_them():
    text = ("Object: elephant;bird\ncount: elephant: a; bird: two\nColor: bird: blue\nStyle: none;\n"
            "Action: elephant is walking;\nSpatial: bird: on the elephant\nPrompt: the next example\nObject: x;")
    assert parse_answer(text) == GOOD
    assert parse_answer("\n\n" + text) == GOOD


@pytest.mark.parametrize("answer, fragment", [
    ("Object: cat;\nCount: cat: a;\nColor: none\nStyle: none\nSpatial: none", "missing aspect lines for Action"),
    ("Object: cat;\nCount: cat: a;\n\nColor: none\nStyle: none\nSpatial: none\nAction: none",
     "ends after Object, Count"),
    ("Object: cat;\nObject: dog;", "aspect Object appears twice (line 2)"),
    ("Object: cat;\nthe cat is nice\n", "line 2 'the cat is nice' is not 'Aspect: elements'"),
    ("Objects: cat;", "line 1 'Objects: cat;' is not"),
    ("", "no aspect line"),
])
def test_parse_answer_rejects_malformed_answers(answer, fragment):
    with pytest.raises(ElementsParseError) as info:
        parse_answer(answer)
    assert fragment in str(info.value)


def test_parse_answer_error_on_a_value_names_its_aspect():
    with pytest.raises(ElementsParseError) as info:
        parse_answer("Object: cat;\nCount: cat: fluffy;\nColor: none\nStyle: none\nSpatial: none\nAction: none")
    assert info.value.aspect == "Count" and info.value.text == "cat: fluffy;"


# --------------------------------------------------------------------------- few-shot selection
def test_few_shot_examples_never_include_the_prompt_being_extracted():
    default_prompts = {e["prompt_id"]: e["prompt"] for e in OFFICIAL}
    for entry in OFFICIAL:
        examples = select_examples(entry["prompt"])
        ids = [e.prompt_id for e in examples]
        assert entry["prompt_id"] not in ids and len(set(ids)) == 4
        assert all(e.prompt != entry["prompt"] for e in examples)
        if entry["prompt_id"] in DEFAULT_EXAMPLE_IDS:
            expected = [i for i in DEFAULT_EXAMPLE_IDS if i != entry["prompt_id"]] + [SUBSTITUTE_EXAMPLE_IDS[0]]
        else:
            expected = list(DEFAULT_EXAMPLE_IDS)
        assert ids == expected
        text = build_prompt(entry["prompt"], examples)
        assert text.count(f"Prompt: {' '.join(entry['prompt'].split())}\n") == 1
        assert text.endswith(f"Prompt: {' '.join(entry['prompt'].split())}\nObject:")
    # Matching ignores case and spacing.
    first = default_prompts[DEFAULT_EXAMPLE_IDS[0]]
    assert DEFAULT_EXAMPLE_IDS[0] not in [e.prompt_id for e in select_examples("  " + first.upper() + " ")]


def test_examples_are_shown_normalised_and_a_leaking_example_is_refused():
    examples = select_examples("two dogs", 2)
    text = build_prompt("two dogs", examples)
    official = {e["prompt_id"]: e for e in OFFICIAL}
    for e in examples:
        assert dict(e.result_info) == canonical_result_info(official[e.prompt_id]["result_info"])
        assert f"Prompt: {e.prompt}\nObject: {e.result_info['Object']}\nCount: {e.result_info['Count']}" in text
    assert text.count("Prompt: ") == 3
    with pytest.raises(InputError, match="must not include the prompt being extracted"):
        build_prompt(examples[0].prompt, examples)
    with pytest.raises(InputError, match="not official alignment prompt ids"):
        select_examples("x", 1, example_ids=("999999",))
    with pytest.raises(InputError, match="only 9 example"):
        select_examples("x", 10)


# --------------------------------------------------------------------------- LM extraction
def test_fixed_answer_model_extracts_by_guided_decoding_with_real_weights():
    model, tok = build_fixed_answer_lm(GOOD)
    calls, forwards = [], []
    record_generate(model, calls.append)
    model.register_forward_pre_hook(lambda m, a, k: forwards.append(k["input_ids"].shape[1]), with_kwargs=True)
    extractor = LMElementExtractor(model, tok)
    result = extractor.extract("an elephant carrying two blue birds")
    assert result.result_info == GOOD and not result.retried
    assert result.answers == ("\n".join(f"{a}: {GOOD[a]}" for a in ASPECTS),)
    # six lines, one generate() each and one forward each (the line token ends the line), after one forward
    # that caches the instruction and examples
    assert len(calls) == 6 and len(forwards) == 7
    head = tok(extractor.prompt_text("x").rsplit("Prompt: x", 1)[0])["input_ids"]
    assert forwards[0] == len(head) and all(n == ids.shape[1] - len(head) for n, ids in zip(forwards[1:], calls))


def test_the_model_reads_the_built_prompt_and_each_answered_line(tiny_bytelevel):
    script, model, tok = scripted_lm(tiny_bytelevel, line_responder(GOOD))
    extractor = LMElementExtractor(model, tok)
    prompt = "an elephant carrying two blue birds"
    assert extractor(prompt) == GOOD
    built = extractor.prompt_text(prompt)
    assert script.contexts[0] == built
    assert built.startswith("List the visual elements") and built.count("\nPrompt: ") == 5
    assert built.endswith(f"\n\nPrompt: {prompt}\nObject:")
    for i, aspect in enumerate(ASPECTS[1:], start=1):
        answered = "".join(f" {GOOD[a]}\n{a2}:" for a, a2 in zip(ASPECTS[:i], ASPECTS[1:i + 1]))
        assert script.contexts[i] == built + answered and script.contexts[i].endswith(f"{aspect}:")


def test_free_decoding_reads_one_whole_answer(tiny_bytelevel):
    answer = "".join(f" {GOOD['Object']}\n" if a == "Object" else f"{a}: {GOOD[a]}\n" for a in ASPECTS)
    script, model, tok = scripted_lm(tiny_bytelevel, lambda context: answer + "\nPrompt: invented next one")
    extractor = LMElementExtractor(model, tok, decoding="free")
    assert extractor("an elephant") == GOOD
    assert len(script.contexts) == 1


def test_a_malformed_answer_is_retried_once_with_the_error_shown(tiny_bytelevel):
    bad = {**GOOD, "Count": "elephant: grey; bird: two;"}
    script, model, tok = scripted_lm(tiny_bytelevel, line_responder(bad, on_retry=GOOD))
    result = LMElementExtractor(model, tok).extract("an elephant and two birds")
    assert result.result_info == GOOD and result.retried
    # guided decoding stops at the first bad line, then asks again with the error
    assert result.answers[0] == "Object: elephant; bird;\nCount: elephant: grey; bird: two;"
    assert "rejected: Count elements 'elephant: grey; bird: two;': quantity 'grey'" in result.prompts[1]
    assert len(script.contexts) == 2 + 6 and script.contexts[2] == result.prompts[1]


def test_a_second_malformed_answer_is_reported_never_a_silent_none(tiny_bytelevel):
    bad = {**GOOD, "Object": "elephant: a;"}
    script, model, tok = scripted_lm(tiny_bytelevel, line_responder(bad))
    with pytest.raises(ExtractionError) as info:
        LMElementExtractor(model, tok)("an elephant")
    error = info.value
    assert isinstance(error, EvalAlignError) and error.answers == ("Object: elephant: a;",) * 2
    assert isinstance(error.cause, ElementsParseError) and error.cause.aspect == "Object"
    assert "in 2 attempt(s)" in str(error) and "Object elements 'elephant: a;'" in str(error)
    with pytest.raises(ExtractionError, match=r"in 1 attempt\(s\)"):
        LMElementExtractor(model, tok, retries=0)("an elephant")


def test_a_line_that_never_ends_is_an_error_not_a_truncated_value(tiny_bytelevel):
    script, model, tok = scripted_lm(tiny_bytelevel, lambda context: " cat; dog; cat; dog; cat; dog; cat; dog;")
    with pytest.raises(ExtractionError, match="the Object line did not end within 5 tokens") as info:
        LMElementExtractor(model, tok, max_line_tokens=5)("cats and dogs")
    assert len(info.value.answers) == 2 and len(script.contexts) == 2
    # end-of-text also ends a line (a chat model closes its turn after the last one)
    values = {**GOOD, "Object": "cat;"}
    script2, model2, tok2 = scripted_lm(tiny_bytelevel, lambda context: line_responder(values)(context).rstrip("\n"))
    assert LMElementExtractor(model2, tok2)("a cat") == values


def test_chat_style_uses_the_chat_template_and_continues_after_object(tiny_bytelevel):
    script, model, tok = scripted_lm(tiny_bytelevel, line_responder(GOOD))
    with pytest.raises(InputError, match="needs a tokenizer with a chat_template"):
        LMElementExtractor(model, tok, prompt_style="chat")
    tok.chat_template = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
                         "{% if add_generation_prompt %}<assistant>{% endif %}")
    try:
        extractor = LMElementExtractor(model, tok, prompt_style="chat")
        assert extractor("a cat") == GOOD
        assert script.contexts[0].startswith("<system>List the visual elements")
        assert script.contexts[0].endswith("<user>Prompt: a cat\n<assistant>Object:")
    finally:
        tok.chat_template = None


def test_bad_extractor_arguments_are_named(tiny_bytelevel):
    config, tok = tiny_bytelevel
    from transformers import LlamaForCausalLM

    model = LlamaForCausalLM(config)
    for kwargs, fragment in [({"prompt_style": "json"}, "prompt_style='json'"), ({"decoding": "beam"}, "decoding="),
                             ({"retries": -1}, "retries"), ({"max_line_tokens": 0}, "max_line_tokens"),
                             ({"n_examples": -2}, "n must be")]:
        with pytest.raises(InputError, match=fragment):
            LMElementExtractor(model, tok, **kwargs)
    with pytest.raises(InputError, match="model must be a transformers model"):
        LMElementExtractor(object(), tok)
    with pytest.raises(InputError, match="prompt must be non-empty text"):
        LMElementExtractor(model, tok)("  ")


def test_judge_language_model_is_used_text_only(tiny_judge_factory):
    from evalalign_metric.judge import load_judge

    folder = tiny_judge_factory(tokenizer="bytelevel", architecture="llava")
    judge = load_judge(folder, device="cpu", cache=False)
    net = judge.model
    ids = judge.tokenizer("two cats on a sofa", return_tensors="pt")["input_ids"]
    with torch.no_grad():  # the text-only path is the language model plus lm_head, nothing else
        manual = net.lm_head(net.model.language_model(input_ids=ids).last_hidden_state)
        assert torch.allclose(net(input_ids=ids).logits, manual, atol=1e-6)
    vision_calls = []
    net.model.vision_tower.register_forward_hook(lambda *a: vision_calls.append(1))
    script = Scripted(net, judge.tokenizer, line_responder(GOOD))
    extractor = LMElementExtractor.from_judge(judge)
    assert extractor("an elephant with two birds") == GOOD
    assert len(script.contexts) == 6 and vision_calls == []
    assert extractor.identity.startswith(f"lm:{folder.name}:")
    assert '"model_class":"LlavaForConditionalGeneration"' in extractor.identity
    loaded, tok = load_extraction_model(folder, device="cpu")
    assert type(loaded).__name__ == "LlavaForConditionalGeneration" and len(tok) == len(judge.tokenizer)


def test_load_extraction_model_from_folders_and_gguf_detection(tmp_path):
    model, tok = build_fixed_answer_lm(GOOD)
    model.save_pretrained(tmp_path / "lm")
    tok.save_pretrained(tmp_path / "lm")
    extractor = LMElementExtractor.from_pretrained(tmp_path / "lm", device="cpu")
    assert type(extractor.model).__name__ == "LlamaForCausalLM" and extractor("x") == GOOD
    (tmp_path / "two").mkdir()
    for name in ("a.gguf", "b.gguf"):
        (tmp_path / "two" / name).write_bytes(b"")
    with pytest.raises(JudgeLoadError, match="several .gguf files"):
        load_extraction_model(tmp_path / "two")
    (tmp_path / "empty").mkdir()
    with pytest.raises(JudgeLoadError, match="neither config.json nor a .gguf"):
        load_extraction_model(tmp_path / "empty")
    with pytest.raises(JudgeLoadError, match="could not load the extraction model"):
        load_extraction_model(tmp_path / "missing")


# transformers 5.24 renamed past_key_values to cache: the old name warns (and goes in 6.0 for generate)
@pytest.mark.filterwarnings("error:.*past_key_values.*")
def test_the_prefix_cache_does_not_change_what_the_model_writes(tiny_bytelevel):
    from transformers import LlamaForCausalLM

    config, tok = tiny_bytelevel
    torch.manual_seed(1)
    model = LlamaForCausalLM(config).eval()  # random weights: an arbitrary but deterministic continuation
    cached, plain = LMElementExtractor(model, tok), LMElementExtractor(model, tok, prefix_cache=False)
    for prompt in ("two cats on a red sofa", OFFICIAL[0]["prompt"]):
        head, text = cached._prompt_parts(prompt)
        assert text.startswith(head) and head.endswith("\n\n") and "Prompt: " + prompt not in head
        never = lambda s: False  # noqa: E731
        assert cached.generate(text, head=head, max_new_tokens=12, done=never) == \
            plain.generate(text, head=head, max_new_tokens=12, done=never)


# --------------------------------------------------------------------------- identity and cache
def test_identity_follows_weights_and_settings():
    model, tok = build_fixed_answer_lm(GOOD)
    first = LMElementExtractor(model, tok).identity
    assert first == LMElementExtractor(model, tok).identity
    assert first != LMElementExtractor(model, tok, n_examples=2).identity
    assert first != LMElementExtractor(model, tok, decoding="free").identity
    assert '"prompt_version":"1"' in first
    other, tok2 = build_fixed_answer_lm({**GOOD, "Color": "bird: red;"})
    assert first != LMElementExtractor(other, tok2).identity


def test_cache_extracts_each_prompt_once_per_extractor(tmp_path):
    model, tok = build_fixed_answer_lm(GOOD)
    runs = []
    record_generate(model, runs.append)
    cached = CachedExtractor(LMElementExtractor(model, tok), cache=tmp_path)
    assert cached("an elephant") == GOOD and len(runs) == 6
    assert cached("an elephant") == GOOD and len(runs) == 6
    # a new process: a fresh extractor over the same weights reads the file
    fresh = CachedExtractor(LMElementExtractor(model, tok), cache=tmp_path)
    assert fresh("an elephant") == GOOD and len(runs) == 6 and (fresh.hits, fresh.misses) == (1, 0)
    assert fresh("a different prompt") == GOOD and len(runs) == 12
    # another setting is another extractor: extracted again
    CachedExtractor(LMElementExtractor(model, tok, n_examples=3), cache=tmp_path)("an elephant")
    assert len(runs) == 18
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 2 and all(f.startswith("lm-LlamaForCausalLM-") and f.endswith(".json") for f in files)
    data = json.loads(ElementCache(tmp_path).path_for(cached.identity).read_text())
    assert data["extractor"] == cached.identity and set(data["entries"]) == {"an elephant", "a different prompt"}


def test_cache_default_folder_follows_hf_home_and_survives_a_corrupt_file(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert default_cache_dir() == tmp_path / "hf" / "evalalign" / "elements"
    calls = []
    extractor = FunctionExtractor(lambda p: calls.append(p) or GOOD, identity="demo-v1")
    cached = CachedExtractor(extractor)
    assert cached.cache.directory == tmp_path / "hf" / "evalalign" / "elements"
    cached("a")
    path = cached.cache.path_for("function:demo-v1")
    assert path.is_file() and not list(path.parent.glob("*.tmp"))
    path.write_text("{ not json")
    with pytest.warns(UserWarning, match="ignoring unreadable element cache"):
        assert cached("a") == GOOD
    assert calls == ["a", "a"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cached("a") == GOOD and calls == ["a", "a"]


def test_function_extractor_checks_the_users_answers():
    assert FunctionExtractor(lambda p: dict(GOOD), identity="ok")("x") == GOOD
    official = OFFICIAL[4]["result_info"]
    assert FunctionExtractor(lambda p: official, identity="official")("x") == official  # kept byte for byte
    with pytest.raises(ExtractionError, match=r"extractor 'bad' returned malformed elements for prompt 'x': "
                                              r"Count elements 'elephant: big;'"):
        FunctionExtractor(lambda p: {**GOOD, "Count": "elephant: big;"}, identity="bad")("x")
    with pytest.raises(InputError, match="function must be callable"):
        FunctionExtractor("not a function")
    with pytest.raises(InputError, match="caching needs an extractor identity"):
        CachedExtractor(lambda p: GOOD)
    with pytest.raises(InputError, match="caching needs an extractor identity"):
        CachedExtractor(FunctionExtractor(lambda p: GOOD))  # two lambdas must not share a cache
    assert FunctionExtractor(canonical_result_info).identity == \
        "function:evalalign_metric.extraction.result_info.canonical_result_info"


# --------------------------------------------------------------------------- the elements file
def test_elements_file_round_trip_and_the_official_file_loads(tmp_path):
    path = tmp_path / "elements.json"
    entries = [{"prompt_id": 7, "prompt": "an elephant", "result_info": GOOD, "source": "extracted"},
               {"prompt": OFFICIAL[4]["prompt"], "result_info": OFFICIAL[4]["result_info"]}]
    save_elements_file(path, entries)
    raw = json.loads(path.read_text())
    assert raw[0] == {"prompt_id": 7, "prompt": "an elephant", "result_info": GOOD, "source": "extracted"}
    assert "prompt_id" not in raw[1]
    loaded = load_elements_file(path)
    assert loaded == {"an elephant": GOOD, OFFICIAL[4]["prompt"]: OFFICIAL[4]["result_info"]}
    from importlib import resources

    official_file = resources.files("evalalign_metric.protocol") / "data/official/test_alignment_prompt.json"
    table = load_elements_file(str(official_file))
    assert table == {e["prompt"]: e["result_info"] for e in OFFICIAL} and len(table) == 120


@pytest.mark.parametrize("content, fragment", [
    ('{"prompt": "x"}', "must hold a JSON list of entries; got dict"),
    ('[{"prompt": "x", "result_info": {}, "note": 1}]', "entry 0 (prompt 'x') has unknown key(s) ['note']"),
    ('[{"prompt": "x"}]', "'result_info' is missing"),
    ('[{"prompt": "", "result_info": {}}]', "'prompt' must be non-empty text"),
    ('["x"]', "entry 0 must be an object"),
    ('[oops', "is not valid JSON"),
])
def test_elements_file_errors_name_the_entry(tmp_path, content, fragment):
    path = tmp_path / "e.json"
    path.write_text(content)
    with pytest.raises(InputError) as info:
        load_elements_file(path)
    assert fragment in str(info.value)


def test_elements_file_bad_elements_and_conflicting_duplicates(tmp_path):
    path = tmp_path / "e.json"
    path.write_text(json.dumps([{"prompt_id": "a1", "prompt": "a cat", "result_info": {**GOOD, "Count": "cat"}}]))
    with pytest.raises(InputError, match=r"entry 0 \(prompt_id 'a1', prompt 'a cat'\): Count elements 'cat'"):
        load_elements_file(path)
    path.write_text(json.dumps([{"prompt": "a cat", "result_info": GOOD},
                                {"prompt": "a cat", "result_info": {**GOOD, "Color": "none"}}]))
    with pytest.raises(InputError, match="entry 1 .* repeats an earlier prompt with different elements"):
        load_elements_file(path)
    with pytest.raises(InputError, match="does not exist"):
        load_elements_file(tmp_path / "nope.json")


def test_prompts_files_in_three_formats(tmp_path):
    (tmp_path / "p.txt").write_text("a cat\n\n  a dog  \na cat\n")
    assert read_prompts_file(tmp_path / "p.txt") == [(None, "a cat"), (None, "a dog")]
    (tmp_path / "p.json").write_text(json.dumps(["a cat", {"prompt": "a dog", "prompt_id": 3}]))
    assert read_prompts_file(tmp_path / "p.json") == [(None, "a cat"), ("3", "a dog")]
    (tmp_path / "p.jsonl").write_text('"a cat"\n{"prompt_id": "x", "prompt": "a dog"}\n')
    assert read_prompts_file(tmp_path / "p.jsonl") == [(None, "a cat"), ("x", "a dog")]
    (tmp_path / "p.csv").write_text("a")
    with pytest.raises(InputError, match="must end in .txt, .json or .jsonl"):
        read_prompts_file(tmp_path / "p.csv")
    (tmp_path / "bad.json").write_text(json.dumps([{"text": "a"}]))
    with pytest.raises(InputError, match="item 0 must be a prompt string or an object with 'prompt'"):
        read_prompts_file(tmp_path / "bad.json")
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(InputError, match="holds no prompts"):
        read_prompts_file(tmp_path / "empty.txt")
