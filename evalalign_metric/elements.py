"""Where a prompt's alignment elements come from: the caller, the official sets, or an extractor.

Elements use the official ``result_info`` form: ``{"Object": "elephant; bird;", "Count": "elephant: a;
bird: a;", "Color": "none", ...}``; ``"none"`` (or a missing key) means the aspect is not asked.
Order of precedence per prompt (the source each step reports in brackets): elements given by the caller
(``caller``), an elements file (``file``), the official set when the prompt is one of the 120 official
alignment prompts (``official``), the ``extractor`` (``extractor``), and last the deterministic parser of
:mod:`evalalign_metric.extraction.parser` (``parser``; on unless ``parse=False``, and only for protocols whose
element aspects are EvalAlign's six). A prompt none of these gives elements to (the parser finds nothing, or
is off) is scored on faithfulness only, and its source is ``None`` in the result.

Protocols with per-element aspects (``"imatch"``) take a list of EvalMuse-style element keys
``"name (category)"`` per prompt instead, either bare (``["puffin (animal)", "rock (object)"]``) or under
the aspect's ``elements_key`` (``{"elements": [...]}``); :func:`evalmuse_inputs` reads them from
EvalMuse-40K records. The official EvalAlign set does not apply to them.

Example:
    >>> from evalalign_metric.protocol import load_protocol
    >>> p = load_protocol("evalalign")
    >>> [src for _, src in resolve_elements(p, ["a red cube", "a cat", "!!"], [{"Color": "cube: red;"}, None, None])]
    ['caller', 'parser', None]
    >>> resolve_elements(p, ["a cat"], parse=False)
    [(None, None)]
    >>> resolve_elements(load_protocol("imatch"), ["a puffin"], [["puffin (animal)"]])
    [({'elements': ('puffin (animal)',)}, 'caller')]
"""

from __future__ import annotations

from typing import Callable, Mapping, Protocol as TypingProtocol, Sequence, runtime_checkable

from evalalign_metric.errors import InputError
from evalalign_metric.extraction.result_info import ASPECTS, NONE
from evalalign_metric.evalmuse import EvalMuseRecord, load_records, split_element
from evalalign_metric.official import official_elements
from evalalign_metric.protocol import Protocol

# result_info form ({"Object": "cat; dog;"}); per-element keys map to lists of "name (category)" keys.
Elements = Mapping[str, "str | Sequence[str]"]
# Where a prompt's elements came from, in order of precedence (None: nowhere).
SOURCES = ("caller", "file", "official", "extractor", "parser")


def parser_applies(protocol: Protocol) -> bool:
    """Whether the parser can supply the protocol's elements: its element aspects are among EvalAlign's six.

    Example:
        >>> from evalalign_metric.protocol import load_protocol
        >>> parser_applies(load_protocol("evalalign")), parser_applies(load_protocol("imatch"))
        (True, False)
    """
    keys = {a.elements_key for a in protocol.aspects if a.needs_elements}
    per_element = any(a.per_element for a in protocol.aspects if a.needs_elements)
    return bool(keys) and not per_element and keys <= set(ASPECTS)


def parse_protocol_elements(protocol: Protocol, prompt: str) -> dict[str, str] | None:
    """The parser's elements for the protocol's element aspects, or None when it found none of them.

    Example:
        >>> from evalalign_metric.protocol import load_protocol
        >>> parse_protocol_elements(load_protocol("evalalign"), "a red cube")["Color"]
        'cube: red;'
        >>> parse_protocol_elements(load_protocol("evalalign"), "4k, masterpiece") is None
        True
    """
    from evalalign_metric.extraction.parser import parse_elements

    keys = {a.elements_key for a in protocol.aspects if a.needs_elements}
    found = {k: v for k, v in parse_elements(prompt).result_info.items() if k in keys}
    return found if any(v != NONE for v in found.values()) else None


@runtime_checkable
class ElementExtractor(TypingProtocol):
    """Anything that turns a prompt into its elements (``result_info`` form)."""

    def __call__(self, prompt: str) -> Elements: ...


def validate_elements(protocol: Protocol, elements, where: str) -> dict[str, str | tuple[str, ...]]:
    """Check an element mapping against the protocol's element keys; return a plain dict.

    For a protocol with exactly one per-element ``elements_key``, a bare list of element keys stands for
    ``{elements_key: list}``; lists come back as tuples.
    """
    listed = sorted({a.elements_key for a in protocol.aspects if a.per_element})
    if len(listed) == 1 and isinstance(elements, Sequence) and not isinstance(elements, str):
        elements = {listed[0]: elements}
    if not isinstance(elements, Mapping):
        if listed:
            raise InputError(f"{where} must be a list of element keys like ['puffin (animal)'] or a mapping "
                             f"{{{listed[0]!r}: [...]}}; got {type(elements).__name__}")
        raise InputError(f"{where} must be a mapping like {{'Object': 'cat; dog;'}}; got {type(elements).__name__}")
    keys = {a.elements_key for a in protocol.aspects if a.needs_elements}
    out = {}
    for key, value in elements.items():
        if key not in keys:
            raise InputError(f"{where} has unknown aspect {key!r}; expected keys among {sorted(keys)}")
        if key in listed:
            out[key] = _element_keys(value, f"{where}[{key!r}]")
            continue
        if not isinstance(value, str):
            raise InputError(f"{where}[{key!r}] must be a string like 'cat; dog;' or 'none'; got {value!r}")
        out[key] = value
    return out


