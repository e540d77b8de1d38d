"""The protocol schema: aspects, their question templates and their scored options.

A protocol is data (JSON or YAML); this module turns a parsed mapping into frozen dataclasses and
rejects anything malformed with an error that names the offending field.

Example:
    >>> p = protocol_from_dict({
    ...     "name": "tiny", "version": "1",
    ...     "aspects": [{"name": "Object", "dimension": "alignment", "elements_key": "Object",
    ...                  "template": "<image>\\nAre these present: {elements}? Answer:",
    ...                  "options": [{"label": "0", "score": 0}, {"label": "1", "score": 1}]}]})
    >>> p.render_question("Object", {"Object": "cat; dog;"})
    '<image>\\nAre these present: cat; dog;? Answer:'

An aspect with ``"repeat": "per_element"`` is asked once per element: its ``elements_key`` holds a list of
element keys (``["puffin (animal)", "rock (object)"]``) and its template a ``{element}`` placeholder. Any
template may contain ``{prompt}``, replaced by the text-to-image prompt.

    >>> q = protocol_from_dict({
    ...     "name": "tiny", "version": "1",
    ...     "aspects": [{"name": "match", "dimension": "element", "elements_key": "elements",
    ...                  "repeat": "per_element", "template": "<image>\\n{prompt}: is {element} shown?",
    ...                  "options": [{"label": "Yes", "score": 1}, {"label": "No", "score": 0}]}]})
    >>> [text for _, text in q.questions_for({"elements": ["puffin (animal)", "rock (object)"]}, "a puffin")]
    ['<image>\\na puffin: is puffin (animal) shown?', '<image>\\na puffin: is rock (object) shown?']
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, NamedTuple, Sequence

from evalalign_metric.errors import ProtocolError

ELEMENTS_PLACEHOLDER = "{elements}"
ELEMENT_PLACEHOLDER = "{element}"
PROMPT_PLACEHOLDER = "{prompt}"
PER_ELEMENT = "per_element"
REPEAT_MODES = (PER_ELEMENT,)
SCORING_MODES = ("argmax", "expectation")
NO_ELEMENTS = frozenset({"", "none", "none;"})


def elements_apply(value: str | None) -> bool:
    """Whether an element string asks for a question (the official files write ``none`` or ``none;``).

    Example:
        >>> elements_apply("elephant; bird;"), elements_apply("none;"), elements_apply(None)
        (True, False, False)
    """
    return value is not None and value.strip().lower() not in NO_ELEMENTS


@dataclass(frozen=True)
class Option:
    """One answer option: the text the judge answers (``label``) and its score (``None`` = not applicable)."""

    label: str
    score: float | None

    @property
    def not_applicable(self) -> bool:
        return self.score is None


@dataclass(frozen=True)
class Aspect:
    """One question of a protocol.

    ``elements_key`` is set for aspects built from a prompt's elements; their template contains
    ``{elements}``, replaced verbatim by the element string. With ``repeat="per_element"`` the aspect is
    asked once per element of the list under ``elements_key``, each replacing ``{element}``.
    """

    name: str
    dimension: str
    template: str
    options: tuple[Option, ...]
    elements_key: str | None = None
    description: str = ""
    repeat: str | None = None

    @property
    def needs_elements(self) -> bool:
        return self.elements_key is not None

    @property
    def per_element(self) -> bool:
        return self.repeat == PER_ELEMENT

    @property
    def needs_prompt(self) -> bool:
        return PROMPT_PLACEHOLDER in self.template

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(o.label for o in self.options)

    @property
    def scores(self) -> tuple[float | None, ...]:
        return tuple(o.score for o in self.options)

    @property
    def min_score(self) -> float:
        return min(o.score for o in self.options if o.score is not None)

    @property
    def max_score(self) -> float:
        return max(o.score for o in self.options if o.score is not None)

    @property
    def key(self) -> str:
        """The name this aspect's results carry: ``"<dimension>/<name>"``."""
        return f"{self.dimension}/{self.name}"


