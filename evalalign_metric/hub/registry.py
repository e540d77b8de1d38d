"""Named judges: a short name -> Hub repo, pinned revision, chat format and protocol.

A metric value is reproducible only with the same weights, so each name carries the revision it was
registered with. The official EvalAlign repos were looked up on the Hub's pages (offline here): the 34B
repo's ``main`` was at commit ``eb12541`` ("Upload 21 files", 15 fp16 shards) and only the short id is
known, the 13B repo's commit could not be looked up. Both therefore pin the revision given at registration
(``main``) and, where known, the expected commit prefix is checked after resolution: a mismatch warns that
the repo moved since this version of the library. Pass ``revision=<full commit sha>`` to pin exactly.

Example:
    >>> spec = judge_spec("evalalign-13b")
    >>> spec.repo_id, spec.chat_format
    ('Fudan-FUXI/evalalign-v1.0-13b', 'vicuna_v1')
    >>> "evalalign-34b" in available_judges()
    True
"""

from __future__ import annotations

from dataclasses import dataclass

from evalalign_metric.errors import JudgeLoadError


@dataclass(frozen=True)
class JudgeSpec:
    """A registered judge. ``disk_gb`` / ``gpu_gb`` are rough fp16 needs (download + converted copy)."""

    name: str
    repo_id: str
    revision: str
    chat_format: str
    protocol: str = "evalalign"
    commit_prefix: str | None = None
    disk_gb: float | None = None
    gpu_gb: float | None = None
    description: str = ""


JUDGES: dict[str, JudgeSpec] = {}


def register_judge(spec: JudgeSpec) -> JudgeSpec:
    """Make ``spec.name`` usable as ``EvalAlignScore(model=spec.name)``."""
    JUDGES[spec.name] = spec
    return spec


def judge_spec(name: str) -> JudgeSpec | None:
    return JUDGES.get(name)


def available_judges() -> list[str]:
    return sorted(JUDGES)


def require_judge(name: str) -> JudgeSpec:
    spec = judge_spec(name)
    if spec is None:
        raise JudgeLoadError(f"no judge named {name!r}; registered: {available_judges()}")
    return spec


register_judge(JudgeSpec(
    name="evalalign-13b", repo_id="Fudan-FUXI/evalalign-v1.0-13b", revision="main", chat_format="vicuna_v1",
    disk_gb=54, gpu_gb=28, description="EvalAlign v1.0, LLaVA-1.6 on Vicuna-13B (original LLaVA format)",
))
register_judge(JudgeSpec(
    name="evalalign-34b", repo_id="Fudan-FUXI/evalalign-v1.0-34b", revision="main", chat_format="chatml",
    commit_prefix="eb12541", disk_gb=140, gpu_gb=72,
    description="EvalAlign v1.0, LLaVA-1.6 on Yi-34B (original LLaVA format)",
))

# Zero-shot instruct judges (judge families, docs/judges.md): asked through their own chat templates, no
# fine-tuning, and no agreement claim. ``main`` is pinned as given; pass ``revision=`` to pin a commit.
for _name, _repo in (("qwen2.5-vl-7b-instruct", "Qwen/Qwen2.5-VL-7B-Instruct"),
                     ("qwen3-vl-8b-instruct", "Qwen/Qwen3-VL-8B-Instruct"),
                     ("smolvlm-instruct", "HuggingFaceTB/SmolVLM-Instruct")):
    register_judge(JudgeSpec(name=_name, repo_id=_repo, revision="main", chat_format="chat_template",
                             description="zero-shot instruct judge (its own chat template; no agreement claim)"))
