"""The training configuration: one JSON or YAML file (``evalalign train --config FILE``) or a dict.

Relative paths in the file resolve against the file's folder. Unknown keys and wrong types are errors that
name the key (``training.lr must be a positive number; got '1e-3x'``).

Example::

    {
      "output_dir": "runs/my-judge",
      "protocol": "imatch",
      "model": {"base": "path/to/judge"},
      "data": {"train": [{"format": "evalmuse", "path": "train_list.json", "image_root": "images"}],
               "eval": [{"format": "evalmuse", "path": "val.json", "image_root": "images"}]},
      "training": {"method": "lora", "lora": {"r": 16, "alpha": 32}, "epochs": 2, "batch_size": 8,
                   "grad_accum": 4, "lr": 2e-4, "checkpoint_every": 500, "eval_every": 500},
      "augment": {"lighting": true, "prompt_types": true, "score_noise": 0.05},
      "pseudo_labels": {"enabled": true, "threshold": 0.9},
      "push_to_hub": {"repo_id": "me/my-judge"}
    }

Example:
    >>> cfg = config_from_dict({"output_dir": "out", "model": {"base": "judge"},
    ...                         "data": {"train": [{"format": "jsonl", "path": "t.jsonl"}]}}, base_dir="/data")
    >>> cfg.output_dir, cfg.data.train[0].path, cfg.training.method
    ('/data/out', '/data/t.jsonl', 'full')
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from evalalign_metric.errors import InputError
from evalalign_metric.fileio import read_data_file
from evalalign_metric.training.augment import AugmentConfig
from evalalign_metric.training.build import BuildSpec
from evalalign_metric.training.readers import FORMATS

METHODS = ("full", "lora")
SCHEDULERS = ("cosine", "linear", "constant")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEFAULT_LORA_TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj)$"


@dataclass(frozen=True)
class SourceConfig:
    """One data file: ``format`` (``llava``, ``evalmuse``, ``jsonl``), ``path``, ``image_root`` and reader
    options (``overall_aspect``/``element_aspect`` for EvalMuse)."""

    format: str
    path: str
    image_root: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DataConfig:
    train: tuple[SourceConfig, ...]
    eval: tuple[SourceConfig, ...] = ()
    unlabelled: tuple[SourceConfig, ...] = ()
    questions_per_image: int | None = None
    # aspect (name or key) -> relative chance that its questions are among the questions_per_image drawn
    # for an image (default 1): more steps for an aspect slow to learn among the others
    aspect_weights: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelConfig:
    """Start from an existing judge folder (``base``) or build a new one (``build``, a BuildSpec dict).

    For a built judge, ``vocabulary`` adds texts its tokenizer learns words from, and ``protocols`` names
    further protocols whose questions it will be asked later (their template text becomes single tokens too,
    as the training protocol's does), beyond the training questions. ``phrase_tokens`` are texts that become
    single tokens wherever they occur in a question (e.g. a closed set of element phrases such as
    ``"circle: on the left of the square;"``): a language model of two layers names a relation it sees, but
    does not learn to check one spelled out word by word in its input (``benchmarks/train_scene_judge.py``).
    With ``base``, ``phrase_tokens`` and the template text of ``protocols`` that the base tokenizer lacks are
    added to it (``build.add_phrase_tokens``): each new token starts as the mean embedding of the pieces it
    replaces, and a question of any other protocol tokenises as before; ``phrase_tokens_like`` maps a phrase
    to an existing text whose tokens' mean starts it instead (with ``base`` only)."""

    base: str | None = None
    build: BuildSpec | None = None
    vocabulary: tuple[str, ...] = ()
    protocols: tuple[str, ...] = ()
    phrase_tokens: tuple[str, ...] = ()
    phrase_tokens_like: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LoraConfig:
    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: Any = DEFAULT_LORA_TARGETS
    modules_to_save: tuple[str, ...] = ()
    merge: bool = False


@dataclass(frozen=True)
class TrainingConfig:
    method: str = "full"
    lora: LoraConfig = field(default_factory=LoraConfig)
    epochs: float = 1.0
    max_steps: int | None = None
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 2e-4
    min_lr_ratio: float = 0.0
    weight_decay: float = 0.0
    warmup_steps: int = 0
    scheduler: str = "cosine"
    max_grad_norm: float | None = 1.0
    seed: int = 0
    precision: str = "auto"
    checkpoint_every: int | None = None
    keep_checkpoints: int = 2
    eval_every: int | None = None
    eval_max_images: int | None = None
    log_every: int = 10
    resume: bool = True
    train_on_suffix: bool = True
    # run the language model on each image's shared prefix once, its questions packed behind it (same loss)
    pack_questions: bool = True
    # parameter-name patterns (fnmatch, e.g. "model.vision_tower.*") left untouched by training
    freeze: tuple[str, ...] = ()


@dataclass(frozen=True)
class PseudoLabelConfig:
    """Score the unlabelled set with the trained judge, keep answers with option probability >= threshold,
    and train ``epochs`` more on labelled + pseudo-labelled data, ``rounds`` times."""

    enabled: bool = False
    threshold: float = 0.9
    rounds: int = 1
    epochs: float = 1.0
    lr_scale: float = 0.5


@dataclass(frozen=True)
class HubConfig:
    repo_id: str
    private: bool = True
    revision: str | None = None
    commit_message: str = "Upload judge trained with evalalign train"
    token: str | None = None


@dataclass(frozen=True)
class TrainConfig:
    output_dir: str
    data: DataConfig
    model: ModelConfig
    protocol: str = "evalalign"
    training: TrainingConfig = field(default_factory=TrainingConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    pseudo_labels: PseudoLabelConfig = field(default_factory=PseudoLabelConfig)
    push_to_hub: HubConfig | None = None
    progress: bool | None = None


# ---------------------------------------------------------------- parsing
def _check_keys(raw: Any, cls, where: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise InputError(f"{where} must be a mapping; got {type(raw).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise InputError(f"{where} has unknown key(s) {unknown}; known: {sorted(known)}")
    return raw


def _typed(value: Any, kind: str, where: str) -> Any:
    """Check one scalar: ``int+`` (positive int), ``int0``, ``num+``, ``num0``, ``prob``, ``bool``, ``str``."""
    if kind == "bool":
        if not isinstance(value, bool):
            raise InputError(f"{where} must be true or false; got {value!r}")
        return value
    if kind == "str":
        if not isinstance(value, str) or not value.strip():
            raise InputError(f"{where} must be a non-empty string; got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{where} must be a number; got {value!r}")
    if kind.startswith("int") and not float(value).is_integer():
        raise InputError(f"{where} must be an integer; got {value!r}")
    low_ok = value > 0 if kind.endswith("+") else value >= 0
    if not low_ok or (kind == "prob" and value > 1):
        bound = "positive" if kind.endswith("+") else "in [0, 1]" if kind == "prob" else ">= 0"
        raise InputError(f"{where} must be {bound}; got {value!r}")
    return int(value) if kind.startswith("int") else float(value)


def _section(raw: Any, cls, where: str, kinds: Mapping[str, str], **nested) -> Any:
    raw = _check_keys(raw if raw is not None else {}, cls, where)
    values = {}
    for key, value in raw.items():
        if key in nested:
            values[key] = nested[key](value, f"{where}.{key}")
        elif value is None:
            values[key] = None
        elif key in kinds:
            values[key] = _typed(value, kinds[key], f"{where}.{key}")
        else:
            values[key] = value
    try:
        return cls(**values)
    except InputError:
        raise
    except (TypeError, ValueError) as exc:
        raise InputError(f"{where}: {exc}") from None


def _path(value: Any, where: str, base: Path) -> str:
    value = _typed(value, "str", where)
    path = Path(value).expanduser()
    return os.fspath(path if path.is_absolute() else base / path)


def _sources(raw: Any, where: str, base: Path) -> tuple[SourceConfig, ...]:
    if raw is None:
        return ()
    if isinstance(raw, Mapping):
        raw = [raw]
    if not isinstance(raw, list):
        raise InputError(f"{where} must be a list of sources {{format, path, image_root}}; got {type(raw).__name__}")
    out = []
    for i, item in enumerate(raw):
        w = f"{where}[{i}]"
        item = _check_keys(item, SourceConfig, w)
        fmt = item.get("format")
        if fmt not in FORMATS:
            raise InputError(f"{w}.format must be one of {list(FORMATS)}; got {fmt!r}")
        if "path" not in item:
            raise InputError(f"{w}.path is missing")
        options = item.get("options", {})
        if not isinstance(options, Mapping):
            raise InputError(f"{w}.options must be a mapping; got {options!r}")
        root = item.get("image_root")
        out.append(SourceConfig(format=fmt, path=_path(item["path"], f"{w}.path", base),
                                image_root=None if root is None else _path(root, f"{w}.image_root", base),
                                options=dict(options)))
    return tuple(out)


def config_from_dict(raw: Mapping[str, Any], *, base_dir: str | os.PathLike = ".") -> TrainConfig:
    """Validate a parsed configuration; relative paths resolve against ``base_dir``."""
    base = Path(base_dir).expanduser()
    raw = _check_keys(raw, TrainConfig, "config")
    for key in ("output_dir", "data", "model"):
        if key not in raw:
            raise InputError(f"config.{key} is missing")

    def data(value, where):
        value = _check_keys(value, DataConfig, where)
        if not value.get("train"):
            raise InputError(f"{where}.train must list at least one source")
        qpi = value.get("questions_per_image")
        weights = value.get("aspect_weights") or {}
        if not isinstance(weights, Mapping):
            raise InputError(f"{where}.aspect_weights must map aspect names to positive numbers; "
                             f"got {type(weights).__name__}")
        for name, weight in weights.items():
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight > 0:
                raise InputError(f"{where}.aspect_weights[{name!r}] must be a positive number; got {weight!r}")
        if weights and qpi is None:
            raise InputError(f"{where}.aspect_weights needs {where}.questions_per_image: the weights choose which "
                             "questions of an image are drawn")
        return DataConfig(train=_sources(value["train"], f"{where}.train", base),
                          eval=_sources(value.get("eval"), f"{where}.eval", base),
                          unlabelled=_sources(value.get("unlabelled"), f"{where}.unlabelled", base),
                          questions_per_image=(None if qpi is None
                                               else _typed(qpi, "int+", f"{where}.questions_per_image")),
                          aspect_weights={str(k): float(v) for k, v in weights.items()})

    def model(value, where):
        value = _check_keys(value, ModelConfig, where)
        if (value.get("base") is None) == (value.get("build") is None):
            raise InputError(f"{where} needs exactly one of 'base' (a judge folder or reference) or 'build' "
                             "(sizes of a new judge)")
        if value.get("base") is not None:
            if value.get("vocabulary"):  # a base judge keeps the tokenizer it has: this would be ignored
                raise InputError(f"{where}.vocabulary applies to a judge built from scratch ({where}.build); "
                                 f"a base judge keeps its own tokenizer (only {where}.phrase_tokens and the "
                                 f"template text of {where}.protocols can be added to it)")
            given = _typed(value["base"], "str", f"{where}.base")
            local = Path(given).expanduser()
            resolved = local if local.is_absolute() else base / local
            phrases = _phrases(value, where)
            like = value.get("phrase_tokens_like", {})
            if (not isinstance(like, Mapping) or not all(isinstance(k, str) and isinstance(v, str) and v
                                                         for k, v in like.items())):
                raise InputError(f"{where}.phrase_tokens_like must map phrases to non-empty texts; got {like!r}")
            unlisted = sorted(set(like) - set(phrases))
            if unlisted:
                raise InputError(f"{where}.phrase_tokens_like names {unlisted[:3]}, not in {where}.phrase_tokens")
            return ModelConfig(base=os.fspath(resolved) if resolved.exists() else given,
                               protocols=_protocols(value, where), phrase_tokens=phrases, phrase_tokens_like=dict(like))
        if value.get("phrase_tokens_like"):
            raise InputError(f"{where}.phrase_tokens_like applies to a base judge ({where}.base): a built judge's "
                             "embeddings start random, so there is no token to start like")
        build = value["build"]
        if not isinstance(build, Mapping):
            raise InputError(f"{where}.build must be a mapping of sizes; got {build!r}")
        vocabulary = value.get("vocabulary", [])
        if not isinstance(vocabulary, list) or not all(isinstance(t, str) for t in vocabulary):
            raise InputError(f"{where}.vocabulary must be a list of texts; got {type(vocabulary).__name__}")
        return ModelConfig(build=BuildSpec.from_dict(dict(build), f"{where}.build"), vocabulary=tuple(vocabulary),
                           protocols=_protocols(value, where), phrase_tokens=_phrases(value, where))

    def _protocols(value, where):
        protocols = value.get("protocols", [])
        if not isinstance(protocols, list) or not all(isinstance(t, str) for t in protocols):
            raise InputError(f"{where}.protocols must be a list of protocol names or files; got {protocols!r}")
        return tuple(_path(p, f"{where}.protocols", base) if p.endswith((".json", ".yaml", ".yml")) else p
                     for p in protocols)

    def _phrases(value, where):
        phrases = value.get("phrase_tokens", [])
        if (not isinstance(phrases, list)
                or not all(isinstance(t, str) and len(t) > 1 and t.strip() == t for t in phrases)):
            raise InputError(f"{where}.phrase_tokens must be a list of texts of two or more characters, without "
                             f"leading or trailing spaces; got {phrases!r}")
        return tuple(phrases)

    def lora(value, where):
        section = _section(value, LoraConfig, where, {"r": "int+", "alpha": "num+", "dropout": "prob",
                                                      "merge": "bool"})
        if isinstance(section.modules_to_save, list):
            section = LoraConfig(**{**section.__dict__, "modules_to_save": tuple(section.modules_to_save)})
        if not isinstance(section.target_modules, (str, list)) or not section.target_modules:
            raise InputError(f"{where}.target_modules must be a regular expression or a list of module names; "
                             f"got {section.target_modules!r}")
        return section

    def patterns(value, where):
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise InputError(f"{where} must be a list of parameter-name patterns; got {value!r}")
        return tuple(_typed(v, "str", f"{where}[{i}]") for i, v in enumerate(value))

    def training(value, where):
        section = _section(value, TrainingConfig, where, {
            "epochs": "num+", "max_steps": "int+", "batch_size": "int+", "grad_accum": "int+", "lr": "num+",
            "min_lr_ratio": "prob", "weight_decay": "num0", "warmup_steps": "int0", "max_grad_norm": "num+",
            "seed": "int0", "checkpoint_every": "int+", "keep_checkpoints": "int+", "eval_every": "int+",
            "eval_max_images": "int+", "log_every": "int+", "resume": "bool", "train_on_suffix": "bool",
            "pack_questions": "bool", "method": "str", "scheduler": "str", "precision": "str"}, lora=lora,
            freeze=patterns)
        for key, allowed in (("method", METHODS), ("scheduler", SCHEDULERS), ("precision", PRECISIONS)):
            if getattr(section, key) not in allowed:
                raise InputError(f"{where}.{key} must be one of {list(allowed)}; got {getattr(section, key)!r}")
        return section

    def augment(value, where):
        section = _section(value, AugmentConfig, where, {"lighting": "bool", "lighting_strength": "num0",
                                                         "category_labels": "bool", "prompt_types": "bool",
                                                         "score_noise": "num0", "flip": "bool"})
        if not isinstance(section.phrasings, Mapping) or not all(
                isinstance(v, list) and all(isinstance(t, str) and "<image>" in t for t in v)
                for v in section.phrasings.values()):
            raise InputError(f"{where}.phrasings must map an aspect key to a list of templates containing <image>")
        return section

    def pseudo(value, where):
        return _section(value, PseudoLabelConfig, where, {"enabled": "bool", "threshold": "prob", "rounds": "int+",
                                                          "epochs": "num+", "lr_scale": "num+"})

    def hub(value, where):
        if value is None:
            return None
        section = _section(value, HubConfig, where, {"repo_id": "str", "private": "bool", "revision": "str",
                                                     "commit_message": "str", "token": "str"})
        if section.repo_id.count("/") != 1:
            raise InputError(f"{where}.repo_id must look like 'owner/name'; got {section.repo_id!r}")
        return section

    protocol = raw.get("protocol", "evalalign")
    protocol = _typed(protocol, "str", "config.protocol")
    if protocol.endswith((".json", ".yaml", ".yml")):
        protocol = _path(protocol, "config.protocol", base)
    progress = raw.get("progress")
    return TrainConfig(
        output_dir=_path(raw["output_dir"], "config.output_dir", base),
        data=data(raw["data"], "config.data"),
        model=model(raw["model"], "config.model"),
        protocol=protocol,
        training=training(raw.get("training"), "config.training"),
        augment=augment(raw.get("augment"), "config.augment"),
        pseudo_labels=pseudo(raw.get("pseudo_labels"), "config.pseudo_labels"),
        push_to_hub=hub(raw.get("push_to_hub"), "config.push_to_hub"),
        progress=None if progress is None else _typed(progress, "bool", "config.progress"),
    )


def load_config(path: str | os.PathLike) -> TrainConfig:
    """Read a ``.json`` or ``.yaml``/``.yml`` training configuration (YAML needs the ``yaml`` extra)."""
    path = Path(path).expanduser()
    raw = read_data_file(path, what="config")
    return config_from_dict(raw, base_dir=path.parent)


def config_to_dict(config: TrainConfig) -> dict:
    """A JSON-ready copy of ``config`` (recorded in checkpoints and the output folder)."""
    from dataclasses import asdict

    data = asdict(config)
    if data["push_to_hub"] and data["push_to_hub"].get("token"):
        data["push_to_hub"]["token"] = "***"
    return json.loads(json.dumps(data, default=str))