@dataclass(frozen=True)
class Protocol:
    """A named, versioned set of aspects. See :func:`evalalign_metric.protocol.load_protocol`."""

    name: str
    version: str
    aspects: tuple[Aspect, ...]
    description: str = ""
    source: str = ""
    default_scoring: str = "argmax"
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def aspect_names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.aspects)

    @property
    def dimensions(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for a in self.aspects:
            seen.setdefault(a.dimension, None)
        return tuple(seen)

    def aspect(self, name: str) -> Aspect:
        """The aspect called ``name`` (``"Object"``) or keyed ``"alignment/Object"``."""
        for a in self.aspects:
            if name in (a.name, a.key):
                return a
        raise ProtocolError(
            f"aspect={name!r} is not in protocol {self.name!r}; expected one of {list(self.aspect_names)}"
        )

    def render_question(self, aspect: str, elements: Mapping[str, Any] | str | None = None,
                        prompt: str | None = None) -> str:
        """The exact question text for ``aspect``.

        ``elements`` is the prompt's element mapping (``{"Object": "elephant; bird;"}``) or, for a single
        aspect, the element string itself (for a per-element aspect: one element key, ``"puffin (animal)"``).
        Aspects without elements ignore it. ``prompt`` fills ``{prompt}`` where the template has it.
        """
        a = self.aspect(aspect)
        if a.per_element:
            if not isinstance(elements, str) or not elements.strip():
                raise ProtocolError(f"aspect {a.name!r} is asked per element: pass one element key like "
                                    f"'puffin (animal)' as elements; got {elements!r}")
            return _fill(a, elements, prompt)
        if not a.needs_elements:
            return _fill(a, None, prompt)
        value = elements.get(a.elements_key) if isinstance(elements, Mapping) else elements
        if not isinstance(value, str) or not elements_apply(value):
            raise ProtocolError(
                f"elements[{a.elements_key!r}] must be a non-empty element string (e.g. 'cat; dog;') to render "
                f"aspect {a.name!r}; got {value!r}"
            )
        return _fill(a, value, prompt)

    def asked_questions(self, elements: Mapping[str, Any] | None, prompt: str | None = None
                        ) -> list[AskedQuestion]:
        """Every question asked of one image, in protocol order: all element-free aspects, each element
        aspect whose elements apply, and each per-element aspect once per listed element."""
        asked = []
        for a in self.aspects:
            if not a.needs_elements:
                asked.append(AskedQuestion(a, _fill(a, None, prompt)))
            elif elements is None or elements.get(a.elements_key) is None:
                continue
            elif a.per_element:
                values = elements[a.elements_key]
                if isinstance(values, str) or not isinstance(values, Sequence) or not all(
                        isinstance(v, str) and v.strip() for v in values):
                    raise ProtocolError(f"elements[{a.elements_key!r}] must be a list of element keys like "
                                        f"['puffin (animal)'] for aspect {a.name!r}; got {values!r}")
                asked.extend(AskedQuestion(a, _fill(a, v, prompt), v) for v in values)
            elif elements_apply(elements.get(a.elements_key)):
                asked.append(AskedQuestion(a, _fill(a, elements[a.elements_key], prompt)))
        return asked

    def questions_for(self, elements: Mapping[str, Any] | None, prompt: str | None = None
                      ) -> list[tuple[Aspect, str]]:
        """Every (aspect, question) asked of one image (see :meth:`asked_questions`)."""
        return [(q.aspect, q.text) for q in self.asked_questions(elements, prompt)]


class AskedQuestion(NamedTuple):
    """One question of one image: its aspect, its text and, for per-element aspects, the element."""

    aspect: Aspect
    text: str
    element: str | None = None


def _fill(aspect: Aspect, value: str | None, prompt: str | None) -> str:
    """The aspect's template with its placeholders replaced in one pass (a prompt that itself contains
    ``{element}`` stays as written)."""
    if aspect.needs_prompt and (not isinstance(prompt, str) or not prompt.strip()):
        raise ProtocolError(f"aspect {aspect.name!r} shows the text-to-image prompt: pass prompt= (a "
                            f"non-empty string); got {prompt!r}")
    if not aspect.needs_prompt and value is None:
        return aspect.template
    values = {PROMPT_PLACEHOLDER: prompt}
    if aspect.needs_elements:
        values[ELEMENT_PLACEHOLDER if aspect.per_element else ELEMENTS_PLACEHOLDER] = value
    pattern = "|".join(re.escape(k) for k in values if values[k] is not None)
    return re.sub(pattern, lambda m: values[m.group(0)], aspect.template) if pattern else aspect.template


def _require(mapping: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in mapping:
        raise ProtocolError(f"{where}.{key} is missing")
    value = mapping[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ProtocolError(f"{where}.{key} must be {names}; got {type(value).__name__} {value!r}")
    return value


def _option_from_dict(raw: Any, where: str) -> Option:
    if not isinstance(raw, Mapping):
        raise ProtocolError(f"{where} must be a mapping with 'label' and 'score'; got {raw!r}")
    label = _require(raw, "label", str, where)
    if not label.strip():
        raise ProtocolError(f"{where}.label must be non-empty text")
    if "score" not in raw:
        raise ProtocolError(f"{where}.score is missing (use null for a not-applicable option)")
    score = raw["score"]
    if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float))
                              or not math.isfinite(score)):
        raise ProtocolError(f"{where}.score must be a finite number or null; got {score!r}")
    return Option(label=label, score=None if score is None else float(score))


