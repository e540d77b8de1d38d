"""The training loop: supervised fine-tuning of a judge on annotations, resumable, on one device or many.

:func:`train` reads the data, builds or loads the judge, attaches LoRA if asked, and trains with AdamW and a
warm-up + cosine/linear/constant schedule. The loss is on the answer tokens only
(:mod:`~evalalign_metric.training.features`). ``accelerate`` places the model, runs mixed precision (bf16 on
GPUs that support it) and data-parallel training across processes (``accelerate launch -m
evalalign_metric.commands.train --config FILE``); each process takes its slice of every global batch.

Determinism: the image order of every epoch and every augmentation are drawn from
``(seed, phase, epoch, image)`` seeds, so the data position in ``state.json`` is all a resumed run needs
to see the same batches; checkpoints (every ``checkpoint_every`` optimizer steps) carry the trainable
weights, optimizer, scheduler and random state. Resuming after a kill gives the weights of an uninterrupted
run.

Phases: phase 0 trains on the labelled data; with ``pseudo_labels.enabled`` each further phase labels the
unlabelled set with the current judge, keeps confident answers and trains on both.

Example:
    >>> cfg = {"output_dir": "out", "model": {"base": "judge"}, "data": {"train": [{"format": "jsonl", "path": "t"}]}}
    >>> from evalalign_metric.training.config import config_from_dict
    >>> schedule_factor(config_from_dict(cfg).training, step=5, total=10)  # cosine, no warm-up, half way
    0.5
"""

from __future__ import annotations

import fnmatch
import math
import os
import random
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from PIL import Image

from evalalign_metric.errors import EvalAlignError, InputError, ProtocolError, require_extra
from evalalign_metric.protocol import Protocol, load_protocol
from evalalign_metric.training import checkpoint as ckpt
from evalalign_metric.training.annotations import Annotation, ReadReport, group_by_image
from evalalign_metric.training.augment import augment_image, sample_rng
from evalalign_metric.training.config import TrainConfig, TrainingConfig, config_to_dict
from evalalign_metric.training.features import AnswerLoss, TargetEncoder, collate
from evalalign_metric.training.fingerprint import check_resumable, run_fingerprint
from evalalign_metric.training.pseudo import (
    annotations_from_json,
    annotations_to_json,
    is_unlabelled,
    pseudo_label,
)
from evalalign_metric.training.readers import read_source
from evalalign_metric.training.targets import build_target

PSEUDO_FILE = "pseudo_labels.json"


class TrainingInterrupted(EvalAlignError):
    """Raised by ``stop_after_steps`` (tests and benchmarks simulate a kill with it)."""


def schedule_factor(training: TrainingConfig, step: int, total: int) -> float:
    """Learning-rate multiplier at optimizer step ``step`` of ``total``: linear warm-up, then cosine or
    linear decay to ``min_lr_ratio`` (or constant)."""
    if training.warmup_steps and step < training.warmup_steps:
        return (step + 1) / training.warmup_steps
    if training.scheduler == "constant":
        return 1.0
    span = max(1, total - training.warmup_steps)
    progress = min(1.0, (step - training.warmup_steps) / span)
    floor = training.min_lr_ratio
    decay = 0.5 * (1.0 + math.cos(math.pi * progress)) if training.scheduler == "cosine" else 1.0 - progress
    return floor + (1.0 - floor) * decay


