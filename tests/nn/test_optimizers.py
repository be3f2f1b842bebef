"""Optimizers against hand-written NumPy versions of Keras's formulas and against torch.optim;
gradient clipping; learning-rate schedules."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fusedrnn.nn import optimizers, schedules
from fusedrnn.nn.autograd import Tensor

STEPS = 6
# Same formulas, same float64 operations, possibly in another order: a few ulps per step.
KERAS_TOL = 1e-13
# torch.optim does the algebra in another arrangement (e.g. lr folded into its buffers, bias
# corrections applied to the denominator): rounding that stays ~1e-15 relative over a few steps.
TORCH_TOL = 1e-12


class Quadratic:
    """f(w) = 0.5 * sum(a * (w - c)^2) for two parameters; grad = a * (w - c)."""

    def __init__(self, seed=0):
        rng = np.random.default_rng(seed)
        self.a = [rng.uniform(0.5, 3.0, s) for s in ((3, 4), (5,))]
        self.c = [rng.standard_normal(s) for s in ((3, 4), (5,))]
        self.start = [rng.standard_normal(s) for s in ((3, 4), (5,))]

    def grads(self, ws):
        return [a * (w - c) for a, w, c in zip(self.a, ws, self.c)]


def run_ours(optimizer, problem, steps=STEPS):
    params = [Tensor(w.copy(), requires_grad=True) for w in problem.start]
    for _ in range(steps):
        for p, g in zip(params, problem.grads([p.data for p in params])):
            p.grad = g
        optimizer.apply_gradients(params)
    return [p.data for p in params]


# Keras's update rules written out in NumPy (keras/src/optimizers/{sgd,adam,rmsprop}.py).
def keras_sgd(problem, lr, momentum=0.0, nesterov=False, steps=STEPS):
    ws = [w.copy() for w in problem.start]
    ms = [np.zeros_like(w) for w in ws]
    for _ in range(steps):
        for w, m, g in zip(ws, ms, problem.grads(ws)):
            if momentum:
                m[...] = momentum * m - lr * g
                w += momentum * m - lr * g if nesterov else m
            else:
                w -= lr * g
    return ws


def keras_adam(problem, lr, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False, steps=STEPS):
    ws = [w.copy() for w in problem.start]
    ms, vs, vhats = ([np.zeros_like(w) for w in ws] for _ in range(3))
    for t in range(1, steps + 1):
        alpha = lr * math.sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t)
        for w, m, v, vhat, g in zip(ws, ms, vs, vhats, problem.grads(ws)):
            m += (g - m) * (1 - beta_1)
            v += (g * g - v) * (1 - beta_2)
            if amsgrad:
                vhat[...] = np.maximum(vhat, v)
            w -= alpha * m / (np.sqrt(vhat if amsgrad else v) + epsilon)
    return ws


def keras_rmsprop(problem, lr, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False, steps=STEPS):
    ws = [w.copy() for w in problem.start]
    vels, moms, avgs = ([np.zeros_like(w) for w in ws] for _ in range(3))
    for _ in range(steps):
        for w, vel, mom, avg, g in zip(ws, vels, moms, avgs, problem.grads(ws)):
            vel[...] = rho * vel + (1 - rho) * g * g
            if centered:
                avg[...] = rho * avg + (1 - rho) * g
                denominator = vel - avg * avg + epsilon
            else:
                denominator = vel + epsilon
            increment = lr * g / np.sqrt(denominator)
            if momentum:
                mom[...] = momentum * mom + increment
                w -= mom
            else:
                w -= increment
    return ws


def assert_all_close(actual, expected, tol):
    for a, e in zip(actual, expected):
        assert np.max(np.abs(a - e)) <= tol * max(1.0, np.max(np.abs(e)))


@pytest.mark.parametrize("momentum, nesterov", [(0.0, False), (0.9, False), (0.9, True)])
def test_sgd_matches_keras(momentum, nesterov):
    problem = Quadratic()
    ours = run_ours(optimizers.SGD(0.1, momentum=momentum, nesterov=nesterov), problem)
    assert_all_close(ours, keras_sgd(problem, 0.1, momentum, nesterov), KERAS_TOL)


@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam_matches_keras(amsgrad):
    problem = Quadratic()
    # epsilon large enough that its placement matters
    opt = optimizers.Adam(0.05, beta_1=0.8, beta_2=0.9, epsilon=0.1, amsgrad=amsgrad)
    assert_all_close(run_ours(opt, problem), keras_adam(problem, 0.05, 0.8, 0.9, 0.1, amsgrad), KERAS_TOL)


@pytest.mark.parametrize("momentum, centered", [(0.0, False), (0.5, False), (0.0, True), (0.5, True)])
def test_rmsprop_matches_keras(momentum, centered):
    problem = Quadratic()
    opt = optimizers.RMSprop(0.01, rho=0.8, momentum=momentum, epsilon=0.01, centered=centered)
    assert_all_close(run_ours(opt, problem), keras_rmsprop(problem, 0.01, 0.8, momentum, 0.01, centered), KERAS_TOL)


def run_torch(make, problem, steps=STEPS):
    torch = pytest.importorskip("torch")
    params = [torch.tensor(w, dtype=torch.float64, requires_grad=True) for w in problem.start]
    opt = make(torch, params)
    for _ in range(steps):
        for p, g in zip(params, problem.grads([p.detach().numpy() for p in params])):
            p.grad = torch.from_numpy(g)
        opt.step()
    return [p.detach().numpy() for p in params]


# Where torch's formula is the same function as Keras's: SGD always (constant learning rate);
# Adam and RMSprop with epsilon = 0, because torch adds epsilon outside the square root (RMSprop)
# and after the bias correction (Adam), Keras inside / before.
TORCH_CASES = {
    "sgd": (lambda: optimizers.SGD(0.1), lambda t, p: t.optim.SGD(p, lr=0.1)),
    "sgd_momentum": (lambda: optimizers.SGD(0.1, momentum=0.9),
                     lambda t, p: t.optim.SGD(p, lr=0.1, momentum=0.9)),
    "sgd_nesterov": (lambda: optimizers.SGD(0.1, momentum=0.9, nesterov=True),
                     lambda t, p: t.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True)),
    "adam": (lambda: optimizers.Adam(0.05, epsilon=0.0), lambda t, p: t.optim.Adam(p, lr=0.05, eps=0.0)),
    "adam_amsgrad": (lambda: optimizers.Adam(0.05, epsilon=0.0, amsgrad=True),
                     lambda t, p: t.optim.Adam(p, lr=0.05, eps=0.0, amsgrad=True)),
    "rmsprop": (lambda: optimizers.RMSprop(0.01, epsilon=0.0), lambda t, p: t.optim.RMSprop(p, lr=0.01, alpha=0.9, eps=0.0)),
    "rmsprop_momentum": (lambda: optimizers.RMSprop(0.01, momentum=0.5, epsilon=0.0),
                         lambda t, p: t.optim.RMSprop(p, lr=0.01, alpha=0.9, eps=0.0, momentum=0.5)),
    "rmsprop_centered": (lambda: optimizers.RMSprop(0.01, epsilon=0.0, centered=True),
                         lambda t, p: t.optim.RMSprop(p, lr=0.01, alpha=0.9, eps=0.0, centered=True)),
}


@pytest.mark.parametrize("case", sorted(TORCH_CASES))
def test_matches_torch_optim(case):
    ours, theirs = TORCH_CASES[case]
    problem = Quadratic(seed=1)
    assert_all_close(run_ours(ours(), problem), run_torch(theirs, problem), TORCH_TOL)


def sgd_step(grads, **clip):
    """The change one SGD(lr=1) step makes: minus the clipped gradients."""
    params = [Tensor(np.zeros_like(g)) for g in grads]
    for p, g in zip(params, grads):
        p.grad = g
    optimizers.SGD(1.0, **clip).apply_gradients(params)
    return [-p.data for p in params]


def test_global_clipnorm_scales_all_gradients_together():
    grads = [np.array([3.0, 4.0]), np.array([12.0])]  # joint norm 13
    clipped = sgd_step(grads, global_clipnorm=1.0)
    assert_all_close(clipped, [g / 13 for g in grads], 1e-15)
    assert_all_close(sgd_step(grads, global_clipnorm=20.0), grads, 0)  # within the limit: unchanged


def test_clipnorm_is_per_tensor():
    grads = [np.array([3.0, 4.0]), np.array([0.5])]
    clipped = sgd_step(grads, clipnorm=1.0)
    assert_all_close(clipped, [grads[0] / 5, grads[1]], 1e-15)


def test_clipvalue():
    grads = [np.array([3.0, -4.0, 0.25])]
    assert_all_close(sgd_step(grads, clipvalue=0.5), [np.array([0.5, -0.5, 0.25])], 0)


def test_clipping_keeps_float32():
    p = Tensor(np.zeros(3, np.float32))
    p.grad = np.array([30.0, 40.0, 0.0], np.float32)
    optimizers.Adam(global_clipnorm=1.0).apply_gradients([p])
    assert p.data.dtype == np.float32


def test_only_one_clipping_and_positive():
    with pytest.raises(ValueError, match="only one of clipnorm, clipvalue and global_clipnorm"):
        optimizers.SGD(clipnorm=1.0, global_clipnorm=1.0)
    with pytest.raises(ValueError, match="clipvalue: must be a positive number"):
        optimizers.Adam(clipvalue=-1)


def test_state_skips_missing_grads_and_leaves_grads():
    a = Tensor(np.ones(2, np.float32), requires_grad=True)
    b = Tensor(np.ones(3), requires_grad=True)
    a.grad = np.array([1.0, 2.0], np.float32)
    opt = optimizers.Adam(0.1)
    opt.apply_gradients([a, b])  # b has no gradient: untouched, no state
    assert np.all(b.data == 1.0) and not np.all(a.data == 1.0)
    assert np.array_equal(a.grad, [1.0, 2.0])  # the model zeroes gradients, not the optimizer
    assert a.data.dtype == np.float32
    assert opt.iterations == 1
    (slots,) = [s for _, s in opt._slots.values()]
    assert set(slots) == {"m", "v"} and all(s.dtype == np.float32 for s in slots.values())


def test_sgd_without_momentum_keeps_no_state():
    p = Tensor(np.ones(2))
    p.grad = np.ones(2)
    opt = optimizers.SGD(0.5)
    opt.apply_gradients([p])
    assert np.array_equal(p.data, [0.5, 0.5])
    assert all(not slots for _, slots in opt._slots.values())


def test_schedule_as_learning_rate():
    schedule = schedules.PiecewiseConstantDecay([1, 2], [1.0, 0.1, 0.01])
    opt = optimizers.SGD(schedule)
    p = Tensor(np.zeros(1))
    changes = []
    for _ in range(4):  # steps 0, 1 use 1.0 (step <= 1), step 2 uses 0.1, step 3 uses 0.01
        p.grad = np.ones(1)
        before = p.data.copy()
        opt.apply_gradients([p])
        changes.append(float(before[0] - p.data[0]))
    assert changes == pytest.approx([1.0, 1.0, 0.1, 0.01])
    assert opt.current_learning_rate == 0.01


def test_get_and_config():
    assert isinstance(optimizers.get("adam"), optimizers.Adam)
    assert isinstance(optimizers.get("SGD"), optimizers.SGD)
    assert optimizers.get("rmsprop").learning_rate == 0.001
    assert optimizers.get("sgd").learning_rate == 0.01
    opt = optimizers.Adam(0.01, amsgrad=True)
    assert optimizers.get(opt) is opt
    with pytest.raises(ValueError, match="unknown name 'adagrad'"):
        optimizers.get("adagrad")
    config = optimizers.SGD(schedules.ExponentialDecay(0.1, 10, 0.5), momentum=0.9, clipnorm=1.0).get_config()
    again = optimizers.SGD.from_config(config)
    assert again.get_config() == config
    assert again.learning_rate(10) == pytest.approx(0.05)


def test_exponential_decay():
    s = schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    assert [s(k) for k in (0, 5, 10, 20)] == pytest.approx([0.1, 0.1 * 0.5 ** 0.5, 0.05, 0.025])
    stair = schedules.ExponentialDecay(0.1, 10, 0.5, staircase=True)
    assert [stair(k) for k in (0, 9, 10, 19, 20)] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])
    with pytest.raises(ValueError, match="decay_steps"):
        schedules.ExponentialDecay(0.1, 0, 0.5)


def test_piecewise_constant_decay():
    s = schedules.StepDecay([100, 200], [1.0, 0.5, 0.1])
    assert [s(k) for k in (0, 100, 101, 200, 201, 10_000)] == [1.0, 1.0, 0.5, 0.5, 0.1, 0.1]
    with pytest.raises(ValueError, match="len\\(boundaries\\) \\+ 1"):
        schedules.PiecewiseConstantDecay([1, 2], [1.0, 0.5])
    with pytest.raises(ValueError, match="increasing"):
        schedules.PiecewiseConstantDecay([2, 1], [1.0, 0.5, 0.1])
