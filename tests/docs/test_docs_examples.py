"""Every ```python block of the guide (docs/**/*.md) runs, page by page.

The blocks of one page share a namespace and run in order, like the cells of a
notebook, so a page can build its example step by step. Code that is not meant to
run (shell commands, output, fragments) goes in a fence of another language
(```bash, ```text). A failing block is reported with its page and line number.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

DOCS = Path(__file__).resolve().parents[2] / "docs"
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^\n`]*)$")


def _closes(line: str, fence: str) -> bool:
    stripped = line.strip()
    return len(stripped) >= len(fence) and stripped == fence[0] * len(stripped)


def python_blocks(text: str) -> list[tuple[int, str]]:
    """``(first line number, code)`` of each fenced python block of a Markdown text."""
    blocks: list[tuple[int, str]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
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
        if language in ("python", "py", "python3"):
            blocks.append((start, "\n".join(body) + "\n"))
    return blocks


PAGES = sorted(p for p in DOCS.rglob("*.md") if python_blocks(p.read_text(encoding="utf-8")))


def test_python_blocks_are_found():
    blocks = python_blocks(
        "text\n\n```python\nx = 1\n```\n\n```bash\nls\n```\n\n    ```py\n    y = 2\n    ```\n"
    )
    assert blocks == [(4, "x = 1\n"), (12, "y = 2\n")]


def test_the_guide_has_runnable_examples():
    names = {page.relative_to(DOCS).as_posix() for page in PAGES}
    assert {
        "getting-started.md",
        "conventions.md",
        "concepts.md",
        "how-to/train-camera-space.md",
        "how-to/kornia-interop.md",
        "how-to/evaluate-freihand.md",
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
