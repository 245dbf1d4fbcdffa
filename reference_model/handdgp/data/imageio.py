"""File reading shared by the data-set readers: images, JSON, and :class:`DataError`.

Every reader checks what it loads and reports a damaged file with one
:class:`DataError` naming the file, the sample (when the problem belongs to
one) and the problem. OpenCV is imported lazily.
"""

from __future__ import annotations

import gc
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DataError", "load_json", "load_json_array", "read_mask", "read_rgb"]


class DataError(ValueError):
    """A data file that cannot be used.

    Attributes:
        path: the file.
        index: the sample the problem belongs to, or None for the whole file.
        problem: what is wrong, with the expected and the actual value.

    Example:
        >>> str(DataError("set/training_K.json", "focal length fx = 0.0, expected > 0", 3))
        'set/training_K.json, sample 3: focal length fx = 0.0, expected > 0'
    """

    def __init__(self, path: str | Path, problem: str, index: int | None = None) -> None:
        self.path, self.problem, self.index = Path(path), problem, index
        where = str(path) if index is None else f"{path}, sample {index}"
        super().__init__(f"{where}: {problem}")


def _read_bytes(path: Path, index: int | None) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as error:
        raise DataError(path, f"cannot read the file ({error.strerror or error})", index) from error


def _incomplete(data: bytes) -> str | None:
    """Why an encoded JPEG or PNG is cut short, or None when it is complete.

    OpenCV decodes a truncated JPEG without an error (the missing rows come out
    grey), so completeness is checked on the bytes: a JPEG's end-of-image marker
    must follow its last start-of-scan marker (0xFF cannot occur inside
    entropy-coded data without a stuffed zero), and a PNG must hold its IEND chunk.
    """
    if data[:2] == b"\xff\xd8":
        if data.rfind(b"\xff\xd9") < data.rfind(b"\xff\xda") or b"\xff\xda" not in data:
            return "truncated JPEG (no end-of-image marker after the last scan)"
    elif data[:8] == b"\x89PNG\r\n\x1a\n" and b"IEND" not in data[-64:]:
        return "truncated PNG (no IEND chunk)"
    return None


def _decode(path: str | Path, flags: int, index: int | None) -> np.ndarray:
    import cv2

    path = Path(path)
    data = _read_bytes(path, index)
    if not data:
        raise DataError(path, "empty image file", index)
    problem = _incomplete(data)
    if problem is not None:
        raise DataError(path, problem, index)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if image is None or image.size == 0:
        raise DataError(path, "cannot decode the image (not a JPEG/PNG OpenCV reads)", index)
    return image


def read_rgb(path: str | Path, index: int | None = None, *, reduce: int = 1) -> np.ndarray:
    """Read a complete image file as `(H, W, 3)` uint8 RGB.

    Args:
        path: the image file.
        index: the sample it belongs to, named in errors.
        reduce: 1, 2, 4 or 8: decode a JPEG at that fraction of its size
            (OpenCV's ``IMREAD_REDUCED_COLOR_*``; other formats decode whole).

    Raises:
        FileNotFoundError: if the file is missing.
        DataError: if it cannot be read or decoded, or is truncated.
    """
    import cv2

    flags = {
        1: cv2.IMREAD_COLOR,
        2: cv2.IMREAD_REDUCED_COLOR_2,
        4: cv2.IMREAD_REDUCED_COLOR_4,
        8: cv2.IMREAD_REDUCED_COLOR_8,
    }
    if reduce not in flags:
        raise ValueError(f"reduce: expected 1, 2, 4 or 8, got {reduce!r}")
    return cv2.cvtColor(_decode(path, flags[reduce], index), cv2.COLOR_BGR2RGB)


def read_mask(path: str | Path, threshold: int, index: int | None = None) -> np.ndarray:
    """Read a mask image's first channel as `(H, W)` bool, True where above ``threshold``.

    JPEG masks (FreiHAND) carry compression noise around the edges; a high
    threshold keeps only confidently-foreground pixels.

    Raises:
        FileNotFoundError: if the file is missing.
        DataError: if it cannot be read or decoded, or is truncated.
    """
    import cv2

    mask = _decode(path, cv2.IMREAD_UNCHANGED, index)
    if mask.ndim == 3:
        mask = mask[..., 0]
    return mask > threshold


def _read_json_bytes(path: str | Path) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise
    except OSError as error:
        raise DataError(path, f"not a readable JSON file ({error})") from error


