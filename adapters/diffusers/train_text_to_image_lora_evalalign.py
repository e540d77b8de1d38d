#!/usr/bin/env python
"""LoRA fine-tuning of a Stable Diffusion UNet with EvalAlign validation every N steps.

A reduced, copy-and-run script in the shape of diffusers'
``examples/text_to_image/train_text_to_image_lora.py`` (accelerate, peft LoRA on the UNet's attention
projections, epsilon / v-prediction MSE loss), with one change that matters here: validation is an
:class:`evalalign_metric.callbacks.EvalAlignValidation` called on **every** rank, which shares generation and
judging across processes and logs every EvalAlign aspect plus an image grid to the trackers.

Run (one machine, 2 processes)::

    accelerate launch --num_processes 2 train_text_to_image_lora_evalalign.py \\
        --pretrained_model_name_or_path stable-diffusion-v1-5/stable-diffusion-v1-5 \\
        --train_data_dir my_images/ --resolution 512 --max_train_steps 2000 \\
        --validation_steps 200 --judge path/to/evalalign-judge --offload_judge --report_to tensorboard

``--train_data_dir`` is an ``imagefolder``: images plus ``metadata.jsonl`` lines
``{"file_name": "0001.png", "text": "a photo of ..."}``; ``--dataset_name`` loads a dataset with 🤗 datasets
instead. Needs ``pip install "evalalign-metric[diffusers,train]"`` (diffusers, accelerate, peft, tensorboard).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.utils import ProjectConfiguration, set_seed
from diffusers import (
    AutoencoderKL,
    DDPMScheduler,
    DiffusionPipeline,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from diffusers.optimization import get_scheduler
from diffusers.training_utils import cast_training_params
from diffusers.utils import convert_state_dict_to_diffusers
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict
from PIL import Image
from transformers import CLIPTextModel, CLIPTokenizer

from evalalign_metric.callbacks import EvalAlignValidation

logger = get_logger(__name__, log_level="INFO")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrained_model_name_or_path", required=True,
                        help="Stable Diffusion pipeline folder or Hub id.")
    parser.add_argument("--revision", default=None)
    parser.add_argument("--train_data_dir", default=None, help="imagefolder: images + metadata.jsonl.")
    parser.add_argument("--dataset_name", default=None, help="A 🤗 dataset (instead of --train_data_dir).")
    parser.add_argument("--image_column", default="image")
    parser.add_argument("--caption_column", default="text")
    parser.add_argument("--output_dir", default="sd-lora-evalalign")
    parser.add_argument("--logging_dir", default="logs", help="Under --output_dir.")
    parser.add_argument("--report_to", default="tensorboard", help="tensorboard, wandb, all, ...")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--random_flip", action="store_true")
    parser.add_argument("--train_batch_size", type=int, default=1)
    parser.add_argument("--gradient_accumulation_steps", type=int, default=1)
    parser.add_argument("--max_train_steps", type=int, default=1000)
    parser.add_argument("--learning_rate", type=float, default=1e-4)
    parser.add_argument("--lr_scheduler", default="constant")
    parser.add_argument("--lr_warmup_steps", type=int, default=0)
    parser.add_argument("--max_grad_norm", type=float, default=1.0)
    parser.add_argument("--rank", type=int, default=4, help="LoRA rank.")
    parser.add_argument("--mixed_precision", default=None, choices=["no", "fp16", "bf16"])
    parser.add_argument("--dataloader_num_workers", type=int, default=0)
    # EvalAlign validation
    parser.add_argument("--validation_steps", type=int, default=200, help="Validate every N optimizer steps.")
    parser.add_argument("--judge", default=None,
                        help="EvalAlign judge folder or model id (default: the package's default judge).")
    parser.add_argument("--num_validation_prompts", type=int, default=8,
                        help="Seeded subset of the official EvalAlign prompts.")
    parser.add_argument("--validation_prompts_file", default=None,
                        help="JSON list of prompts or of {prompt, elements} instead of the official subset.")
    parser.add_argument("--scoring", default=None, choices=["argmax", "expectation"],
                        help="EvalAlign's discrete answers (default) or QAlign's expected scores.")
    parser.add_argument("--validation_inference_steps", type=int, default=25)
    parser.add_argument("--validation_batch_size", type=int, default=4)
    parser.add_argument("--offload_judge", action="store_true",
                        help="Keep the judge on the CPU between validations.")
    parser.add_argument("--save_validation_images", action="store_true",
                        help="Write each validation's images, prompts and scores to output_dir/validation.")
    args = parser.parse_args(argv)
    if (args.train_data_dir is None) == (args.dataset_name is None):
        parser.error("give exactly one of --train_data_dir and --dataset_name")
    return args


def load_records(args):
    """A sequence of ``(image or image path, caption)`` from an imagefolder, or a 🤗 dataset."""
    if args.train_data_dir is not None:
        root = Path(args.train_data_dir)
        with open(root / "metadata.jsonl", encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
        return [(root / row["file_name"], row[args.caption_column]) for row in rows]
    from datasets import load_dataset

    data = load_dataset(args.dataset_name, split="train")
    return DatasetRecords(data, args.image_column, args.caption_column)


class DatasetRecords:
    """Rows of a 🤗 dataset as ``(image, caption)``, decoded one at a time."""

    def __init__(self, data, image_column: str, caption_column: str):
        self.data, self.image_column, self.caption_column = data, image_column, caption_column

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int):
        row = self.data[i]
        return row[self.image_column], row[self.caption_column]


def to_pixels(image: Image.Image, resolution: int, flip: bool) -> torch.Tensor:
    """Resize the shorter side, centre-crop, optionally flip, scale to [-1, 1] (CHW)."""
    scale = resolution / min(image.size)
    size = (max(resolution, round(image.width * scale)), max(resolution, round(image.height * scale)))
    image = image.resize(size, Image.BILINEAR)
    left, top = (image.width - resolution) // 2, (image.height - resolution) // 2
    image = image.crop((left, top, left + resolution, top + resolution))
    if flip:
        image = image.transpose(Image.FLIP_LEFT_RIGHT)
    array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1)


class CaptionedImages(torch.utils.data.Dataset):
    def __init__(self, records, tokenizer, resolution: int, random_flip: bool):
        self.records, self.tokenizer = records, tokenizer
        self.resolution, self.random_flip = resolution, random_flip

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict:
        image, caption = self.records[i]
        image = (image if isinstance(image, Image.Image) else Image.open(image)).convert("RGB")
        ids = self.tokenizer(caption, max_length=self.tokenizer.model_max_length, padding="max_length",
                             truncation=True, return_tensors="pt").input_ids[0]
        flip = self.random_flip and random.random() < 0.5
        return {"pixel_values": to_pixels(image, self.resolution, flip), "input_ids": ids}


def validation_prompts(args):
    if args.validation_prompts_file is None:
        return {"num_prompts": args.num_validation_prompts, "prompt_seed": args.seed}
    entries = json.loads(Path(args.validation_prompts_file).read_text(encoding="utf-8"))
    prompts = [e if isinstance(e, str) else e["prompt"] for e in entries]
    elements = [None if isinstance(e, str) else e.get("elements") for e in entries]
    return {"prompts": prompts, "elements": elements}


def main(argv=None) -> None:
    args = parse_args(argv)
    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=args.mixed_precision,
        log_with=args.report_to,
        project_config=ProjectConfiguration(project_dir=args.output_dir,
                                            logging_dir=os.path.join(args.output_dir, args.logging_dir)),
    )
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)
    set_seed(args.seed)
    if accelerator.is_main_process:
        os.makedirs(args.output_dir, exist_ok=True)

    path, rev = args.pretrained_model_name_or_path, args.revision
    noise_scheduler = DDPMScheduler.from_pretrained(path, subfolder="scheduler")
    tokenizer = CLIPTokenizer.from_pretrained(path, subfolder="tokenizer", revision=rev)
    text_encoder = CLIPTextModel.from_pretrained(path, subfolder="text_encoder", revision=rev)
    vae = AutoencoderKL.from_pretrained(path, subfolder="vae", revision=rev)
    unet = UNet2DConditionModel.from_pretrained(path, subfolder="unet", revision=rev)
    for frozen in (unet, vae, text_encoder):
        frozen.requires_grad_(False)
    weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(accelerator.mixed_precision,
                                                                       torch.float32)
    unet.to(accelerator.device, dtype=weight_dtype)
    vae.to(accelerator.device, dtype=weight_dtype)
    text_encoder.to(accelerator.device, dtype=weight_dtype)
    unet.add_adapter(LoraConfig(r=args.rank, lora_alpha=args.rank, init_lora_weights="gaussian",
                                target_modules=["to_k", "to_q", "to_v", "to_out.0"]))
    if args.mixed_precision in ("fp16", "bf16"):
        cast_training_params(unet, dtype=torch.float32)  # the LoRA weights train in fp32
    lora_parameters = [p for p in unet.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(lora_parameters, lr=args.learning_rate)

    dataset = CaptionedImages(load_records(args), tokenizer, args.resolution, args.random_flip)
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.train_batch_size, shuffle=True,
                                         num_workers=args.dataloader_num_workers)
    lr_scheduler = get_scheduler(args.lr_scheduler, optimizer=optimizer,
                                 num_warmup_steps=args.lr_warmup_steps * accelerator.num_processes,
                                 num_training_steps=args.max_train_steps * accelerator.num_processes)
    unet, optimizer, loader, lr_scheduler = accelerator.prepare(unet, optimizer, loader, lr_scheduler)
    tracked = {k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool))}
    accelerator.init_trackers("text2image-lora-evalalign", config=tracked)

    # The validation pipeline shares the modules being trained, so it always sees the current LoRA weights.
    pipeline = DiffusionPipeline.from_pretrained(
        path, unet=accelerator.unwrap_model(unet), text_encoder=text_encoder, vae=vae, tokenizer=tokenizer,
        safety_checker=None, requires_safety_checker=False, revision=rev, dtype=weight_dtype)
    pipeline.to(accelerator.device)
    pipeline.set_progress_bar_config(disable=True)
    validation = EvalAlignValidation(
        args.judge, **validation_prompts(args), scoring=args.scoring,
        num_inference_steps=args.validation_inference_steps, batch_size=args.validation_batch_size,
        offload_judge=args.offload_judge,
        autocast=accelerator.mixed_precision != "no",
        save_dir=os.path.join(args.output_dir, "validation") if args.save_validation_images else None,
    )

    num_update_steps_per_epoch = math.ceil(len(loader) / args.gradient_accumulation_steps)
    num_epochs = math.ceil(args.max_train_steps / num_update_steps_per_epoch)
    logger.info("%d examples, %d epochs, %d steps, %d processes", len(dataset), num_epochs,
                args.max_train_steps, accelerator.num_processes)
    global_step = 0
    for _epoch in range(num_epochs):
        unet.train()
        for batch in loader:
            with accelerator.accumulate(unet):
                latents = vae.encode(batch["pixel_values"].to(dtype=weight_dtype)).latent_dist.sample()
                latents = latents * vae.config.scaling_factor
                noise = torch.randn_like(latents)
                timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (latents.shape[0],),
                                          device=latents.device).long()
                noisy_latents = noise_scheduler.add_noise(latents, noise, timesteps)
                encoder_hidden_states = text_encoder(batch["input_ids"], return_dict=False)[0]
                if noise_scheduler.config.prediction_type == "v_prediction":
                    target = noise_scheduler.get_velocity(latents, noise, timesteps)
                else:
                    target = noise
                model_pred = unet(noisy_latents, timesteps, encoder_hidden_states, return_dict=False)[0]
                loss = F.mse_loss(model_pred.float(), target.float(), reduction="mean")
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(lora_parameters, args.max_grad_norm)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad()
            if not accelerator.sync_gradients:
                continue
            global_step += 1
            accelerator.log({"train_loss": accelerator.gather(loss.detach()).mean().item()}, step=global_step)
            if args.validation_steps and global_step % args.validation_steps == 0:
                # On EVERY rank, not inside `if accelerator.is_main_process:`.
                unet.eval()
                scores = validation(pipeline, accelerator, step=global_step, seed=args.seed)
                unet.train()
                logger.info("EvalAlign validation (process %d) at step %d: %s", accelerator.process_index,
                            global_step, json.dumps(scores), main_process_only=False)
            if global_step >= args.max_train_steps:
                break

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(unet)
        lora_state = convert_state_dict_to_diffusers(get_peft_model_state_dict(unwrapped))
        StableDiffusionPipeline.save_lora_weights(args.output_dir, unet_lora_layers=lora_state,
                                                  safe_serialization=True)
    accelerator.end_training()


if __name__ == "__main__":
    main()
