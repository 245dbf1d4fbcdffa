"""Import a repository script (not a package module) by its path, for its tests."""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def load_script(relative_path: str) -> ModuleType:
    """The module of ``ROOT / relative_path``, registered under its file name."""
    path = ROOT / relative_path
    # As when run as a script: its folder is importable, so it may import its siblings.
    if str(path.parent) not in sys.path:
        sys.path.append(str(path.parent))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # NamedTuples and dataclasses need their module importable
    spec.loader.exec_module(module)
    return module
