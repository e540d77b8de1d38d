"""Validation for diffusers / accelerate training loops: generate on every rank, score, sync, log.

diffusers has no callback API: its training scripts call a ``log_validation`` function every N steps. Call an
:class:`EvalAlignValidation` there, **on every rank**: each rank generates and scores its share of the
prompts (``accelerator.split_between_processes``), the metric states are summed across ranks, every rank
returns the same scores, and the main process logs each aspect (``accelerator.log``) and an image grid to the
configured trackers (tensorboard, wandb, swanlab).

Called from the main process only (inside ``if accelerator.is_main_process:``, where diffusers' scripts put
``log_validation``), a metric that syncs would wait forever for the other ranks. The callback detects this
through the process group's key-value store, without any collective: the main process waits up to
``rendezvous_timeout`` seconds for the other ranks to arrive, and if they do not, it scores every prompt
itself with sync disabled, logs, and warns. From then on that instance skips the wait and always scores
locally. Pass ``main_process_only=True`` to declare that use: no wait, no warning.

Each prompt's image uses a CPU generator seeded with ``seed + <prompt index>``: the same images whatever
the number of processes or the device, so validations are comparable across runs.

Example:
    >>> import tempfile
    >>> from types import SimpleNamespace
    >>> from PIL import Image
    >>> from accelerate import Accelerator
    >>> from evalalign_metric.callbacks import EvalAlignValidation
    >>> from evalalign_metric.testing import build_tiny_judge
    >>> def pipeline(prompts, generator, output_type, **kwargs):  # any diffusers-like text-to-image pipeline
    ...     return SimpleNamespace(images=[Image.new("RGB", (32, 32), "red") for _ in prompts])
    >>> validation = EvalAlignValidation(build_tiny_judge(tempfile.mkdtemp()), num_prompts=2)
    >>> scores = validation(pipeline, Accelerator(cpu=True), step=100, seed=0)
    >>> scores["num_images"], 0.0 <= scores["overall"] <= 1.0
    (2.0, True)
"""

from __future__ import annotations

import gc
import json
import math
import os
import random
import time
import warnings
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from evalalign_metric.errors import InputError, require_extra
from evalalign_metric.official import alignment_prompts, faithfulness_prompts, official_elements

ACCELERATE_PURPOSE = "EvalAlignValidation (training-loop validation)"


