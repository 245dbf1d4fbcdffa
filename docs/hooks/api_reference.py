"""MkDocs hook: publish the Sphinx API reference under ``api/`` of the guide.

The reference is built first, by Sphinx::

    sphinx-build -W --keep-going -b html docs/api build/api

and this hook adds the generated files to the site under ``api/``. Links from the
guide's pages into the reference, such as ``[...](api/solvers.html#...)`` in
``reference.md``, are then checked by ``mkdocs build --strict`` like any other
link, and ``mkdocs serve`` serves the reference too. A missing Sphinx build is a
warning, which fails a strict build.
"""

from __future__ import annotations

import logging
from pathlib import Path

from mkdocs.structure.files import File, Files, InclusionLevel

log = logging.getLogger("mkdocs.hooks.api_reference")

API_BUILD = Path("build") / "api"  # relative to the directory of mkdocs.yml
URL_PREFIX = "api"


def on_files(files: Files, config) -> Files:
    root = Path(config.config_file_path).resolve().parent / API_BUILD
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