@dataclass
class TrainResult:
    """What a run did; :meth:`summary` is what ``evalalign train`` prints at the end."""

    output_dir: Path
    steps: int = 0
    last_loss: float | None = None
    evaluation: dict[str, dict[str, float]] | None = None
    reports: dict[str, ReadReport] = field(default_factory=dict)
    pseudo_labels: int = 0
    resumed_from: str | None = None
    hub_url: str | None = None
    seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)
    processes: int = 1
    is_main_process: bool = True

    def summary(self) -> str:
        resumed = f" (resumed from {self.resumed_from})" if self.resumed_from else ""
        lines = [f"judge saved to {self.output_dir}" + resumed,
                 f"optimizer steps: {self.steps}; last loss: "
                 + ("n/a" if self.last_loss is None else f"{self.last_loss:.4f}") + f"; time {self.seconds:.0f} s"
                 + (f"; {self.processes} processes" if self.processes > 1 else "")]
        for name, report in self.reports.items():
            lines.append(f"{name} data: {report.summary()}")
            for where, reason in report.skipped[:5]:
                lines.append(f"  skipped {where}: {reason}")
        if self.pseudo_labels:
            lines.append(f"pseudo-labels used: {self.pseudo_labels}")
        for aspect, values in (self.evaluation or {}).items():
            lines.append(f"eval {aspect}: SRCC {values['srcc']:.3f}  PLCC {values['plcc']:.3f}  "
                         f"accuracy {values['accuracy']:.3f}  (n={values['n']})")
        if self.hub_url:
            lines.append(f"pushed: {self.hub_url}")
        return "\n".join(lines)


def _read(sources, protocol: Protocol, name: str) -> tuple[list[Annotation], ReadReport]:
    annotations, report = [], ReadReport()
    for source in sources:
        found, rep = read_source(source.path, format=source.format, protocol=protocol, image_root=source.image_root,
                                 **dict(source.options))
        annotations.extend(found)
        report = report.merge(rep)
    return annotations, report


def _precision(name: str) -> str:
    if name == "auto":
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return "bf16"
        return "no"
    return {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}[name]


def aspect_weight_keys(protocol: Protocol, weights: Mapping[str, float]) -> dict:
    """``data.aspect_weights`` keyed as :func:`question_weight` reads them: an aspect (name or key) becomes its
    key; ``"ASPECT (CATEGORY)"`` (a per-element aspect, an element category of ``evalmuse.split_element``)
    becomes ``(key, category)`` and weighs only that aspect's questions about elements of that category.

    Example:
        >>> from evalalign_metric.protocol import load_protocol
        >>> aspect_weight_keys(load_protocol("imatch"), {"overall": 2, "element/match (spatial)": 4})
        {'imatch/overall': 2, ('element/match', 'spatial'): 4}
    """
    from evalalign_metric.evalmuse import CATEGORIES

    out: dict = {}
    for name, weight in weights.items():
        aspect_name, category = name, None
        head, sep, tail = name.rpartition(" (")
        if sep and tail.endswith(")"):
            aspect_name, category = head, tail[:-1].strip().lower()
        try:
            aspect = protocol.aspect(aspect_name)
        except ProtocolError:
            raise InputError(f"data.aspect_weights names {name!r}, not an aspect of protocol "
                             f"{protocol.name!r} (or 'ASPECT (CATEGORY)' of a per-element one); expected one of "
                             f"{list(protocol.aspect_names)}") from None
        if category is None:
            out[aspect.key] = weight
        elif not aspect.per_element or category not in (*CATEGORIES, "other"):
            raise InputError(f"data.aspect_weights names {name!r}: a category weight needs a per-element aspect "
                             f"and one of the categories {[*CATEGORIES, 'other']}")
        else:
            out[(aspect.key, category)] = weight
    return out


def question_weight(weights: Mapping, annotation: Annotation) -> float:
    """The chance weight of one annotation's question: its element category's weight, else its aspect's, else 1."""
    categorised = {k[0] for k in weights if isinstance(k, tuple)}
    if annotation.aspect in categorised and isinstance(annotation.elements, str):
        from evalalign_metric.evalmuse import split_element

        try:
            key = (annotation.aspect, split_element(annotation.elements)[1])
        except InputError:
            key = None
        if key in weights:
            return weights[key]
    return weights.get(annotation.aspect, 1.0)


