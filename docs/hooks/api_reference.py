"""MkDocs hook: publish the Sphinx API reference under ``api/`` of the guide.

The reference is built first, by Sphinx::

    sphinx-build -W --keep-going -b html docs/api build/api

and this hook adds the generated files to the site under ``api/``. Links from the
guide's pages into the reference, such as ``[...](api/solvers.html#...)`` in
``reference.md``, are then checked by ``mkdocs build --strict`` like any other
link, and ``mkdocs serve`` serves the reference too. A missing Sphinx build is a
warning, which fails a strict build. ``DGPGEOM_API_BUILD`` names another build folder.

After the search plugin has written the guide's search index, the hook adds one entry
per documented object of the reference (read from Sphinx's ``objects.inv``), with its
signature and the first paragraph of its docstring, so the guide's search finds
``check_gradients`` as well as the pages that mention it.
"""

from __future__ import annotations

import json
import logging
import os
import zlib
from html.parser import HTMLParser
from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files, InclusionLevel

log = logging.getLogger("mkdocs.hooks.api_reference")

API_BUILD = Path("build") / "api"  # relative to the directory of mkdocs.yml
URL_PREFIX = "api"


SEARCHED_ROLES = {"module", "function", "class", "method", "attribute", "data", "exception"}


def _api_root(config) -> Path:
    return Path(config.config_file_path).resolve().parent / os.environ.get(
        "DGPGEOM_API_BUILD", API_BUILD
    )


def on_files(files: Files, config) -> Files:
    root = _api_root(config)
    if not (root / "index.html").is_file():
        log.warning(
            "The API reference is not built (no %s): run "
            "'sphinx-build -W --keep-going -b html docs/api %s' first.",
            root / "index.html",
            API_BUILD.as_posix(),
        )
        return files
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if path.is_dir() or any(part.startswith(".") for part in relative.parts):
            continue  # Sphinx's doctrees and build info
        files.append(
            File.generated(
                config,
                f"{URL_PREFIX}/{relative.as_posix()}",
                abs_src_path=str(path),
                inclusion=InclusionLevel.INCLUDED,
            )
        )
    return files


def read_inventory(path: Path) -> list[tuple[str, str]]:
    """``(name, uri)`` of each Python object in a Sphinx ``objects.inv``."""
    data = path.read_bytes()
    for _ in range(4):  # the header: format, project, version, compression
        data = data[data.index(b"\n") + 1 :]
    entries = []
    for line in zlib.decompress(data).decode().splitlines():
        name, role, _priority, uri, *_ = line.split(" ", 4)
        domain, _, role = role.partition(":")
        if domain != "py" or role not in SEARCHED_ROLES:
            continue
        if uri.endswith("$"):
            uri = uri[:-1] + name
        entries.append((name, uri))
    return entries


class _Summaries(HTMLParser):
    """The signature and first paragraph of every ``<dt id=...>`` entry of a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.signatures: dict[str, str] = {}
        self.summaries: dict[str, str] = {}
        self._signature: str | None = None  # the id whose signature is being read
        self._pending: str | None = None  # the id waiting for its first paragraph
        self._paragraph: str | None = None
        self._text: list[str] = []
        self._skip = 0  # inside a permalink

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "dt" and attrs.get("id"):
            self._signature, self._text = attrs["id"], []
        elif tag == "a" and "headerlink" in (attrs.get("class") or ""):
            self._skip += 1
        elif tag == "p" and self._pending and self._signature is None:
            self._paragraph, self._pending, self._text = self._pending, None, []

    def handle_endtag(self, tag):
        if tag == "a" and self._skip:
            self._skip -= 1
        elif tag == "dt" and self._signature is not None:
            self.signatures[self._signature] = " ".join("".join(self._text).split())
            self._pending, self._signature = self._signature, None
        elif tag == "p" and self._paragraph is not None:
            self.summaries[self._paragraph] = " ".join("".join(self._text).split())
            self._paragraph = None

    def handle_data(self, data):
        if not self._skip and (self._signature is not None or self._paragraph is not None):
            self._text.append(data)


def api_search_entries(root: Path, prefix: str = URL_PREFIX) -> list[dict[str, str]]:
    """Search-index entries (Material's format) for the objects of a Sphinx build."""
    pages: dict[str, _Summaries] = {}
    entries = []
    for name, uri in read_inventory(root / "objects.inv"):
        page, _, anchor = uri.partition("#")
        if page not in pages:
            pages[page] = _Summaries()
            pages[page].feed((root / page).read_text(encoding="utf-8"))
        parsed = pages[page]
        signature = parsed.signatures.get(anchor, name).removesuffix("[source]").rstrip()
        summary = parsed.summaries.get(anchor, "")
        text = f"<p><code>{_escape(signature)}</code></p>"
        if summary:
            text += f"<p>{_escape(summary)}</p>"
        entries.append({"location": f"{prefix}/{uri}", "title": name, "text": text})
    return entries


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@event_priority(-100)  # after the search plugin has written its index
def on_post_build(config) -> None:
    root = _api_root(config)
    index = Path(config.site_dir) / "search" / "search_index.json"
    if not (root / "objects.inv").is_file() or not index.is_file():
        return  # on_files has warned already, or the search plugin is off
    data = json.loads(index.read_text(encoding="utf-8"))
    data["docs"].extend(api_search_entries(root))
    index.write_text(json.dumps(data, separators=(",", ":")), encoding="utf-8")
