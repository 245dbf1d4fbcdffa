"""Tests for handdgp.data.safe_pickle: Python-2 pickles load, code execution is refused."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from handdgp.data import (
    load_pickle,
)

from ._files import (
    _Evil,
    _py2_pickle,
)


class TestLoadPickle:
    @pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
    def test_round_trip(self, protocol):
        meta = {
            "a": np.arange(6, dtype=np.float32).reshape(2, 3),
            "b": np.float64(2.5),
            "c": None,
            "d": [1, (2, 3), "x"],
            "e": np.array([True, False]),
        }
        out = load_pickle(pickle.dumps(meta, protocol=protocol))
        np.testing.assert_array_equal(out["a"], meta["a"])
        assert out["a"].dtype == np.float32 and out["b"] == 2.5 and out["c"] is None
        assert out["d"] == [1, (2, 3), "x"] and out["e"].dtype == bool

    def test_python2_pickle(self, tmp_path):
        meta = {"camMat": np.eye(3) * 2, "handJoints3D": np.ones((21, 3)), "n": np.int64(4)}
        data = _py2_pickle(meta)
        assert b"numpy.core.multiarray" in data and pickle.SHORT_BINSTRING in data
        path = tmp_path / "m.pkl"
        path.write_bytes(data)
        out = load_pickle(path)
        assert set(out) == {"camMat", "handJoints3D", "n"}
        np.testing.assert_array_equal(out["camMat"], np.eye(3) * 2)
        assert out["handJoints3D"].shape == (21, 3) and out["n"] == 4

    @pytest.mark.parametrize(
        "payload", [_Evil(), print, torch.nn.Linear, np.load], ids=["system", "print", "cls", "np"]
    )
    def test_refuses_other_globals(self, payload):
        with pytest.raises(pickle.UnpicklingError, match="refusing"):
            load_pickle(pickle.dumps(payload, protocol=2))
