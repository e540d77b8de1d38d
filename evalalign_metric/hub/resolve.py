"""Model references -> a local folder with a NATIVE judge checkpoint.

A reference is a registered judge name (``"evalalign-13b"``), a Hub repo id (``"org/name"``) with an
optional ``revision`` (branch, tag or commit), or a LoRA adapter repo whose ``adapter_config.json`` names
its base. Files come through ``huggingface_hub.snapshot_download`` into the standard cache, restricted to
safetensors, JSON and tokenizer files (pickle weights only with ``allow_pickle=True``), so
``HF_HOME``, ``HF_HUB_OFFLINE``, ``HF_ENDPOINT`` and tokens work as everywhere in the ecosystem.
Original-format LLaVA checkpoints are converted once, on first load, into
``$HF_HOME/evalalign/converted/<org>--<name>/<commit>`` (written to a temporary folder, then renamed, so
an interrupted conversion never leaves a half folder). An adapter resolves to ``base + adapter`` merged
once (peft) into the same kind of cache folder, keyed by the adapter's commit.

Example:
    >>> converted_root("/tmp/hf").as_posix()
    '/tmp/hf/evalalign/converted'
    >>> cache_key("Fudan-FUXI/evalalign-v1.0-13b")
    'Fudan-FUXI--evalalign-v1.0-13b'
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import uuid
import warnings
from pathlib import Path

from evalalign_metric.errors import JudgeLoadError, UnsupportedModelError
from evalalign_metric.hub.errors import (
    DiskFullError,
    DownloadInterruptedError,
    HubFileMissingError,
    OfflineCacheMissError,
    RepoNotFoundError,
    RevisionNotFoundError,
)
from evalalign_metric.hub.registry import judge_spec

MODEL_PATTERNS = ["*.json", "*.safetensors", "tokenizer.model", "*.tiktoken", "*.jinja", "*.txt"]
PICKLE_PATTERNS = ["*.bin", "*.pt"]
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def converted_root(hf_home: str | os.PathLike | None = None) -> Path:
    """Where converted checkpoints live: ``$HF_HOME/evalalign/converted``."""
    if hf_home is None:
        from huggingface_hub import constants

        hf_home = os.environ.get("HF_HOME") or constants.HF_HOME
    return Path(hf_home) / "evalalign" / "converted"


def cache_key(repo_id: str) -> str:
    return repo_id.replace("/", "--")


def _patterns(allow_pickle: bool) -> list[str]:
    # No *.py: custom code is detected from config.json's auto_map, and never downloaded.
    return MODEL_PATTERNS + (PICKLE_PATTERNS if allow_pickle else [])


def download(repo_id: str, *, revision: str | None = None, cache_dir=None, token=None,
             local_files_only: bool = False, allow_pickle: bool = False,
             patterns: list[str] | None = None) -> tuple[Path, str]:
    """``snapshot_download`` with this library's errors; returns (snapshot folder, commit sha)."""
    import huggingface_hub
    from huggingface_hub import errors as hf_errors

    where = f"{repo_id}@{revision or 'main'}"
    try:
        folder = huggingface_hub.snapshot_download(
            repo_id, revision=revision, cache_dir=cache_dir, token=token, local_files_only=local_files_only,
            allow_patterns=patterns or _patterns(allow_pickle),
        )
    except hf_errors.RevisionNotFoundError as exc:
        raise RevisionNotFoundError(f"revision {revision!r} does not exist in {repo_id}: give an existing "
                                    "branch, tag or full commit sha") from exc
    except hf_errors.RepositoryNotFoundError as exc:
        raise RepoNotFoundError(f"{repo_id} was not found on the Hub ({_endpoint()}); check the id, or pass "
                                "token=... (or `hf auth login`) for a private or gated repo") from exc
    except hf_errors.LocalEntryNotFoundError as exc:
        raise OfflineCacheMissError(
            f"{where} is not in the local cache and the Hub cannot be reached (offline: HF_HUB_OFFLINE=1 or "
            "local_files_only=True, or no network). Download it once online, or copy the cache here"
        ) from exc
    except hf_errors.EntryNotFoundError as exc:
        raise HubFileMissingError(f"{where}: a file is missing ({exc})") from exc
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise DiskFullError(f"no space left while downloading {where} into the Hugging Face cache; free "
                                "space or set HF_HOME / cache_dir to a larger disk") from exc
        raise _interrupted(where, exc) from exc
    except Exception as exc:
        if _is_transport_error(exc):
            raise _interrupted(where, exc) from exc
        raise
    folder = Path(folder)
    return folder, folder.name