def _element_keys(value, where: str) -> tuple[str, ...]:
    """Validate a list of ``"name (category)"`` element keys (no repeats)."""
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise InputError(f"{where} must be a list of element keys like ['puffin (animal)']; got {value!r}")
    for i, key in enumerate(value):
        try:
            split_element(key)
        except InputError as exc:
            raise InputError(f"{where}[{i}]: {exc}") from None
    repeated = sorted({k for k in value if value.count(k) > 1})
    if repeated:
        raise InputError(f"{where} lists element key {repeated[0]!r} more than once")
    return tuple(value)


def evalmuse_inputs(records) -> tuple[list[str], list[list[str]]]:
    """``(prompts, elements)`` for scoring EvalMuse-40K records with the ``"imatch"`` protocol.

    Args:
        records: :class:`~evalalign_metric.evalmuse.EvalMuseRecord` objects, or anything
            :func:`~evalalign_metric.evalmuse.load_records` reads (a ``test.json`` path, a list of dicts).

    Example:
        >>> evalmuse_inputs([{"img_path": "m/1.png", "prompt": "a puffin on a rock",
        ...                   "element_score": {"puffin (animal)": None, "rock (object)": None}}])
        (['a puffin on a rock'], [['puffin (animal)', 'rock (object)']])
    """
    if not (isinstance(records, Sequence) and all(isinstance(r, EvalMuseRecord) for r in records)):
        records = load_records(records, check_range=False)
    prompts = []
    for r in records:
        if not isinstance(r.prompt, str) or not r.prompt.strip():
            raise InputError(f"record {r.index} (img_path {r.img_path!r}) has no prompt to score against")
        prompts.append(r.prompt)
    return prompts, [list(r.elements) for r in records]


def resolve_elements(
    protocol: Protocol,
    prompts: Sequence[str],
    elements: Sequence[Elements | None] | None = None,
    *,
    extractor: ElementExtractor | Callable[[str], Elements] | None = None,
    use_official: bool = True,
    n_images: int | None = None,
    table: Mapping[str, Elements] | None = None,
    parse: bool = True,
) -> list[tuple[dict[str, str] | None, str | None]]:
    """(elements or None, source) for each prompt; validates prompts and elements.

    ``table`` maps prompts to elements (an edited ``evalalign elements`` export); it comes after the
    caller's elements and before the official set, so an edited file overrides the official elements.
    ``parse`` makes the parser the last step (see the module docstring); the source is one of
    :data:`SOURCES` or ``None``.
    """
    if isinstance(prompts, str) or not isinstance(prompts, Sequence):
        raise InputError(f"prompts must be a list of strings; got {type(prompts).__name__}")
    if n_images is not None and len(prompts) != n_images:
        raise InputError(f"images ({n_images}) and prompts ({len(prompts)}) must have the same length")
    for i, prompt in enumerate(prompts):
        if not isinstance(prompt, str) or not prompt.strip():
            raise InputError(f"prompts[{i}] must be a non-empty string; got {prompt!r}")
    if elements is not None:
        if isinstance(elements, Mapping) or not isinstance(elements, Sequence):
            raise InputError("elements must be a list with one mapping (or None) per prompt")
        if len(elements) != len(prompts):
            raise InputError(f"elements ({len(elements)}) and prompts ({len(prompts)}) must have the same length")
    needs = any(a.needs_elements for a in protocol.aspects)
    # The official set is in result_info form: it serves protocols whose element aspects take strings.
    use_official = use_official and any(a.needs_elements and not a.per_element for a in protocol.aspects)
    parse = parse and parser_applies(protocol)
    resolved = []
    for i, prompt in enumerate(prompts):
        given = elements[i] if elements is not None else None
        if given is not None:
            resolved.append((validate_elements(protocol, given, f"elements[{i}]"), "caller"))
        elif not needs:
            resolved.append((None, None))
        elif table is not None and (listed := table.get(prompt)) is not None:
            resolved.append((validate_elements(protocol, listed, f"elements file entry {prompt!r}"), "file"))
        elif use_official and (found := official_elements(prompt)) is not None:
            resolved.append((found, "official"))
        elif extractor is not None:
            resolved.append((validate_elements(protocol, extractor(prompt), f"extractor({prompt!r})"), "extractor"))
        elif parse and (parsed := parse_protocol_elements(protocol, prompt)) is not None:
            resolved.append((parsed, "parser"))
        else:
            resolved.append((None, None))
    return resolved