def _parse_json(path: str | Path, data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError as error:
        raise DataError(path, f"not a readable JSON file ({error})") from error


def load_json(path: str | Path) -> Any:
    """Parse a JSON file.

    Raises:
        DataError: if the file cannot be read or is not valid JSON.
    """
    return _parse_json(path, _read_json_bytes(path))


_BLOCK_BYTES = 1 << 20
"""JSON text the block-wise path of :func:`load_json_array` parses at a time."""

_NUMERIC_ARRAY_BYTES = b"0123456789.eE+-,[] \t\n\r"
"""The bytes of a JSON file holding nothing but a nested list of plain numbers."""


@contextmanager
def _cycle_collector_paused() -> Iterator[None]:
    """Pause Python's cycle collector: parsed JSON holds no cycles, and with many
    objects alive (torch imported) the collector's full runs, triggered over and
    over by each block's lists, would double the parse time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


_OPENING = re.compile(rb"[\[\s]*")


def _entry_cuts(data: bytes, begin: int, end: int, size: int) -> list[int]:
    """Where to cut the JSON list ``data[begin : end + 1]`` into blocks of whole entries.

    Args:
        data: JSON text.
        begin, end: the positions of the list's opening and closing bracket.
        size: the bytes wanted per block.

    Returns:
        ``[begin, c1, ..., end]``: commas about ``size`` bytes apart that follow
        as many closing brackets as open the first entry (``]],`` for entries of
        lists of lists). In a regular nested list these lie between top-level
        entries, so ``data[a + 1 : b]`` for consecutive cuts holds whole entries;
        in anything else a block may not parse, which sends the text to the
        whole-file parse.
    """
    nesting = _OPENING.match(data, begin + 1).group().count(b"[")
    separator = re.compile(rb"\]\s*" * nesting + rb",")
    cuts = [begin]
    while (match := separator.search(data, cuts[-1] + size, end)) is not None:
        cuts.append(match.end() - 1)
    return [*cuts, end]


def _parse_block(entries: bytes, dtype: Any) -> np.ndarray | None:
    """``np.asarray(json.loads(b"[" + entries + b"]"), dtype)``, or None when ``entries``
    hold other bytes than numbers, brackets, commas and whitespace, do not parse, or
    are no entries at all."""
    if entries.translate(None, _NUMERIC_ARRAY_BYTES):
        return None
    try:
        block = np.asarray(json.loads(b"[" + entries + b"]"), dtype=dtype)
    except (ValueError, TypeError, OverflowError, RecursionError):
        return None
    return block if len(block) else None


def _blockwise_array(data: bytes, dtype: Any, size: int) -> np.ndarray | None:
    """A JSON list of equal-shape entries of numbers as `(N, ...)`, parsed a block at a time.

    ``np.asarray(json.loads(data), dtype)`` holds a Python object per number
    (about 8x the file); here only one block's objects live at once. The result
    is the same: when every block of whole entries parses as a list, so does the
    whole text, to the blocks' entries one after another, and ``np.asarray`` of
    them is the blocks' arrays joined along the first axis when those agree in
    shape.

    Returns:
        The array, or None when ``data`` may be anything else (not one list
        between whitespace, a block :func:`_parse_block` refuses, blocks of
        unequal entry shapes) or ``dtype`` is not a float type, so that the
        caller parses the whole text and reports the problem as it always has.
    """
    if dtype is None or np.dtype(dtype).kind != "f":
        return None
    begin, end = data.find(b"["), data.rfind(b"]")
    if begin < 0 or end < begin or data[:begin].strip() or data[end + 1 :].strip():
        return None
    blocks: list[np.ndarray] = []
    with _cycle_collector_paused():
        for start, stop in pairwise(_entry_cuts(data, begin, end, size)):
            block = _parse_block(data[start + 1 : stop], dtype)
            if block is None or (blocks and block.shape[1:] != blocks[0].shape[1:]):
                return None
            blocks.append(block)
    return np.concatenate(blocks)


def load_json_array(path: str | Path, dtype: Any = np.float32) -> np.ndarray:
    """Parse a JSON file holding a (nested) list of numbers into one array.

    A regular list of plain numbers is parsed a block of entries at a time, so a
    1.5 GB vertex file needs about 2x its size in memory rather than 8x; any
    other file is parsed whole, with the same result and errors.

    Raises:
        DataError: if the file is not JSON, or its lists are ragged or hold non-numbers.
    """
    data = _read_json_bytes(path)
    array = _blockwise_array(data, dtype, _BLOCK_BYTES)
    if array is not None:
        return array
    raw = _parse_json(path, data)
    del data
    try:
        return np.asarray(raw, dtype=dtype)
    except (TypeError, ValueError) as error:
        raise DataError(path, f"expected a regular nested list of numbers ({error})") from error
