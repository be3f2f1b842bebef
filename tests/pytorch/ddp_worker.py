"""One rank of the data-parallel tests (test_ddp.py), started by torchrun: a model of
fusedrnn.torch modules in DistributedDataParallel, or sharded by FSDP (``fully_shard``: each
module's parameters are freed after its forward and gathered again for its backward), gloo, on this
rank's half of a batch; rank 0 saves the gradients.

Also importable: ``model()``, ``batch()`` and ``loss()`` give the single-process run the same
model, data and loss."""

from __future__ import annotations

import os
import sys

import torch
from torch.nn.utils.rnn import pack_padded_sequence

import fusedrnn.torch as ft

BATCH = 8


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = ft.LSTM(3, 5, num_layers=2, bidirectional=True, dtype=torch.float64)
        self.gru = ft.GRU(10, 4, batch_first=True, dtype=torch.float64)
        self.head = torch.nn.Linear(4, 1, dtype=torch.float64)

    def forward(self, x, lengths):  # x (T, B, 3), lengths (B,)
        packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
        _, (h, _) = self.lstm(packed)
        y, _ = self.gru(x.new_zeros(x.shape[1], 2, 10) + torch.cat([h[-2], h[-1]], -1)[:, None])
        return self.head(y[:, -1]).squeeze(-1)  # (B,)


def model():
    torch.manual_seed(0)
    return Model()


def batch():
    """x (T, B, 3), lengths (B,), target (B,)."""
    g = torch.Generator().manual_seed(1)
    return (torch.randn(6, BATCH, 3, dtype=torch.float64, generator=g), torch.randint(1, 7, (BATCH,), generator=g),
            torch.randn(BATCH, dtype=torch.float64, generator=g))


def loss(m, x, lengths, target):
    return ((m(x, lengths) - target) ** 2).mean()


def wrapped(kind):
    """-> (the model to call, the model whose parameters hold the gradients) for "ddp" or "fsdp"."""
    m = model()
    if kind == "ddp":
        return torch.nn.parallel.DistributedDataParallel(m), m
    from torch.distributed.fsdp import fully_shard

    for layer in (m.lstm, m.gru):
        fully_shard(layer)
    return fully_shard(m), m


def main(out_path, kind):
    torch.distributed.init_process_group("gloo")
    rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    parallel, m = wrapped(kind)
    x, lengths, target = batch()
    rows = slice(rank * BATCH // world, (rank + 1) * BATCH // world)
    loss(parallel, x[:, rows], lengths[rows], target[rows]).backward()  # both average the ranks' gradients
    grads = {n: p.grad.full_tensor() if kind == "fsdp" else p.grad for n, p in m.named_parameters()}  # (gathers)
    if rank == 0:
        torch.save(grads, out_path)
    torch.distributed.barrier()  # neither rank tears gloo down while the other still uses it
    torch.distributed.destroy_process_group()
    # Then out, before Python frees the wrapped model: torch's teardown of its gloo group (the DDP
    # reducer's destructor joins gloo's thread while holding the GIL, which that thread may be
    # waiting for) now and then hung a rank, or aborted it ("terminate called without an active
    # exception"), after its work was done: about 1 run in 20 on a loaded 2-core machine.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
