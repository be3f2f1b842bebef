"""The CUDA backend against the C++ CPU kernels and the NumPy reference (values and gradients), float64
finite differences on the GPU, both kernel paths forced, odd sizes, lengths, reverse, recurrent masks,
stacked/bidirectional layers, torch.nn on the GPU (cuDNN), the training layer on the GPU, and bad input.

Skipped as a whole where CuPy, the compiled fusedrnn._cuda or a visible device is missing.

Tolerances, relative to each array's scale (conftest.max_rel_diff): float64 1e-12, the same as CPU vs
reference (the GPU sums in another order, ~1e-15 per op); float32 1e-5 without TF32 (rounding of sums
over up to B*T terms and T steps of recurrence, measured ~1e-6 on the CPU; a wrong index or step is
off by 1e-3 or more); 1e-3 where TF32 is allowed (10-bit mantissa products, issue 5's target).
"""

from __future__ import annotations

import numpy as np
import pytest

cupy = pytest.importorskip("cupy")

import fusedrnn  # noqa: E402
from fusedrnn import _native, ops  # noqa: E402

if _native._cuda is None:
    pytest.skip(f"fusedrnn._cuda is not built ({_native._cuda_error})", allow_module_level=True)
if _native._cuda.device_count() == 0:
    pytest.skip("no CUDA device is visible", allow_module_level=True)

from conftest import (CELLS, GATES, OP_IDS, OPS, REFERENCE_RTOL, make_cotangents, make_data,  # noqa: E402
                      make_stack_params, max_rel_diff, run_cell, torch_kwargs)

pytestmark = pytest.mark.gpu

PATHS = ["persistent", "steps"]
TF32_RTOL = 1e-3  # float32 with TF32 GEMMs (see the module docstring)


def gpu(a):
    return None if a is None else cupy.asarray(a)


def host(a):
    return None if a is None else cupy.asnumpy(a)


def run_gpu(cell, x, params, h0=None, c0=None, lengths=None, reverse=False, nonlinearity="tanh", dy=None,
            dh_n=None, dc_n=None, recurrent_mask=None):
    """conftest.run_cell's dict, computed on the GPU from host arrays, returned on the host."""
    x, h0, c0, mask = gpu(x), gpu(h0), gpu(c0), gpu(recurrent_mask)
    params = [gpu(p) for p in params]
    y, h_n, c_n, ctx = ops.forward(cell, x, *params, h0, c0, lengths, reverse, nonlinearity, recurrent_mask=mask)
    assert isinstance(y, cupy.ndarray) and ctx.backend == "cuda" and ctx.path in PATHS
    dy = cupy.ones_like(y) if dy is None else gpu(dy)
    g = ops.backward(ctx, dy, gpu(dh_n), gpu(dc_n))
    out = {"y": y, "h_n": h_n, "dx": g.dx, "dw_ih": g.dw_ih, "dw_hh": g.dw_hh, "db_ih": g.db_ih, "db_hh": g.db_hh,
           "dh0": g.dh0}
    if ops.cell_info(cell).has_cell_state:
        out.update(c_n=c_n, dc0=g.dc0)
    return {k: host(v) for k, v in out.items()}, ctx


def run_cpu(cell, x, params, h0=None, c0=None, lengths=None, reverse=False, nonlinearity="tanh", dy=None,
            dh_n=None, dc_n=None, recurrent_mask=None):
    if recurrent_mask is None:
        return run_cell("cpu", cell, x, params, h0, c0, lengths, reverse, nonlinearity, dy, dh_n, dc_n)
    y, h_n, c_n, ctx = ops.forward(cell, x, *params, h0, c0, lengths, reverse, nonlinearity,
                                   recurrent_mask=recurrent_mask)
    g = ops.backward(ctx, dy, dh_n, dc_n)
    out = {"y": y, "h_n": h_n, "dx": g.dx, "dw_ih": g.dw_ih, "dw_hh": g.dw_hh, "db_ih": g.db_ih, "db_hh": g.db_hh,
           "dh0": g.dh0}
    if ops.cell_info(cell).has_cell_state:
        out.update(c_n=c_n, dc0=g.dc0)
    return out


def assert_close(actual, expected, rtol, label):
    worst = {k: max_rel_diff(actual[k], expected[k]) for k in expected}
    bad = {k: v for k, v in worst.items() if not v <= rtol}
    assert not bad, f"{label}: relative differences above {rtol}: {bad}"


