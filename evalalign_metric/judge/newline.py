"""Which questions a LLaVA-1.6 judge sees with its ``image_newline`` feature (a per-question rule, as data).

EvalAlign's two inference scripts feed the 34B judge (``mm_patch_merge_type: spatial_unpad``) differently:
its faithfulness script passes the image as a list, so the original code appends ``image_newline`` after
the image features; its alignment script passes a 4-D tensor and the newline is not appended. A converted
judge records that rule in its ``evalalign_judge.json`` sidecar, keyed by protocol dimension::

    "image_newline": {"faithfulness": true, "alignment": false}

and the judge classifies each question by the protocol template it was rendered from (questions of no
template of the protocol, or no protocol, get ``default``: the newline, as the model's own forward adds it).

Example:
    >>> rule = NewlineRule.from_sidecar({"protocol": "evalalign",
    ...                                  "image_newline": {"faithfulness": True, "alignment": False}})
    >>> from evalalign_metric.protocol import load_protocol
    >>> protocol = load_protocol("evalalign")
    >>> rule.wants_newline(protocol.aspect("body").template)
    True
    >>> rule.wants_newline(protocol.render_question("Object", "cat; mat;"))
    False
    >>> rule.wants_newline("<image>\\nIs it a cat? Answer:")
    True
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field

from evalalign_metric.errors import JudgeLoadError

SIDECAR_KEY = "image_newline"
_PLACEHOLDER = re.compile(r"\\\{[a-z_]+\\\}")  # an escaped "{elements}" / "{prompt}" in a template


@dataclass(frozen=True)
class NewlineRule:
    """Per protocol dimension, whether the question is asked with ``image_newline``."""

    protocol: str | None
    by_dimension: dict[str, bool]
    default: bool = True
    _patterns: list = field(default_factory=list, compare=False, repr=False)

    @classmethod
    def from_sidecar(cls, sidecar: dict) -> "NewlineRule | None":
        """The rule a sidecar records, or None when it records none.

        Raises:
            JudgeLoadError: the entry is not a mapping of dimension names to booleans.
        """
        raw = sidecar.get(SIDECAR_KEY)
        if raw is None:
            return None
        if not isinstance(raw, dict) or not all(isinstance(k, str) and isinstance(v, bool) for k, v in raw.items()):
            raise JudgeLoadError(f"evalalign_judge.json: {SIDECAR_KEY!r} must map protocol dimensions to true/false; "
                                 f"got {raw!r}")
        rule = cls(protocol=sidecar.get("protocol"), by_dimension=dict(raw))
        rule._patterns.extend(_template_patterns(rule.protocol))
        return rule

    def dimension_of(self, question: str) -> str | None:
        """The protocol dimension whose template ``question`` was rendered from (None if none)."""
        return next((dimension for pattern, dimension in self._patterns if pattern.fullmatch(question)), None)

    def wants_newline(self, question: str) -> bool:
        return self.by_dimension.get(self.dimension_of(question), self.default)


def _template_patterns(protocol_name: str | None) -> list[tuple[re.Pattern, str]]:
    if protocol_name is None:
        return []
    from evalalign_metric.protocol import load_protocol

    protocol = load_protocol(protocol_name)
    return [(re.compile(_PLACEHOLDER.sub(".*?", re.escape(aspect.template)), re.S), aspect.dimension)
            for aspect in protocol.aspects]


@contextlib.contextmanager
def without_image_newline(model):
    """Run ``model`` (a LLaVA-NeXT judge) without appending its ``image_newline`` feature, then restore it."""
    inner = getattr(model, "model", model)
    saved = getattr(inner, "image_newline", None)
    if saved is None:
        raise JudgeLoadError(f"{type(model).__name__} has no image_newline to leave out")
    inner.image_newline = None
    try:
        yield model
    finally:
        inner.image_newline = saved
