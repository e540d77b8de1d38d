"""The official judges' settings on tiny original-format checkpoints (issue: the 34B style).

A Yi-style SentencePiece model (no dummy prefix, ChatML, no BOS), a LLaVA-1.6 config (``anyres``,
``spatial_unpad``). Expected token ids are written from the SentencePiece model itself (``sentencepiece``
encoding each text segment), independently of the converter's fast tokenizer.
"""

from __future__ import annotations

import json
import shutil

import pytest
import sentencepiece as spm

from evalalign_metric.convert import convert_llava_checkpoint
from evalalign_metric.convert.errors import TokenizerMismatchError
from evalalign_metric.convert.processor import probe_prompts
from evalalign_metric.convert.spm_reference import SentencePieceReference
from evalalign_metric.convert.testing import build_original_llava
from evalalign_metric.judge.chat import CHAT_FORMATS

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


@pytest.fixture(scope="module")
def yi(tmp_path_factory):
    """A 34B-style original checkpoint: Yi tokenizer, ChatML, anyres + spatial_unpad."""
    return build_original_llava(tmp_path_factory.mktemp("yi"), chat_format="chatml", dummy_prefix=False,
                                merge="spatial_unpad", aspect_ratio="anyres")


@pytest.fixture(scope="module")
def yi_native(yi, tmp_path_factory):
    return convert_llava_checkpoint(yi, tmp_path_factory.mktemp("yi-native") / "native")


def _tokenizer(folder):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


def test_yi_tokenizer_adds_no_prefix_space_after_special_tokens_or_the_image(yi, yi_native):
    sp = spm.SentencePieceProcessor(model_file=str(yi / "tokenizer.model"))
    tok = _tokenizer(yi_native)
    start, end, image = (tok.convert_tokens_to_ids(t) for t in ("<|im_start|>", "<|im_end|>", "<image>"))
    assert (start, end) == (sp.piece_to_id("<|im_start|>"), sp.piece_to_id("<|im_end|>"))
    # The reference: each text segment encoded by SentencePiece as its proto says (no dummy prefix), no BOS.
    text = "<|im_start|>user\n<image>\nAre there any issues?<|im_end|><|im_start|>assistant\n2"
    want = ([start] + sp.encode("user\n") + [image] + sp.encode("\nAre there any issues?") + [end, start]
            + sp.encode("assistant\n2"))
    assert tok(text)["input_ids"] == want
    assert sp.encode("assistant\n")[0] != sp.encode(" assistant\n")[0]  # the "▁" piece would change the ids


def test_yi_tokenizer_matches_sentencepiece_on_every_official_question(yi, yi_native):
    tok = _tokenizer(yi_native)
    image = tok.convert_tokens_to_ids("<image>")
    ref = SentencePieceReference(yi / "tokenizer.model", legacy=True, add_bos=False)
    prompts = probe_prompts("chatml")
    assert len(prompts) == 1 + 11 + 3 * 6 + 2 * 5 + 6 * 3  # probe, 11 questions, each with its answers
    for prompt in prompts:
        assert tok(prompt)["input_ids"] == ref.ids(prompt, image), prompt


def test_vicuna_tokenizer_still_matches_sentencepiece(tmp_path):
    src = build_original_llava(tmp_path / "src")
    tok = _tokenizer(convert_llava_checkpoint(src, tmp_path / "native"))
    sp = spm.SentencePieceProcessor(model_file=str(src / "tokenizer.model"))
    prompt = CHAT_FORMATS["vicuna_v1"].render("<image>\nIs it fine? Answer:") + " -1"
    head, tail = prompt.split("<image>")
    want = [sp.bos_id()] + sp.encode(head) + [tok.convert_tokens_to_ids("<image>")] + sp.encode(tail)
    assert tok(prompt)["input_ids"] == want


def test_a_tokenizer_no_fast_mode_reproduces_stops_the_conversion(yi, tmp_path):
    # legacy=False over a proto without dummy prefix: the slow tokenizer puts "▁" at the start of each piece
    # around <image> (so after the image) but never after a special token; one fast pass cannot do both.
    src = shutil.copytree(yi, tmp_path / "src")
    config = json.loads((src / "tokenizer_config.json").read_text())
    (src / "tokenizer_config.json").write_text(json.dumps({**config, "legacy": False}))
    with pytest.raises(TokenizerMismatchError, match="slow SentencePiece"):
        convert_llava_checkpoint(src, tmp_path / "native")
    assert not (tmp_path / "native").exists()


def test_anyres_config_converts_and_runs_padded_to_one_tile(yi, tmp_path):
    with pytest.warns(UserWarning, match="image_aspect_ratio='anyres' is run as 'pad'"):
        dst = convert_llava_checkpoint(yi, tmp_path / "native")
    sidecar = json.loads((dst / "evalalign_judge.json").read_text())
    assert sidecar["pad_to_square"] is True and sidecar["chat_format"] == "chatml"
    assert json.loads((dst / "config.json").read_text())["image_grid_pinpoints"] == [[0, 0]]  # one tile


def test_unknown_aspect_ratio_is_still_refused(yi, tmp_path):
    from evalalign_metric.errors import UnsupportedModelError

    src = shutil.copytree(yi, tmp_path / "src")
    config = json.loads((src / "config.json").read_text())
    (src / "config.json").write_text(json.dumps({**config, "image_aspect_ratio": "crop"}))
    with pytest.raises(UnsupportedModelError, match="'pad', 'square' or 'anyres'"):
        convert_llava_checkpoint(src, tmp_path / "native")
