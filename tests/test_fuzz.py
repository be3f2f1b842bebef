"""Hypothesis fuzz: compiled CPU vs the reference on random cells, dtypes, shapes, lengths, directions
and initial states; every output and every gradient."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import OPS, REFERENCE_RTOL, assert_close_scaled, make_cotangents, make_data, run_cell


@st.composite
def cases(draw):
    cell, nonlinearity = draw(st.sampled_from(OPS))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    B, T = draw(st.integers(1, 9)), draw(st.integers(1, 8))
    I, H = draw(st.integers(1, 12)), draw(st.integers(1, 40))
    lengths = draw(st.none() | st.lists(st.integers(1, T), min_size=B, max_size=B))
    reverse, with_states = draw(st.booleans()), draw(st.booleans())
    seed = draw(st.integers(0, 2**32 - 1))  # the array values: shrinking them would not help
    return cell, nonlinearity, dtype, (B, T, I, H), lengths, reverse, with_states, seed


# derandomize: the same examples on every run and machine, so CI is reproducible; 60 examples of
# a few ms each keep this file around a second.
@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(cases())
def test_cpu_matches_reference_on_random_cases(case):
    cell, nonlinearity, dtype, (B, T, I, H), lengths, reverse, with_states, seed = case
    rng = np.random.default_rng(seed)
    x, params, h0, c0 = make_data(rng, cell, B, T, I, H, dtype, states=with_states)
    dy, dh_n, dc_n = make_cotangents(rng, cell, B, T, H, dtype)
    expected = run_cell("reference", cell, x, params, h0, c0, lengths, reverse, nonlinearity, dy, dh_n, dc_n)
    actual = run_cell("cpu", cell, x, params, h0, c0, lengths, reverse, nonlinearity, dy, dh_n, dc_n)
    # Same tolerance and reasons as test_cpu_vs_reference (conftest.REFERENCE_RTOL).
    assert_close_scaled(actual, expected, REFERENCE_RTOL[dtype], str(case))
