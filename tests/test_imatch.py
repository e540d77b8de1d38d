"""The iMatch protocol end to end: protocol data, per-element questions, QAlign expectation over 15 levels
from constructed logits through the real judge engine, Yes/No renormalisation, per-category aggregation,
EvalMuse submission predictions and bad element keys."""

from __future__ import annotations

import json
import math
import string
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from evalalign_metric import EvalAlignScore, evalalign_score, load_judge
from evalalign_metric.elements import evalmuse_inputs, resolve_elements
from evalalign_metric.errors import InputError, ProtocolError
from evalalign_metric.evalmuse import CATEGORIES, parse_records, write_submission
from evalalign_metric.functional import evalmuse_predictions, score_images
from evalalign_metric.judge import Judge
from evalalign_metric.judge.chat import CHAT_FORMATS
from evalalign_metric.judge.options import encode_question
from evalalign_metric.official import alignment_prompts
from evalalign_metric.protocol import load_protocol
from evalalign_metric.protocol.schema import protocol_from_dict
from evalalign_metric.testing import build_tiny_tokenizer

IMATCH = load_protocol("imatch")
LEVELS = string.ascii_uppercase[:15]
KEYS = ({"imatch/overall", "element/match", "imatch", "element", "overall", "num_images",
         "num_without_elements", "mean_outside_mass"} | {f"element/match/{c}" for c in CATEGORIES}
        | {f"elements_from/{s}" for s in ("caller", "file", "official", "extractor", "parser")})

# Two images, their level weights (unnormalised) and, per element, (a, b) with P(Yes) : P(No) = a : b.
PROMPTS = ["a puffin on a rock", "a red car"]
ELEMENTS = [["puffin (animal)", "rock (object)"], ["red (color)", "car (object)"]]
LEVEL_WEIGHTS = {
    "a puffin on a rock": [0.5, 1, 2, 4, 3, 1, 0.25, 0.1, 0.1, 2, 5, 1, 0.5, 0.2, 0.05],
    "a red car": [0.1, 0.1, 0.1, 0.1, 0.2, 0.3, 0.5, 1, 2, 3, 4, 6, 8, 6, 1],
}
YES_NO = {"puffin (animal)": (3.0, 1.0), "rock (object)": (2.0, 3.0), "red (color)": (1.0, 4.0),
          "car (object)": (9.0, 1.0)}


def _expected_overall(weights):
    """QAlign: softmax over the level logits (log w_i) = w_i / sum(w); score = sum p_i (1 + 4 (i-1)/14)."""
    total = math.fsum(weights)
    return math.fsum(w / total * (1 + 4 * i / 14) for i, w in enumerate(weights))


def test_protocol_data():
    overall, match = IMATCH.aspects
    assert (overall.key, match.key) == ("imatch/overall", "element/match")
    assert IMATCH.default_scoring == "expectation"
    assert overall.labels == tuple(LEVELS)
    for i, option in enumerate(overall.options, start=1):
        assert option.score == pytest.approx(1 + 4 * (i - 1) / 14, abs=1e-15)
    assert (overall.min_score, overall.max_score) == (1.0, 5.0)
    assert match.labels == ("Yes", "No") and match.scores == (1.0, 0.0)
    assert match.per_element and not overall.needs_elements and overall.needs_prompt


def test_one_question_per_element_naming_element_and_category():
    asked = IMATCH.asked_questions({"elements": ["puffin (animal)", "rock (object)"]}, "a puffin on a rock")
    assert [(q.aspect.key, q.element) for q in asked] == [
        ("imatch/overall", None), ("element/match", "puffin (animal)"), ("element/match", "rock (object)")]
    assert all("Text prompt: a puffin on a rock\n" in q.text for q in asked)
    assert '"puffin (animal)"' in asked[1].text and '"rock (object)"' in asked[2].text
    assert IMATCH.render_question("match", "rock (object)", prompt="a puffin on a rock") == asked[2].text
    # No elements: only the overall question; an empty list asks no element question either.
    assert [a.key for a, _ in IMATCH.questions_for(None, "x")] == ["imatch/overall"]
    assert [a.key for a, _ in IMATCH.questions_for({"elements": []}, "x")] == ["imatch/overall"]
    # A prompt containing a placeholder is inserted as written (one-pass substitution).
    [_, (_, text)] = IMATCH.questions_for({"elements": ["a (object)"]}, "say {element}")
    assert "Text prompt: say {element}\n" in text and '"a (object)"' in text


