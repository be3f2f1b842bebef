"""Both backends against torch.nn (each cell's torch_class: LSTM, GRU, RNN; an independent implementation
of the same math).

Outputs, final states and every gradient (x, every weight and bias, h0, c0), through the linear
functional L = sum(y*Gy) + sum(h_n*Gh) + sum(c_n*Gc); single layer, bidirectional, two layers,
and packed sequences with unsorted lengths against our ``lengths=``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from conftest import OP_IDS, OPS, assert_close_scaled, make_params, make_stack_params, run_cell, torch_kwargs
from fusedrnn import ops

# Relative to each array's scale (conftest.max_rel_diff). torch and we sum in different orders; the
# differences are rounding, measured ~1e-15 (float64) and ~1e-6 (float32): the targets 1e-10 and
# 1e-5 leave room for other BLAS builds while a wrong gate order or state is off by 1e-2 or more.
RTOL = {np.float32: 1e-5, np.float64: 1e-10}
B, T, I, H = 4, 5, 3, 6
LENGTHS = [3, 5, 1, 4]  # unsorted, includes 1 and T
NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


pytestmark = pytest.mark.usefixtures("torch_threads")


def torch_module(cell, nonlinearity, num_layers, bidirectional, params, dtype):
    """The torch layer holding ``params`` (our order: layer 0 fwd, layer 0 rev, layer 1 fwd, ...)."""
    m = getattr(torch.nn, ops.cell_info(cell).torch_class)(I, H, num_layers=num_layers, bidirectional=bidirectional,
                                                           batch_first=True, dtype=torch.float64 if dtype == np.float64
                                                           else torch.float32, **torch_kwargs(cell, nonlinearity))
    D = 2 if bidirectional else 1
    with torch.no_grad():
        for layer in range(num_layers):
            for d, sfx in enumerate(("", "_reverse")[:D]):
                for name, value in zip(NAMES, params[layer * D + d]):
                    getattr(m, f"{name}_l{layer}{sfx}").copy_(torch.from_numpy(value))
    return m


def torch_run(m, cell, x, h0, c0, lengths, gy, gh, gc):
    """-> dict of outputs and gradients, named like StackGrads (params as params[k].w_ih ...)."""
    xt = torch.tensor(x, requires_grad=True)
    h0t = None if h0 is None else torch.tensor(h0, requires_grad=True)
    c0t = None if c0 is None else torch.tensor(c0, requires_grad=True)
    has_cell_state = ops.cell_info(cell).has_cell_state
    state = (h0t, c0t) if has_cell_state and h0 is not None else h0t
    inp = xt if lengths is None else pack_padded_sequence(xt, torch.tensor(lengths), batch_first=True,
                                                          enforce_sorted=False)
    out, hn = m(inp, state)
    if lengths is not None:
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=T)  # zeros at padding
    hn, cn = hn if has_cell_state else (hn, None)
    loss = (out * torch.from_numpy(gy)).sum() + (hn * torch.from_numpy(gh)).sum()
    if has_cell_state:
        loss = loss + (cn * torch.from_numpy(gc)).sum()
    loss.backward()
    result = {"y": out.detach().numpy(), "h_n": hn.detach().numpy(), "dx": xt.grad.numpy()}
    if has_cell_state:
        result["c_n"] = cn.detach().numpy()
    if h0 is not None:
        result["dh0"] = h0t.grad.numpy()
        if has_cell_state:
            result["dc0"] = c0t.grad.numpy()
    k = 0
    for layer in range(m.num_layers):
        for sfx in ("", "_reverse")[:2 if m.bidirectional else 1]:
            for ours, name in zip(("w_ih", "w_hh", "b_ih", "b_hh"), NAMES):
                result[f"params[{k}].{ours}"] = getattr(m, f"{name}_l{layer}{sfx}").grad.numpy()
            k += 1
    return result


def ours_run(cell, nonlinearity, x, params, h0, c0, lengths, num_layers, bidirectional, gy, gh, gc):
    y, h_n, c_n, ctx = ops.stack_forward(cell, x, params, h0, c0, lengths, num_layers, bidirectional,
                                         nonlinearity=nonlinearity)
    g = ops.stack_backward(ctx, gy, gh, gc)
    has_cell_state = ops.cell_info(cell).has_cell_state
    result = {"y": y, "h_n": h_n, "dx": g.dx}
    if has_cell_state:
        result["c_n"] = c_n
    if h0 is not None:
        result["dh0"] = g.dh0
        if has_cell_state:
            result["dc0"] = g.dc0
    for k, dp in enumerate(g.params):
        result.update({f"params[{k}].{n}": d for n, d in zip(("w_ih", "w_hh", "b_ih", "b_hh"), dp)})
    return result


# (num_layers, bidirectional, lengths, states given)
CONFIGS = [(1, False, None, True), (1, False, LENGTHS, False), (1, True, None, False), (1, True, LENGTHS, True),
           (2, False, None, True), (2, True, LENGTHS, True)]
CONFIG_IDS = ["1layer", "1layer-packed", "bidir", "bidir-packed", "2layers", "2layers-bidir-packed"]


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("cell,nonlinearity", OPS, ids=OP_IDS)
def test_stack_matches_torch(backend, rng, cell, nonlinearity, dtype, config):
    num_layers, bidirectional, lengths, with_states = config
    D = 2 if bidirectional else 1
    x = rng.standard_normal((B, T, I)).astype(dtype)
    params = make_stack_params(rng, cell, I, H, num_layers, D, dtype)
    states = (num_layers * D, B, H)
    has_cell_state = ops.cell_info(cell).has_cell_state
    h0 = (0.5 * rng.standard_normal(states)).astype(dtype) if with_states else None
    c0 = (0.5 * rng.standard_normal(states)).astype(dtype) if with_states and has_cell_state else None
    gy = rng.standard_normal((B, T, D * H)).astype(dtype)
    gh = rng.standard_normal(states).astype(dtype)
    gc = rng.standard_normal(states).astype(dtype) if has_cell_state else None

    m = torch_module(cell, nonlinearity, num_layers, bidirectional, params, dtype)
    expected = torch_run(m, cell, x, h0, c0, lengths, gy, gh, gc)
    actual = ours_run(cell, nonlinearity, x, params, h0, c0, lengths, num_layers, bidirectional, gy, gh, gc)
    assert_close_scaled(actual, expected, RTOL[dtype], f"{backend} {cell}")
    if lengths is not None:
        for b, n in enumerate(lengths):
            assert np.all(actual["y"][b, n:] == 0)  # the padding pad_packed_sequence fills with zeros


@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "packed"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("cell,nonlinearity", OPS, ids=OP_IDS)
def test_direction_ops_match_torch(backend, rng, cell, nonlinearity, dtype, with_lengths):
    """The one-direction ops (<cell>_forward, <cell>_backward) against a one-layer unidirectional torch module."""
    lengths = LENGTHS if with_lengths else None
    x = rng.standard_normal((B, T, I)).astype(dtype)
    params = make_params(rng, cell, I, H, dtype)
    has_cell_state = ops.cell_info(cell).has_cell_state
    h0 = (0.5 * rng.standard_normal((B, H))).astype(dtype)
    c0 = (0.5 * rng.standard_normal((B, H))).astype(dtype) if has_cell_state else None
    gy = rng.standard_normal((B, T, H)).astype(dtype)
    gh = rng.standard_normal((B, H)).astype(dtype)
    gc = rng.standard_normal((B, H)).astype(dtype) if has_cell_state else None

    m = torch_module(cell, nonlinearity, 1, False, [params], dtype)
    t = torch_run(m, cell, x, h0[None], None if c0 is None else c0[None], lengths, gy, gh[None],
                  None if gc is None else gc[None])
    expected = {"y": t["y"], "h_n": t["h_n"][0], "dx": t["dx"], "dh0": t["dh0"][0],
                "dw_ih": t["params[0].w_ih"], "dw_hh": t["params[0].w_hh"],
                "db_ih": t["params[0].b_ih"], "db_hh": t["params[0].b_hh"]}
    if has_cell_state:
        expected.update(c_n=t["c_n"][0], dc0=t["dc0"][0])
    actual = run_cell(backend, cell, x, params, h0, c0, lengths, False, nonlinearity, gy, gh, gc)
    assert_close_scaled(actual, expected, RTOL[dtype], f"{backend} {cell}")
