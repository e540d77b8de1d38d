"""Image inputs: tensors or PIL images in, a list of RGB PIL images out; LLaVA's pad-to-square.

Example:
    >>> import torch
    >>> imgs = to_pil_images(torch.zeros(2, 3, 8, 12, dtype=torch.uint8))
    >>> [im.size for im in imgs]
    [(12, 8), (12, 8)]
    >>> pad_to_square(imgs[0], (122, 116, 104)).size
    (12, 12)
"""

from __future__ import annotations

from typing import Sequence

import torch
from PIL import Image

from evalalign_metric.errors import InputError

ImagesLike = "torch.Tensor | Image.Image | Sequence[torch.Tensor | Image.Image]"


def _tensor_to_pil(image: torch.Tensor, normalize: bool, where: str) -> Image.Image:
    if image.ndim != 3:
        raise InputError(f"{where} must be a (C, H, W) tensor; got shape {tuple(image.shape)}")
    channels = image.shape[0]
    if channels not in (1, 3, 4):
        raise InputError(
            f"{where} has {channels} channels; expected 3 (RGB), 1 (grayscale) or 4 (RGBA), channels first"
        )
    if image.dtype == torch.uint8:
        if normalize:
            raise InputError(f"{where} is uint8 but normalize=True expects float images in [0, 1]")
        data = image
    elif image.is_floating_point():
        if not normalize:
            raise InputError(
                f"{where} is {image.dtype}; pass uint8 images in [0, 255], or float images in [0, 1] with "
                "normalize=True"
            )
        if not torch.isfinite(image).all():
            raise InputError(f"{where} contains NaN or infinite values")
        low, high = float(image.min()), float(image.max())
        if low < 0.0 or high > 1.0:
            raise InputError(f"{where} has values in [{low:.3g}, {high:.3g}]; normalize=True expects [0, 1]")
        data = (image * 255.0).round().to(torch.uint8)
    else:
        raise InputError(f"{where} has dtype {image.dtype}; expected uint8 or a floating type")
    array = data.detach().cpu().permute(1, 2, 0).numpy()
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[channels]
    pil = Image.fromarray(array[:, :, 0] if channels == 1 else array, mode=mode)
    return pil.convert("RGB")


def to_pil_images(images, *, normalize: bool = False, name: str = "images") -> list[Image.Image]:
    """Validate and convert ``images`` to RGB PIL images.

    Accepts a ``(N, C, H, W)`` tensor, a ``(C, H, W)`` tensor, a PIL image, or a sequence of either.
    uint8 tensors are read as [0, 255]; float tensors need ``normalize=True`` and values in [0, 1] (the
    torchmetrics FID convention). Grayscale and RGBA are converted to RGB; other channel counts are refused.

    Raises:
        InputError: naming the offending index, for a wrong shape, dtype, range or type, an empty image, or a
            PIL image whose file cannot be decoded (truncated, corrupt).
    """
    if isinstance(images, torch.Tensor):
        if images.ndim == 4:
            return [_tensor_to_pil(img, normalize, f"{name}[{i}]") for i, img in enumerate(images)]
        if images.ndim == 3:
            return [_tensor_to_pil(images, normalize, name)]
        raise InputError(f"{name} must be a (N, C, H, W) or (C, H, W) tensor; got shape {tuple(images.shape)}")
    if isinstance(images, Image.Image):
        images = [images]
    if not isinstance(images, Sequence) or isinstance(images, (str, bytes)):
        raise InputError(f"{name} must be a tensor, a PIL image or a list of them; got {type(images).__name__}")
    out = []
    for i, img in enumerate(images):
        if isinstance(img, Image.Image):
            if img.width == 0 or img.height == 0:
                raise InputError(f"{name}[{i}] is empty ({img.width}x{img.height})")
            try:  # an image opened lazily is decoded here, so a broken file is reported with its index
                img.load()
            except (OSError, SyntaxError, ValueError) as exc:
                where = f" ({img.filename})" if getattr(img, "filename", "") else ""
                raise InputError(f"{name}[{i}]{where} could not be decoded: {exc}") from exc
            out.append(img if img.mode == "RGB" else img.convert("RGB"))
        elif isinstance(img, torch.Tensor):
            out.append(_tensor_to_pil(img, normalize, f"{name}[{i}]"))
        else:
            raise InputError(f"{name}[{i}] must be a PIL image or a (C, H, W) tensor; got {type(img).__name__}")
    return out


def pad_to_square(image: Image.Image, fill: tuple[int, int, int]) -> Image.Image:
    """Centre ``image`` on a square canvas of its longer side filled with ``fill`` (LLaVA's ``pad``)."""
    width, height = image.size
    if width == height:
        return image
    side = max(width, height)
    canvas = Image.new(image.mode, (side, side), fill)
    canvas.paste(image, ((side - width) // 2, (side - height) // 2))
    return canvas


def mean_colour(image_mean: Sequence[float] | None) -> tuple[int, int, int]:
    """The padding colour LLaVA derives from a processor's normalisation mean (``int(m * 255)``)."""
    if not image_mean:
        return (0, 0, 0)
    return tuple(int(m * 255) for m in image_mean)  # type: ignore[return-value]
