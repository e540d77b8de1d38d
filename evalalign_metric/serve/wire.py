"""The scoring server's JSON: images as base64 PNG/JPEG, requests validated field by field, NaN as ``null``.

``POST /score``: ``{"prompts": [str], "images": [base64], "elements"?: [per prompt: mapping, list or null],
"weights"?: {key: weight}, "scoring"?: "expectation" | "argmax"}``.
``POST /answer`` (what :class:`~evalalign_metric.serve.client.RemoteJudge` calls): ``{"images": [base64],
"questions": [per image: [[question text, [option labels]], ...]]}``.
Every malformed field raises :class:`RequestError` naming it (``images[3]``, ``prompts``), which the server
answers with status 400 (413 for too much data) and ``{"error": message, "field": name}``.

Example:
    >>> from PIL import Image
    >>> data = encode_image(Image.new("RGB", (4, 3), "red"))
    >>> decode_image(data, "images[0]").size
    (4, 3)
    >>> try:
    ...     decode_image("bm90IGFuIGltYWdl", "images[1]")
    ... except RequestError as exc:
    ...     exc.field, str(exc).split(" (")[0]
    ('images[1]', 'images[1] is not a PNG or JPEG image')
"""

from __future__ import annotations

import base64
import binascii
import io
import math
from dataclasses import dataclass
from typing import Any, Mapping

from PIL import Image, UnidentifiedImageError

from evalalign_metric.errors import InputError

FORMATS = ("PNG", "JPEG")


class RequestError(InputError):
    """A request field is missing or malformed; ``field`` names it, ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, field: str | None = None, status: int = 400):
        super().__init__(message)
        self.field = field
        self.status = status


def encode_image(image: Image.Image) -> str:
    """Base64 of a lossless PNG of ``image`` (what the clients send)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def decode_image(data: Any, field: str, *, max_pixels: int | None = None, min_side: int = 1) -> Image.Image:
    """An RGB image from base64 PNG/JPEG ``data``, checked before it is decoded in full."""
    if not isinstance(data, str):
        raise RequestError(f"{field} must be a base64 string of a PNG or JPEG image; got {type(data).__name__}",
                           field)
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(f"{field} is not valid base64", field) from None
    try:
        image = Image.open(io.BytesIO(raw))
        if image.format not in FORMATS:
            raise RequestError(f"{field} is a {image.format} image; expected one of {FORMATS}", field)
        if max_pixels is not None and image.width * image.height > max_pixels:
            raise RequestError(f"{field} is {image.width}x{image.height}, over the server's limit of {max_pixels} "
                               "pixels per image", field, status=413)
        if min(image.size) < min_side:
            raise RequestError(f"{field} is {image.width}x{image.height}; the judge needs at least "
                               f"{min_side}x{min_side} pixels", field)
        image.load()
        return image if image.mode == "RGB" else image.convert("RGB")
    except RequestError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise RequestError(f"{field} is not a PNG or JPEG image (base64 of the file's bytes): {exc}", field) from None


def _list(body: Mapping[str, Any], name: str, *, required: bool = True) -> list | None:
    value = body.get(name)
    if value is None:
        if required:
            raise RequestError(f"the request has no {name!r} field", name)
        return None
    if not isinstance(value, list):
        raise RequestError(f"{name} must be a JSON list; got {type(value).__name__}", name)
    return value


def _images(body, *, max_pixels, min_side) -> list[Image.Image]:
    images = _list(body, "images")
    if not images:
        raise RequestError("images must hold at least one image", "images")
    return [decode_image(data, f"images[{i}]", max_pixels=max_pixels, min_side=min_side)
            for i, data in enumerate(images)]


def request_object(body: Any) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise RequestError(f"the request body must be a JSON object; got {type(body).__name__}", "body")
    return body


def count_images(body: Any) -> int:
    """How many images a request carries (0 when the field is malformed; parsing then says why)."""
    images = body.get("images") if isinstance(body, Mapping) else None
    return len(images) if isinstance(images, list) else 0


@dataclass
class ScoreRequest:
    images: list[Image.Image]
    prompts: list[str]
    elements: list | None
    weights: dict[str, float] | None
    scoring: str | None


def parse_score_request(body: Any, *, max_pixels: int | None = None, min_side: int = 1) -> ScoreRequest:
    """Validate a ``POST /score`` body (see the module doc)."""
    body = request_object(body)
    prompts = _list(body, "prompts")
    for i, prompt in enumerate(prompts):
        if not isinstance(prompt, str) or not prompt.strip():
            raise RequestError(f"prompts[{i}] must be a non-empty string; got {prompt!r}", f"prompts[{i}]")
    n_images = count_images(body)
    if "images" in body and isinstance(body["images"], list) and n_images != len(prompts):
        raise RequestError(f"images ({n_images}) and prompts ({len(prompts)}) must have the same length", "images")
    elements = _list(body, "elements", required=False)
    if elements is not None and len(elements) != len(prompts):
        raise RequestError(f"elements ({len(elements)}) and prompts ({len(prompts)}) must have the same length",
                           "elements")
    weights = body.get("weights")
    if weights is not None and not isinstance(weights, Mapping):
        raise RequestError(f"weights must be a JSON object of key to weight; got {type(weights).__name__}", "weights")
    scoring = body.get("scoring")
    if scoring is not None and scoring not in ("expectation", "argmax"):
        raise RequestError(f"scoring must be 'expectation' or 'argmax'; got {scoring!r}", "scoring")
    images = _images(body, max_pixels=max_pixels, min_side=min_side)
    return ScoreRequest(images, prompts, elements, dict(weights) if weights is not None else None, scoring)


def parse_answer_request(body: Any, *, max_pixels: int | None = None, min_side: int = 1
                         ) -> tuple[list[Image.Image], list[list[tuple[str, tuple[str, ...]]]]]:
    """Validate a ``POST /answer`` body: ``(images, questions)`` for ``Judge.answer``."""
    body = request_object(body)
    questions = _list(body, "questions")
    if count_images(body) != len(questions):
        raise RequestError(f"images ({count_images(body)}) and questions ({len(questions)}) must have the same "
                           "length", "questions")
    parsed = []
    for i, asked in enumerate(questions):
        if not isinstance(asked, list):
            raise RequestError(f"questions[{i}] must be a list of [text, [labels]] pairs", f"questions[{i}]")
        row = []
        for j, pair in enumerate(asked):
            where = f"questions[{i}][{j}]"
            ok = (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str) and isinstance(pair[1], list)
                  and pair[1] and all(isinstance(label, str) and label for label in pair[1]))
            if not ok:
                raise RequestError(f"{where} must be [question text, [option labels]]; got {str(pair)[:80]}", where)
            row.append((pair[0], tuple(pair[1])))
        parsed.append(row)
    return _images(body, max_pixels=max_pixels, min_side=min_side), parsed


def finite_or_none(value: float) -> float | None:
    """JSON has no NaN: non-finite numbers travel as ``null``.

    Example:
        >>> finite_or_none(float("nan")), finite_or_none(0.5)
        (None, 0.5)
    """
    return float(value) if math.isfinite(value) else None


def none_to_nan(value: float | None) -> float:
    return math.nan if value is None else float(value)
