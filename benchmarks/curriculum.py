"""Run training stages in turn, each starting from the judge the previous one wrote (shared by the
benchmark scripts; ``python benchmarks/<script>.py`` puts this folder on ``sys.path``).

Example:
    results, judge_dir = run_stages(Path("/tmp/work"), [("describe", {...}), ("judge", {...})],
                                    first_model={"build": {...}})
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def run_stages(work: Path, stages, *, first_model: dict):
    """Train each ``(name, config)`` into ``work/name`` (its ``output_dir`` and ``model`` are filled in: the
    first stage gets ``first_model``, later ones the previous stage's judge); print each summary.

    Returns the :class:`~evalalign_metric.training.TrainResult` of every stage and the last judge's folder.
    """
    from evalalign_metric.training.config import config_from_dict
    from evalalign_metric.training.trainer import Trainer

    results, model = [], first_model
    for name, config in stages:
        config = {**config, "output_dir": os.fspath(work / name), "model": model}
        (work / f"config-{name}.json").write_text(json.dumps(config, indent=1))
        result = Trainer(config_from_dict(config), progress=sys.stderr.isatty()).run()
        print(f"--- stage {name}\n{result.summary()}")
        results.append(result)
        model = {"base": os.fspath(work / name)}
    return results, work / stages[-1][0]
