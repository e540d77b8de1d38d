"""The judge used when none is named: the embedded one, else a small untrained demo judge.

The package embeds its default judge as a native checkpoint folder at ``evalalign_metric/assets/judge``,
and a judge for one protocol alone at ``assets/judge-<protocol name>`` (``assets/judge-imatch``: one small
model did not hold both protocols' figures): :func:`default_judge` takes the protocol being asked and returns
that protocol's own embedded judge where there is one. While no embedded judge is there, the default is a
tiny random LLaVA judge built offline (no download) by :func:`evalalign_metric.testing.build_tiny_judge` and
cached under ``$HF_HOME/evalalign/demo-judge/``. Its scores exercise the whole pipeline but mean nothing:
callers show :attr:`DefaultJudge.trained` to users. Shipping a trained judge in ``assets/judge`` (or
``assets/judge-<protocol name>``) switches every caller to it with no code change.

Example:
    >>> info = default_judge()
    >>> (info.path / "config.json").is_file(), isinstance(info.trained, bool)
    (True, True)
    >>> default_judge("imatch").path.name
    'judge-imatch'
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

DEMO_JUDGE_VERSION = 1  # bump when the demo judge's recipe changes, so caches are rebuilt
DEMO_MARKER = "EVALALIGN_DEMO_JUDGE"


@dataclass(frozen=True)
class DefaultJudge:
    path: Path
    trained: bool


def embedded_judge_dir(protocol=None) -> Path:
    """Where the package's trained judge for ``protocol`` lives (it may not exist).

    ``protocol`` is what :func:`evalalign_metric.protocol.load_protocol` takes (a name, a file, a
    ``Protocol``); ``assets/judge-<its name>`` when the package ships one, else ``assets/judge``.
    """
    assets = Path(os.fspath(resources.files("evalalign_metric"))) / "assets"
    if protocol is not None:
        from evalalign_metric.protocol import load_protocol

        own = assets / f"judge-{load_protocol(protocol).name}"
        if (own / "config.json").is_file():
            return own
    return assets / "judge"


def demo_judge_cache_dir() -> Path:
    """``$HF_HOME/evalalign/demo-judge/v<N>`` (read when called, so a changed ``HF_HOME`` is honoured)."""
    from huggingface_hub import constants

    home = os.environ.get("HF_HOME") or constants.HF_HOME
    return Path(home).expanduser() / "evalalign" / "demo-judge" / f"v{DEMO_JUDGE_VERSION}"


def _build_demo_judge(target: Path) -> Path:
    from evalalign_metric.testing import build_tiny_judge

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".building-", dir=target.parent))
    try:
        build_tiny_judge(
            staging / "judge",
            tokenizer="llama",
            architecture="llava",
            seed=1,
            confident=True,
            confident_scale=0.3,
            image_size=32,
            patch_size=8,
        )
        (staging / "judge" / DEMO_MARKER).write_text(
            "Untrained demo judge (random weights) built by evalalign_metric.runs.defaults; its scores mean "
            "nothing.\n"
        )
        try:
            os.replace(staging / "judge", target)  # atomic: concurrent builders cannot half-write the cache
        except OSError:
            if not (target / DEMO_MARKER).is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def default_judge(protocol=None) -> DefaultJudge:
    """The embedded trained judge for ``protocol`` (see :func:`embedded_judge_dir`) if the package ships
    one, else the cached (or freshly built) demo judge."""
    embedded = embedded_judge_dir(protocol)
    if (embedded / "config.json").is_file():
        return DefaultJudge(embedded, trained=not (embedded / DEMO_MARKER).exists())
    cached = demo_judge_cache_dir()
    if not (cached / DEMO_MARKER).is_file():
        _build_demo_judge(cached)
    return DefaultJudge(cached, trained=False)


def default_judge_path(protocol=None) -> Path:
    """Path of the default judge folder for ``protocol`` (see :func:`default_judge`)."""
    return default_judge(protocol).path


def is_demo_judge(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an untrained demo judge built here."""
    return (Path(path) / DEMO_MARKER).is_file()
