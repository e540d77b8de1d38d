"""Asking an instruct model through its own chat template (zero-shot judges, and judges of template families).

A protocol question ``<image>\\nTEXT`` becomes one user turn holding the image and then ``TEXT``, rendered by
the checkpoint's chat template exactly as it renders any such turn (with whatever default system prompt
the template adds), followed by the generation prompt. The answer prefix and end-of-answer suffix are read
off the template too: it renders an assistant turn, and the text around a sentinel answer is what the
model emits before and after an answer.

Example:
    >>> template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\\n{% if m['content'] is string %}"
    ...             "{{ m['content'] }}{% else %}{% for c in m['content'] %}{% if c['type'] == 'image' %}"
    ...             "<img>{% else %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\\n{% endfor %}"
    ...             "{% if add_generation_prompt %}<|im_start|>assistant\\n{% endif %}")
    >>> chat = TemplateChat.from_template(template)
    >>> chat.render("<image>\\nIs it red?")
    '<|im_start|>user\\n<img>Is it red?<|im_end|>\\n<|im_start|>assistant\\n'
    >>> chat.answer_prefix, chat.answer_suffix
    ('', '<|im_end|>\\n')
"""

from __future__ import annotations

from dataclasses import dataclass

from evalalign_metric.errors import InputError, JudgeLoadError

TEMPLATE_FORMAT = "chat_template"
_SENTINEL = "EVALALIGNANSWER"


def _render(template: str, messages: list[dict], *, add_generation_prompt: bool) -> str:
    from transformers.utils.chat_template_utils import render_jinja_template

    rendered, _ = render_jinja_template(conversations=[messages], chat_template=template,
                                        add_generation_prompt=add_generation_prompt)
    return rendered[0]


def question_content(question: str) -> list[dict]:
    """A protocol question as chat content parts: the text before ``<image>`` (if any), the image, then the
    text after it (its leading newline belongs to the protocol's ``<image>\\n`` convention and is dropped)."""
    if question.count("<image>") != 1:
        raise InputError(f"question must contain '<image>' exactly once; got {question[:80]!r}")
    before, after = question.split("<image>")
    after = after[1:] if after.startswith("\n") else after
    parts = [{"type": "text", "text": before}] if before else []
    return parts + [{"type": "image"}, {"type": "text", "text": after}]


@dataclass(frozen=True)
class TemplateChat:
    """A chat format read from a model's Jinja chat template (same interface as
    :class:`~evalalign_metric.judge.chat.ChatFormat`: ``name``, ``render``, ``answer_prefix``, ``answer_suffix``)."""

    template: str
    answer_prefix: str
    answer_suffix: str
    name: str = TEMPLATE_FORMAT
    description: str = "the checkpoint's own chat template"

    @classmethod
    def from_template(cls, template: str | None, *, where: str = "the checkpoint") -> "TemplateChat":
        if not template:
            raise JudgeLoadError(f"{where} has no chat template (chat_template.jinja/.json or tokenizer_config.json); "
                                 "a judge of this family is asked through its chat template")
        probe = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Q"}]}]
        try:
            head = _render(template, probe, add_generation_prompt=True)
            full = _render(template, probe + [{"role": "assistant", "content": _SENTINEL}],
                           add_generation_prompt=False)
        except Exception as exc:  # a template error of any kind means the template cannot serve
            raise JudgeLoadError(f"the chat template of {where} does not render a user turn with an image: "
                                 f"{exc}") from exc
        at = full.find(_SENTINEL)
        if not full.startswith(head) or at < len(head):
            # A template that rewrites earlier turns once an answer follows: answers follow the prompt directly.
            return cls(template, "", full[at + len(_SENTINEL):] if at >= 0 else "")
        return cls(template, full[len(head):at], full[at + len(_SENTINEL):])

    def render(self, question: str) -> str:
        """The full prompt for a protocol question (``<image>`` marks where the image goes)."""
        messages = [{"role": "user", "content": question_content(question)}]
        return _render(self.template, messages, add_generation_prompt=True)


def resolve_chat_format(model_dir, tokenizer, *, family, processor=None, override=None):
    """The chat format a judge is asked with: ``override`` (a format name, or ``"chat_template"``), else the
    sidecar's ``chat_format``, else for a template family (``family.chat == "template"``) the checkpoint's own
    chat template, else the format detected from the tokenizer
    (:func:`~evalalign_metric.judge.chat.detect_chat_format`)."""
    from pathlib import Path

    from evalalign_metric.judge.chat import detect_chat_format, get_chat_format, read_sidecar
    from evalalign_metric.judge.families import read_chat_template

    name = override or read_sidecar(model_dir).get("chat_format")
    if name is None and family.chat == "template":
        name = TEMPLATE_FORMAT
    if name == TEMPLATE_FORMAT:
        template = getattr(processor, "chat_template", None) or read_chat_template(Path(model_dir), tokenizer)
        return TemplateChat.from_template(template, where=str(model_dir))
    if name is not None:
        return get_chat_format(name)
    return detect_chat_format(model_dir, tokenizer)
