"""Supervised fine-tuning of judges on annotations (EvalAlign, iMatch), and synthetic training data.

- :mod:`~evalalign_metric.training.readers`: EvalAlign conversations, EvalMuse-40K records, plain JSONL;
- :mod:`~evalalign_metric.training.targets`: annotation -> protocol question + answer option (binning);
- :mod:`~evalalign_metric.training.augment`: iMatch's augmentations, each a switch;
- :mod:`~evalalign_metric.training.trainer`: the resumable training loop (LoRA or full, accelerate);
- synthetic shape scenes with known truth are in :mod:`evalalign_metric.synthetic` (``training.scenes`` is a
  deprecated alias).

Example:
    >>> from evalalign_metric.training import TrainConfig, train
    >>> callable(train) and TrainConfig.__name__
    'TrainConfig'
"""

from evalalign_metric.training.annotations import Annotation, ReadReport
from evalalign_metric.training.augment import AugmentConfig
from evalalign_metric.training.config import TrainConfig, config_from_dict, load_config
from evalalign_metric.training.lora import load_trained_judge
from evalalign_metric.training.readers import read_evalmuse, read_jsonl, read_llava, read_source
from evalalign_metric.training.targets import Target, build_target, nearest_option
from evalalign_metric.training.trainer import TrainResult, Trainer, TrainingInterrupted, train

__all__ = [
    "Annotation", "AugmentConfig", "ReadReport", "Target", "TrainConfig", "TrainResult", "Trainer",
    "TrainingInterrupted", "build_target", "config_from_dict", "load_config", "load_trained_judge",
    "nearest_option", "read_evalmuse", "read_jsonl", "read_llava", "read_source", "train",
]
