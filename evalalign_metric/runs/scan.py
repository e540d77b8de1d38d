"""Finding the images of a folder and their prompts, and listing everything that cannot be scored.

Only the folder's top level is read (a manifest may still point into subfolders); subfolders holding
images that are not scored are listed (``ignored_subfolders``), not searched. Hidden files (``.DS_Store``)
and this library's own output files are ignored. Every other file ends up in exactly one list: images to
score, non-image files, unreadable images (header cannot be parsed, permission denied) or images without a
prompt. Prompts of a prompts file (or of the official sets the folder's images belong to) that no image
matches are listed too (``prompts_without_image``). Two images with the same stem (``p0.png`` and
``p0.jpg``) would score prompt ``p0`` twice: they are refused. Images are ordered by a natural sort of their
key (the path relative to the folder), the order of every results file. :func:`scan_notes` says what was
listed but not scored, in lines for the user.

Example:
    >>> import tempfile, pathlib
    >>> from PIL import Image
    >>> from evalalign_metric.protocol import load_protocol
    >>> from evalalign_metric.runs.prompts import load_prompts
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ("45.png", "628.png", "nope.png"):
    ...     Image.new("RGB", (8, 8)).save(d / name)
    >>> _ = (d / "notes.txt").write_text("not an image")
    >>> scan = scan_folder(d, load_prompts("official", load_protocol("evalalign")))
    >>> [i.key for i in scan.items], scan.non_image_files, scan.without_prompt
    (['45.png', '628.png'], ['notes.txt'], ['nope.png'])
"""

from __future__ import annotations

import contextlib
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from PIL import Image

from evalalign_metric.errors import InputError
from evalalign_metric.runs.prompts import PromptEntry, PromptSource

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


def natural_key(key: str) -> tuple:
    """Sort key that puts ``"2.png"`` before ``"10.png"``; deterministic for any string."""
    parts = re.split(r"(\d+)", key)
    return tuple((int(p), p) if i % 2 else p for i, p in enumerate(parts))


@dataclass(frozen=True)
class ImageItem:
    """One image to score: its key (path relative to the folder, ``/``-separated), file and prompt."""

    key: str
    path: Path
    entry: PromptEntry


@dataclass
class FolderScan:
    """What a folder holds, in natural key order."""

    images_dir: Path
    items: list[ImageItem] = field(default_factory=list)
    non_image_files: list[str] = field(default_factory=list)
    unreadable: list[dict[str, str]] = field(default_factory=list)  # {"image", "error"}
    without_prompt: list[str] = field(default_factory=list)
    ignored_subfolders: list[dict[str, object]] = field(default_factory=list)  # {"folder", "images"}
    prompts_without_image: list[str] = field(default_factory=list)  # prompt ids
    num_prompts: int = 0  # prompts the folder's images were matched against (prompts_without_image's total)

    @property
    def num_files(self) -> int:
        return len(self.items) + len(self.non_image_files) + len(self.unreadable) + len(self.without_prompt)


# What PIL raises for a file that is not a usable image (the bomb warning only inside bombs_as_errors()).
UNREADABLE_IMAGE_ERRORS = (
    OSError,
    ValueError,
    SyntaxError,
    Image.DecompressionBombWarning,
    Image.DecompressionBombError,
)


@contextlib.contextmanager
def bombs_as_errors() -> Iterator[None]:
    """Within: PIL's decompression-bomb warning is raised, so an oversized image counts as unreadable."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield


def check_image_header(path: Path) -> str | None:
    """``None`` if PIL can parse the file's header, else a short reason (pixels are decoded when scored)."""
    try:
        with bombs_as_errors(), Image.open(path) as image:
            image.size  # noqa: B018 - parsing the header is the check
    except PermissionError:
        return "permission denied"
    except UNREADABLE_IMAGE_ERRORS as exc:
        return f"not a readable image ({type(exc).__name__}: {exc})"
    return None


