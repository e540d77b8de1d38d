"""The original-LLaVA -> native converter on tiny checkpoints built offline (DESIGN 1.3, 1.4).

Expectations are computed independently of the converter: the vision path by hand from the original
tensors (CLIP tower + projector maths), token ids the way the reference builds them.
"""

from __future__ import annotations

import argparse
import json
import shutil
import warnings

import pytest
import torch
from safetensors.torch import load_file, save_file

from evalalign_metric.convert import (
    ConversionError,
    PickleWeightsRefusedError,
    convert_llava_checkpoint,
    is_original_llava_dir,
)
from evalalign_metric.convert.processor import reference_ids
from evalalign_metric.convert.testing import build_original_llava
from evalalign_metric.errors import JudgeLoadError, UnsupportedModelError

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


@pytest.fixture(scope="module")
def flat(tmp_path_factory):
    return build_original_llava(tmp_path_factory.mktemp("flat"), merge="flat")


@pytest.fixture(scope="module")
def unpad(tmp_path_factory):
    return build_original_llava(tmp_path_factory.mktemp("unpad"), merge="spatial_unpad", unfreeze_vision=True)


def _copy(src, tmp_path):
    return shutil.copytree(src, tmp_path / "copy")


def _load(dst):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model, info = AutoModelForImageTextToText.from_pretrained(dst, dtype=torch.float32, output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    return model.eval(), AutoProcessor.from_pretrained(dst)


def _clip_hidden(tower_dir, pixel_values, layer):
    from transformers import CLIPVisionModel

    tower = CLIPVisionModel.from_pretrained(tower_dir, dtype=torch.float32).eval()
    return tower(pixel_values, output_hidden_states=True).hidden_states[layer]


def _project(features, state):
    w0, b0 = state["model.mm_projector.0.weight"].float(), state["model.mm_projector.0.bias"].float()
    w2, b2 = state["model.mm_projector.2.weight"].float(), state["model.mm_projector.2.bias"].float()
    return torch.nn.functional.gelu(features @ w0.T + b0) @ w2.T + b2


def test_flat_checkpoint_becomes_llava_with_tower_weights(flat, tmp_path):
    dst = convert_llava_checkpoint(flat, tmp_path / "native")
    config = json.loads((dst / "config.json").read_text())
    assert config["model_type"] == "llava"
    assert config["vision_feature_layer"] == -2 and config["vision_feature_select_strategy"] == "default"
    model, processor = _load(dst)
    state = load_file(str(flat / "model.safetensors"))
    pixel_values = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        got = model.model.get_image_features(pixel_values=pixel_values).pooler_output[0]
        want = _project(_clip_hidden(flat.parent / "clip-tower", pixel_values, -2)[0, 1:], state)
    assert got.shape == (16, 32)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_text_weights_renamed_and_image_token_appended(flat, tmp_path):
    dst = convert_llava_checkpoint(flat, tmp_path / "native")
    model, processor = _load(dst)
    state = load_file(str(flat / "model.safetensors"))
    vocab = state["lm_head.weight"].shape[0]
    image_id = processor.tokenizer.convert_tokens_to_ids("<image>")
    assert image_id == vocab == model.config.image_token_id
    embed = model.get_input_embeddings().weight
    head = model.get_output_embeddings().weight
    torch.testing.assert_close(embed[:vocab], state["model.embed_tokens.weight"].float())
    torch.testing.assert_close(head[:vocab], state["lm_head.weight"].float())
    # The new output row is the mean row, so its logit is the mean logit: probability <= 1/vocab (Jensen).
    torch.testing.assert_close(head[vocab], state["lm_head.weight"].float().mean(0), atol=1e-3, rtol=1e-3)
    layer = model.model.language_model.layers[1].mlp.down_proj.weight
    torch.testing.assert_close(layer, state["model.layers.1.mlp.down_proj.weight"].float())


def test_unpad_checkpoint_becomes_single_tile_llava_next(unpad, tmp_path):
    dst = convert_llava_checkpoint(unpad, tmp_path / "native")
    assert json.loads((dst / "config.json").read_text())["model_type"] == "llava_next"
    model, processor = _load(dst)
    state = load_file(str(unpad / "model.safetensors"))
    from PIL import Image

    inputs = processor(images=[Image.new("RGB", (16, 16), (90, 40, 200))], text=["<image>"], return_tensors="pt")
    image_id = processor.tokenizer.convert_tokens_to_ids("<image>")
    assert int((inputs["input_ids"] == image_id).sum()) == 16 + 1
    with torch.no_grad():
        got = model.model.get_image_features(pixel_values=inputs["pixel_values"],
                                             image_sizes=inputs["image_sizes"]).pooler_output[0]
    # unfreeze_mm_vision_tower: the checkpoint's own (perturbed) vision weights, not the tower folder's.
    from transformers import CLIPVisionConfig, CLIPVisionModel

    tower_config = CLIPVisionConfig(**json.loads((unpad.parent / "clip-tower" / "config.json").read_text())
                                    ["vision_config"])
    tower = CLIPVisionModel(tower_config).eval()
    prefix = "model.vision_tower.vision_tower.vision_model."
    tower.load_state_dict({k[len(prefix):]: v.float() for k, v in state.items() if k.startswith(prefix)},
                          strict=False)
    with torch.no_grad():
        hidden = tower(inputs["pixel_values"][:, 0], output_hidden_states=True).hidden_states[-2][0, 1:]
    want = torch.cat([_project(hidden, state), state["model.image_newline"].float()[None]])
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        from_tower = _clip_hidden(unpad.parent / "clip-tower", inputs["pixel_values"][:, 0], -2)[0, 1:]
    assert (_project(from_tower, state) - got[:-1]).abs().max() > 1e-3


def test_unpad_without_newline_is_plain_llava(unpad, tmp_path):
    dst = convert_llava_checkpoint(unpad, tmp_path / "native", keep_image_newline=False)
    model, processor = _load(dst)
    assert type(model).__name__ == "LlavaForConditionalGeneration"
    assert "model.image_newline" not in json.loads((dst / "model.safetensors.index.json").read_text())["weight_map"]


def test_tokenizer_reproduces_reference_ids_and_vicuna_format(flat, tmp_path):
    from evalalign_metric.judge.chat import CHAT_FORMATS

    # A folder named like the 34B judge must not change the format: only the tokenizer decides.
    dst = convert_llava_checkpoint(flat, tmp_path / "evalalign-v1.0-34b")
    sidecar = json.loads((dst / "evalalign_judge.json").read_text())
    assert sidecar == {"format_version": 1, "chat_format": "vicuna_v1", "protocol": "evalalign",
                       "pad_to_square": True, "dtype": "float16"}
    _, processor = _load(dst)
    tok = processor.tokenizer
    prompt = CHAT_FORMATS["vicuna_v1"].render("<image>\nIs the body fine? \nOptions: 0.No, 1.Yes, the answer is")
    ids = tok(prompt)["input_ids"]
    assert ids == reference_ids(tok, prompt, tok.convert_tokens_to_ids("<image>"))
    image_at = ids.index(tok.convert_tokens_to_ids("<image>"))
    assert tok.convert_ids_to_tokens(ids[image_at + 1]) == "▁"  # the reference's extra piece (DESIGN 1.4)


def test_chatml_tokenizer_gives_chatml_sidecar(tmp_path):
    # Yi-like (no dummy prefix), as a ChatML judge's tokenizer is: see tests/test_convert_official.py.
    src = build_original_llava(tmp_path / "src", chat_format="chatml", dummy_prefix=False)
    dst = convert_llava_checkpoint(src, tmp_path / "evalalign-v1.0-13b")
    assert json.loads((dst / "evalalign_judge.json").read_text())["chat_format"] == "chatml"


def test_unexpected_and_missing_keys_are_errors(flat, tmp_path):
    src = _copy(flat, tmp_path)
    state = load_file(str(src / "model.safetensors"))
    save_file({**state, "model.mm_projector.4.weight": torch.zeros(2, 2)}, str(src / "model.safetensors"))
    with pytest.raises(ConversionError, match="unexpected"):
        convert_llava_checkpoint(src, tmp_path / "a")
    del state["model.layers.1.self_attn.q_proj.weight"]
    save_file(state, str(src / "model.safetensors"))
    with pytest.raises(ConversionError, match="missing 1 tensors"):
        convert_llava_checkpoint(src, tmp_path / "b")


def test_pickle_refused_unless_allowed(flat, tmp_path):
    src = _copy(flat, tmp_path)
    state = load_file(str(src / "model.safetensors"))
    (src / "model.safetensors").unlink()
    torch.save(state, src / "pytorch_model.bin")
    with pytest.raises(PickleWeightsRefusedError, match="allow_pickle=True"):
        convert_llava_checkpoint(src, tmp_path / "a")
    dst = convert_llava_checkpoint(src, tmp_path / "b", allow_pickle=True)
    assert (dst / "model.safetensors.index.json").is_file()


def test_unsupported_settings_and_bad_destinations(flat, tmp_path):
    src = _copy(flat, tmp_path)
    config = json.loads((src / "config.json").read_text())
    (src / "config.json").write_text(json.dumps({**config, "mm_projector_type": "linear"}))
    with pytest.raises(UnsupportedModelError, match="mm_projector_type='linear'"):
        convert_llava_checkpoint(src, tmp_path / "a")
    (src / "config.json").write_text(json.dumps({**config, "mm_vision_tower": "nobody/no-such-tower"}))
    with pytest.raises(ConversionError, match="--vision-tower"):
        convert_llava_checkpoint(src, tmp_path / "b")
    dst = convert_llava_checkpoint(src, tmp_path / "c", vision_tower=flat.parent / "clip-tower")
    assert not is_original_llava_dir(dst) and is_original_llava_dir(flat)
    with pytest.raises(ConversionError, match="already a native"):
        convert_llava_checkpoint(dst, tmp_path / "d")
    with pytest.raises(ConversionError, match="not empty"):
        convert_llava_checkpoint(flat, dst)
    with pytest.raises(JudgeLoadError, match="no config.json"):
        convert_llava_checkpoint(tmp_path / "nothing", tmp_path / "e")


def test_cli_convert(flat, tmp_path, capsys):
    from evalalign_metric.commands import convert as command

    parser = argparse.ArgumentParser()
    command.register(parser.add_subparsers())
    args = parser.parse_args(["convert", str(flat), str(tmp_path / "out"), "--dtype", "float32"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert args.func(args) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "out")
    model, _ = _load(tmp_path / "out")
    assert model.dtype == torch.float32
