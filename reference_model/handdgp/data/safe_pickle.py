"""Load data-set pickles (HO3D meta files) without executing arbitrary code.

``pickle.load`` can call any importable function. These files only hold dicts
of NumPy arrays, numbers, strings and None, so the unpickler here resolves only
the globals needed to rebuild NumPy arrays, dtypes and scalars (under both the
``numpy.core`` and NumPy 2's ``numpy._core`` names) and refuses everything
else. Files written by Python 2 are read with ``encoding="latin1"``, which is
what NumPy needs to rebuild arrays from Python 2 byte strings.
"""

from __future__ import annotations

import importlib
import io
import pickle
from pathlib import Path
from typing import Any

__all__ = ["load_pickle"]

_NUMPY_GLOBALS = {
    ("multiarray", "_reconstruct"),
    ("multiarray", "scalar"),
    ("numeric", "_frombuffer"),
}
_OTHER_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "complex"),
    ("builtins", "slice"),
}


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    """What Python 3 pickles of bytes at protocol < 3 call ``_codecs.encode`` for.

    Stands in for ``_codecs.encode`` (which would apply any registered codec):
    only ``str`` to ``bytes`` in latin-1.
    """
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(
            f"refusing _codecs.encode({type(text).__name__}, {encoding!r}): only latin-1 "
            "bytes are allowed"
        )
    return text.encode("latin1")


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("_codecs", "encode"):
            return _latin1_bytes
        for prefix in ("numpy.core.", "numpy._core."):
            if module.startswith(prefix) and (module[len(prefix) :], name) in _NUMPY_GLOBALS:
                submodule = module[len(prefix) :]
                try:
                    return getattr(importlib.import_module(f"numpy._core.{submodule}"), name)
                except ImportError:  # NumPy < 2
                    return getattr(importlib.import_module(f"numpy.core.{submodule}"), name)
        if (module, name) in _OTHER_GLOBALS:
            return getattr(importlib.import_module(module), name)
        raise pickle.UnpicklingError(
            f"refusing to load global {module}.{name}: only NumPy arrays, dtypes, scalars "
            "and plain Python values are allowed"
        )


def load_pickle(source: str | Path | bytes) -> Any:
    """Load a pickle that may only contain NumPy arrays and plain Python values.

    Args:
        source: a file path, or the pickle's bytes.

    Returns:
        The unpickled object.

    Raises:
        pickle.UnpicklingError: if the pickle references any other global
            (a class or function), which a plain ``pickle.load`` would call.

    Example:
        >>> import numpy as np
        >>> load_pickle(pickle.dumps({"camMat": np.eye(3)}, protocol=2))["camMat"].shape
        (3, 3)
        >>> load_pickle(pickle.dumps(print))
        Traceback (most recent call last):
        ...
        _pickle.UnpicklingError: refusing to load global builtins.print: only NumPy arrays, dtypes, scalars and plain Python values are allowed
    """
    if isinstance(source, bytes):
        return _RestrictedUnpickler(io.BytesIO(source), encoding="latin1").load()
    with open(source, "rb") as f:
        return _RestrictedUnpickler(f, encoding="latin1").load()
