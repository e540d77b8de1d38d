"""The CLIP vision tower an original LLaVA checkpoint names in ``mm_vision_tower``: where it is, its
config, and the image preprocessing it implies.

The reference code loads the tower by that name (a Hub repo id or a local path) and takes the image
processor from it; the converted checkpoint carries both, so it needs no tower at load time.

Example:
    >>> tower = known_tower("openai/clip-vit-large-patch14-336")
    >>> tower.vision_config["image_size"], tower.vision_config["patch_size"], tower.image_size
    (336, 14, 336)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from evalalign_metric.convert.weights import PICKLE_SUFFIXES
from evalalign_metric.errors import JudgeLoadError, UnsupportedModelError

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# Config of towers the official judges use, so that a checkpoint carrying its own vision weights
# (``unfreeze_mm_vision_tower``) converts without downloading the tower.
_KNOWN_VISION_CONFIGS = {
    "openai/clip-vit-large-patch14-336": dict(
        hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16, image_size=336,
        patch_size=14, projection_dim=768, hidden_act="quick_gelu", layer_norm_eps=1e-5, num_channels=3,
    ),
    "openai/clip-vit-large-patch14": dict(
        hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16, image_size=224,
        patch_size=14, projection_dim=768, hidden_act="quick_gelu", layer_norm_eps=1e-5, num_channels=3,
    ),
}

TOWER_WEIGHT_PATTERNS = ["*.safetensors", "*.json"]
PICKLE_PATTERNS = ["*.bin", "*.pt"]


@dataclass
class VisionTower:
    """A tower's vision config, preprocessing, and (when found) the folder with its weights."""

    name: str
    vision_config: dict
    folder: Path | None = None
    image_mean: tuple[float, ...] = OPENAI_CLIP_MEAN
    image_std: tuple[float, ...] = OPENAI_CLIP_STD
    image_size: int = 336
    resample: int = 3  # PIL bicubic, CLIP's
    extra: dict = field(default_factory=dict)


def known_tower(name: str) -> VisionTower | None:
    """A tower from the built-in table (config only, no weights), or None."""
    config = _KNOWN_VISION_CONFIGS.get(name)
    if config is None:
        return None
    return VisionTower(name=name, vision_config=dict(config, model_type="clip_vision_model"),
                       image_size=config["image_size"])


def read_tower(folder: str | Path, name: str | None = None) -> VisionTower:
    """Read a CLIP tower folder: ``config.json`` (a ``clip`` or ``clip_vision_model`` config) and, when
    present, ``preprocessor_config.json``."""
    folder = Path(folder)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise JudgeLoadError(f"vision tower folder {folder} has no config.json")
    config = json.loads(config_path.read_text())
    model_type = config.get("model_type")
    if model_type == "clip":
        vision = dict(config.get("vision_config") or {})
    elif model_type == "clip_vision_model":
        vision = dict(config)
    else:
        raise UnsupportedModelError(
            f"vision tower {folder} has model_type={model_type!r}; only CLIP towers ('clip', "
            "'clip_vision_model') are supported"
        )
    for key in ("architectures", "transformers_version", "_name_or_path", "torch_dtype", "dtype"):
        vision.pop(key, None)
    vision["model_type"] = "clip_vision_model"
    defaults = known_tower(name or "") if name else None
    if defaults:
        # A full CLIP config may omit vision fields equal to the CLIP defaults; the known table fills them.
        vision = {**defaults.vision_config, **vision}
    tower = VisionTower(name=name or str(folder), vision_config=vision, folder=folder,
                        image_size=int(vision.get("image_size", 224)))
    pre_path = folder / "preprocessor_config.json"
    if pre_path.is_file():
        pre = json.loads(pre_path.read_text())
        tower.image_mean = tuple(pre.get("image_mean", OPENAI_CLIP_MEAN))
        tower.image_std = tuple(pre.get("image_std", OPENAI_CLIP_STD))
        tower.resample = int(pre.get("resample", 3))
        crop = pre.get("crop_size")
        size = crop.get("height") if isinstance(crop, dict) else crop
        if size:
            tower.image_size = int(size)
    return tower


def locate_tower(
    name: str,
    *,
    tower_path: str | Path | None = None,
    checkpoint_dir: Path | None = None,
    resolver: Callable[[str], Path | None] | None = None,
    need_weights: bool = False,
    allow_pickle: bool = False,
) -> Path | None:
    """The folder of the tower ``name``: the explicit ``tower_path``, ``name`` itself when it is a
    folder, a folder of that name inside the checkpoint, the Hugging Face cache (offline), or whatever
    ``resolver(name)`` returns (the Hub module passes a downloader). None when not found.

    With ``need_weights``, a cached snapshot without weights usable under ``allow_pickle`` is passed over
    (an earlier try without ``allow_pickle`` leaves one holding only the JSON files), so the resolver
    downloads what is missing."""
    if tower_path is not None:
        path = Path(tower_path)
        if not (path / "config.json").is_file():
            raise JudgeLoadError(f"vision_tower={str(tower_path)!r} is not a folder with a config.json")
        return path
    candidates = [Path(name)]
    if checkpoint_dir is not None:
        candidates.append(checkpoint_dir / name)
    for path in candidates:
        if (path / "config.json").is_file():
            return path
    cached = _from_hf_cache(name, allow_pickle=allow_pickle)
    if cached is not None and (not need_weights or has_weights(cached, allow_pickle=allow_pickle)):
        return cached
    if resolver is not None:
        return resolver(name)
    return None


def has_weights(folder: Path, *, allow_pickle: bool) -> bool:
    """Whether ``folder`` holds weight files loadable under ``allow_pickle``."""
    suffixes = (".safetensors",) + (PICKLE_SUFFIXES if allow_pickle else ())
    return any(p.suffix in suffixes for p in folder.iterdir() if p.is_file())


def _from_hf_cache(name: str, *, allow_pickle: bool = False) -> Path | None:
    if name.count("/") != 1 or name.startswith(("/", ".")):
        return None
    try:
        from huggingface_hub import snapshot_download

        patterns = TOWER_WEIGHT_PATTERNS + (PICKLE_PATTERNS if allow_pickle else [])
        path = Path(snapshot_download(name, allow_patterns=patterns, local_files_only=True))
    except Exception:  # not cached (or not a valid repo id): the caller decides what to do
        return None
    return path if (path / "config.json").is_file() else None
