"""Fixtures shared by the synthetic-data tests: one small rendered data set."""

from __future__ import annotations

import pytest

from handdgp.data.scenes import SceneConfig
from handdgp.data.synthesize import make_dataset

# Tiny images; focal lengths short enough for a whole hand to fit at 1 m.
SMALL = SceneConfig(image_size_range=(48, 64), focal_range=(50.0, 150.0))
SMALL_NUM = 70  # two chunks of 64


@pytest.fixture(scope="session")
def synthetic_set(tmp_path_factory):
    """A 70-sample set (chunks of 64) rendered in this process, seed 7."""
    root = tmp_path_factory.mktemp("synthetic") / "set"
    return make_dataset(root, SMALL_NUM, seed=7, config=SMALL, workers=1, chunk_size=64, progress=False)