def persistent_or_skip(cell, dtype, B, T, I, H, directions=1):
    if not _native._cuda.persistent_supported(cell, np.dtype(dtype).name, B, T, I, H, directions):
        pytest.skip(f"the persistent path does not take {cell} {np.dtype(dtype).name} B={B} T={T} I={I} H={H}")


CASES = {
    "plain": dict(),
    "lengths_reverse": dict(lengths=[5, 1, 3, 7], reverse=True),  # unsorted, with 1 and T
    "lengths_mask": dict(lengths=[7, 2, 1, 6], recurrent_mask=True),
}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("cell,nonlinearity", OPS, ids=OP_IDS)
def test_gpu_matches_cpu_and_reference(rng, cell, nonlinearity, case, dtype, path):
    B, T, I, H = 4, 7, 5, 6
    if path == "persistent":
        persistent_or_skip(cell, dtype, B, T, I, H)
    x, params, h0, c0 = make_data(rng, cell, B, T, I, H, dtype)
    dy, dh_n, dc_n = make_cotangents(rng, cell, B, T, H, dtype)
    kwargs = dict(CASES[case])
    if kwargs.pop("recurrent_mask", False):
        kwargs["recurrent_mask"] = (rng.random((B, H)) < 0.7).astype(dtype) / dtype(0.7)
    args = (cell, x, params, h0, c0)
    common = dict(nonlinearity=nonlinearity, dy=dy, dh_n=dh_n, dc_n=dc_n, **kwargs)
    with fusedrnn.cuda_path(path):
        got, ctx = run_gpu(*args, **common)
    assert ctx.path == path
    expected = run_cpu(*args, **common)
    assert_close(got, expected, REFERENCE_RTOL[dtype], f"{cell} {case} {path} vs CPU")
    if "recurrent_mask" not in kwargs:
        reference = run_cell("reference", *args, kwargs.get("lengths"), kwargs.get("reverse", False), nonlinearity,
                             dy, dh_n, dc_n)
        assert_close(got, reference, REFERENCE_RTOL[dtype], f"{cell} {case} {path} vs reference")


@pytest.mark.parametrize("B,T,I,H", [(1, 5, 3, 1), (3, 4, 1, 33), (1, 9, 7, 4), (65, 6, 5, 3), (2, 1, 4, 5)],
                         ids=["H1_B1", "I1_H33", "B1", "B65", "T1"])
@pytest.mark.parametrize("cell,nonlinearity", OPS, ids=OP_IDS)
def test_odd_sizes(rng, cell, nonlinearity, B, T, I, H):
    x, params, h0, c0 = make_data(rng, cell, B, T, I, H, np.float32)
    dy, dh_n, dc_n = make_cotangents(rng, cell, B, T, H, np.float32)
    lengths = rng.integers(1, T + 1, B)
    for path in ("auto", "steps"):
        with fusedrnn.cuda_path(path):
            got, _ = run_gpu(cell, x, params, h0, c0, lengths, True, nonlinearity, dy, dh_n, dc_n)
        expected = run_cpu(cell, x, params, h0, c0, lengths, True, nonlinearity, dy, dh_n, dc_n)
        assert_close(got, expected, REFERENCE_RTOL[np.float32], f"{cell} B={B} T={T} I={I} H={H} {path}")


