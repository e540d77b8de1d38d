"""The documentation stays true: runnable examples run and relative links resolve.

Convention: a ```python block in README.md or docs/*.md is *runnable* when the line right before its fence is
``<!-- runnable -->`` (invisible on GitHub). Each runnable block is executed here, in a fresh namespace with a
temporary working directory (so ``build_tiny_judge("tiny-judge")`` writes there), with one torch thread. A
failure names the Markdown file and line: the block is compiled with the file's name and its own line
numbers, so the traceback points into the page. Blocks that need a GPU, the Hub or a big checkpoint stay
unmarked. A marker before anything but a ```python fence is an error, not a silent skip.

Every relative link ``[text](target)`` outside code must name an existing file or folder; ``#anchor`` (alone
or after a ``.md`` target) must be the GitHub slug of a heading of that page.
"""

from __future__ import annotations

import re
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MARKER = "<!-- runnable -->"
FENCE = re.compile(r"^(`{3,}|~{3,})(.*)$")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")


def doc_files(root: Path = ROOT) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the block's first code line
    code: str

    def where(self, root: Path = ROOT) -> str:
        try:
            shown = self.path.relative_to(root)
        except ValueError:
            shown = self.path
        return f"{shown}:{self.line}"


def _scan(text: str):
    """Yield ``(line_number, line, fence_info_or_None, in_code)`` for each line; fence lines carry their info
    string (``"python"``), lines inside a fenced block have ``in_code`` True."""
    fence = None
    for number, line in enumerate(text.splitlines(), 1):
        match = FENCE.match(line.strip())
        if fence is None and match:
            fence = match.group(1)
            yield number, line, match.group(2).strip(), False
        elif fence is not None and line.strip().startswith(fence) and not line.strip()[len(fence):].strip():
            fence = None
            yield number, line, None, False
        else:
            yield number, line, None, fence is not None


def runnable_blocks(path: Path) -> list[Block]:
    """The runnable blocks of one Markdown file; a misplaced marker raises ``ValueError`` naming its line."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks = []
    for index, line in enumerate(lines):
        if line.strip() != MARKER:
            continue
        following = lines[index + 1].strip() if index + 1 < len(lines) else ""
        match = FENCE.match(following)
        if not match or match.group(2).strip() != "python":
            raise ValueError(f"{path}:{index + 1}: {MARKER} must be the line right before a ```python fence; "
                             f"the next line is {following!r}")
        fence = match.group(1)
        body = []
        for end in range(index + 2, len(lines)):
            if lines[end].strip() == fence:
                break
            body.append(lines[end])
        else:
            raise ValueError(f"{path}:{index + 2}: the runnable block is never closed")
        blocks.append(Block(path, index + 3, "\n".join(body) + "\n"))
    return blocks


def run_block(block: Block, cwd: Path) -> None:
    """Execute ``block`` in a fresh namespace with ``cwd`` as working directory; raise ``AssertionError`` with
    the page, the line and the error when it fails."""
    import os

    source = "\n" * (block.line - 1) + block.code  # line numbers of the page itself
    filename = os.fspath(block.path)
    code = compile(source, filename, "exec")
    previous = Path.cwd()
    os.chdir(cwd)
    try:
        exec(code, {"__name__": "__main__", "__file__": filename})
    except BaseException as exc:  # SystemExit and KeyboardInterrupt in an example are failures too
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == filename]
        line = frames[-1].lineno if frames else block.line
        shown = Block(block.path, line, "").where()
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        raise AssertionError(f"{shown}: the runnable block starting at line {block.line} failed: {detail}\n"
                             + "".join(traceback.format_tb(exc.__traceback__))) from None
    finally:
        os.chdir(previous)


def slug(heading: str, seen: dict[str, int]) -> str:
    """GitHub's anchor for a heading text (``seen`` counts earlier slugs of the page: repeats get ``-1``...)."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    base = text.replace(" ", "-")
    count = seen.get(base, 0)
    seen[base] = count + 1
    return base if count == 0 else f"{base}-{count}"


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for _, line, _, in_code in _scan(path.read_text(encoding="utf-8")):
        match = None if in_code else HEADING.match(line)
        if match:
            found.add(slug(match.group(2), seen))
    return found


