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
import torch

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


def _answers(folder, engine, images, questions):
    from evalalign_metric.judge import load_judge

    judge = load_judge(folder, engine=engine, cache=False, device="cpu", dtype="float32")
    return [[d.log_probs for d in row] for row in judge.answer(images, [questions] * len(images))]


@pytest.mark.parametrize("engine", ["plain", "prefix"])
def test_one_judge_asks_faithfulness_with_and_alignment_without_the_image_newline(yi, yi_native, tmp_path, engine):
    from PIL import Image

    from evalalign_metric.protocol import load_protocol

    protocol = load_protocol("evalalign")
    assert json.loads((yi_native / "evalalign_judge.json").read_text())["image_newline"] == {
        "faithfulness": True, "alignment": False}
    # The same checkpoint converted for each of EvalAlign's two scripts: with the newline for every question
    # (its faithfulness script, a list of images) and without (its alignment script, a 4-D tensor).
    everywhere = shutil.copytree(yi_native, tmp_path / "everywhere")
    sidecar = json.loads((everywhere / "evalalign_judge.json").read_text())
    del sidecar["image_newline"]
    (everywhere / "evalalign_judge.json").write_text(json.dumps(sidecar))
    nowhere = convert_llava_checkpoint(yi, tmp_path / "nowhere", keep_image_newline=False)
    questions = [(protocol.aspect("body").template, protocol.aspect("body").labels),
                 (protocol.render_question("Object", "cat; mat;"), ("0", "1", "2")),
                 (protocol.aspect("common").template, protocol.aspect("common").labels),
                 (protocol.render_question("Color", "cat: black;"), ("0", "1", "2"))]
    images = [Image.new("RGB", (30, 17), (200, 30, 40)), Image.new("RGB", (17, 30), (20, 90, 240)),
              Image.new("RGB", (24, 24), (250, 250, 250))]
    got = _answers(yi_native, engine, images, questions)
    with_newline = _answers(everywhere, engine, images, questions)
    without = _answers(nowhere, engine, images, questions)
    for row, a, b in zip(got, with_newline, without):
        for q, (mine, want_faith, want_align) in enumerate(zip(row, a, b)):
            want = want_faith if q % 2 == 0 else want_align
            other = want_align if q % 2 == 0 else want_faith
            assert torch.allclose(mine, want, atol=1e-5), q
            assert not torch.allclose(mine, other, atol=1e-3), q  # the two paths do differ


def test_official_judges_default_to_their_training_dtype_on_gpu(yi_native, tmp_path):
    from evalalign_metric.judge.chat import read_sidecar
    from evalalign_metric.judge.loading import judge_dtype

    sidecar = read_sidecar(yi_native)
    assert sidecar["dtype"] == "float16"  # the tiny checkpoint is stored in fp16, as the official ones
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert judge_dtype(None, cuda, sidecar) == judge_dtype("auto", cuda, sidecar) == torch.float16
    assert judge_dtype("bfloat16", cuda, sidecar) == torch.bfloat16  # an explicit choice wins
    assert judge_dtype(None, cpu, sidecar) == torch.float32  # fp16 matmuls on a CPU: slow and no closer
    src = build_original_llava(tmp_path / "fp32", dtype=torch.float32)
    assert read_sidecar(convert_llava_checkpoint(src, tmp_path / "native"))["dtype"] == "float32"


def _pickle_only_tower(folder):
    """A copy of the tiny CLIP tower saved as openai/clip-vit-large-patch14-336 is: pytorch_model.bin only."""
    from safetensors.torch import load_file

    tower = shutil.copytree(folder, folder.parent / "pickle-tower")
    torch.save(load_file(str(tower / "model.safetensors")), tower / "pytorch_model.bin")
    (tower / "model.safetensors").unlink()
    return tower


def _cached_json_only_snapshot(cache, repo):
    """What a first try without allow_pickle leaves in the Hugging Face cache: the tower's JSON files only."""
    root = cache / ("models--" + repo.replace("/", "--"))
    sha = "0" * 40
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(sha)
    snapshot = root / "snapshots" / sha
    snapshot.mkdir(parents=True)
    return snapshot


def test_a_pickle_only_tower_names_the_flag_and_a_json_only_cache_does_not_block_the_retry(tmp_path, monkeypatch):
    from huggingface_hub import constants

    from evalalign_metric.convert import PickleWeightsRefusedError

    repo = "org-test/clip-tower"
    src = build_original_llava(tmp_path / "build", tower_name=repo)
    pickled = _pickle_only_tower(tmp_path / "build" / "clip-tower")
    cache = tmp_path / "hf-cache"
    snapshot = _cached_json_only_snapshot(cache, repo)
    for name in ("config.json", "preprocessor_config.json"):
        shutil.copy(pickled / name, snapshot / name)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    downloads = []

    def download(name, allow_pickle):  # the Hub's downloader: pickle files only when allowed
        downloads.append((name, allow_pickle))
        return pickled if allow_pickle else snapshot

    with pytest.raises(PickleWeightsRefusedError, match="--allow-pickle"):
        convert_llava_checkpoint(src, tmp_path / "first", tower_resolver=lambda n: download(n, False))
    dst = convert_llava_checkpoint(src, tmp_path / "retry", allow_pickle=True,
                                   tower_resolver=lambda n: download(n, True))
    assert downloads[-1] == (repo, True)  # the JSON-only snapshot was passed over, the tower fetched again
    assert (dst / "model.safetensors.index.json").is_file()


def test_the_hub_tower_downloader_names_the_flag_for_a_pickle_only_repo(tmp_path, monkeypatch):
    from evalalign_metric.convert import PickleWeightsRefusedError
    from evalalign_metric.hub import resolve

    (tmp_path / "config.json").write_text("{}")
    fetched = []

    def fake_download(name, **kwargs):  # a repo with pytorch_model.bin only: the safetensors/JSON patterns get JSON
        fetched.append(kwargs["patterns"])
        return tmp_path, "0" * 40

    monkeypatch.setattr(resolve, "download", fake_download)
    with pytest.raises(PickleWeightsRefusedError, match=r"allow_pickle=True \(CLI: --allow-pickle\)"):
        resolve.tower_downloader()("openai/clip-vit-large-patch14-336")
    (tmp_path / "pytorch_model.bin").write_bytes(b"")
    assert resolve.tower_downloader(allow_pickle=True)("openai/clip-vit-large-patch14-336") == tmp_path
    assert "*.bin" not in fetched[0] and "*.bin" in fetched[1]
