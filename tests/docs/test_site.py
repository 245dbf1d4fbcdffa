"""The built documentation site works offline: math, search, links, page order.

The site is built once for this module, as ``make docs`` builds it (the Sphinx API
reference, then the mkdocs guide around it), into a temporary folder. Where Debian's
``chromium`` is installed, three pages with math are rendered headless, with every
host but the local server unreachable: the rendered text must hold no raw TeX and the
console no error.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from html.parser import HTMLParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS_URL = "https://dgpgeom.readthedocs.io/en/latest/"
MATH_PAGES = ["concepts/", "how-to/multiview-and-refinement/", "api/solvers.html"]

pytest.importorskip("sphinx", reason="building the docs needs the docs extra")
pytest.importorskip("mkdocs", reason="building the docs needs the docs extra")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("docs")
    env = {**os.environ, "DGPGEOM_API_BUILD": str(out / "api"), "NO_MKDOCS_2_WARNING": "1"}
    sphinx = [sys.executable, "-m", "sphinx", "-E", "-W", "--keep-going", "-q", "-b", "html"]
    for command in (
        [*sphinx, "docs/api", str(out / "api")],
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(out / "site")],
    ):
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    return out / "site"


def test_no_page_loads_anything_from_the_network(site):
    remote = re.compile(r"<(?:script|link|img)\b[^>]*\b(?:src|href)=[\"']?(?:https?:)?//", re.I)
    pages = sorted(site.rglob("*.html"))
    assert len(pages) > 20
    offenders = [
        (str(page.relative_to(site)), match.group(0))
        for page in pages
        for match in remote.finditer(page.read_text(encoding="utf-8"))
        if 'rel="canonical"' not in match.group(0)  # names the page, loads nothing
    ]
    assert not offenders


def test_mathjax_is_served_by_the_site(site):
    for page, script in (
        ("concepts/index.html", "../assets/mathjax/tex-svg.js"),
        ("api/solvers.html", "_static/mathjax/tex-svg.js"),
    ):
        html = (site / page).read_text(encoding="utf-8")
        assert f'src="{script}"' in html, page
        assert (site / page).parent.joinpath(script).resolve().is_file()


def test_search_covers_the_api(site):
    index = json.loads((site / "search" / "search_index.json").read_text(encoding="utf-8"))
    entries = {entry["title"]: entry for entry in index["docs"]}
    entry = entries["dgpgeom.testing.check_gradients"]
    assert entry["location"] == "api/testing.html#dgpgeom.testing.check_gradients"
    assert "Finite-difference check" in entry["text"]
    assert "[source]" not in entry["text"]
    assert "solve_translation(points3d" in entries["dgpgeom.solvers.solve_translation"]["text"]
    # The tokenizer splits dotted names, so the bare name finds the entry.
    assert re.split(index["config"]["separator"], entry["title"])[-1] == "check_gradients"
    for entry in index["docs"]:
        page = entry["location"].partition("#")[0]
        target = site / page / "index.html" if not page or page.endswith("/") else site / page
        assert target.is_file(), entry["location"]


def test_conventions_links_work_offline_and_installed(site):
    # In the docstrings: the published URL of [project.urls] Documentation.
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert f'Documentation = "{DOCS_URL}"' in pyproject
    sources = "".join(p.read_text(encoding="utf-8") for p in (ROOT / "dgpgeom").rglob("*.py"))
    assert "docs/conventions.md" not in sources
    assert sources.count(f"{DOCS_URL}conventions/") >= 20
    # In the built reference: links to the guide beside it, not to the network.
    for page in ("camera.html", "rectification.html", "solvers.html", "losses.html"):
        html = (site / "api" / page).read_text(encoding="utf-8")
        assert 'href="../conventions/"' in html, page
        assert f"{DOCS_URL}conventions" not in html, page


def test_solvers_page_opens_with_the_function(site):
    html = (site / "api" / "solvers.html").read_text(encoding="utf-8")
    function = html.index('id="dgpgeom.solvers.solve_translation"')
    notes = html.index("Implementation notes")
    assert function < notes


class _VisibleText(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style", "template"):
            self._hidden += 1

    def handle_endtag(self, tag):
        if tag in ("script", "style", "template"):
            self._hidden -= 1

    def handle_data(self, data):
        if not self._hidden:
            self.parts.append(data)


@pytest.fixture(scope="module")
def served(site):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.mark.skipif(
    shutil.which("chromium") is None,
    reason="Debian's chromium is not installed (apt-get install chromium) to render pages",
)
@pytest.mark.parametrize("page", MATH_PAGES)
def test_math_renders_offline_in_chromium(served, page, tmp_path):
    done = subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={tmp_path}",
            # Every host but the local server is unreachable: nothing may need one.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=20000",
            "--dump-dom",
            served + page,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    dom = done.stdout
    parser = _VisibleText()
    parser.feed(dom)
    text = "".join(parser.parts)
    assert dom.count("<mjx-container") >= 5, "MathJax did not typeset the page"
    for raw in ("\\[", "\\(", "\\begin{"):
        assert raw not in text, f"raw TeX {raw!r} left on {page}"
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, console