def test_evalalign_questions_unchanged_by_the_prompt_argument():
    protocol = load_protocol("evalalign")
    for entry in alignment_prompts()[:10]:
        assert protocol.questions_for(entry["result_info"]) == protocol.questions_for(entry["result_info"],
                                                                                      entry["prompt"])


def test_prompt_is_required_where_shown():
    with pytest.raises(ProtocolError, match="pass prompt="):
        IMATCH.questions_for({"elements": ["cat (animal)"]})
    with pytest.raises(ProtocolError, match="one element key"):
        IMATCH.render_question("match", {"elements": ["cat (animal)"]}, prompt="a cat")
    with pytest.raises(ProtocolError, match="must be a list of element keys"):
        IMATCH.questions_for({"elements": "cat (animal)"}, "a cat")


def _aspect(**changes):
    aspect = {"name": "match", "dimension": "element", "elements_key": "elements", "repeat": "per_element",
              "template": "<image>\n{prompt}: is {element} shown?",
              "options": [{"label": "Yes", "score": 1}, {"label": "No", "score": 0}]}
    aspect.update(changes)
    return {k: v for k, v in aspect.items() if v is not None}


@pytest.mark.parametrize("aspects, message", [
    ([_aspect(repeat="each")], r"aspects\[0\]\(match\)\.repeat must be 'per_element' or absent"),
    ([_aspect(elements_key=None)], r"aspects\[0\]\(match\)\.elements_key must name the element list"),
    ([_aspect(template="<image>\nis {elements} shown?")], r"\.template must contain \{element\}"),
    ([_aspect(repeat=None)], r"\.template contains \{element\} but repeat is not 'per_element'"),
    ([_aspect(), _aspect(name="list", repeat=None, template="<image>\n{elements}?")],
     "elements_key 'elements' both per element"),
])
def test_schema_rejects_bad_per_element_aspects(aspects, message):
    with pytest.raises(ProtocolError, match=message):
        protocol_from_dict({"name": "t", "version": "1", "aspects": aspects})


@pytest.mark.parametrize("flavour", ["llama", "bytelevel"])
@pytest.mark.parametrize("chat_format", ["vicuna_v1", "chatml"])
def test_options_tokenise_distinctly(flavour, chat_format):
    tok = build_tiny_tokenizer(flavour, chatml=chat_format == "chatml")
    fmt = CHAT_FORMATS[chat_format]
    for aspect, text in IMATCH.questions_for({"elements": ["puffin (animal)"]}, "a puffin"):
        encoded = encode_question(tok, fmt.render(text), fmt.answer_prefix, aspect.labels)  # refuses overlaps
        assert len(set(encoded.option_ids)) == len(aspect.labels)


