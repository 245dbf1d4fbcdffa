"""Sphinx configuration of the dgpgeom API reference.

Build (from the repository root; the mkdocs guide then publishes it under ``api/``)::

    sphinx-build -W --keep-going -b html docs/api build/api

Cross-references to PyTorch, kornia, NumPy and Python need their ``objects.inv``
inventories, which are downloaded at build time. The default is an offline build
without them (``Tensor`` is then shown as plain text); set
``DGPGEOM_DOCS_OFFLINE=0`` on a machine with internet access to link them.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # document this checkout, not an installed copy

import dgpgeom  # noqa: E402

project = "dgpgeom"
author = "The dgpgeom developers"
copyright = "the dgpgeom developers"
release = dgpgeom.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
]

# --- autodoc / napoleon -------------------------------------------------------
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
# Shapes and units are written in single backticks, e.g. `(..., N, 2)`: show them as code.
default_role = "literal"

# --- cross-references ---------------------------------------------------------
OFFLINE = os.environ.get("DGPGEOM_DOCS_OFFLINE", "1") != "0"
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}
intersphinx_timeout = 30
if not OFFLINE:
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "torch": ("https://docs.pytorch.org/docs/stable", None),
        "numpy": ("https://numpy.org/doc/stable", None),
        "kornia": ("https://kornia.readthedocs.io/en/latest", None),
        "hypothesis": ("https://hypothesis.readthedocs.io/en/latest", None),
    }
# Every reference to a dgpgeom object must resolve (a broken one is a warning, and
# -W makes it an error); references to other projects resolve only when their
# inventories are available, so they are never reported.
nitpicky = True
nitpick_ignore_regex = [(r"py:.*", r"(?!dgpgeom\b).*")]

# --- math -------------------------------------------------------------------------
# MathJax is served from the reference itself (``_static/mathjax``), copied from the
# package the guide's hook takes it from (docs/hooks/mathjax.py): no network.
_spec = importlib.util.spec_from_file_location("_mathjax_hook", ROOT / "docs/hooks/mathjax.py")
_mathjax_hook = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_mathjax_hook)
mathjax_path = f"mathjax/{_mathjax_hook.SCRIPT}"


def _copy_mathjax(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    target = Path(app.outdir) / "_static" / "mathjax"
    for path, relative in _mathjax_hook.mathjax_files():
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target / relative)


# --- HTML ---------------------------------------------------------------------
html_theme = "furo"
html_title = f"dgpgeom {release} API reference"
html_static_path: list[str] = []
html_show_sourcelink = False
templates_path: list[str] = []
exclude_patterns: list[str] = []


def _import(dotted: str) -> object | None:
    """The object at a dotted path such as ``dgpgeom.solve_translation``, or None."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def _resolve_reexport(app, env, node, contnode):
    """Resolve other spellings of a documented dgpgeom object to its entry.

    Public names are re-exported by their packages (``dgpgeom.solve_translation``
    is ``dgpgeom.solvers.solve_translation``) and each is documented once, under its
    sub-package: a dotted reference links to the entry of the same object, and a
    bare name (``:data:`CONDITION_TOLERANCE_EPS```) to the one entry ending in it.
    """
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    domain = env.get_domain("py")
    documented = [name for name, entry in domain.objects.items() if not entry.aliased]
    if target.startswith("dgpgeom."):
        obj = _import(target)
        if obj is None or isinstance(obj, (int, float, str)):
            return None
        matches = [name for name in documented if name != target and _import(name) is obj]
    elif "." not in target:
        matches = [name for name in documented if name.endswith("." + target)]
    else:
        return None
    if len(matches) != 1:
        return None
    return domain.resolve_xref(
        env, node["refdoc"], app.builder, node["reftype"], matches[0], node, contnode
    )


# Docstrings point to the guide by its published URL, readable in ``help()`` and in
# an editor, and valid from an installed package: "See the Conventions page
# (https://dgpgeom.readthedocs.io/en/latest/conventions/)", with or without the
# parentheses or a comma, possibly across a line break. In the HTML reference the
# phrase becomes a link to the guide built beside it (mkdocs puts
# ``docs/conventions.md`` at ``conventions/``, one level above the reference), so
# the built site needs no network.
DOCS_URL = "https://dgpgeom.readthedocs.io/en/latest/"  # [project.urls] Documentation
GUIDE_PAGE = re.compile(
    r"the\s+(?P<title>Conventions)\s+page,?\s*"
    r"(?P<open>\(?)\s*" + re.escape(DOCS_URL) + r"(?P<page>conventions)/(?P<close>\)?)"
)


def _link_guide_pages(app, what, name, obj, options, lines):
    """Turn the docstrings' plain-text mentions of guide pages into links."""

    def link(match: re.Match[str]) -> str:
        # The path and its own parentheses go; a ")" that closes an outer
        # parenthesis, as in "(see the Conventions page, https://...)", stays.
        closing = match["close"] if not match["open"] else ""
        return f"the `{match['title']} page <../{match['page']}/>`__{closing}"

    text = "\n".join(lines)
    linked = GUIDE_PAGE.sub(link, text)
    if linked != text:
        lines[:] = linked.split("\n")


def _skip_namedtuple_fields(app, what, name, obj, skip, options):
    """NamedTuple fields are documented by the class's Attributes section."""
    if type(obj).__name__ == "_tuplegetter":
        return True
    return None


def setup(app):
    app.connect("missing-reference", _resolve_reexport)
    app.connect("autodoc-skip-member", _skip_namedtuple_fields)
    app.connect("autodoc-process-docstring", _link_guide_pages)
    app.connect("build-finished", _copy_mathjax)