def draw_questions(weights: Sequence[float], k: int, rng: random.Random) -> list[int]:
    """``k`` of ``len(weights)`` questions without replacement, each with a chance in proportion to its
    weight (Efraimidis and Spirakis: the ``k`` largest ``u ** (1 / w)``); sorted indices.

    Example:
        >>> draw_questions([1, 1, 1, 1], 2, random.Random(0)), draw_questions([1, 1e9, 1, 1e9], 2, random.Random(0))
        ([0, 1], [1, 3])
    """
    keys = [rng.random() ** (1.0 / w) for w in weights]
    return sorted(sorted(range(len(weights)), key=keys.__getitem__, reverse=True)[:k])


def freeze_parameters(model: torch.nn.Module, patterns: Sequence[str], where: str = "training.freeze") -> int:
    """Stop training the parameters whose names match any of ``patterns`` (fnmatch); returns how many
    tensors were frozen. A pattern that matches no parameter is an error (a typo would silently train it).

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
        >>> freeze_parameters(net, ["0.*"]), [n for n, p in net.named_parameters() if p.requires_grad]
        (2, ['1.weight', '1.bias'])
    """
    params = dict(model.named_parameters())
    names = list(params)
    matched: set[str] = set()
    for pattern in patterns:
        hits = [name for name in names if fnmatch.fnmatchcase(name, pattern)]
        if not hits:
            raise InputError(f"{where}: pattern {pattern!r} matches no parameter of the model "
                             f"(names look like {names[0]!r}, {names[len(names) // 2]!r})")
        matched.update(hits)
    for name in matched:
        params[name].requires_grad_(False)
    return len(matched)