def _endpoint() -> str:
    from huggingface_hub import constants

    return os.environ.get("HF_ENDPOINT") or constants.ENDPOINT


def _is_transport_error(exc: Exception) -> bool:
    return any(cls.__name__ in ("TransportError", "HTTPError", "RequestError", "ConnectionError", "ReadTimeout",
                                "RemoteProtocolError", "ChunkedEncodingError") for cls in type(exc).__mro__)


def _interrupted(where: str, exc: Exception) -> DownloadInterruptedError:
    return DownloadInterruptedError(f"the download of {where} was interrupted ({type(exc).__name__}: {exc}); "
                                    "run again: completed files are kept and partial ones resume")


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise JudgeLoadError(f"cannot read {path}: {exc}") from exc


def _check_weights(folder: Path, repo: str, allow_pickle: bool) -> None:
    if any(folder.glob("*.safetensors")):
        return
    if allow_pickle and any(folder.glob("*.bin")) or any(folder.glob("*.pt")):
        return
    raise HubFileMissingError(
        f"{repo} has no safetensors weights at this revision. Pickle weights (.bin/.pt) are not downloaded "
        "because loading them can run code: pass allow_pickle=True if you trust the repo"
    )


def _atomic_build(final: Path, build) -> Path:
    """Run ``build(tmp)`` in a temporary sibling of ``final`` and rename it into place."""
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{final.name}-{uuid.uuid4().hex[:8]}"
    try:
        build(tmp)
        try:
            os.replace(tmp, final)
        except OSError:
            if not final.is_dir():  # another process won the race: keep its folder
                raise
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise DiskFullError(f"no space left while converting into {final.parent}; free space or set "
                                "HF_HOME to a larger disk") from exc
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def tower_downloader(*, cache_dir=None, token=None, local_files_only=False, allow_pickle=False):
    """A ``name -> folder`` resolver that fetches a CLIP tower repo (used by the converter)."""
    from evalalign_metric.convert.tower import TOWER_WEIGHT_PATTERNS, has_weights

    def resolve_tower(name: str) -> Path | None:
        if not _REPO_ID.match(name):
            return None
        folder, _ = download(name, cache_dir=cache_dir, token=token, local_files_only=local_files_only,
                             patterns=TOWER_WEIGHT_PATTERNS + (PICKLE_PATTERNS if allow_pickle else []))
        if not allow_pickle and not has_weights(folder, allow_pickle=False):
            from evalalign_metric.convert import PickleWeightsRefusedError

            raise PickleWeightsRefusedError(
                f"the vision tower repo {name} has no safetensors weights (it likely ships only pytorch_model.bin); "
                "pickle weights are downloaded only when you trust them: pass allow_pickle=True "
                "(CLI: --allow-pickle)"
            )
        return folder

    return resolve_tower


def download_original(reference: str, *, revision=None, cache_dir=None, token=None, local_files_only=False,
                      allow_pickle=False) -> Path:
    """Download a repo as it is (for ``evalalign convert REPO DST``)."""
    spec = judge_spec(reference)
    repo = spec.repo_id if spec else reference
    folder, _ = download(repo, revision=revision or (spec.revision if spec else None), cache_dir=cache_dir,
                         token=token, local_files_only=local_files_only, allow_pickle=allow_pickle)
    return folder


