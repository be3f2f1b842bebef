"""Fixtures of the benchmark suites: torch at our thread count, so that both sides get the same cores."""

import pytest

import fusedrnn


@pytest.fixture(scope="session")
def torch():
    torch = pytest.importorskip("torch")
    previous = torch.get_num_threads()
    torch.set_num_threads(fusedrnn.get_num_threads())
    yield torch
    torch.set_num_threads(previous)