class Trainer:
    """One training run of ``config`` (see the module docstring).

    Args:
        config: a :class:`~evalalign_metric.training.config.TrainConfig`.
        progress: show a tqdm bar (default: on a terminal, main process only).
        stop_after_steps: raise :class:`TrainingInterrupted` after this many optimizer steps of this call
            (after any checkpoint due at that step), as a kill would stop the run.
        log: where progress messages go (``print`` to stderr by default).
    """

    def __init__(self, config: TrainConfig, *, progress: bool | None = None, stop_after_steps: int | None = None,
                 log: Callable[[str], None] | None = None):
        self.config = config
        self.progress = config.progress if progress is None else progress
        self.stop_after_steps = stop_after_steps
        self.log = log or (lambda msg: print(msg, file=sys.stderr))
        self.output_dir = Path(config.output_dir)
        self.protocol = load_protocol(config.protocol)
        self.result = TrainResult(self.output_dir)
        self._steps_this_call = 0

    # ------------------------------------------------------------ set-up
    def _data(self) -> None:
        cfg = self.config
        train, report = _read(cfg.data.train, self.protocol, "train")
        unlabelled_in_train = [a for a in train if is_unlabelled(a)]
        self.train_annotations = [a for a in train if not is_unlabelled(a)]
        if not self.train_annotations:
            raise InputError("the training data holds no labelled annotation with a readable image")
        if unlabelled_in_train:
            self.log(f"train data: {len(unlabelled_in_train)} unscored annotations are not trained on")
        self.result.reports["train"] = report
        self.aspect_weights = aspect_weight_keys(self.protocol, cfg.data.aspect_weights)
        self.eval_annotations, rep = _read(cfg.data.eval, self.protocol, "eval")
        self.eval_annotations = [a for a in self.eval_annotations if not is_unlabelled(a)]
        if cfg.data.eval:
            self.result.reports["eval"] = rep
        unlabelled, rep = _read(cfg.data.unlabelled, self.protocol, "unlabelled")
        self.unlabelled = [a.with_score(math.nan) for a in unlabelled]
        if cfg.data.unlabelled:
            self.result.reports["unlabelled"] = rep
        if cfg.pseudo_labels.enabled and not self.unlabelled:
            raise InputError("pseudo_labels.enabled needs data.unlabelled sources with readable images")

    def _corpus(self) -> tuple[list[str], list[str], list[str]]:
        """Texts, templates and option labels a built judge's tokenizer is trained for."""
        aspects = list(self.protocol.aspects) + self._further_aspects()
        templates = self._phrasings(aspects)
        answers = [label for a in aspects for label in a.labels]
        step = max(1, len(self.train_annotations) // 5000)
        corpus = [build_target(self.protocol, a).question for a in self.train_annotations[::step]]
        return corpus + templates + list(self.config.model.vocabulary), templates, answers

    def _base_model_path(self) -> str:
        cfg = self.config.model
        if cfg.base is not None:
            return cfg.base
        from evalalign_metric.training.build import build_judge

        target = self.output_dir / "base"
        if not (target / "config.json").is_file():
            if self.accelerator.is_main_process:
                corpus, templates, answers = self._corpus()
                staging = self.output_dir / ".base-building"
                shutil.rmtree(staging, ignore_errors=True)
                build_judge(cfg.build, staging, corpus=corpus, templates=templates, answers=answers,
                            phrases=cfg.phrase_tokens, protocol_name=self.protocol.name)
                os.replace(staging, target)
            self.accelerator.wait_for_everyone()
        return os.fspath(target)

    def _further_aspects(self) -> list:
        """The aspects of ``model.protocols``: questions the judge will be asked beyond the training ones."""
        return [a for name in self.config.model.protocols for a in load_protocol(name).aspects]

    def _phrasings(self, aspects) -> list[str]:
        """Every template these aspects are asked with in this run (``augment`` may phrase them several ways)."""
        return [t for a in aspects for t in self.config.augment.phrasings_for(a.key, a.template)]

    def _add_tokens(self, model, tokenizer) -> None:
        """A base judge gains ``phrase_tokens`` and the template text of ``model.protocols`` (with this run's
        phrasings of their aspects) as single tokens, where its tokenizer lacks them."""
        from evalalign_metric.training.build import add_phrase_tokens, template_token_pieces

        cfg = self.config.model
        pieces = template_token_pieces(self._phrasings(self._further_aspects()))
        for what, texts in (("phrase tokens", cfg.phrase_tokens),
                            (f"template tokens of {list(cfg.protocols)}", pieces)):
            added = add_phrase_tokens(model, tokenizer, texts, like=cfg.phrase_tokens_like)
            if added:
                self.log(f"added {len(added)} {what} to the base judge's tokenizer")

    def _model(self) -> None:
        from evalalign_metric.judge import Judge, load_judge

        self.base_path = self._base_model_path()
        loaded = load_judge(self.base_path, device="cpu", dtype=torch.float32, cache=False)
        model = loaded.model
        if self.config.model.base is not None:
            self._add_tokens(model, loaded.processor.tokenizer)
        training = self.config.training
        if training.method != "lora":
            for p in model.parameters():
                p.requires_grad_(True)
        freeze_parameters(model, training.freeze)  # by the checkpoint's own names, before peft wraps them
        if training.method == "lora":
            from evalalign_metric.training.lora import apply_lora

            model = apply_lora(model, training.lora, family=loaded.family)
        self.judge = Judge(model, loaded.processor, family=loaded.family, chat_format=loaded.chat_format,
                           pad_to_square=loaded.pad_to_square, image_options=loaded.image_options)
        # what the base judge was trained for carries over to the exported one (a built judge: nothing yet)
        self.base_protocols = list(loaded.identity.get("protocols") or [])
        self.model = model
        self.encoder = TargetEncoder(self.judge, train_on_suffix=training.train_on_suffix)
        self.image_token_id = self.judge.image_token_id

    # ------------------------------------------------------------ batches
    def _units(self, annotations: list[Annotation]) -> list[tuple[str, list[Annotation]]]:
        return group_by_image(annotations)

    def _micro_per_epoch(self, n_units: int) -> int:
        per_micro = self.config.training.batch_size * self.accelerator.num_processes
        return max(1, math.ceil(n_units / per_micro))

    def _order(self, n_units: int, phase: int, epoch: int) -> list[int]:
        order = list(range(n_units))
        sample_rng(self.config.training.seed, epoch, phase, "order").shuffle(order)
        return order

    def _batch(self, units, phase: int, micro: int, micro_per_epoch: int, orders: dict):
        cfg = self.config
        epoch, position = divmod(micro, micro_per_epoch)
        if epoch not in orders:
            orders.clear()
            orders[epoch] = self._order(len(units), phase, epoch)
        order = orders[epoch]
        size = cfg.training.batch_size
        world, rank = self.accelerator.num_processes, self.accelerator.process_index
        start = position * size * world + rank * size
        picked = order[start:start + size]
        if not picked:  # the last global batch did not reach this process: reuse its first images
            picked = order[:size]
        images, rows = [], []
        seed = cfg.training.seed * 1000 + phase
        for unit_index in picked:
            path, anns = units[unit_index]
            rng = sample_rng(seed, epoch, unit_index, "image")
            try:
                with Image.open(path) as img:
                    image = img.convert("RGB")
            except OSError as exc:
                raise InputError(f"image {path!r} became unreadable during training: {exc}") from None
            image = augment_image(image, cfg.augment, rng)
            inputs = self.judge.image_inputs(image)
            span = self.judge.tokenizer(inputs.text, add_special_tokens=False)["input_ids"]
            images.append((inputs.pixels, span))
            chosen = list(range(len(anns)))
            limit = cfg.data.questions_per_image
            if limit is not None and len(chosen) > limit:
                weights = [question_weight(self.aspect_weights, a) for a in anns]
                chosen = draw_questions(weights, limit, sample_rng(seed, epoch, unit_index, "questions"))
            for j in chosen:
                target = build_target(self.protocol, anns[j], augment=cfg.augment,
                                      rng=sample_rng(seed, epoch, unit_index, f"q{j}"))
                ids, labels = self.encoder.encode(target)
                rows.append((len(images) - 1, ids, labels))
        return collate(images, rows, image_token_id=self.image_token_id, pad_token_id=self.judge.pad_token_id,
                       family=self.judge.family)

    # ------------------------------------------------------------ evaluation and export
    def _evaluate(self, step: int) -> dict[str, dict[str, float]] | None:
        if not self.eval_annotations:
            return None
        from evalalign_metric.training.evaluation import evaluate

        annotations = self.eval_annotations
        limit = self.config.training.eval_max_images
        if limit is not None:
            keep = {path for path, _ in group_by_image(annotations)[:limit]}
            annotations = [a for a in annotations if a.image in keep]
        result = evaluate(self.judge, self.protocol, annotations).as_dict()
        self.result.history.append({"step": step, "eval": result})
        self.log(f"step {step} eval: " + "; ".join(f"{k} SRCC {v['srcc']:.3f} acc {v['accuracy']:.3f}"
                                                   for k, v in result.items()))
        return result

    def _export(self) -> None:
        from evalalign_metric.training.export import export_judge

        training = self.config.training
        summary = {"config": config_to_dict(self.config), "steps": self.result.steps,
                   "last_loss": self.result.last_loss, "evaluation": self.result.evaluation,
                   "pseudo_labels": self.result.pseudo_labels, "history": self.result.history,
                   "data": {k: {"read": r.read, "kept": r.kept, "skipped": r.skipped}
                            for k, r in self.result.reports.items()}}
        from evalalign_metric.judge.protocols import trained_protocols

        export_judge(self.model, self.judge.processor, self.output_dir, chat_format=self.judge.chat_format.name,
                     protocol=self.protocol, adapter_base=self.base_path if training.method == "lora" else None,
                     merge=training.lora.merge, summary=summary, pad_to_square=self.judge.pad_to_square,
                     protocols=trained_protocols(self.protocol, self.base_protocols))

    # ------------------------------------------------------------ the loop
    def _phase(self, phase: int, annotations: list[Annotation], epochs: float, lr: float,
               resume_state: dict | None, resume_path: Path | None) -> None:
        cfg = self.config
        training = cfg.training
        acc = self.accelerator
        units = self._units(annotations)
        micro_per_epoch = self._micro_per_epoch(len(units))
        if training.max_steps is not None and phase == 0:
            total_steps = training.max_steps
        else:
            total_steps = max(1, math.ceil(epochs * micro_per_epoch / training.grad_accum))
        total_micro = total_steps * training.grad_accum
        params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=training.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: schedule_factor(training, s, total_steps))
        loss_module = AnswerLoss(self.model, image_token_id=self.image_token_id, pack=training.pack_questions,
                                 shared_vision=self.judge.family.training_shared_vision)
        wrapped, optimizer = acc.prepare(loss_module, optimizer)
        micro, step = 0, 0
        if resume_state is not None and resume_state.get("phase") == phase:
            state = ckpt.load_checkpoint(resume_path, acc.unwrap_model(wrapped).model, optimizer, scheduler)
            micro, step = state["micro"], state["phase_step"]
        if micro >= total_micro:
            return
        from tqdm.auto import tqdm

        show = acc.is_main_process and (self.progress if self.progress is not None else sys.stderr.isatty())
        bar = tqdm(total=total_steps, initial=step, disable=not show, desc=f"train (phase {phase})", unit="step",
                   file=sys.stderr, dynamic_ncols=True)
        orders: dict = {}
        running, running_n = 0.0, 0
        wrapped.train()
        self.model.train()
        try:
            while micro < total_micro:
                for k in range(training.grad_accum):
                    batch = self._batch(units, phase, micro, micro_per_epoch, orders).to(acc.device)
                    sync = k == training.grad_accum - 1
                    context = acc.no_sync(wrapped) if not sync and acc.num_processes > 1 else _nullcontext()
                    with context:
                        loss_sum, n_tokens = wrapped(batch)
                        loss = loss_sum / n_tokens.clamp(min=1) / training.grad_accum
                        acc.backward(loss)
                    running += loss.detach().item() * training.grad_accum
                    running_n += 1
                    micro += 1
                if training.max_grad_norm is not None:
                    acc.clip_grad_norm_(params, training.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                self.result.steps += 1
                self._steps_this_call += 1
                mean_loss = running / max(running_n, 1)
                self.result.last_loss = mean_loss
                bar.update(1)
                bar.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
                if step % training.log_every == 0 or micro >= total_micro:
                    self.result.history.append({"phase": phase, "step": step, "loss": mean_loss,
                                                "lr": scheduler.get_last_lr()[0]})
                    if not show and acc.is_main_process:
                        self.log(f"phase {phase} step {step}/{total_steps} loss {mean_loss:.4f} "
                                 f"lr {scheduler.get_last_lr()[0]:.2e}")
                    running, running_n = 0.0, 0
                due = training.checkpoint_every is not None and step % training.checkpoint_every == 0
                if due or micro >= total_micro:
                    self._save(acc.unwrap_model(wrapped).model, optimizer, scheduler, phase, micro, step)
                if training.eval_every is not None and step % training.eval_every == 0 and micro < total_micro:
                    if acc.is_main_process:
                        self._evaluate(self.result.steps)
                    acc.wait_for_everyone()
                    self.model.train()
                if self.stop_after_steps is not None and self._steps_this_call >= self.stop_after_steps:
                    raise TrainingInterrupted(f"stopped after {self._steps_this_call} steps (stop_after_steps)")
        finally:
            bar.close()

    def _save(self, model, optimizer, scheduler, phase: int, micro: int, step: int) -> None:
        acc = self.accelerator
        if acc.is_main_process:
            extra = {PSEUDO_FILE: annotations_to_json(self.pseudo)} if phase > 0 else None
            state = {"step": self.result.steps, "phase": phase, "phase_step": step, "micro": micro,
                     "history": self.result.history, "pseudo_labels": self.result.pseudo_labels,
                     "fingerprint": self.fingerprint}
            ckpt.save_checkpoint(self.output_dir, model, optimizer, scheduler, state, extra_files=extra,
                                 keep=self.config.training.keep_checkpoints)
        acc.wait_for_everyone()

    def run(self) -> TrainResult:
        started = time.time()
        accelerate = require_extra("accelerate", "train", "Training a judge")
        cfg = self.config
        handlers = [accelerate.DistributedDataParallelKwargs(find_unused_parameters=True)]
        # cpu=True on CPU-only machines lets several processes (torchrun / accelerate launch) train with gloo
        self.accelerator = accelerate.Accelerator(mixed_precision=_precision(cfg.training.precision),
                                                  kwargs_handlers=handlers, cpu=not torch.cuda.is_available())
        self.result.processes = self.accelerator.num_processes
        self.result.is_main_process = self.accelerator.is_main_process
        torch.manual_seed(cfg.training.seed)
        self._data()
        self.output_dir.mkdir(parents=True, exist_ok=True)
        if not cfg.training.resume and self.accelerator.is_main_process:
            for work in ("checkpoints", "base"):  # a fresh run, not a resume: rebuild and retrain
                shutil.rmtree(self.output_dir / work, ignore_errors=True)
        self.accelerator.wait_for_everyone()
        self._model()
        self.fingerprint = run_fingerprint(config_to_dict(cfg), self.base_path)
        self.pseudo: list[Annotation] = []
        resume_path = ckpt.latest_checkpoint(self.output_dir) if cfg.training.resume else None
        resume_state = None
        if resume_path is not None:
            resume_state = ckpt.read_extra(resume_path, "state.json")
            check_resumable(resume_state.get("fingerprint"), self.fingerprint, self.output_dir)
            self.result.steps = resume_state["step"]
            self.result.history = list(resume_state.get("history", []))
            self.result.pseudo_labels = resume_state.get("pseudo_labels", 0)
            self.result.resumed_from = os.fspath(resume_path)
            self.log(f"resuming from {resume_path} (optimizer step {self.result.steps})")
            if resume_state["phase"] > 0:
                self.pseudo = annotations_from_json(ckpt.read_extra(resume_path, PSEUDO_FILE) or [])
        start_phase = resume_state["phase"] if resume_state else 0
        phases = 1 + (cfg.pseudo_labels.rounds if cfg.pseudo_labels.enabled else 0)
        for phase in range(start_phase, phases):
            if phase == 0:
                self._phase(0, self.train_annotations, cfg.training.epochs, cfg.training.lr, resume_state, resume_path)
            else:
                if not (resume_state and resume_state["phase"] == phase):
                    self.pseudo = pseudo_label(self.judge, self.protocol, self.unlabelled,
                                               threshold=cfg.pseudo_labels.threshold)
                    self.result.pseudo_labels = len(self.pseudo)
                    self.log(f"phase {phase}: {len(self.pseudo)} of {len(self.unlabelled)} unlabelled annotations "
                             f"pseudo-labelled (probability >= {cfg.pseudo_labels.threshold})")
                self._phase(phase, self.train_annotations + self.pseudo, cfg.pseudo_labels.epochs,
                            cfg.training.lr * cfg.pseudo_labels.lr_scale, resume_state, resume_path)
            resume_state = None
        if self.accelerator.is_main_process:
            self.result.evaluation = self._evaluate(self.result.steps)
            self.result.seconds = time.time() - started
            self._export()
            if cfg.push_to_hub is not None:
                from evalalign_metric.training.export import push_to_hub

                self.result.hub_url = push_to_hub(self.output_dir, cfg.push_to_hub)
        self.accelerator.wait_for_everyone()
        self.result.seconds = time.time() - started
        return self.result


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def train(config: TrainConfig | dict | str | os.PathLike, **kwargs) -> TrainResult:
    """Train a judge from a config (a :class:`TrainConfig`, a dict, or a JSON/YAML file path).

    Keyword arguments go to :class:`Trainer` (``progress``, ``stop_after_steps``, ``log``).
    """
    from evalalign_metric.training.config import config_from_dict, load_config

    if isinstance(config, dict):
        config = config_from_dict(config)
    elif not isinstance(config, TrainConfig):
        config = load_config(config)
    return Trainer(config, **kwargs).run()
