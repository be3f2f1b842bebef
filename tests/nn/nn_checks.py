"""Helpers for the layer, model and callback tests: float64 layers, a sum-of-products loss, and central
finite-difference gradient checks of every weight and input of a layer or model.

A plain module (not conftest.py: the top-level tests import their conftest by name, and a second one
would shadow it); the test files import what they use, the fixture included."""

from __future__ import annotations

import numpy as np
import pytest

from fusedrnn.nn import layers as L
from fusedrnn.nn.autograd import Tensor, no_grad, record

# Central differences in float64 with eps = 1e-6 have truncation error ~eps^2 * |f'''| ~ 1e-12 and
# rounding error ~1e-16 * |f| / eps ~ 1e-10 for the O(1)-O(10) sums these checks differentiate, so
# a correct backward agrees to ~1e-9 of the gradient's scale; 1e-6 leaves room for the larger
# third derivatives of saturating gates, while a wrong index, sign or missed term is off by 1e-2 or more.
GRAD_RTOL = 1e-6
EPS = 1e-6


@pytest.fixture
def float64_layers():
    """Layers built in the test default to float64 (gradient checks); the default is restored after.
    (Not autouse: the other tests in this folder keep the library's default.)"""
    before = L.floatx()
    L.set_floatx("float64")
    yield
    L.set_floatx(before)


def weighted_sum(outputs, cotangents) -> Tensor:
    """sum_k sum(outputs[k] * cotangents[k]) as one scalar node."""
    outputs = [o for o in outputs if o is not None]

    def backward(g):
        return tuple(g * c for c in cotangents)
    return record(sum(np.sum(o.data * c) for o, c in zip(outputs, cotangents)), tuple(outputs), backward)


def max_rel_diff(actual, expected):
    """max |a - e| relative to max(max |e|, 1) (the scale of the O(1) terms summed)."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    return float(np.max(np.abs(actual - expected), initial=0.0) / max(np.max(np.abs(expected), initial=0.0), 1.0))


def check_gradients(run, tensors, rng, reset=None, rtol=GRAD_RTOL):
    """``run()`` -> a Tensor or a list of Tensors computed from ``tensors`` (leaves with
    requires_grad=True: weights and inputs). Compares the backward of sum_k sum(out_k * R_k) (random
    R_k) with central differences for every entry of every tensor. ``reset()`` runs before every
    forward (re-seeding dropout, so each evaluation draws the same masks). Returns the worst error."""
    reset = reset or (lambda: None)
    reset()
    outputs = run()
    outputs = [o for o in (outputs if isinstance(outputs, list) else [outputs]) if o is not None]
    cotangents = [rng.standard_normal(o.shape) for o in outputs]
    for t in tensors:
        t.grad = None
    weighted_sum(outputs, cotangents).backward()

    def value():
        reset()
        with no_grad():
            outs = run()
        outs = [o for o in (outs if isinstance(outs, list) else [outs]) if o is not None]
        return sum(float(np.sum(o.data * c)) for o, c in zip(outs, cotangents))

    worst = {}
    for k, t in enumerate(tensors):
        numeric = np.zeros_like(t.data)
        for i in np.ndindex(t.data.shape):
            saved = t.data[i]
            t.data[i] = saved + EPS
            up = value()
            t.data[i] = saved - EPS
            down = value()
            t.data[i] = saved
            numeric[i] = (up - down) / (2 * EPS)
        analytic = np.zeros_like(t.data) if t.grad is None else t.grad
        worst[t.name or f"tensor {k}"] = max_rel_diff(analytic, numeric)
        # a gradient that is zero everywhere would pass trivially: every checked tensor must matter
        assert np.max(np.abs(numeric)) > 1e-6, f"{t.name or k}: the output does not depend on it"
    bad = {k: v for k, v in worst.items() if not v <= rtol}
    assert not bad, f"gradients off (relative to scale) beyond {rtol}: {bad}"
    return max(worst.values())


def leaf(array, name=None) -> Tensor:
    return Tensor(np.array(array, dtype=np.float64), requires_grad=True, name=name)

