"""The judge: a multimodal LLM asked multiple-choice questions about images, read as option probabilities.

Example:
    >>> import tempfile
    >>> from PIL import Image
    >>> from evalalign_metric.testing import build_tiny_judge
    >>> from evalalign_metric.judge import load_judge
    >>> judge = load_judge(build_tiny_judge(tempfile.mkdtemp()))
    >>> [[d]] = judge.answer([Image.new("RGB", (20, 12), "red")], [[("<image>\\nIs it red? Answer:", ("0", "1"))]])
    >>> d.labels, round(float(d.probs.sum()), 5)
    (('0', '1'), 1.0)
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from functools import partial
from typing import Any, Sequence

import torch
from PIL import Image

from evalalign_metric.errors import InputError
from evalalign_metric.judge.chat import ChatFormat
from evalalign_metric.judge.chat_template import TemplateChat
from evalalign_metric.judge.engine import Engine, ImageWork, PlainEngine
from evalalign_metric.judge.families import ImageInputs, JudgeFamily, family_for_model
from evalalign_metric.judge.newline import NewlineRule, without_image_newline
from evalalign_metric.judge.options import EncodedQuestion, encode_question
from evalalign_metric.judge.placement import input_device, move

Question = tuple[str, Sequence[str]]


@dataclass(frozen=True)
class OptionDistribution:
    """The judge's answer to one question: log P(option) for each option label, teacher-forced.

    ``probs`` is normalised over the options; ``outside_mass`` is the probability the judge puts on
    answers that are none of the options (a diagnostic: large values mean the question is off-distribution).
    ``greedy_label`` is what greedy decoding restricted to the options answers (the reference's reading,
    :meth:`~evalalign_metric.judge.options.EncodedQuestion.greedy_index`); ``argmax_label`` is the option of
    largest probability (the product of its tokens'), which can differ when options span several tokens.
    """

    labels: tuple[str, ...]
    log_probs: torch.Tensor
    greedy_index: int | None = None

    @property
    def probs(self) -> torch.Tensor:
        return torch.softmax(self.log_probs, dim=-1)

    @property
    def outside_mass(self) -> float:
        return float(torch.clamp(1.0 - self.log_probs.exp().sum(), min=0.0))

    @property
    def argmax_label(self) -> str:
        return self.labels[int(torch.argmax(self.log_probs))]

    @property
    def greedy_label(self) -> str:
        """The greedy reading; the arg-max when the distribution was built without one."""
        return self.argmax_label if self.greedy_index is None else self.labels[self.greedy_index]


class Judge:
    """A loaded judge model with its processor, family, chat format and probability engine.

    Build it with :func:`evalalign_metric.judge.load_judge`; construct directly to wrap objects you already
    hold (a model being trained, for instance). ``family`` (alias ``backend``) defaults to the registered
    family of the model's ``model_type``; ``pad_to_square`` to the family's image policy; ``image_options``
    are the family's image settings (Qwen: ``min_pixels``, ``max_pixels``).
    """

    def __init__(
        self,
        model,
        processor,
        *,
        chat_format: ChatFormat | TemplateChat,
        family: JudgeFamily | None = None,
        backend: JudgeFamily | None = None,
        pad_to_square: bool | None = None,
        engine: Engine | None = None,
        min_image_size: int | None = None,
        identity: dict[str, Any] | None = None,
        image_options: dict[str, Any] | None = None,
        newline_rule: NewlineRule | None = None,
    ):
        self.model = model.eval()
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.family = family or backend or family_for_model(model)
        self.chat_format = chat_format
        self.pad_to_square = self.family.pad_to_square if pad_to_square is None else pad_to_square
        self.image_options = self.family.check_image_options(dict(image_options or {}))
        self.engine = engine if engine is not None else PlainEngine()
        vision = getattr(model.config, "vision_config", None)
        self.min_image_size = min_image_size if min_image_size is not None else getattr(vision, "patch_size", 1)
        # Questions the rule asks without image_newline run with one image token less and the feature left out
        # (see evalalign_metric.judge.newline); None: every question as the model's forward does it.
        self.newline_rule = newline_rule
        self.identity = dict(identity or {})
        self.identity.setdefault("chat_format", chat_format.name)
        self.identity.setdefault("family", self.family.name)
        self._encoded: dict[tuple[str, tuple[str, ...]], EncodedQuestion] = {}
        self.image_token = self.family.image_token_text(processor)
        self.image_token_id = self.tokenizer.convert_tokens_to_ids(self.image_token)
        pad = self.tokenizer.pad_token_id
        self.pad_token_id = pad if pad is not None else self.tokenizer.eos_token_id

    @property
    def backend(self) -> JudgeFamily:
        """The judge's family (its earlier name)."""
        return self.family

    @property
    def device(self) -> torch.device:
        """Where the judge takes its inputs (a sharded judge's first GPU, or CPU)."""
        return input_device(self.model)

    @property
    def dtype(self) -> torch.dtype:
        return self.model.dtype

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> "Judge":
        """Move the model (e.g. off the GPU between validations); returns ``self``. A judge loaded with
        ``device_map`` or ``quantize`` stays where it was loaded (with a warning)."""
        move(self.model, device, dtype)
        return self

    def prompt_text(self, question: str) -> str:
        """The full text the model reads for ``question`` (a protocol question starting with ``<image>``)."""
        if isinstance(self.chat_format, TemplateChat):
            return self.chat_format.render(question)
        return self.chat_format.render(question.replace("<image>", self.image_token, 1))

    def encode(self, question: str, labels: Sequence[str]) -> EncodedQuestion:
        """Tokenise a question and its options (cached per question text)."""
        key = (question, tuple(labels))
        if key not in self._encoded:
            if "<image>" not in question:
                raise InputError(f"question must contain '<image>' where the image goes; got {question[:80]!r}")
            self._encoded[key] = encode_question(
                self.tokenizer, self.prompt_text(question), self.chat_format.answer_prefix, tuple(labels)
            )
        return self._encoded[key]

    def image_inputs(self, image: Image.Image, index: int = 0) -> ImageInputs:
        """The family's inputs for ``image`` after its image policy (LLaVA: padded to a square with the
        processor's mean colour, as the reference does; Qwen: the aspect ratio kept, resized within
        ``min_pixels``/``max_pixels``)."""
        if min(image.size) < self.min_image_size:
            raise InputError(
                f"images[{index}] is {image.width}x{image.height}; the judge needs at least "
                f"{self.min_image_size}x{self.min_image_size} pixels"
            )
        image = self.family.prepare_image(self.processor, image, pad=self.pad_to_square)
        return self.family.encode_image(self.processor, image, **self.image_options)

    def prepare_image(self, image: Image.Image, index: int = 0) -> tuple[dict[str, torch.Tensor], int]:
        """``(pixel inputs, number of image tokens)`` for ``image`` (see :meth:`image_inputs`)."""
        inputs = self.image_inputs(image, index)
        return inputs.pixels, inputs.n_image_tokens

    def prompt_ids(self, encoded: EncodedQuestion, image: ImageInputs) -> list[int]:
        """The token ids of ``encoded``'s prompt with ``image``'s text in place of the image token."""
        return self.family.prompt_ids(self.tokenizer, encoded.text, image, self.image_token)

    def _work(self, inputs: ImageInputs, encoded: list[EncodedQuestion]) -> ImageWork:
        return ImageWork(inputs.pixels, inputs.n_image_tokens, encoded,
                         prompts=[self.prompt_ids(q, inputs) for q in encoded])

    def _run(self, items: list[tuple[ImageInputs, list[EncodedQuestion]]], texts: list[list[str]]
             ) -> list[list[torch.Tensor]]:
        run = partial(self.engine.run, image_token_id=self.image_token_id, pad_token_id=self.pad_token_id,
                      family=self.family)
        if self.newline_rule is None:
            return run(self.model, [self._work(inputs, encoded) for inputs, encoded in items])
        flags = [[self.newline_rule.wants_newline(t) for t in row] for row in texts]
        out: list[list[torch.Tensor | None]] = [[None] * len(encoded) for _, encoded in items]
        for keep in (True, False):
            where = [(i, [q for q, f in enumerate(row) if f == keep]) for i, row in enumerate(flags)]
            where = [(i, qs) for i, qs in where if qs]
            if not where:
                continue
            part = []
            for i, qs in where:
                inputs = items[i][0]
                if not keep:  # the image's text loses the token of the newline feature
                    inputs = ImageInputs(inputs.pixels, inputs.text.replace(self.image_token, "", 1),
                                         inputs.n_image_tokens - 1)
                part.append(self._work(inputs, [items[i][1][q] for q in qs]))
            with contextlib.nullcontext() if keep else without_image_newline(self.model):
                done = run(self.model, part)
            for (i, qs), values in zip(where, done):
                for q, value in zip(qs, values):
                    out[i][q] = value
        return out  # type: ignore[return-value]

    def answer(self, images: Sequence[Image.Image], questions: Sequence[Sequence[Question]]
               ) -> list[list[OptionDistribution]]:
        """Ask ``questions[i]`` (``(text, option_labels)`` pairs) about ``images[i]``."""
        if len(images) != len(questions):
            raise InputError(f"images ({len(images)}) and questions ({len(questions)}) must have the same length")
        items = []
        for i, (image, asked) in enumerate(zip(images, questions)):
            inputs = self.image_inputs(image, i)
            items.append((inputs, [self.encode(text, labels).with_tree_nodes() for text, labels in asked]))
        raw = self._run(items, [[text for text, _ in asked] for asked in questions])
        return [
            [OptionDistribution(q.option_labels, lp[: len(q.option_labels)], q.greedy_index(lp))
             for q, lp in zip(encoded, per_item)]
            for (_, encoded), per_item in zip(items, raw)
        ]