def resolve_model(
    reference: str,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    token: str | bool | None = None,
    local_files_only: bool = False,
    allow_pickle: bool = False,
    trust_remote_code: bool = False,
) -> Path:
    """A local folder with a native judge checkpoint for ``reference`` (see the module doc).

    Args:
        reference: registered judge name, Hub repo id, or adapter repo id.
        revision: branch, tag or full commit sha (default: the registered revision, else ``main``).
        cache_dir: Hugging Face hub cache (default: ``$HF_HOME/hub``).
        token: Hub token for private or gated repos.
        local_files_only: never touch the network (as ``HF_HUB_OFFLINE=1``).
        allow_pickle: also accept ``.bin`` / ``.pt`` weights (they can run code when loaded).
        trust_remote_code: accept a checkpoint that declares custom code (``auto_map``); the judge loader
            still only runs registered transformers classes.
    """
    spec = judge_spec(reference)
    repo_id = spec.repo_id if spec else reference
    if not _REPO_ID.match(repo_id):
        raise JudgeLoadError(f"model={reference!r} is neither a local folder, a registered judge nor a Hub repo "
                             "id ('org/name')")
    revision = revision or (spec.revision if spec else None)
    hub = dict(cache_dir=cache_dir, token=token, local_files_only=local_files_only, allow_pickle=allow_pickle)
    folder, commit = download(repo_id, revision=revision, **hub)
    if spec and spec.commit_prefix and not commit.startswith(spec.commit_prefix) and revision == spec.revision:
        warnings.warn(f"{repo_id}@{revision} is now commit {commit[:12]}, not {spec.commit_prefix} registered for "
                      f"{spec.name}: scores may differ from earlier ones", stacklevel=2)
    if (folder / "adapter_config.json").is_file():
        return _resolve_adapter(folder, repo_id, commit, hub, trust_remote_code)
    config = _read_json(folder / "config.json") if (folder / "config.json").is_file() else None
    if config is None:
        raise HubFileMissingError(f"{repo_id}@{revision or 'main'} has no config.json: not a model checkpoint")
    if config.get("auto_map") and not trust_remote_code:
        raise JudgeLoadError(f"{repo_id} declares custom code (auto_map); pass trust_remote_code=True if you trust "
                             "it (the judge still loads only registered transformers classes)")
    from evalalign_metric.convert import convert_llava_checkpoint, is_original_llava_dir

    if is_original_llava_dir(folder):
        _check_weights(folder, repo_id, allow_pickle)
        final = converted_root(_hf_home_for(cache_dir)) / cache_key(repo_id) / commit
        tower = tower_downloader(cache_dir=cache_dir, token=token, local_files_only=local_files_only,
                                 allow_pickle=allow_pickle)
        return _atomic_build(final, lambda tmp: convert_llava_checkpoint(
            folder, tmp, allow_pickle=allow_pickle, tower_resolver=tower))
    from evalalign_metric.judge.backends import BACKENDS

    if config.get("model_type") not in BACKENDS:
        raise UnsupportedModelError(
            f"{repo_id}: model_type={config.get('model_type')!r} is neither a supported judge architecture "
            f"{sorted(BACKENDS)} nor an original-format LLaVA checkpoint"
        )
    _check_weights(folder, repo_id, allow_pickle)
    return folder


def _hf_home_for(cache_dir) -> str | None:
    # With an explicit hub cache, keep converted folders beside it rather than in the default HF_HOME.
    return str(Path(cache_dir).parent) if cache_dir is not None else None


def _resolve_adapter(folder: Path, repo_id: str, commit: str, hub: dict, trust_remote_code: bool) -> Path:
    from evalalign_metric.hub.adapter import merge_adapter

    adapter_config = _read_json(folder / "adapter_config.json")
    base = adapter_config.get("base_model_name_or_path")
    if not base:
        raise JudgeLoadError(f"{repo_id}: adapter_config.json does not name base_model_name_or_path")
    if not (folder / "adapter_model.safetensors").is_file():
        raise HubFileMissingError(f"{repo_id} has no adapter_model.safetensors (pickle adapters are not loaded)")
    if Path(base).is_dir():
        base_dir = Path(base)
    else:
        base_dir = resolve_model(base, revision=adapter_config.get("revision"), trust_remote_code=trust_remote_code,
                                 **hub)
    final = converted_root(_hf_home_for(hub["cache_dir"])) / cache_key(repo_id) / commit
    return _atomic_build(final, lambda tmp: merge_adapter(base_dir, folder, tmp))