def default_validation_prompts(num_prompts: int = 8, seed: int = 0) -> tuple[list[str], list[dict[str, str]]]:
    """A fixed, seeded subset of the official EvalAlign prompt sets, with each prompt's elements.

    Half (rounded up) come from the 120 alignment prompts, with their official elements; the rest from the
    100 faithfulness prompts, with no elements (``{}``: asked the faithfulness questions only, on purpose).

    Example:
        >>> prompts, elements = default_validation_prompts(4, seed=0)
        >>> len(prompts), [bool(e) for e in elements]
        (4, [True, True, False, False])
    """
    if not isinstance(num_prompts, int) or num_prompts < 1:
        raise InputError(f"num_prompts must be a positive integer; got {num_prompts!r}")
    alignment = [e["prompt"] for e in alignment_prompts()]
    faithfulness = [e["prompt"] for e in faithfulness_prompts()]
    n_align = min((num_prompts + 1) // 2, len(alignment))
    n_faith = num_prompts - n_align
    if n_faith > len(faithfulness):
        total = len(alignment) + len(faithfulness)
        raise InputError(f"num_prompts={num_prompts}; the official sets hold {total} prompts")
    rng = random.Random(seed)
    chosen_align = rng.sample(alignment, n_align)
    chosen_faith = rng.sample(faithfulness, n_faith)
    elements = [official_elements(p) or {} for p in chosen_align] + [{} for _ in chosen_faith]
    return chosen_align + chosen_faith, elements


def image_grid(images: Sequence, columns: int | None = None):
    """Paste ``images`` (PIL) row by row on one canvas; cells are the size of the largest image.

    Example:
        >>> from PIL import Image
        >>> image_grid([Image.new("RGB", (8, 6))] * 5, columns=2).size
        (16, 18)
    """
    from PIL import Image

    if not images:
        raise InputError("image_grid needs at least one image")
    columns = columns or math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / columns)
    width = max(im.width for im in images)
    height = max(im.height for im in images)
    grid = Image.new("RGB", (columns * width, rows * height))
    for i, im in enumerate(images):
        grid.paste(im.convert("RGB"), ((i % columns) * width, (i // columns) * height))
    return grid


class EvalAlignValidation:
    """Score a text-to-image pipeline during training with an EvalAlign judge; call it on every rank.

    Args:
        model: judge folder or model reference; ``None`` uses the package's default judge for ``protocol``
            (warns when that is the untrained demo judge). Ignored if ``judge`` is given.
        judge: an already loaded :class:`~evalalign_metric.judge.Judge`.
        prompts, elements: validation prompts and their elements (``result_info`` form, ``None`` or ``{}``);
            default: :func:`default_validation_prompts` (``num_prompts``, ``prompt_seed``).
        protocol, scoring: as for :class:`~evalalign_metric.EvalAlignScore`.
        batch_size: prompts per pipeline call.
        num_inference_steps, pipeline_kwargs: passed to the pipeline (``guidance_scale``, ``height``, ...).
        autocast: generate under ``torch.autocast(device)`` (for half-precision pipelines with fp32 LoRA).
        offload_judge: keep the judge on the CPU between validations (moved to the device to score).
        free_memory: ``gc.collect()`` and, with CUDA, ``torch.cuda.empty_cache()`` after each validation.
        log_images: log a grid of the validation images to the trackers.
        tag: prefix of the logged keys (``"<tag>/overall"``, ``"<tag>/faithfulness/body"``,
            ``"<tag>/images"``).
        save_dir: if set, the main process writes ``step_<step>/`` with the images, ``prompts.json`` and
            ``scores.json``.
        main_process_only: ``True`` declares calls from the main process only (no wait, local scoring);
            ``None`` detects it (see the module docstring).
        rendezvous_timeout: seconds the main process waits for the other ranks before scoring alone.
        dtype, judge_kwargs: judge loading options (default dtype: fp32 on CPU, bf16/fp16 on GPU).
        quantize, device_map, max_memory: ``"int8"``/``"4bit"`` loading, sharding and offload
            (:func:`~evalalign_metric.judge.load_judge`); a judge loaded so stays where it is loaded, so they
            exclude ``offload_judge``.
    """

    def __init__(
        self,
        model: str | os.PathLike | None = None,
        *,
        judge=None,
        prompts: Sequence[str] | None = None,
        elements: Sequence[Mapping[str, str] | None] | None = None,
        num_prompts: int = 8,
        prompt_seed: int = 0,
        protocol: str = "evalalign",
        scoring: str | None = None,
        batch_size: int = 4,
        num_inference_steps: int | None = None,
        pipeline_kwargs: Mapping[str, Any] | None = None,
        autocast: bool = False,
        offload_judge: bool = False,
        free_memory: bool = True,
        log_images: bool = True,
        tag: str = "evalalign",
        save_dir: str | os.PathLike | None = None,
        main_process_only: bool | None = None,
        rendezvous_timeout: float = 30.0,
        dtype: str | torch.dtype | None = None,
        judge_kwargs: Mapping[str, Any] | None = None,
        quantize: str | None = None,
        device_map: str | Mapping[str, Any] | None = None,
        max_memory: Mapping[Any, Any] | None = None,
    ) -> None:
        from evalalign_metric.protocol import load_protocol

        if prompts is None:
            if elements is not None:
                raise InputError("elements were given without prompts; pass prompts= with them")
            prompts, elements = default_validation_prompts(num_prompts, prompt_seed)
        if isinstance(prompts, str) or not prompts or not all(isinstance(p, str) and p.strip()
                                                              for p in prompts):
            raise InputError(f"prompts must be a non-empty list of non-empty strings; got {prompts!r}")
        if elements is not None and len(elements) != len(prompts):
            raise InputError(
                f"elements ({len(elements)}) and prompts ({len(prompts)}) must have the same length")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"batch_size must be a positive integer; got {batch_size!r}")
        if rendezvous_timeout <= 0:
            raise InputError(f"rendezvous_timeout must be positive (seconds); got {rendezvous_timeout!r}")
        placing = {k: v for k, v in {"quantize": quantize, "device_map": device_map, "max_memory": max_memory}.items()
                   if v is not None}
        if offload_judge and placing:
            raise InputError(f"offload_judge=True moves the judge between CPU and GPU; a judge loaded with "
                             f"{', '.join(placing)} stays where it is loaded: pass one or the other")
        self.prompts = list(prompts)
        self.elements = list(elements) if elements is not None else [None] * len(self.prompts)
        self.protocol = load_protocol(protocol)
        self.scoring = scoring
        self.model = model
        self._judge = judge
        self.batch_size = batch_size
        self.pipeline_kwargs = dict(pipeline_kwargs or {})
        if num_inference_steps is not None:
            self.pipeline_kwargs["num_inference_steps"] = num_inference_steps
        self.autocast = autocast
        self.offload_judge = offload_judge
        self.free_memory = free_memory
        self.log_images = log_images
        self.tag = tag
        self.save_dir = Path(save_dir) if save_dir is not None else None
        self.main_process_only = main_process_only
        self.rendezvous_timeout = float(rendezvous_timeout)
        self.dtype = dtype
        self.judge_kwargs = {**dict(judge_kwargs or {}), **placing}
        self._calls_per_step: dict[int, int] = {}
        self._alone = False  # set once the main process found itself called alone

    # -- judge --------------------------------------------------------------------------------------------
    def judge_for(self, device: torch.device):
        """The judge, loaded on first use (on the CPU when ``offload_judge``, in the device's dtype)."""
        if self._judge is None:
            from evalalign_metric.judge.loading import default_dtype, load_judge

            model = self.model
            if model is None:
                from evalalign_metric.registry import judge_when_none_named

                model = judge_when_none_named(self.protocol)
            self._judge = load_judge(model, device="cpu" if self.offload_judge else device,
                                     dtype=self.dtype or default_dtype(device), **self.judge_kwargs)
        return self._judge

    # -- who takes part -----------------------------------------------------------------------------------
    def _all_ranks_present(self, accelerator, step: int) -> bool:
        """Whether every rank called this validation; decided by the main process via the store."""
        import torch.distributed as dist

        if accelerator.num_processes == 1 or not dist.is_available() or not dist.is_initialized():
            return True
        if self.main_process_only:
            return False
        try:
            store = dist.distributed_c10d._get_default_store()
        except (AttributeError, RuntimeError, ValueError):  # no store to probe: trust the documented contract
            return True
        call = self._calls_per_step[step] = self._calls_per_step.get(step, 0) + 1
        key = f"evalalign_metric/validation/{self.tag}/{step}/{call}"
        store.add(f"{key}/arrived", 1)
        if accelerator.is_main_process:
            together = False
            if not self._alone:
                deadline = time.monotonic() + self.rendezvous_timeout
                while not together and time.monotonic() < deadline:
                    together = store.add(f"{key}/arrived", 0) >= accelerator.num_processes
                    if not together:
                        time.sleep(0.02)
            self._alone = not together
            store.set(f"{key}/mode", "all" if together else "local")
            return together
        try:
            store.wait([f"{key}/mode"])
        except RuntimeError:  # the main process never came: score alone
            return False
        return store.get(f"{key}/mode").decode() == "all"

    # -- the validation -----------------------------------------------------------------------------------
    def _generate(self, pipeline, device: torch.device, prompts: list[str], seeds: list[int]) -> list:
        images = []
        context = torch.autocast(device.type) if self.autocast else nullcontext()
        for start in range(0, len(prompts), self.batch_size):
            chunk = prompts[start:start + self.batch_size]
            generators = [torch.Generator("cpu").manual_seed(s) for s in seeds[start:start + self.batch_size]]
            with context:
                out = pipeline(chunk, generator=generators, output_type="pil", **self.pipeline_kwargs)
            if len(out.images) != len(chunk):
                raise InputError(f"the pipeline returned {len(out.images)} images for {len(chunk)} prompts; "
                                 "pass one image per prompt (num_images_per_prompt=1)")
            images.extend(out.images)
        return images

    def __call__(self, pipeline, accelerator, step: int, *, seed: int = 0) -> dict[str, float]:
        """Generate, score and log; returns the scores (the same dict on every rank).

        Args:
            pipeline: a diffusers text-to-image pipeline (called as ``pipeline(prompts, generator=[...],
                output_type="pil", **pipeline_kwargs)``), on the accelerator's device.
            accelerator: the training loop's ``accelerate.Accelerator``.
            step: the global step the values are logged at.
            seed: image ``i`` is generated with a CPU generator seeded ``seed + i``.
        """
        require_extra("accelerate", "diffusers", ACCELERATE_PURPOSE)
        from accelerate.utils import gather_object

        from evalalign_metric.metric import EvalAlignScore

        together = self._all_ranks_present(accelerator, step)
        if accelerator.num_processes > 1 and not together and not self.main_process_only:
            warnings.warn(
                f"EvalAlignValidation at step {step} runs on process {accelerator.process_index} only "
                "(it was called inside `if accelerator.is_main_process:`, or the other ranks did not arrive "
                f"within {self.rendezvous_timeout:g} s): scoring all {len(self.prompts)} prompts here, "
                "without syncing. Call it on every rank to share the work (or pass main_process_only=True "
                "to skip the wait).",
                UserWarning, stacklevel=2)
        indices = list(range(len(self.prompts)))
        if together:
            with accelerator.split_between_processes(indices) as shard:
                indices = list(shard)
        device = accelerator.device
        judge = self.judge_for(device)
        # Generate first: with offload_judge the judge only joins the pipeline on the device to score.
        images = self._generate(pipeline, device, [self.prompts[i] for i in indices],
                                [seed + i for i in indices])
        metric = EvalAlignScore(judge=judge, protocol=self.protocol, scoring=self.scoring,
                                sync_on_compute=together)
        try:
            metric.to(device)  # moves the judge too
            with warnings.catch_warnings():
                if not indices:  # more processes than prompts: this rank only takes part in the sync
                    warnings.filterwarnings("ignore", message=".*compute.*before the ``update``")
                else:
                    metric.update(images, [self.prompts[i] for i in indices],
                                  [self.elements[i] for i in indices])
                scores = {key: float(value) for key, value in metric.compute().items()}
        finally:
            if self.offload_judge:
                judge.to("cpu")
        if self.log_images or self.save_dir is not None:
            images = gather_object(images) if together else images
        if accelerator.is_main_process:
            self._log(accelerator, step, scores, images, seed)
        del metric, images
        if self.free_memory:
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        return scores

    def _log(self, accelerator, step: int, scores: dict[str, float], images: list, seed: int) -> None:
        accelerator.log({f"{self.tag}/{key}": value for key, value in scores.items()}, step=step)
        if self.log_images and images:
            import numpy as np

            grid = image_grid(images)
            for tracker in accelerator.trackers:
                if tracker.name == "tensorboard":
                    tracker.log_images({f"{self.tag}/images": np.asarray(grid)[None]}, step=step,
                                       dataformats="NHWC")
                elif tracker.name in ("wandb", "swanlab"):
                    tracker.log_images({f"{self.tag}/images": [grid]}, step=step)
        if self.save_dir is not None:
            folder = self.save_dir / f"step_{step:06d}"
            folder.mkdir(parents=True, exist_ok=True)
            for i, image in enumerate(images):
                image.save(folder / f"{i:03d}.png")
            records = [{"index": i, "prompt": p, "elements": e, "seed": seed + i}
                       for i, (p, e) in enumerate(zip(self.prompts, self.elements))]
            (folder / "prompts.json").write_text(json.dumps(records, indent=1))
            (folder / "scores.json").write_text(json.dumps(scores, indent=1))