def _aspect_from_dict(raw: Any, where: str) -> Aspect:
    if not isinstance(raw, Mapping):
        raise ProtocolError(f"{where} must be a mapping; got {type(raw).__name__}")
    name = _require(raw, "name", str, where)
    where = f"{where}({name})"
    dimension = _require(raw, "dimension", str, where)
    template = _require(raw, "template", str, where)
    elements_key = raw.get("elements_key")
    if elements_key is not None and not isinstance(elements_key, str):
        raise ProtocolError(f"{where}.elements_key must be a string or absent; got {elements_key!r}")
    repeat = raw.get("repeat")
    if repeat is not None and repeat not in REPEAT_MODES:
        raise ProtocolError(f"{where}.repeat must be {PER_ELEMENT!r} or absent; got {repeat!r}")
    if repeat == PER_ELEMENT:
        if elements_key is None:
            raise ProtocolError(f"{where}.elements_key must name the element list because repeat is "
                                f"{PER_ELEMENT!r}")
        if ELEMENT_PLACEHOLDER not in template or ELEMENTS_PLACEHOLDER in template:
            raise ProtocolError(f"{where}.template must contain {ELEMENT_PLACEHOLDER} (and not "
                                f"{ELEMENTS_PLACEHOLDER}) because repeat is {PER_ELEMENT!r}")
    else:
        if ELEMENT_PLACEHOLDER in template:
            raise ProtocolError(f"{where}.template contains {ELEMENT_PLACEHOLDER} but repeat is not "
                                f"{PER_ELEMENT!r}")
        if elements_key is not None and ELEMENTS_PLACEHOLDER not in template:
            raise ProtocolError(f"{where}.template must contain {ELEMENTS_PLACEHOLDER} because elements_key "
                                "is set")
        if elements_key is None and ELEMENTS_PLACEHOLDER in template:
            raise ProtocolError(f"{where}.template contains {ELEMENTS_PLACEHOLDER} but elements_key is "
                                "not set")
    raw_options = _require(raw, "options", list, where)
    options = tuple(_option_from_dict(o, f"{where}.options[{i}]") for i, o in enumerate(raw_options))
    if len([o for o in options if o.score is not None]) < 2:
        raise ProtocolError(f"{where}.options must hold at least two scored options")
    labels = [o.label for o in options]
    if len(set(labels)) != len(labels):
        raise ProtocolError(f"{where}.options has duplicate labels: {labels}")
    return Aspect(
        name=name,
        dimension=dimension,
        template=template,
        options=options,
        elements_key=elements_key,
        description=str(raw.get("description", "")),
        repeat=repeat,
    )


def protocol_from_dict(raw: Any, where: str = "protocol") -> Protocol:
    """Validate a parsed protocol mapping and build a :class:`Protocol`."""
    if not isinstance(raw, Mapping):
        raise ProtocolError(f"{where} must be a mapping at the top level; got {type(raw).__name__}")
    name = _require(raw, "name", str, where)
    version = str(_require(raw, "version", (str, int, float), where))
    raw_aspects = _require(raw, "aspects", list, where)
    if not raw_aspects:
        raise ProtocolError(f"{where}.aspects must not be empty")
    aspects = tuple(_aspect_from_dict(a, f"{where}.aspects[{i}]") for i, a in enumerate(raw_aspects))
    keys = [a.key for a in aspects]
    if len(set(keys)) != len(keys):
        raise ProtocolError(f"{where}.aspects has duplicate (dimension, name) pairs: {keys}")
    listed = {a.elements_key for a in aspects if a.per_element}
    mixed = sorted(k for k in listed if any(a.elements_key == k and not a.per_element for a in aspects))
    if mixed:
        raise ProtocolError(f"{where}.aspects use elements_key {mixed[0]!r} both per element (a list of "
                            "element keys) and as one element string; give them different elements_key")
    scoring = raw.get("default_scoring", "argmax")
    if scoring not in SCORING_MODES:
        raise ProtocolError(f"{where}.default_scoring must be one of {SCORING_MODES}; got {scoring!r}")
    known = {"name", "version", "aspects", "description", "source", "default_scoring"}
    return Protocol(
        name=name,
        version=version,
        aspects=aspects,
        description=str(raw.get("description", "")),
        source=str(raw.get("source", "")),
        default_scoring=scoring,
        metadata={k: v for k, v in raw.items() if k not in known},
    )
