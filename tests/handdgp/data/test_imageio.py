"""``load_json_array``: a regular list of plain numbers is parsed a block of entries at a
time, and gives exactly the array, and every other file exactly the error, that parsing
the whole file gives."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest

from handdgp.data import imageio
from handdgp.data.imageio import DataError, load_json, load_json_array


def _whole_file(path, dtype=np.float32):
    """What ``load_json_array`` did before it parsed in blocks."""
    raw = load_json(path)
    try:
        return np.asarray(raw, dtype=dtype)
    except (TypeError, ValueError) as error:
        raise DataError(path, f"expected a regular nested list of numbers ({error})") from error


def _outcome(load, path, dtype):
    """The array's dtype, shape and bytes (values if objects), or the error's type and message."""
    try:
        array = load(path, dtype)
    except Exception as error:
        return type(error), str(error)
    return array.dtype, array.shape, array.tolist() if array.dtype == object else array.tobytes()


def _number_text(rng, value, kind):
    """``value`` written as a JSON number in one of the ways files write them."""
    if kind == 0:
        return repr(float(value))  # Python's shortest round-trip double
    if kind == 1:
        return str(np.float32(value))  # shortest round-trip float32, e.g. 1e-07
    if kind == 2:
        return f"{value:.6g}"  # FreiHAND-style, e.g. -1.5e-07
    if kind == 3:
        return f"{value:.3E}".replace("E+0", "E+").replace("E-0", "E-")
    return str(int(rng.integers(-(2**60), 2**60)) if rng.random() < 0.5 else int(value * 100))


def _json_text(rng, numbers, comma=",", newline=""):
    """A nested JSON list of the strings in ``numbers`` (`(..., n)` object array)."""
    if numbers.ndim == 1:
        return "[" + comma.join(numbers) + "]"
    inner = (_json_text(rng, row, comma, newline) for row in numbers)
    return "[" + newline + (comma + newline).join(inner) + newline + "]"


def _random_text(rng, shape):
    values = rng.normal(size=shape) * 10.0 ** rng.integers(-9, 9, size=shape)
    values.flat[rng.integers(values.size, size=3)] = [1e-07, -0.0, 0.0]
    kinds = rng.integers(0, 5, size=shape)
    numbers = np.vectorize(lambda v, k: _number_text(rng, v, k), otypes=[object])(values, kinds)
    numbers.flat[0] = "-0"  # an integer: 0.0 after JSON, not -0.0
    comma, newline = [(",", ""), (", ", ""), (",", "\n  ")][rng.integers(3)]
    return _json_text(rng, numbers, comma, newline)


@pytest.fixture(params=[1, 40, imageio._BLOCK_BYTES], ids=["entry", "40B", "default"])
def block_bytes(request, monkeypatch):
    """Blocks of one entry, of a few, and of the shipped size."""
    monkeypatch.setattr(imageio, "_BLOCK_BYTES", request.param)
    return request.param


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(37,), (9, 5), (11, 7, 3), (4, 2, 3, 2)])
def test_regular_lists_match_the_whole_file_parse(tmp_path, block_bytes, shape, dtype):
    rng = np.random.default_rng(sum(shape))
    path = tmp_path / "values.json"
    for _ in range(3):
        path.write_text(_random_text(rng, shape))
        array = load_json_array(path, dtype)
        assert array.shape == shape and array.dtype == dtype
        assert array.tobytes() == _whole_file(path, dtype).tobytes()


# Texts that are not a regular list of plain numbers, or are on the edge of one.
TEXTS = {
    "1-D": "[1, 2.5, -3e-07]",
    "whitespace around": " \n[ [1 ,2] ,\n [3,4] ]\t\n",
    "one entry": "[[[1, 2, 3]]]",
    "negative zeros": "[-0, -0.0, 0, -0e0]",
    "large integers": "[9007199254740993, 16777217, -123456789012345678901234567890]",
    "float overflow": "[1e400, -1e39]",
    "integer overflow": "[1" + "0" * 400 + "]",
    "integer over the digit limit": "[1" + "0" * 5000 + "]",
    "ragged": "[[1, 2], [3]]",
    "ragged later": "[[1, 2], [3, 4], [5, 6], [7]]",
    "ragged deeper": "[[[1], [2]], [[3], [4, 5]]]",
    "number then list": "[1, [2]]",
    "list then number": "[[1], 2]",
    "deeper later": "[[1, 2], [[3], [4]]]",
    "empty": "[]",
    "empty entries": "[[], []]",
    "nested empty": "[[[]], [[]]]",
    "empty then full": "[[], [1]]",
    "a number": "3",
    "nothing": "",
    "whitespace": " \n",
    "NaN": "[1, NaN]",
    "Infinity": "[[-Infinity, 2]]",
    "null": "[1, null]",
    "true": "[true, 2]",
    "string": '["1", 2]',
    "string with brackets": '[[1], ["],[" ]]',
    "dict": '{"a": [1, 2]}',
    "list of dicts": "[{}, {}]",
    "trailing comma": "[1, 2,]",
    "trailing comma in an entry": "[[1, 2,], [3, 4]]",
    "leading comma": "[,1]",
    "double comma": "[1,,2]",
    "missing comma": "[1 2]",
    "missing comma between entries": "[[1, 2] [3, 4]]",
    "leading zero": "[01]",
    "plus sign": "[+1]",
    "bare point": "[.5, 1.]",
    "bare minus": "[-]",
    "bare exponent": "[1e, 2]",
    "two points": "[1.2.3]",
    "extra data": "[1, 2] [3]",
    "number before": "0 [1, 2]",
    "number after": "[1, 2] 0",
    "int64 and uint64": "[-1, 9223372036854775808]",
    "extra bracket": "[[1, 2]]]",
    "unclosed": "[[1, 2], [3, 4]",
    "unopened": "1, 2]",
    "closed first": "][",
    "two lists": "[1],[2]",
    "cut short": "[[0.1, 0.2], [0.3, 0.",
}


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, None])
@pytest.mark.parametrize("name", list(TEXTS))
def test_other_texts_as_before(tmp_path, block_bytes, name, dtype):
    path = tmp_path / "values.json"
    path.write_text(TEXTS[name])
    assert _outcome(load_json_array, path, dtype) == _outcome(_whole_file, path, dtype)


@pytest.mark.parametrize(
    "data",
    [b"\xef\xbb\xbf[1, 2]", "[1, 2]".encode("utf-16"), "[1, 2]".encode("utf-32-le"), b"[1, 2]\x00"],
    ids=["UTF-8 BOM", "UTF-16", "UTF-32", "NUL"],
)
def test_other_encodings_as_before(tmp_path, block_bytes, data):
    path = tmp_path / "values.json"
    path.write_bytes(data)
    assert _outcome(load_json_array, path, np.float32) == _outcome(_whole_file, path, np.float32)


@pytest.mark.parametrize("text", ["[1, NaN]", "[[Infinity]]", "[null]", "[true]", '["1"]', "[{}]"])
def test_only_plain_numbers_are_parsed_in_blocks(text):
    assert imageio._blockwise_array(text.encode(), np.float32, 1) is None


def test_errors_name_the_file(tmp_path):
    path = tmp_path / "values.json"
    path.write_text("[[1, 2], [3]]")
    with pytest.raises(DataError, match="regular nested list of numbers") as error:
        load_json_array(path)
    assert error.value.path == path and error.value.index is None
    path.write_text("[1, 2,]")
    with pytest.raises(DataError, match="not a readable JSON file"):
        load_json_array(path)
    with pytest.raises(FileNotFoundError):
        load_json_array(tmp_path / "missing.json")


def _regular_file(tmp_path, count=200, indent=None):
    values = np.random.default_rng(0).normal(0, 0.03, (count, 778, 3)).astype(np.float32)
    path = tmp_path / "verts.json"
    path.write_text(json.dumps(values.tolist(), indent=indent))
    return path, values


@pytest.mark.parametrize("indent", [None, 1])
def test_regular_file_is_parsed_in_blocks(tmp_path, monkeypatch, indent):
    path, values = _regular_file(tmp_path, indent=indent)
    texts = []
    loads = json.loads

    def recording_loads(text, *args, **kwargs):
        texts.append(len(text))
        return loads(text, *args, **kwargs)

    def no_whole_file_parse(*args):
        raise AssertionError("the whole file was parsed")

    monkeypatch.setattr(json, "loads", recording_loads)
    monkeypatch.setattr(imageio, "_parse_json", no_whole_file_parse)
    monkeypatch.setattr(imageio, "_BLOCK_BYTES", 1 << 16)
    array = load_json_array(path)
    np.testing.assert_array_equal(array, values)
    entry = path.stat().st_size / len(values)
    assert len(texts) > 10 and max(texts) < (1 << 16) + entry + 2


def test_regular_file_peak_memory(tmp_path, monkeypatch):
    """The traced peak is the file's bytes, the blocks' arrays, the joined result and a
    block's Python objects: about 1.4x this file; the whole-file parse needs 4.5x."""
    path, values = _regular_file(tmp_path)
    size, block = path.stat().st_size, 1 << 16
    monkeypatch.setattr(imageio, "_BLOCK_BYTES", block)
    tracemalloc.start()
    try:
        array = load_json_array(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(array, values)
    assert peak < size + 2 * array.nbytes + 4 * block, (peak / size, size)