def broken_links(path: Path) -> list[str]:
    """``"file:line: why"`` for every relative link of ``path`` that does not resolve."""
    problems = []
    anchor_cache: dict[Path, set[str]] = {}
    for number, line, fence_info, in_code in _scan(path.read_text(encoding="utf-8")):
        if in_code or fence_info is not None:
            continue
        for match in LINK.finditer(INLINE_CODE.sub("", line)):
            target = match.group(1)
            if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target):  # https:, mailto: ...
                continue
            file_part, _, anchor = target.partition("#")
            resolved = (path.parent / file_part).resolve() if file_part else path
            where = f"{path}:{number}"
            if not resolved.exists():
                problems.append(f"{where}: link target {target!r} does not exist ({resolved})")
                continue
            if anchor and resolved.suffix == ".md":
                if resolved not in anchor_cache:
                    anchor_cache[resolved] = anchors(resolved)
                if anchor not in anchor_cache[resolved]:
                    problems.append(f"{where}: {target!r}: no heading of {resolved.name} has the anchor "
                                    f"#{anchor}")
    return problems


# ---------------------------------------------------------------- the documentation itself
BLOCKS = [block for path in doc_files() for block in runnable_blocks(path)]


@pytest.mark.parametrize("block", BLOCKS, ids=[b.where() for b in BLOCKS])
def test_runnable_block_runs(block, tmp_path):
    run_block(block, tmp_path)


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(path):
    assert broken_links(path) == []


def test_every_docs_page_is_linked_from_the_readme():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [p.name for p in doc_files()[1:] if f"(docs/{p.name})" not in readme]
    assert missing == []


def test_ci_runs_the_readme_usage_block():
    """`.ci/run` runs the first ```python block after "## Usage" in a fresh venv: it must be a runnable one."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    extracted = re.search(r"```python\n(.*?)```", text.split("## Usage", 1)[1], re.S).group(1)
    assert extracted in [b.code for b in runnable_blocks(ROOT / "README.md")]
    assert r"```python\n(.*?)```" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


# ---------------------------------------------------------------- the checker can fail
def test_a_broken_block_fails_with_file_and_line(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Page\n\n" + MARKER + "\n```python\nx = 1\nraise ValueError('boom')\n```\n", encoding="utf-8")
    (block,) = runnable_blocks(page)
    assert block.line == 5
    with pytest.raises(AssertionError, match=r"page\.md:6: .*ValueError: boom"):
        run_block(block, tmp_path)


def test_a_block_runs_in_its_own_namespace_and_cwd(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(f"{MARKER}\n```python\nopen('made.txt', 'w').write('x')\nleaked = 1\n```\n\n"
                    f"{MARKER}\n```python\nassert 'leaked' not in globals()\n```\n", encoding="utf-8")
    first, second = runnable_blocks(page)
    work = tmp_path / "work"
    work.mkdir()
    run_block(first, work)
    run_block(second, work)
    assert (work / "made.txt").read_text() == "x"


def test_unmarked_blocks_are_not_run_and_a_misplaced_marker_is_an_error(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("```python\nraise SystemExit(1)\n```\n", encoding="utf-8")
    assert runnable_blocks(page) == []
    page.write_text(f"{MARKER}\n```bash\nevalalign demo\n```\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"page\.md:1: .*python fence"):
        runnable_blocks(page)
    page.write_text(f"{MARKER}\n\n```python\nx = 1\n```\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"page\.md:1:"):
        runnable_blocks(page)


def test_broken_links_are_found(tmp_path):
    (tmp_path / "other.md").write_text("# Other page\n\n## A `code` heading: yes\n\n## A `code` heading: yes\n",
                                       encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text(
        "# Title\n\n"
        "[ok](other.md) [ok](other.md#a-code-heading-yes) [ok](other.md#a-code-heading-yes-1) [ok](#title)\n"
        "[web](https://example.org/missing.md) `[in code](missing.md)`\n"
        "```\n[in a fence](missing.md)\n```\n"
        "[bad](missing.md)\n"
        "[bad anchor](other.md#nope) [bad self](#nope)\n",
        encoding="utf-8")
    problems = broken_links(page)
    assert len(problems) == 3, problems
    assert problems[0].startswith(f"{page}:8: link target 'missing.md' does not exist")
    assert all(p.startswith(f"{page}:9: ") and "#nope" in p for p in problems[1:])


def test_github_slugs():
    seen: dict[str, int] = {}
    assert slug("`evalalign demo`", seen) == "evalalign-demo"
    assert slug("Training: question packing", seen) == "training-question-packing"
    assert slug("`pseudo_labels`", seen) == "pseudo_labels"
    assert slug("`evalalign demo`", seen) == "evalalign-demo-1"
