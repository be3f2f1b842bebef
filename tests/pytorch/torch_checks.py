"""Shared by the fusedrnn.torch tests: a torch.nn module and ours with the same weights, the input
forms torch.nn takes, and one forward+backward through either, returning every result by name."""

from __future__ import annotations

import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pack_sequence, pad_packed_sequence

import fusedrnn.torch as ft
from conftest import OP_IDS, OPS
from fusedrnn import ops

# (torch.nn class name, nonlinearity): every module of the cell table (conftest.OPS), each cell's
# torch_class with each of its nonlinearities; the nonlinearity is None (not passed) where a cell has no choice.
CELLS = [(ops.cell_info(cell).torch_class, nonlinearity if len(ops.cell_info(cell).nonlinearities) > 1 else None)
         for cell, nonlinearity in OPS]
CELL_IDS = OP_IDS
# torch.nn class name -> the cell's facts (has_cell_state, ...)
TORCH_CELLS = {info.torch_class: info for info in ops.CELLS.values()}
FORMS = ["padded", "unbatched", "packed_sorted", "packed_unsorted", "pack_sequence"]
B, T, I, H = 4, 5, 3, 6
LENGTHS_SORTED = [5, 4, 2, 1]
LENGTHS_UNSORTED = [3, 5, 1, 4]  # ties and extremes: 1 and T


def pair(name, nonlinearity, generator=None, **options):
    """(torch.nn module, ours) with the same weights; options as the constructors take them."""
    kw = dict(options, **({"nonlinearity": nonlinearity} if nonlinearity else {}))
    reference = getattr(torch.nn, name)(I, H, **kw)
    ours = getattr(ft, name)(I, H, **kw)
    ours.load_state_dict(reference.state_dict(), strict=True)
    return reference, ours


def _leaf(shape, dtype, generator, device):
    """A random leaf tensor drawn on the CPU (the same values for every device), then moved."""
    return torch.randn(shape, dtype=dtype, generator=generator).to(device).requires_grad_()


def make_input(form, batch_first, dtype, generator, device="cpu"):
    """-> (a function making what the module takes, anew for each run, from the leaves; the leaf
    tensors to differentiate; the batch size, None for unbatched)."""
    if form == "unbatched":
        x = _leaf((T, I), dtype, generator, device)
        return lambda: x, [x], None
    if form == "padded":
        x = _leaf((B, T, I) if batch_first else (T, B, I), dtype, generator, device)
        return lambda: x, [x], B
    if form == "pack_sequence":
        seqs = [_leaf((n, I), dtype, generator, device) for n in LENGTHS_UNSORTED]
        return lambda: pack_sequence(seqs, enforce_sorted=False), seqs, B
    lengths = LENGTHS_SORTED if form == "packed_sorted" else LENGTHS_UNSORTED
    x = _leaf((B, T, I) if batch_first else (T, B, I), dtype, generator, device)
    return (lambda: pack_padded_sequence(x, torch.tensor(lengths), batch_first=batch_first,
                                         enforce_sorted=form == "packed_sorted"), [x], B)


def make_hx(name, num_layers, bidirectional, batch, dtype, generator, device="cpu", proj_size=0):
    """Initial states in the caller's order (unbatched: no batch axis) -> (hx, leaves). h has
    proj_size columns for an LSTM with projections, c keeps H."""
    shape = (num_layers * (2 if bidirectional else 1),) + ((batch,) if batch else ())
    h0 = _leaf(shape + (proj_size or H,), dtype, generator, device)
    if not TORCH_CELLS[name].has_cell_state:
        return h0, [h0]
    c0 = _leaf(shape + (H,), dtype, generator, device)
    return (h0, c0), [h0, c0]


def run(module, make, hx, leaves, generator_seed):
    """Forward, then backward of sum(output * G) + sum(h_n * Gh) (+ c_n) with fixed random G ->
    {name: CPU tensor}: output (padded, zeros at padding), states, and the gradients of leaves and parameters."""
    inp = make()
    out, hidden = module(inp, hx) if hx is not None else module(inp)
    packed = isinstance(out, PackedSequence)
    if packed:
        assert torch.equal(out.sorted_indices, inp.sorted_indices) if inp.sorted_indices is not None \
            else out.sorted_indices is None
        assert torch.equal(out.batch_sizes, inp.batch_sizes)
        out, _ = pad_packed_sequence(out, batch_first=True)
    states = hidden if isinstance(hidden, tuple) else (hidden,)
    g = torch.Generator().manual_seed(generator_seed)
    loss = (out * torch.randn(out.shape, dtype=out.dtype, generator=g).to(out.device)).sum()
    for s in states:
        loss = loss + (s * torch.randn(s.shape, dtype=s.dtype, generator=g).to(s.device)).sum()
    for leaf in leaves:
        leaf.grad = None
    module.zero_grad()
    loss.backward()
    result = {"output": out.detach(), **{f"state{k}": s.detach() for k, s in enumerate(states)}}
    result.update({f"d_leaf{k}": leaf.grad.clone() for k, leaf in enumerate(leaves)})
    result.update({f"d_{n}": p.grad.clone() for n, p in module.named_parameters()})
    return {k: v.cpu() for k, v in result.items()}


def assert_close(actual, expected, rtol, label=""):
    """Every entry within rtol of the expected entry's scale (max |value|, at least 1)."""
    assert actual.keys() == expected.keys(), label
    for key, want in expected.items():
        got = actual[key]
        assert got.shape == want.shape, f"{label} {key}: shape {tuple(got.shape)} != {tuple(want.shape)}"
        scale = max(1.0, want.abs().max().item()) if want.numel() else 1.0
        err = (got - want).abs().max().item() if want.numel() else 0.0
        assert err <= rtol * scale, f"{label} {key}: max difference {err:.3g} (scale {scale:.3g})"