class _ConstructedLM(torch.nn.Module):
    """Stands in for the language model: for each row it reads which question is asked (decoding the row)
    and returns the same constructed logits at every position. Level tokens get log w_i, Yes/No first
    tokens log a / log b, every other token 0 (so the probability outside the options is large). Questions of
    other protocols get uniform logits."""

    def __init__(self, config, tokenizer):
        super().__init__()
        self.config = config
        self.tokenizer = tokenizer
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.vocab = len(tokenizer)

    @property
    def dtype(self):
        return torch.float32

    def logits_for(self, text: str) -> torch.Tensor:
        z = torch.zeros(self.vocab, dtype=torch.float32)
        if "Text prompt: " not in text:  # another protocol's question: uniform
            return z
        prompt = text.split("Text prompt: ", 1)[1].split("\n", 1)[0]
        if "Answer with one letter" in text:
            for label, w in zip(LEVELS, LEVEL_WEIGHTS[prompt]):
                z[self.tokenizer.convert_tokens_to_ids(label)] = math.log(w)
        else:
            element = text.split('element "', 1)[1].split('"', 1)[0]
            a, b = YES_NO[element]
            z[self.tokenizer.convert_tokens_to_ids("Y")] = math.log(a)
            z[self.tokenizer.convert_tokens_to_ids("N")] = math.log(b)
        return z

    def forward(self, input_ids, attention_mask, logits_to_keep, **pixels):
        rows = []
        for ids, mask in zip(input_ids, attention_mask):
            text = self.tokenizer.decode(ids[mask.bool()].tolist())
            rows.append(self.logits_for(text).expand(logits_to_keep.shape[1], -1))
        return SimpleNamespace(logits=torch.stack(rows))


@pytest.fixture(scope="module")
def constructed_judge(tiny_judge_factory):
    """The real Judge and PlainEngine around a constructed LM. ChatML answers follow ``assistant\\n``
    directly, so each level is one token and Yes/No are 'Y' 'es' / 'N' 'o' (checked below)."""
    real = load_judge(tiny_judge_factory(tokenizer="llama", chat_format="chatml"))
    judge = Judge(_ConstructedLM(real.model.config, real.tokenizer), real.processor, backend=real.backend,
                  chat_format=real.chat_format)
    tok = judge.tokenizer
    for aspect, text in IMATCH.questions_for({"elements": ["rock (object)"]}, "a red car"):
        encoded = judge.encode(text, aspect.labels)
        option_tokens = [tok.convert_ids_to_tokens(list(ids)) for ids in encoded.option_ids]
        expected = [[label] for label in LEVELS] if aspect.name == "overall" else [["Y", "es"], ["N", "o"]]
        assert option_tokens == expected, "the tiny tokenizer changed: the constructed logits rely on these"
    return judge


@pytest.fixture
def images():
    return [Image.new("RGB", (16, 16), "blue"), Image.new("RGB", (20, 12), "red")]


def test_qalign_expectation_from_constructed_logits(constructed_judge, images):
    results = score_images(constructed_judge, "imatch", images, PROMPTS, ELEMENTS)
    vocab = len(constructed_judge.tokenizer)
    for result in results:
        weights = LEVEL_WEIGHTS[result.prompt]
        overall = result.questions[0]
        assert overall.aspect == "imatch/overall"
        assert overall.probs == pytest.approx([w / math.fsum(weights) for w in weights], abs=1e-6)
        assert overall.expectation == pytest.approx(_expected_overall(weights), abs=1e-6)
        # iMatch's G(l_i) = i expectation, mapped affinely to 1-5.
        e_level = math.fsum(w * i for i, w in enumerate(weights, start=1)) / math.fsum(weights)
        assert overall.expectation == pytest.approx(1 + 4 * (e_level - 1) / 14, abs=1e-6)
        assert overall.argmax == pytest.approx(1 + 4 * max(range(15), key=weights.__getitem__) / 14)
        # Outside mass: every other token has logit 0, i.e. weight 1.
        total = math.fsum(weights)
        assert overall.outside_mass == pytest.approx(1 - total / (total + vocab - 15), abs=1e-6)
        for q in result.questions[1:]:
            a, b = YES_NO[q.element]
            assert q.expectation == pytest.approx(a / (a + b), abs=1e-6)  # P(Yes) renormalised over Yes/No
            assert q.argmax == (1.0 if a > b else 0.0)
            # P(Yes) = a/Z * 1/Z ('es' has weight 1), P(No) = b/Z * 1/Z with Z = vocab - 2 + a + b.
            z = vocab - 2 + a + b
            assert q.outside_mass == pytest.approx(1 - (a + b) / z ** 2, abs=1e-6)


