"""Shared fixtures: the device and dtype every test runs on.

``pytest --device cuda --dtype float32`` runs the same suite on a GPU.
"""

import os

import pytest
import torch

# Two processes each using two threads slow torch down badly on small machines.
torch.set_num_threads(int(os.environ.get("DGPGEOM_TEST_THREADS", "1")))


def pytest_addoption(parser):
    parser.addoption("--device", default="cpu", help="torch device for the tests")
    parser.addoption(
        "--dtype", default="float64", choices=["float32", "float64"], help="default test dtype"
    )


@pytest.fixture
def device(request) -> torch.device:
    return torch.device(request.config.getoption("--device"))


@pytest.fixture
def dtype(request) -> torch.dtype:
    return getattr(torch, request.config.getoption("--dtype"))
