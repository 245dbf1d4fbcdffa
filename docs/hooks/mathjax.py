"""MkDocs hook: serve MathJax from the site itself, so that math renders offline.

MathJax 3 comes from the ``django-static-mathjax`` package on PyPI (the docs extra
installs it; it ships MathJax's files and nothing else). The guide and the Sphinx
API reference (``docs/api/conf.py`` imports :func:`mathjax_files` from here) use
the SVG output, ``tex-svg.js``: one file with its fonts built in, plus the TeX
extensions MathJax loads on demand and its menu. No page loads a script from the
network.
"""

from __future__ import annotations

import logging
from pathlib import Path

from mkdocs.structure.files import File, Files, InclusionLevel

log = logging.getLogger("mkdocs.hooks.mathjax")

SCRIPT = "tex-svg.js"
URL_PREFIX = "assets/mathjax"  # in the site; docs/javascripts/mathjax.js configures it
SUBTREES = ("input/tex/extensions", "ui", "a11y")  # loaded on demand by the script


def mathjax_root() -> Path | None:
    """The installed MathJax ``es5`` folder, or None."""
    try:
        import mathjax  # the django-static-mathjax package: static files only
    except ImportError:
        return None
    root = Path(mathjax.__file__).resolve().parent / "static" / "mathjax" / "es5"
    return root if (root / SCRIPT).is_file() else None


def mathjax_files() -> list[tuple[Path, str]]:
    """``(file, path relative to the MathJax folder)`` of every file the pages need."""
    root = mathjax_root()
    if root is None:
        raise FileNotFoundError(
            "MathJax is not installed: pip install django-static-mathjax (the docs extra)"
        )
    files = [root / SCRIPT]
    for subtree in SUBTREES:
        files += sorted(p for p in (root / subtree).rglob("*") if p.is_file())
    return [(path, path.relative_to(root).as_posix()) for path in files]


def on_files(files: Files, config) -> Files:
    try:
        vendored = mathjax_files()
    except FileNotFoundError as error:
        log.warning("%s: the math of the guide will not render.", error)
        return files
    for path, relative in vendored:
        files.append(
            File.generated(
                config,
                f"{URL_PREFIX}/{relative}",
                abs_src_path=str(path),
                inclusion=InclusionLevel.INCLUDED,
            )
        )
    return files
