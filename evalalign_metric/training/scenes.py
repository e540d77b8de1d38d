"""Deprecated alias of :mod:`evalalign_metric.synthetic.scenes` (the scenes are a dataset, not training code).

Importing it warns; every name is looked up in :mod:`evalalign_metric.synthetic.scenes`.

Example:
    >>> from evalalign_metric.synthetic import scenes as new
    >>> from evalalign_metric.training import scenes as old
    >>> old.render is new.render and old.Scene is new.Scene
    True
"""

import warnings

from evalalign_metric.synthetic import scenes as _scenes

warnings.warn("evalalign_metric.training.scenes is deprecated; import evalalign_metric.synthetic.scenes",
              DeprecationWarning, stacklevel=2)


def __getattr__(name: str):
    return getattr(_scenes, name)


def __dir__() -> list[str]:
    return dir(_scenes)
