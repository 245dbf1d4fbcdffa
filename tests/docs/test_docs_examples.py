"""Every ```python block of the guide (docs/**/*.md) runs, page by page.

The blocks of one page share a namespace and run in order, like the cells of a
notebook, so a page can build its example step by step. Code that is not meant to
run (shell commands, output, fragments) goes in a fence of another language
(```bash, ```text). A failing block is reported with its page and line number.

A python block that cannot run here (it needs an optional package, a camera, a data
set) keeps its highlighting and is skipped when the last non-blank line before its
opening fence is the marker ``<!-- docs-test: skip -->``. The marker is an HTML
comment, so the rendered page does not show it; leave a blank line between it and the
fence (Markdown would otherwise read the fence as part of the HTML block). Prefer a
runnable block fed with saved inputs where one is possible.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

DOCS = Path(__file__).resolve().parents[2] / "docs"
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^\n`]*)$")
SKIP_MARKER = "<!-- docs-test: skip -->"


def _closes(line: str, fence: str) -> bool:
    stripped = line.strip()
    return len(stripped) >= len(fence) and stripped == fence[0] * len(stripped)


def python_blocks(text: str) -> list[tuple[int, str]]:
    """``(first line number, code)`` of each fenced python block of a Markdown text.

    Blocks after a :data:`SKIP_MARKER` line are left out.
    """
    blocks: list[tuple[int, str]] = []
    lines = text.splitlines()
    previous = ""  # the last non-blank line outside a block
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening is None:
            if lines[i].strip():
                previous = lines[i].strip()
            i += 1
            continue
        skipped = previous == SKIP_MARKER
        previous = ""
        indent, fence = opening["indent"], opening["fence"]
        language = opening["info"].split(maxsplit=1)[0].lower() if opening["info"] else ""
        body: list[str] = []
        i += 1
        start = i + 1  # 1-based line number of the first line of code
        while i < len(lines) and not _closes(lines[i], fence):
            line = lines[i]
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            i += 1
        i += 1  # the closing fence
        if language in ("python", "py", "python3") and not skipped:
            blocks.append((start, "\n".join(body) + "\n"))
    return blocks


PAGES = sorted(p for p in DOCS.rglob("*.md") if python_blocks(p.read_text(encoding="utf-8")))


def test_python_blocks_are_found():
    blocks = python_blocks(
        "text\n\n```python\nx = 1\n```\n\n```bash\nls\n```\n\n    ```py\n    y = 2\n    ```\n"
    )
    assert blocks == [(4, "x = 1\n"), (12, "y = 2\n")]


def test_marked_blocks_are_skipped():
    text = (
        f"{SKIP_MARKER}\n\n```python\nimport missing\n```\n\n"
        "```python\nx = 1\n```\n\n"
        f"{SKIP_MARKER}\ntext in between\n\n```python\ny = 2\n```\n"
    )
    # only the block right after the marker is skipped, not the next one, and a
    # marker followed by other text skips nothing
    assert python_blocks(text) == [(8, "x = 1\n"), (15, "y = 2\n")]


def test_the_guide_has_runnable_examples():
    names = {page.relative_to(DOCS).as_posix() for page in PAGES}
    assert {
        "getting-started.md",
        "conventions.md",
        "concepts.md",
        "tutorial.md",
        "how-to/train-camera-space.md",
        "how-to/kornia-interop.md",
        "how-to/evaluate-freihand.md",
        "how-to/mediapipe.md",
        "how-to/multiview-and-refinement.md",
    } <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(DOCS).as_posix())
def test_page_examples_run(page: Path):
    namespace: dict[str, object] = {"__name__": f"docs.{page.stem}"}
    default_dtype = torch.get_default_dtype()
    try:
        for start, code in python_blocks(page.read_text(encoding="utf-8")):
            # Pad so that a traceback points at the line of the Markdown page.
            compiled = compile("\n" * (start - 1) + code, str(page), "exec")
            exec(compiled, namespace)
    finally:
        torch.set_default_dtype(default_dtype)
