"""LSTM with projections (torch's ``proj_size``) through the ops: h = (o * tanh c) W_hr^T.

Parity with torch.nn.LSTM(proj_size=P) in float64, the compiled CPU kernels against the NumPy
reference, float64 finite differences for every input including w_hr, the inference forward, the
saved-arrays round trip of fusedrnn.torch, and the refusals (cells without projections, mismatched
shapes, recurrent_mask, GPU arrays). Shapes: x (B, T, I), w_ih (4H, I), w_hh (4H, P), w_hr (P, H),
h0 (B, P), c0 (B, H), y (B, T, P).
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import REFERENCE_RTOL, max_rel_diff
from fusedrnn import _direction, _validate, ops
from test_gradients import assert_grad_close, numeric_grad

PROJECTABLE = [name for name, info in ops.CELLS.items() if info.projectable]
NOT_PROJECTABLE = [name for name, info in ops.CELLS.items() if not info.projectable]
B, T, I, H, P = 4, 6, 5, 7, 3
LENGTHS = np.array([6, 2, 5, 1])


def projected_params(rng, cell, inputs, hidden, proj, dtype=np.float64, scale=0.4):
    """(w_ih (G*H, I), w_hh (G*H, P), b_ih, b_hh (G*H,), w_hr (P, H)), entries ~ N(0, scale^2)."""
    g = ops.cell_info(cell).gates * hidden
    draw = lambda *shape: (scale * rng.standard_normal(shape)).astype(dtype)  # noqa: E731
    return draw(g, inputs), draw(g, proj), draw(g), draw(g), draw(proj, hidden)


def stack_params(rng, cell, layers, directions, dtype=np.float64):
    return [projected_params(rng, cell, I if layer == 0 else directions * P, H, P, dtype)
            for layer in range(layers) for _ in range(directions)]


@pytest.mark.parametrize("cell", PROJECTABLE)
@pytest.mark.parametrize("layers, bidirectional", [(1, False), (1, True), (2, False), (2, True)])
@pytest.mark.parametrize("lengths", [None, LENGTHS], ids=["full", "lengths"])
def test_vs_torch(rng, backend, torch_threads, cell, layers, bidirectional, lengths):
    """Outputs, states and every gradient within 1e-10 of torch.nn.LSTM(proj_size=P), float64."""
    import torch
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    info = ops.cell_info(cell)
    D = 2 if bidirectional else 1
    params = stack_params(rng, cell, layers, D)
    x = rng.standard_normal((B, T, I))
    h0, c0 = rng.standard_normal((layers * D, B, P)), rng.standard_normal((layers * D, B, H))
    y, h_n, c_n, ctx = ops.stack_forward(cell, x, params, h0, c0, lengths, layers, bidirectional)
    dy = rng.standard_normal(y.shape)
    if lengths is not None:  # torch's padded output has zeros past each length: so must dy's effect
        dy[np.arange(T)[None, :] >= lengths[:, None]] = 0
    dh_n, dc_n = rng.standard_normal(h_n.shape), rng.standard_normal(c_n.shape)
    g = ops.stack_backward(ctx, dy, dh_n, dc_n)

    module = getattr(torch.nn, info.torch_class)(I, H, num_layers=layers, bidirectional=bidirectional,
                                                 proj_size=P, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        for weight, value in zip(module._flat_weights, [a for entry in params for a in entry]):
            weight.copy_(torch.from_numpy(value))
    xt, h0t, c0t = (torch.tensor(a, requires_grad=True) for a in (x, h0, c0))
    if lengths is None:
        yt, (hnt, cnt) = module(xt, (h0t, c0t))
    else:
        packed = pack_padded_sequence(xt, torch.from_numpy(lengths), batch_first=True, enforce_sorted=False)
        yt, (hnt, cnt) = module(packed, (h0t, c0t))
        yt, _ = pad_packed_sequence(yt, batch_first=True, total_length=T)
    loss = (yt * torch.from_numpy(dy)).sum() + (hnt * torch.from_numpy(dh_n)).sum() + (cnt * torch.from_numpy(dc_n)).sum()
    loss.backward()

    assert y.shape == (B, T, D * P) and h_n.shape == (layers * D, B, P) and c_n.shape == (layers * D, B, H)
    pairs = [(y, yt), (h_n, hnt), (c_n, cnt), (g.dx, xt.grad), (g.dh0, h0t.grad), (g.dc0, c0t.grad)]
    pairs += list(zip([a for entry in g.params for a in entry], [w.grad for w in module._flat_weights]))
    assert len(g.params[0]) == 5
    for ours, theirs in pairs:
        np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=0, atol=1e-10)


@pytest.mark.parametrize("cell", PROJECTABLE)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("threads", [1, 2])
def test_cpu_vs_reference(rng, monkeypatch, restore_threads, cell, dtype, reverse, threads):
    """The compiled kernels against the NumPy reference, one direction, every output and gradient."""
    import fusedrnn

    fusedrnn.set_num_threads(threads)
    w_ih, w_hh, b_ih, b_hh, w_hr = projected_params(rng, cell, I, H, P, dtype)
    x = rng.standard_normal((B, T, I)).astype(dtype)
    h0, c0 = rng.standard_normal((B, P)).astype(dtype), rng.standard_normal((B, H)).astype(dtype)
    dy, dh_n = rng.standard_normal((B, T, P)).astype(dtype), rng.standard_normal((B, P)).astype(dtype)
    dc_n = rng.standard_normal((B, H)).astype(dtype)
    results = {}
    for backend in ("numpy", "cpu"):
        monkeypatch.setenv("FUSEDRNN_BACKEND", backend)
        y, h_n, c_n, ctx = ops.forward(cell, x, w_ih, w_hh, b_ih, b_hh, h0, c0, LENGTHS, reverse, w_hr=w_hr)
        g = ops.backward(ctx, dy, dh_n, dc_n)
        results[backend] = dict(y=y, h_n=h_n, c_n=c_n, dx=g.dx, dw_ih=g.dw_ih, dw_hh=g.dw_hh, db_ih=g.db_ih,
                                db_hh=g.db_hh, dh0=g.dh0, dc0=g.dc0, dw_hr=g.dw_hr)
    assert results["cpu"]["dw_hr"].shape == (P, H)
    for name, expected in results["numpy"].items():
        assert max_rel_diff(results["cpu"][name], expected) < REFERENCE_RTOL[dtype], name


@pytest.mark.parametrize("cell", PROJECTABLE)
@pytest.mark.parametrize("reverse", [False, True])
def test_finite_differences(rng, backend, cell, reverse):
    """float64 central differences for x, every weight (w_hr included), h0 and c0, with lengths."""
    b, t, i, h, p = 3, 4, 3, 4, 2
    lengths = np.array([4, 1, 3])
    names = ("x", "w_ih", "w_hh", "b_ih", "b_hh", "w_hr", "h0", "c0")
    arrays = dict(zip(names[1:6], projected_params(rng, cell, i, h, p, scale=0.5)))
    arrays.update(x=rng.standard_normal((b, t, i)), h0=rng.standard_normal((b, p)), c0=rng.standard_normal((b, h)))
    gy, gh, gc = rng.standard_normal((b, t, p)), rng.standard_normal((b, p)), rng.standard_normal((b, h))

    def run(a):
        return ops.forward(cell, a["x"], a["w_ih"], a["w_hh"], a["b_ih"], a["b_hh"], a["h0"], a["c0"], lengths,
                           reverse, w_hr=a["w_hr"])

    def loss(a):
        y, h_n, c_n, _ = run(a)
        return float((y * gy).sum() + (h_n * gh).sum() + (c_n * gc).sum())

    g = ops.backward(run(arrays)[3], gy, gh, gc)
    analytic = dict(x=g.dx, w_ih=g.dw_ih, w_hh=g.dw_hh, b_ih=g.db_ih, b_hh=g.db_hh, w_hr=g.dw_hr, h0=g.dh0, c0=g.dc0)
    for name in names:
        assert_grad_close(numeric_grad(loss, arrays, name), analytic[name], name)


@pytest.mark.parametrize("cell", PROJECTABLE)
def test_inference_forward_is_bitwise_the_training_one(rng, backend, cell):
    params = stack_params(rng, cell, 2, 2)
    x = rng.standard_normal((B, T, I))
    trained = ops.stack_forward(cell, x, params, lengths=LENGTHS, num_layers=2, bidirectional=True)
    inferred = ops.stack_forward(cell, x, params, lengths=LENGTHS, num_layers=2, bidirectional=True, need_grad=False)
    assert inferred[3] is None
    for a, b in zip(trained[:3], inferred[:3]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cell", PROJECTABLE)
def test_saved_arrays_round_trip(rng, cell):
    """saved_arrays -> restore_context (fusedrnn.torch's path) gives the gradients of the context itself."""
    params = stack_params(rng, cell, 2, 2)
    x = rng.standard_normal((B, T, I))
    y, h_n, c_n, ctx = ops.stack_forward(cell, x, params, lengths=LENGTHS, num_layers=2, bidirectional=True)
    saved = ops.saved_arrays(ctx)
    assert [a.shape for a in saved] == ops.saved_shapes(cell, B, T, H, 2, True, proj_size=P)
    restored = ops.restore_context(cell, x, params, LENGTHS, None, saved, 2, True, "tanh")
    dy = rng.standard_normal(y.shape)
    expected, actual = ops.stack_backward(ctx, dy), ops.stack_backward(restored, dy)
    for a, b in zip([expected.dx, expected.dh0, expected.dc0] + [w for e in expected.params for w in e],
                    [actual.dx, actual.dh0, actual.dc0] + [w for e in actual.params for w in e]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cell", PROJECTABLE)
def test_empty_batch(rng, backend, cell):
    w_ih, w_hh, b_ih, b_hh, w_hr = projected_params(rng, cell, I, H, P)
    x = np.zeros((0, T, I))
    y, h_n, c_n, ctx = ops.forward(cell, x, w_ih, w_hh, b_ih, b_hh, w_hr=w_hr)
    assert y.shape == (0, T, P) and h_n.shape == (0, P) and c_n.shape == (0, H)
    g = ops.backward(ctx, y)
    assert g.dh0.shape == (0, P) and g.dc0.shape == (0, H)
    assert g.dw_hr.shape == (P, H) and not g.dw_hr.any()


# --- refusals -------------------------------------------------------------------------------------

@pytest.mark.parametrize("cell", NOT_PROJECTABLE)
def test_cells_without_projections_refuse_w_hr(rng, backend, cell):
    w_ih, w_hh, b_ih, b_hh, w_hr = projected_params(rng, "lstm", I, H, P)
    g = ops.cell_info(cell).gates * H
    x = rng.standard_normal((B, T, I))
    with pytest.raises(ValueError, match=f"w_hr: {cell} has no projections"):
        ops.forward(cell, x, w_ih[:g], w_hh[:g], b_ih[:g], b_hh[:g], w_hr=w_hr)
    params = [(w_ih[:g], w_hh[:g, :P], b_ih[:g], b_hh[:g], w_hr)]
    with pytest.raises(TypeError, match=r"params\[0\]: expected a tuple \(w_ih, w_hh, b_ih, b_hh\)$"):
        ops.stack_forward(cell, x, params)


@pytest.mark.parametrize("cell", NOT_PROJECTABLE)
def test_compiled_kernels_refuse_w_hr(rng, cell):
    """The bindings' own check, under the ops' one."""
    from raw_core import forward_args

    from fusedrnn import _native

    kwargs = forward_args(cell)
    with pytest.raises(ValueError, match="w_hr"):
        getattr(_native.core(), f"{cell}_forward")(**kwargs, w_hr=np.zeros((2, 5)))


@pytest.mark.parametrize("cell", PROJECTABLE)
def test_compiled_kernels_check_projections(cell):
    """The bindings' own checks of w_hr against w_hh, the masks and dw_hr, under the ops' ones."""
    from raw_core import backward_args, forward_args

    from fusedrnn import _native

    core = _native.core()
    kwargs = forward_args(cell)  # H = 5, w_hh (4*5, 5): not (4H, P) for P = 2
    with pytest.raises(ValueError, match=r"w_hh: expected shape \(G\*H, P\)"):
        getattr(core, f"{cell}_forward")(**kwargs, w_hr=np.zeros((2, 5)))
    with pytest.raises(ValueError, match="recurrent_mask: not supported with projections"):
        getattr(core, f"{cell}_forward")(**dict(kwargs, recurrent_mask=np.ones((2, 5))), w_hr=np.zeros((5, 5)))
    with pytest.raises(ValueError, match="w_hr, dw_hr: give both"):
        getattr(core, f"{cell}_backward")(**backward_args(core, cell), w_hr=np.zeros((5, 5)))


@pytest.mark.parametrize("cell", PROJECTABLE)
def test_bad_projection_arguments(rng, backend, cell):
    w_ih, w_hh, b_ih, b_hh, w_hr = projected_params(rng, cell, I, H, P)
    x = rng.standard_normal((B, T, I))
    h0, c0 = rng.standard_normal((B, P)), rng.standard_normal((B, H))

    def call(**changes):
        args = dict(x=x, w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh, h0=h0, c0=c0, w_hr=w_hr)
        args.update(changes)
        return ops.forward(cell, **args)

    with pytest.raises(ValueError, match=r"w_hr: expected 2 dimensions \(P, H\)"):
        call(w_hr=w_hr[0])
    with pytest.raises(TypeError, match="w_hr: dtype float32 does not match"):
        call(w_hr=w_hr.astype(np.float32))
    with pytest.raises(TypeError, match="w_hr: expected a NumPy or CuPy array"):
        call(w_hr=w_hr.tolist())
    with pytest.raises(ValueError, match="w_hr: P and H must be at least 1"):
        call(w_hr=np.zeros((0, H)))
    with pytest.raises(ValueError, match=r"w_hh: expected shape \(4\*H, P\) with w_hr \(P, H\)"):
        call(w_hr=w_hr[:, :-1])  # H - 1 columns: w_hh's rows no longer 4H
    with pytest.raises(ValueError, match=r"w_hh: expected shape \(4\*H, P\)"):
        call(w_hr=w_hr[:-1])  # P - 1 rows: w_hh's columns no longer P
    with pytest.raises(ValueError, match=r"h0: expected shape \(B, P\)"):
        call(h0=rng.standard_normal((B, H)))
    with pytest.raises(ValueError, match=r"c0: expected shape \(B, H\)"):
        call(c0=rng.standard_normal((B, P)))
    with pytest.raises(ValueError, match="recurrent_mask: not supported with projections"):
        call(recurrent_mask=np.ones((B, H)))

    y, h_n, c_n, ctx = call()
    with pytest.raises(ValueError, match=r"dy: expected shape \(B, T, P\)"):
        ops.backward(ctx, rng.standard_normal((B, T, H)))
    with pytest.raises(ValueError, match=r"dh_n: expected shape \(B, P\)"):
        ops.backward(ctx, y, dh_n=rng.standard_normal((B, H)))
    with pytest.raises(ValueError, match=r"dc_n: expected shape \(B, H\)"):
        ops.backward(ctx, y, dc_n=rng.standard_normal((B, P)))


@pytest.mark.parametrize("cell", PROJECTABLE)
def test_bad_projected_stacks(rng, backend, cell):
    x = rng.standard_normal((B, T, I))
    params = stack_params(rng, cell, 2, 1)
    with pytest.raises(ValueError, match=r"params\[1\]: 4 arrays, params\[0\] has 5"):
        ops.stack_forward(cell, x, [params[0], params[1][:4]], num_layers=2)
    other = projected_params(rng, cell, P, H, P + 1)
    with pytest.raises(ValueError, match=r"params\[1\]: \(H, P\) = \(7, 4\), params\[0\] has \(7, 3\)"):
        ops.stack_forward(cell, x, [params[0], other], num_layers=2)
    with pytest.raises(TypeError, match=r"params\[0\]: w_hr must be a 2-D array \(P, H\)"):
        ops.stack_forward(cell, x, [params[0][:4] + (None,), params[1]], num_layers=2)
    with pytest.raises(ValueError, match=r"h0: expected shape \(num_layers\*num_directions, B, P\)"):
        ops.stack_forward(cell, x, params, h0=np.zeros((2, B, H)), num_layers=2)
    with pytest.raises(ValueError, match=r"c0: expected shape \(num_layers\*num_directions, B, H\)"):
        ops.stack_forward(cell, x, params, c0=np.zeros((2, B, P)), num_layers=2)
    y, h_n, c_n, ctx = ops.stack_forward(cell, x, params, num_layers=2)
    with pytest.raises(ValueError, match=r"dy: expected shape \(B, T, D\*P\)"):
        ops.stack_backward(ctx, np.zeros((B, T, H)))
    with pytest.raises(ValueError, match=r"dh_n: expected shape \(num_layers\*num_directions, B, P\)"):
        ops.stack_backward(ctx, y, dh_n=np.zeros((2, B, H)))


@pytest.mark.parametrize("cell", PROJECTABLE)
def test_cuda_refuses_projections_before_any_launch(rng, cell):
    """The CUDA path's refusal comes first, before any GPU work (checked here on host arrays: the
    refusal reads only the arguments' namespace)."""
    w_ih, w_hh, b_ih, b_hh, w_hr = projected_params(rng, cell, I, H, P)
    a = _validate.forward_args(cell, rng.standard_normal((B, T, I)), w_ih, w_hh, b_ih, b_hh, None, None, None,
                               False, "tanh", w_hr=w_hr)
    with pytest.raises(ValueError, match="w_hr: the CUDA kernels do not take projections yet"):
        _direction.forward_cuda(cell, [a])


@pytest.mark.parametrize("cell", PROJECTABLE)
def test_cuda_arrays_with_projections_are_refused(rng, cell):
    cupy = pytest.importorskip("cupy")
    try:
        ops.require_cuda()
    except RuntimeError as error:
        pytest.skip(str(error))
    params = [cupy.asarray(a) for a in projected_params(rng, cell, I, H, P, np.float32)]
    x = cupy.asarray(rng.standard_normal((B, T, I)).astype(np.float32))
    with pytest.raises(ValueError, match="w_hr: the CUDA kernels do not take projections yet"):
        ops.forward(cell, x, *params[:4], w_hr=params[4])
    with pytest.raises(ValueError, match="w_hr: the CUDA kernels do not take projections yet"):
        ops.stack_forward(cell, x, [tuple(params)])