def _top_level_files(images_dir: Path, exclude: set[Path]) -> tuple[list[str], list[str]]:
    """(file names, subfolder names) of the folder's top level, hidden entries and ``exclude`` left out."""
    names, folders = [], []
    with os.scandir(images_dir) as entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                folders.append(entry.name)
                continue
            if Path(entry.path).resolve() in exclude:
                continue
            names.append(entry.name)
    return sorted(names, key=natural_key), sorted(folders, key=natural_key)


def _subfolder_images(root: Path, folder: str, listed: set[str]) -> int:
    """How many image files under ``root/folder`` (any depth, hidden entries skipped) are not in ``listed``."""
    count = 0
    for current, dirs, files in os.walk(root / folder, onerror=lambda exc: None):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        relative = Path(current).relative_to(root).as_posix()
        count += sum(
            1 for f in files
            if not f.startswith(".") and Path(f).suffix.lower() in IMAGE_SUFFIXES and f"{relative}/{f}" not in listed
        )
    return count


def _check_unique_stems(images: list[str], table: dict[str, PromptEntry], shown: str) -> None:
    by_stem: dict[str, list[str]] = {}
    for name in images:
        by_stem.setdefault(Path(name).stem, []).append(name)
    clashes = [names for stem, names in by_stem.items() if len(names) > 1 and stem in table]
    if clashes:
        first = clashes[0]
        more = f" (and {len(clashes) - 1} more stem(s))" if len(clashes) > 1 else ""
        raise InputError(
            f"images {' and '.join(repr(n) for n in first)} in {shown!r} both match prompt_id "
            f"{Path(first[0]).stem!r}{more}: each prompt is scored once per image named <prompt_id>.<ext>; keep "
            "one file per prompt (or list several images of a prompt in a manifest)"
        )


def _relevant_ids(source: PromptSource, table: dict[str, PromptEntry], matched: set[str]) -> set[str]:
    """The prompt ids a folder is expected to cover: the whole prompts file, or the official sets (alignment,
    faithfulness) that at least one of its images belongs to."""
    if not source.official_sets:
        return set(table)
    ids: set[str] = set()
    for ids_of_set in source.official_sets.values():
        if matched & ids_of_set:
            ids |= ids_of_set
    return ids


def _check_dir(images_dir: str | os.PathLike) -> Path:
    path = Path(images_dir).expanduser()
    if not path.exists():
        raise InputError(f"IMAGES_DIR {os.fspath(images_dir)!r} does not exist")
    if not path.is_dir():
        raise InputError(f"IMAGES_DIR {os.fspath(images_dir)!r} is not a folder")
    if not os.access(path, os.R_OK | os.X_OK):
        raise InputError(f"IMAGES_DIR {os.fspath(images_dir)!r} cannot be read (permission denied)")
    return path


def scan_folder(
    images_dir: str | os.PathLike, source: PromptSource, *, exclude: Iterable[Path] = ()
) -> FolderScan:
    """Match the folder's images to ``source``'s prompts (see the module docs); raises when nothing can be
    scored (empty folder, no images, no image with a prompt)."""
    root = _check_dir(images_dir)
    names, folders = _top_level_files(root, {Path(p).resolve() for p in exclude})
    scan = FolderScan(root)
    images = [n for n in names if Path(n).suffix.lower() in IMAGE_SUFFIXES]
    scan.non_image_files = [n for n in names if Path(n).suffix.lower() not in IMAGE_SUFFIXES]
    if source.is_manifest:
        assert source.by_image is not None
        for key, entry in source.by_image.items():
            path = root / key
            if not path.is_file():
                raise InputError(
                    f"--prompts {Path(source.description).name}: image {key!r} does not exist in "
                    f"{os.fspath(images_dir)!r}"
                )
        listed = set(source.by_image)
        scan.without_prompt = [n for n in images if n not in listed]
        candidates = [(key, root / key, entry) for key, entry in source.by_image.items()]
    else:
        table = source.id_table(Path(n).stem for n in images)
        _check_unique_stems(images, table, os.fspath(images_dir))
        candidates = []
        for name in images:
            entry = table.get(Path(name).stem)
            if entry is None:
                scan.without_prompt.append(name)
            else:
                candidates.append((name, root / name, entry))
        matched = {Path(name).stem for name, _, _ in candidates}
        relevant = _relevant_ids(source, table, matched)
        scan.num_prompts = len(relevant)
        scan.prompts_without_image = sorted(relevant - matched, key=natural_key)
    listed = set(source.by_image or ())
    for folder in folders:
        count = _subfolder_images(root, folder, listed)
        if count:
            scan.ignored_subfolders.append({"folder": folder, "images": count})
    for key, path, entry in candidates:
        reason = check_image_header(path)
        if reason is None:
            scan.items.append(ImageItem(key, path, entry))
        else:
            scan.unreadable.append({"image": key, "error": reason})
    scan.items.sort(key=lambda item: natural_key(item.key))
    scan.unreadable.sort(key=lambda u: natural_key(u["image"]))
    _check_something_to_score(scan, source, os.fspath(images_dir), names, images)
    return scan