def test_metric_overall_and_per_category_by_hand(constructed_judge, images):
    metric = EvalAlignScore(judge=constructed_judge, protocol="imatch")
    metric.update(images[:1], PROMPTS[:1], [ELEMENTS[0]])
    metric.update(images[1:], PROMPTS[1:], [{"elements": ELEMENTS[1]}])  # both element forms
    out = metric.compute()
    assert set(out) == KEYS
    e1, e2 = (_expected_overall(LEVEL_WEIGHTS[p]) for p in PROMPTS)
    assert float(out["imatch/overall"]) == pytest.approx((e1 + e2) / 2, abs=1e-5)
    assert float(out["imatch"]) == pytest.approx((e1 + e2) / 2, abs=1e-5)
    p = {k: a / (a + b) for k, (a, b) in YES_NO.items()}  # 0.75, 0.4, 0.2, 0.9
    assert float(out["element/match/animal"]) == pytest.approx(0.75, abs=1e-6)
    assert float(out["element/match/object"]) == pytest.approx((0.4 + 0.9) / 2, abs=1e-6)
    assert float(out["element/match/color"]) == pytest.approx(0.2, abs=1e-6)
    assert float(out["element/match"]) == pytest.approx(math.fsum(p.values()) / 4, abs=1e-6)
    for category in set(CATEGORIES) - {"animal", "object", "color"}:
        assert math.isnan(float(out[f"element/match/{category}"])), category
    normalised_overall = ((e1 + e2) / 2 - 1) / 4
    assert float(out["overall"]) == pytest.approx((normalised_overall + 0.5625) / 2, abs=1e-5)
    assert float(out["num_images"]) == 2 and float(out["num_without_elements"]) == 0

    argmax = EvalAlignScore(judge=constructed_judge, protocol="imatch", scoring="argmax")
    argmax.update(images, PROMPTS, ELEMENTS)
    out = argmax.compute()
    # puffin 3:1 -> Yes, rock 2:3 -> No, red 1:4 -> No, car 9:1 -> Yes
    assert [float(out[f"element/match/{c}"]) for c in ("animal", "object", "color")] == [1.0, 0.5, 0.0]
    assert float(out["element/match"]) == 0.5


def test_evalmuse_submission_from_results(constructed_judge, images, tmp_path):
    records = parse_records([
        {"img_path": f"SDXL/{i}.png", "prompt": prompt, "element_score": {k: None for k in elements}}
        for i, (prompt, elements) in enumerate(zip(PROMPTS, ELEMENTS))])
    prompts, elements = evalmuse_inputs(records)
    assert (prompts, elements) == (PROMPTS, ELEMENTS)
    results = score_images(constructed_judge, "imatch", images, prompts, elements)
    totals, element_scores = evalmuse_predictions(records, results)
    write_submission(tmp_path / "output.json", records, totals, element_scores)
    rows = json.loads((tmp_path / "output.json").read_text())
    assert [r["img_path"] for r in rows] == ["SDXL/0.png", "SDXL/1.png"]
    for row, prompt, keys in zip(rows, PROMPTS, ELEMENTS):
        assert row["total_score"] == pytest.approx(_expected_overall(LEVEL_WEIGHTS[prompt]), abs=1e-6)
        assert list(row["element_score"]) == keys
        for key in keys:
            a, b = YES_NO[key]
            assert row["element_score"][key] == pytest.approx(a / (a + b), abs=1e-6)
    with pytest.raises(InputError, match="must follow the records' order"):
        evalmuse_predictions(records, results[::-1])
    with pytest.raises(InputError, match=r"no 'element/match' answer for element\(s\) \['puffin \(animal\)'"):
        evalmuse_predictions(records, score_images(constructed_judge, "imatch", images, prompts,
                                                   [ELEMENTS[0][1:], ELEMENTS[1]]))
    with pytest.raises(InputError, match="no 'imatch/overall' score"):
        evalalign_results = score_images(constructed_judge, "evalalign", images[:1], prompts[:1])
        evalmuse_predictions(records[:1], evalalign_results)


