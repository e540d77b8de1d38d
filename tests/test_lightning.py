"""The Lightning example (adapters/lightning): validation_step -> update, epoch end -> log compute()."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

L = pytest.importorskip("lightning", reason="lightning is not installed")

ADAPTER_DIR = Path(__file__).resolve().parents[1] / "adapters" / "lightning"
sys.path.insert(0, str(ADAPTER_DIR))  # spawned DDP workers inherit sys.path and re-import the example by name
example = pytest.importorskip("evalalign_lightning")

from evalalign_metric import EvalAlignScore  # noqa: E402


@pytest.fixture(scope="module")
def judge_dir(tiny_judge_factory):
    # Its expected scores move with the image, so a lost or doubled image shows above the tolerance.
    return tiny_judge_factory(tokenizer="llama", architecture="llava", confident=True, seed=4,
                              confident_scale=0.5)


def _trainer(tmp_path, **kwargs):
    options = dict(accelerator="cpu", devices=1, enable_progress_bar=False, enable_model_summary=False,
                   num_sanity_val_steps=0, default_root_dir=str(tmp_path), enable_checkpointing=False,
                   logger=False)
    return L.Trainer(**{**options, **kwargs})


def _expected(module, judge_dir, num_prompts: int) -> dict:
    """Single-process EvalAlignScore on the images the module generates for the validation prompts now."""
    rows = example.collate_prompts(list(example.ValidationPrompts(num_prompts=num_prompts)))
    module.eval()
    images = module.generator.generate(rows["prompt"], rows["seed"])
    metric = EvalAlignScore(model=judge_dir, normalize=True)
    metric.update(images, rows["prompt"], rows["elements"])
    return {f"evalalign/{k}": float(v) for k, v in metric.compute().items()}


def _assert_logged(got: dict, expected: dict) -> None:
    for key, value in expected.items():
        logged = float(got[key])
        assert math.isnan(logged) if math.isnan(value) else logged == pytest.approx(value, abs=1e-5), key


def test_fit_logs_every_aspect_each_epoch_and_resets(judge_dir, tmp_path):
    from lightning.pytorch.loggers import CSVLogger

    torch.manual_seed(0)
    module = example.TextToImageWithEvalAlign(judge=str(judge_dir))
    trainer = _trainer(tmp_path, max_epochs=2, logger=CSVLogger(str(tmp_path), name="csv"))
    trainer.fit(module, train_dataloaders=example.colour_squares_loader(),
                val_dataloaders=example.validation_loader(num_prompts=6, batch_size=4))
    expected = _expected(module, judge_dir, 6)  # the weights of the last validation: training ended before it
    _assert_logged(trainer.callback_metrics, expected)
    # 18 scores and diagnostics, and the 5 counts of where the prompts' elements came from
    assert len(expected) == 23 and sum(k.startswith("evalalign/elements_from/") for k in expected) == 5
    assert sum(not math.isnan(v) for v in expected.values()) >= 17

    import csv

    rows = list(csv.DictReader(open(Path(trainer.logger.log_dir) / "metrics.csv")))
    per_epoch = [r for r in rows if r.get("evalalign/num_images")]
    # One validation per epoch, each over the 6 prompts only: the metric was reset in between.
    assert [(int(r["epoch"]), float(r["evalalign/num_images"])) for r in per_epoch] == [(0, 6.0), (1, 6.0)]
    assert set(expected) <= set(rows[0])


def test_checkpoint_holds_the_generator_not_the_judge(judge_dir, tmp_path):
    module = example.TextToImageWithEvalAlign(judge=str(judge_dir))
    trainer = _trainer(tmp_path, max_epochs=1, limit_train_batches=1, limit_val_batches=0)
    trainer.fit(module, train_dataloaders=example.colour_squares_loader())
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    state = torch.load(path, weights_only=False)["state_dict"]
    assert set(state) == {f"generator.{k}" for k in module.generator.state_dict()}
    restored = example.TextToImageWithEvalAlign.load_from_checkpoint(path)
    for key, value in module.generator.state_dict().items():
        assert torch.equal(restored.generator.state_dict()[key], value), key
    assert restored.evalalign.judge is module.evalalign.judge  # the judge is shared per process, not reloaded


@pytest.mark.slow
@pytest.mark.subprocess
def test_ddp_two_processes_log_the_global_scores(judge_dir, tmp_path):
    torch.manual_seed(0)
    module = example.TextToImageWithEvalAlign(judge=str(judge_dir))
    expected = _expected(module, judge_dir, 6)  # validation does not change the weights
    trainer = _trainer(tmp_path, devices=2, strategy="ddp_spawn")
    [logged] = trainer.validate(module, dataloaders=example.validation_loader(num_prompts=6, batch_size=2))
    _assert_logged(logged, expected)
    assert logged["evalalign/num_images"] == 6.0  # 3 per process, each image once