@pytest.mark.parametrize("cell,nonlinearity", OPS, ids=OP_IDS)
def test_without_initial_states_and_cotangents(rng, cell, nonlinearity):
    """h0, c0, dh_n and dc_n None (zeros) reach the kernels as null pointers."""
    x, params, _, _ = make_data(rng, cell, 3, 5, 4, 6, np.float64, states=False)
    got, _ = run_gpu(cell, x, params, nonlinearity=nonlinearity)
    expected = run_cell("cpu", cell, x, params, nonlinearity=nonlinearity)
    assert_close(got, expected, REFERENCE_RTOL[np.float64], f"{cell} no states")


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("cell,nonlinearity", OPS, ids=OP_IDS)
def test_gradients_by_finite_differences(rng, cell, nonlinearity, path):
    """Central differences of L = <y, dy> + <h_n, dh_n> (+ <c_n, dc_n>) in float64, on the GPU."""
    B, T, I, H = 3, 4, 2, 3
    if path == "persistent":
        persistent_or_skip(cell, np.float64, B, T, I, H)
    x, params, h0, c0 = make_data(rng, cell, B, T, I, H)
    dy, dh_n, dc_n = make_cotangents(rng, cell, B, T, H)
    lengths = [4, 1, 3]
    has_cell_state = ops.cell_info(cell).has_cell_state
    inputs = {"x": x, "w_ih": params[0], "w_hh": params[1], "b_ih": params[2], "b_hh": params[3], "h0": h0}
    if has_cell_state:
        inputs["c0"] = c0

    def loss(values):
        got, _ = run_gpu(cell, values["x"], [values[k] for k in ("w_ih", "w_hh", "b_ih", "b_hh")], values["h0"],
                         values.get("c0"), lengths, True, nonlinearity, dy, dh_n, dc_n)
        total = np.sum(got["y"] * dy) + np.sum(got["h_n"] * dh_n)
        return total + (np.sum(got["c_n"] * dc_n) if has_cell_state else 0.0), got

    with fusedrnn.cuda_path(path):
        _, analytic = loss(inputs)
        grad_names = {"x": "dx", "w_ih": "dw_ih", "w_hh": "dw_hh", "b_ih": "db_ih", "b_hh": "db_hh", "h0": "dh0",
                      "c0": "dc0"}
        eps = 1e-6  # central differences: truncation ~eps^2, cancellation ~1e-16 / eps: both ~1e-10
        for name, value in inputs.items():
            for index in list(np.ndindex(value.shape))[:: max(1, value.size // 6)]:
                plus, minus = dict(inputs), dict(inputs)
                plus[name], minus[name] = value.copy(), value.copy()
                plus[name][index] += eps
                minus[name][index] -= eps
                numeric = (loss(plus)[0] - loss(minus)[0]) / (2 * eps)
                got = analytic[grad_names[name]][index]
                assert abs(got - numeric) <= 1e-7 * max(1.0, abs(numeric)), (name, index, got, numeric)


@pytest.mark.parametrize("cell", CELLS)
def test_forced_persistent_path_on_a_shape_it_does_not_take(rng, cell):
    B, T, I, H = 1024, 2, 8, 4096
    if _native._cuda.persistent_supported(cell, "float32", B, T, I, H, 1):
        pytest.skip("this GPU's persistent kernels take even this shape")
    G = GATES[cell]
    x = cupy.zeros((B, T, I), cupy.float32)
    params = [cupy.zeros(s, cupy.float32) for s in ((G * H, I), (G * H, H), (G * H,), (G * H,))]
    with fusedrnn.cuda_path("persistent"), pytest.raises(ValueError, match="path: 'persistent' does not support"):
        ops.forward(cell, x, *params)
    with fusedrnn.cuda_path("auto"):
        _, _, _, ctx = ops.forward(cell, x, *params)
    assert ctx.path == "steps"


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("path", ["auto", "steps"])
def test_stacked_bidirectional(rng, cell, path):
    B, T, I, H, L = 5, 6, 4, 3, 2
    x = rng.standard_normal((B, T, I))
    params = make_stack_params(rng, cell, I, H, L, 2, scale=0.4)
    h0 = rng.standard_normal((2 * L, B, H))
    lengths = np.array([6, 2, 1, 5, 3])
    dy = rng.standard_normal((B, T, 2 * H))
    dh_n = rng.standard_normal((2 * L, B, H))
    has_cell_state = ops.cell_info(cell).has_cell_state

    def run(xp_array, to_host):
        kwargs = dict(lengths=lengths, num_layers=L, bidirectional=True, dropout=0.3, training=True, seed=7)
        p = [tuple(xp_array(a) for a in entry) for entry in params]
        # h0 doubles as c0 (and dh_n as dc_n) for a cell with a cell state
        y, h_n, _, ctx = ops.stack_forward(cell, xp_array(x), p, xp_array(h0), xp_array(h0), **kwargs)
        g = ops.stack_backward(ctx, xp_array(dy), xp_array(dh_n), xp_array(dh_n) if has_cell_state else None)
        out = {"y": y, "h_n": h_n, "dx": g.dx, "dh0": g.dh0}
        out.update({f"param{k}_{i}": a for k, entry in enumerate(g.params) for i, a in enumerate(entry)})
        return {k: to_host(v) for k, v in out.items()}

    with fusedrnn.cuda_path(path):
        got = run(cupy.asarray, cupy.asnumpy)
    expected = run(np.asarray, np.asarray)
    assert_close(got, expected, REFERENCE_RTOL[np.float64], f"{cell} stacked bidirectional {path}")


@pytest.mark.parametrize("cell", CELLS)
def test_tf32(rng, cell):
    B, T, I, H = 16, 10, 64, 64
    x, params, h0, c0 = make_data(rng, cell, B, T, I, H, np.float32)
    previous = fusedrnn.allow_tf32(True)
    try:
        got, _ = run_gpu(cell, x, params, h0, c0)
    finally:
        fusedrnn.allow_tf32(previous)
    assert_close(got, run_cell("cpu", cell, x, params, h0, c0), TF32_RTOL, f"{cell} tf32")


@pytest.mark.parametrize("cell", CELLS)
def test_runs_on_the_current_stream(rng, cell):
    x, params, h0, c0 = make_data(rng, cell, 8, 12, 5, 7, np.float32)
    expected = run_cell("cpu", cell, x, params, h0, c0)
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        got, _ = run_gpu(cell, x, params, h0, c0)  # cupy.asnumpy copies on the current stream: ordered
    assert_close(got, expected, REFERENCE_RTOL[np.float32], f"{cell} on a non-default stream")


@pytest.mark.parametrize("cell", CELLS)
def test_cuda_array_interface_and_dlpack(rng, cell):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA")
    x, params, h0, c0 = make_data(rng, cell, 3, 4, 5, 6, np.float32)
    states = (h0, c0) if ops.cell_info(cell).has_cell_state else (h0,)
    expected = ops.forward(cell, x, *params, *states)[0]
    as_torch = [torch.from_numpy(a).cuda() for a in (x, *params, *states)]
    y, *_ = ops.forward(cell, *as_torch)  # __cuda_array_interface__: CuPy views of torch's memory
    assert max_rel_diff(cupy.asnumpy(y), expected) <= REFERENCE_RTOL[np.float32]
    capsules = [type("DLPackOnly", (), {"__dlpack__": t.__dlpack__, "__dlpack_device__": t.__dlpack_device__})()
                for t in as_torch]
    y, *_ = ops.forward(cell, *capsules)
    assert max_rel_diff(cupy.asnumpy(y), expected) <= REFERENCE_RTOL[np.float32]


@pytest.mark.parametrize("cell,nonlinearity", OPS, ids=OP_IDS)
def test_vs_torch_cudnn(rng, cell, nonlinearity):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA")
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    B, T, I, H = 6, 9, 5, 7
    module = getattr(torch.nn, ops.cell_info(cell).torch_class)(I, H, batch_first=True, bidirectional=True,
                                                                 **torch_kwargs(cell, nonlinearity)).cuda()
    params = [tuple(getattr(module, f"{n}_l0{s}").detach() for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
              for s in ("", "_reverse")]
    x = torch.from_numpy(rng.standard_normal((B, T, I)).astype(np.float32)).cuda().requires_grad_()
    y_torch, _ = module(x)
    dy = torch.randn_like(y_torch)
    y_torch.backward(dy)
    y, _, _, ctx = ops.stack_forward(cell, cupy.asarray(x.detach()),
                                     [tuple(cupy.asarray(p) for p in entry) for entry in params],
                                     bidirectional=True, nonlinearity=nonlinearity)
    g = ops.stack_backward(ctx, cupy.asarray(dy))
    # cuDNN sums in its own order: float32 rounding (see the module docstring)
    assert max_rel_diff(cupy.asnumpy(y), y_torch.detach().cpu().numpy()) <= 1e-5
    assert max_rel_diff(cupy.asnumpy(g.dx), x.grad.cpu().numpy()) <= 1e-5
    assert max_rel_diff(cupy.asnumpy(g.params[0][1]), module.weight_hh_l0.grad.cpu().numpy()) <= 1e-5


@pytest.mark.parametrize("cell", CELLS)
def test_mixed_host_and_gpu_arguments_name_the_argument(rng, cell):
    x, params, h0, c0 = make_data(rng, cell, 2, 3, 4, 5, np.float32)
    gx, gparams = cupy.asarray(x), [cupy.asarray(p) for p in params]
    with pytest.raises(TypeError, match=r"w_hh: a NumPy \(host\) array, but x is a CuPy"):
        ops.forward(cell, gx, gparams[0], params[1], *gparams[2:])
    with pytest.raises(TypeError, match=r"h0: a NumPy \(host\) array"):
        ops.forward(cell, gx, *gparams, h0)
    with pytest.raises(TypeError, match=r"w_ih: a CuPy .* but x is a NumPy"):
        ops.forward(cell, x, gparams[0], *params[1:])
    y, _, _, ctx = ops.forward(cell, gx, *gparams)
    with pytest.raises(TypeError, match=r"dy: a NumPy \(host\) array"):
        ops.backward(ctx, cupy.asnumpy(y))
    with pytest.raises(TypeError, match="dtype float64 does not match x's dtype float32"):
        ops.forward(cell, gx, gparams[0].astype(cupy.float64), *gparams[1:])
    with pytest.raises(ValueError, match=r"lengths: every length must be in 1..T"):
        ops.forward(cell, gx, *gparams, lengths=cupy.asarray([0, 3]))  # GPU lengths: checked on the host


@pytest.mark.parametrize("cell", CELLS)
def test_gpu_lengths_are_accepted(rng, cell):
    x, params, h0, c0 = make_data(rng, cell, 3, 5, 2, 4, np.float32)
    got = ops.forward(cell, cupy.asarray(x), *map(cupy.asarray, params), lengths=cupy.asarray([5, 1, 2]))[0]
    expected = ops.forward(cell, x, *params, lengths=[5, 1, 2])[0]
    assert max_rel_diff(cupy.asnumpy(got), expected) <= REFERENCE_RTOL[np.float32]


@pytest.mark.parametrize("cell", CELLS)
def test_arrays_on_two_devices(rng, cell):
    if _native._cuda.device_count() < 2:
        pytest.skip("needs two GPUs")
    x, params, _, _ = make_data(rng, cell, 2, 3, 4, 5, np.float32)
    with cupy.cuda.Device(0):
        gx = cupy.asarray(x)
    with cupy.cuda.Device(1):
        gparams = [cupy.asarray(p) for p in params]
    with pytest.raises(ValueError, match="w_hh: on GPU 1, but x is on GPU 0"):
        ops.forward(cell, gx, *gparams)


def test_dropout_masks_are_the_host_masks_bit_for_bit():
    """The CuPy kernel of fusedrnn._dropout against the NumPy twin: same seed, same bits."""
    from fusedrnn import _dropout

    for dtype in (np.float32, np.float64):
        for shape, rate in (((32, 30, 600), 0.2), ((3, 1, 5), 0.5), ((7,), 0.999)):
            gpu = _dropout.dropout_mask(cupy, shape, rate, np.random.default_rng(4), dtype)
            host = _dropout.dropout_mask(np, shape, rate, np.random.default_rng(4), dtype)
            assert isinstance(gpu, cupy.ndarray) and gpu.dtype == dtype and gpu.shape == shape
            np.testing.assert_array_equal(cupy.asnumpy(gpu), host)


# ------------------------------------------------------------------------------- the training layer

def _tagger(seed):
    from fusedrnn.nn import LSTM, Bidirectional, Dense, Embedding, Sequential, TimeDistributed

    return Sequential([Embedding(50, 8, mask_zero=True), Bidirectional(LSTM(6, return_sequences=True)),
                       TimeDistributed(Dense(5, activation="relu")), Dense(3, activation="softmax")], seed=seed)


def _tagger_data(rng, n=40, T=9):
    lengths = rng.integers(1, T + 1, n)
    ids = rng.integers(1, 50, (n, T))
    ids[np.arange(T)[None, :] >= lengths[:, None]] = 0
    return ids, rng.integers(0, 3, (n, T))


def test_model_trains_on_the_gpu_like_on_the_cpu(rng, tmp_path):
    """A few Adam steps of a masked BiLSTM tagger: the same weights on both devices (same seed, same
    dropout masks); float32, after 6 steps of compounding rounding: 1e-4 relative."""
    ids, tags = _tagger_data(rng)
    models = {}
    for device in ("cpu", "cuda"):
        model = _tagger(seed=3)
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"], device=device)
        history = model.fit(ids, tags, batch_size=8, epochs=2, shuffle=True, seed=1, verbose=0)
        models[device] = (model, history)
    cpu, gpu_model = models["cpu"][0], models["cuda"][0]
    assert gpu_model.device == "cuda" and all(isinstance(t.data, cupy.ndarray) for t in gpu_model.weights)
    for a, b in zip(cpu.get_weights(), gpu_model.get_weights()):
        assert max_rel_diff(b, a) <= 1e-4
    for key in ("loss", "accuracy"):
        np.testing.assert_allclose(models["cuda"][1].history[key], models["cpu"][1].history[key], rtol=1e-4)
    predicted = gpu_model.predict(ids)
    assert isinstance(predicted, np.ndarray)
    assert max_rel_diff(predicted, cpu.predict(ids)) <= 1e-4
    np.testing.assert_allclose(gpu_model.evaluate(ids, tags), cpu.evaluate(ids, tags), rtol=1e-4)
    gpu_model.save_weights(tmp_path / "w.npz")  # host copies
    fresh = _tagger(seed=9)
    fresh.build((None, ids.shape[1]))
    fresh.load_weights(tmp_path / "w.npz")
    assert max_rel_diff(fresh.predict(ids), predicted) <= 1e-5  # CPU vs GPU float32 rounding
    assert gpu_model.to("cpu").device == "cpu" and isinstance(gpu_model.weights[0].data, np.ndarray)


def test_model_takes_gpu_data_and_reports_bad_ids_late(rng):
    from fusedrnn.nn import deferred

    ids, tags = _tagger_data(rng)
    model = _tagger(seed=4)
    model.compile("adam", "sparse_categorical_crossentropy", device="cuda")
    model.fit(cupy.asarray(ids), cupy.asarray(tags), batch_size=8, epochs=1, verbose=0)
    bad = tags.copy()
    bad[0, 0] = 7  # a class id out of range at a valid step: found when the loss is read
    with pytest.raises(ValueError, match="class id 7 outside 0..2"):
        model.fit(ids, bad, batch_size=8, epochs=1, shuffle=False, verbose=0)
    assert not deferred._pending


def test_crf_tagger_trains_on_the_gpu_like_on_the_cpu(rng):
    """A BiLSTM-CRF (fusedrnn.nn.crf's math on CuPy): the same loss history, weights and Viterbi paths."""
    from fusedrnn.nn import CRF, LSTM, Bidirectional, Dense, Embedding, Sequential, TimeDistributed

    ids, tags = _tagger_data(rng)
    lengths = (ids != 0).sum(axis=1)
    results = {}
    for device in ("cpu", "cuda"):
        crf = CRF()
        model = Sequential([Embedding(50, 8, mask_zero=True), Bidirectional(LSTM(6, return_sequences=True)),
                            TimeDistributed(Dense(3)), crf], seed=5)
        model.compile("adam", crf.loss, device=device)
        history = model.fit(ids, tags, batch_size=8, epochs=2, shuffle=True, seed=1, verbose=0)
        scores = model.predict(ids)
        results[device] = (model, history.history["loss"], scores, crf.decode(scores, lengths))
    (cpu, cpu_loss, cpu_scores, cpu_paths), (gpu_model, gpu_loss, gpu_scores, gpu_paths) = results.values()
    np.testing.assert_allclose(gpu_loss, cpu_loss, rtol=1e-4)
    for a, b in zip(cpu.get_weights(), gpu_model.get_weights()):
        assert max_rel_diff(b, a) <= 1e-4
    assert max_rel_diff(gpu_scores, cpu_scores) <= 1e-4
    assert isinstance(gpu_paths, np.ndarray) and (gpu_paths == cpu_paths).mean() > 0.99  # ties may differ
    on_device = gpu_model.layers[-1].decode(cupy.asarray(gpu_scores), lengths)
    assert isinstance(on_device, cupy.ndarray) and (on_device.get() == gpu_paths).all()


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("cell,nonlinearity", OPS, ids=OP_IDS)
def test_backward_without_dx_matches_the_full_backward(rng, path, cell, nonlinearity):
    from fusedrnn import _direction

    x, params, h0, c0 = make_data(rng, cell, 4, 5, 3, 6)
    dy, dh_n, dc_n = make_cotangents(rng, cell, 4, 5, 6)
    has_cell_state = ops.cell_info(cell).has_cell_state
    with fusedrnn.cuda_path(path):
        *_, ctx = _direction.forward(cell, gpu(x), *[gpu(p) for p in params], gpu(h0), gpu(c0), [5, 2, 4, 1], True,
                                     nonlinearity)
        full = _direction.backward(cell, ctx, gpu(dy), gpu(dh_n), gpu(dc_n) if has_cell_state else None)
        partial = _direction.backward(cell, ctx, gpu(dy), gpu(dh_n), gpu(dc_n) if has_cell_state else None,
                                      need_dx=False)
    assert partial.dx is None and full.dx is not None
    for name in ("dw_ih", "dw_hh", "db_ih", "db_hh", "dh0", "dc0"):
        a, b = getattr(full, name), getattr(partial, name)
        if a is None:
            assert b is None and not has_cell_state
        else:
            np.testing.assert_array_equal(host(a), host(b), err_msg=name)  # only dx's GEMM is skipped
