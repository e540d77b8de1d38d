"""Judges from the Hugging Face Hub: named judges, repo ids with revisions, adapters, offline use.

Example:
    >>> from evalalign_metric.hub import available_judges
    >>> available_judges()[:2], "qwen2.5-vl-7b-instruct" in available_judges()
    (['evalalign-13b', 'evalalign-34b'], True)
"""

from evalalign_metric.hub.adapter import is_adapter_dir, merge_adapter
from evalalign_metric.hub.errors import (
    DiskFullError,
    DownloadInterruptedError,
    HubFileMissingError,
    OfflineCacheMissError,
    RepoNotFoundError,
    RevisionNotFoundError,
)
from evalalign_metric.hub.registry import JudgeSpec, available_judges, judge_spec, register_judge
from evalalign_metric.hub.resolve import converted_root, download_original, resolve_model, tower_downloader

__all__ = [
    "DiskFullError", "DownloadInterruptedError", "HubFileMissingError", "JudgeSpec",
    "OfflineCacheMissError", "RepoNotFoundError", "RevisionNotFoundError", "available_judges",
    "converted_root", "download_original", "is_adapter_dir", "judge_spec", "merge_adapter", "register_judge",
    "resolve_model", "tower_downloader",
]