def scan_notes(scan: FolderScan, prompts: str) -> list[str]:
    """One line per thing the folder holds that will not be scored and is not an error: images in
    subfolders, prompts without an image (both are listed in the run's summary too).

    Example:
        >>> scan = FolderScan(Path("imgs"), ignored_subfolders=[{"folder": "old", "images": 3}],
        ...                   prompts_without_image=["7", "9"], num_prompts=5)
        >>> for line in scan_notes(scan, "--prompts prompts.jsonl"):
        ...     print(line)
        3 image(s) in subfolders of 'imgs' are not scored (only the folder's top level is): 'old' (3)
        2 of the 5 prompt(s) of --prompts prompts.jsonl have no image in 'imgs' (e.g. '7', '9')
    """
    shown = os.fspath(scan.images_dir)
    notes = []
    if scan.ignored_subfolders:
        total = sum(int(s["images"]) for s in scan.ignored_subfolders)
        folders = ", ".join(f"{s['folder']!r} ({s['images']})" for s in scan.ignored_subfolders[:5])
        more = ", ..." if len(scan.ignored_subfolders) > 5 else ""
        notes.append(
            f"{total} image(s) in subfolders of {shown!r} are not scored (only the folder's top level is): "
            f"{folders}{more}"
        )
    if scan.prompts_without_image:
        missing = scan.prompts_without_image
        examples = ", ".join(repr(i) for i in missing[:3]) + (", ..." if len(missing) > 3 else "")
        notes.append(
            f"{len(missing)} of the {scan.num_prompts} prompt(s) of {prompts} have no image in "
            f"{shown!r} (e.g. {examples})"
        )
    return notes


def _check_something_to_score(scan: FolderScan, source: PromptSource, shown: str, names, images) -> None:
    if not names and not source.is_manifest:
        raise InputError(
            f"IMAGES_DIR {shown!r} is empty: expected images named <prompt_id>.<ext> "
            f"({', '.join(IMAGE_SUFFIXES)})"
        )
    if not images and not source.is_manifest:
        raise InputError(
            f"IMAGES_DIR {shown!r} holds no image files ({', '.join(IMAGE_SUFFIXES)}); found "
            f"{len(names)} other file(s), e.g. {names[0]!r}"
        )
    if scan.items:
        return
    if scan.unreadable:
        first = scan.unreadable[0]
        raise InputError(
            f"none of the images in {shown!r} can be read: {len(scan.unreadable)} unreadable, e.g. "
            f"{first['image']!r}: {first['error']}"
        )
    ids = sorted(source.by_id or {}, key=natural_key)[:3]
    raise InputError(
        f"none of the {len(images)} image(s) in {shown!r} has a prompt in {source.description}: images are "
        f"matched by name <prompt_id>.<ext> (e.g. {images[0]!r} would need prompt_id "
        f"{Path(images[0]).stem!r}; known ids include {', '.join(repr(i) for i in ids)})"
    )