def test_end_to_end_on_a_tiny_judge(tiny_judge_path, random_uint8_images):
    prompts = PROMPTS + ["three cups on a table", "a dog"]
    elements = ELEMENTS + [["cups (object)", "three (counting)", "on (spatial)", "table (object)"], []]
    metric = EvalAlignScore(model=tiny_judge_path, protocol="imatch")
    metric.update(random_uint8_images, prompts, elements)
    out = metric.compute()
    assert set(out) == KEYS
    assert 1.0 <= float(out["imatch/overall"]) <= 5.0
    assert 0.0 <= float(out["element/match"]) <= 1.0 and 0.0 <= float(out["overall"]) <= 1.0
    counts = dict(zip(metric.score_keys, metric.score_count.tolist()))
    assert counts["imatch/overall"] == 4 and counts["element/match"] == 8
    assert counts["element/match/object"] == 4 and counts["element/match/counting"] == 1
    assert math.isnan(float(out["element/match/food"]))
    # Metric (default engine) = functional on the plain one-forward-per-question engine = image by image.
    plain = load_judge(tiny_judge_path, engine="plain")
    direct = evalalign_score(plain, random_uint8_images, prompts, elements, protocol="imatch")
    for key, value in direct.items():
        assert float(out[key]) == pytest.approx(value, abs=1e-5, nan_ok=True), key
    single = EvalAlignScore(model=tiny_judge_path, protocol="imatch")
    for i in range(4):
        single.update(random_uint8_images[i:i + 1], prompts[i:i + 1], elements[i:i + 1])
    for key, value in single.compute().items():
        assert float(out[key]) == pytest.approx(float(value), abs=1e-5, nan_ok=True), key


def test_official_evalalign_elements_do_not_apply_to_imatch(tiny_judge_path, random_uint8_images):
    official = alignment_prompts()[0]["prompt"]
    assert resolve_elements(IMATCH, [official]) == [(None, None)]
    metric = EvalAlignScore(model=tiny_judge_path, protocol="imatch")
    with pytest.warns(UserWarning, match="no alignment elements"):
        metric.update(random_uint8_images[:1], [official])
    out = metric.compute()
    assert float(out["num_without_elements"]) == 1 and math.isnan(float(out["element/match"]))
    assert math.isfinite(float(out["imatch/overall"]))


@pytest.mark.parametrize("elements, message", [
    ([["puffin"]],
     r"elements\[0\]\['elements'\]\[0\]: element key 'puffin' is not of the form 'name \(category\)'"),
    ([["puffin (animal)", "puffin (animal)"]], "lists element key 'puffin \\(animal\\)' more than once"),
    ([["(animal)"]], "not of the form"),
    ([[3]], "must be a string"),
    (["puffin (animal)"], r"elements\[0\] must be a list of element keys"),
    ([{"Object": "puffin;"}], "unknown aspect 'Object'"),
    ([{"elements": "puffin (animal)"}], r"elements\[0\]\['elements'\] must be a list of element keys"),
])
def test_bad_element_keys(tiny_judge_path, random_uint8_images, elements, message):
    metric = EvalAlignScore(model=tiny_judge_path, protocol="imatch")
    with pytest.raises(InputError, match=message):
        metric.update(random_uint8_images[:1], ["a puffin"], elements)
    assert float(metric.num_images) == 0  # nothing accumulated


def test_evalmuse_inputs_needs_prompts():
    with pytest.raises(InputError, match=r"record 0 \(img_path 'm/1.png'\) has no prompt"):
        evalmuse_inputs([{"img_path": "m/1.png", "element_score": {"cat (animal)": None}}])
    assert evalmuse_inputs([]) == ([], [])
