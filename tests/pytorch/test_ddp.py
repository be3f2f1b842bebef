"""fusedrnn.torch under DistributedDataParallel and FSDP: two gloo processes started by torchrun,
each on half of a batch, give the gradients of one process on the whole batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="fusedrnn.torch needs PyTorch (pip install fusedrnn[torch])")

import ddp_worker  # noqa: E402

WORKER = Path(__file__).with_name("ddp_worker.py")

# torch's fully_shard (FSDP2) runs on CPU tensors where its CPU streams record events (torch 2.8 does,
# 2.6 does not).
FSDP_ON_CPU = hasattr(torch.cpu.Stream, "record_event")


@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                    reason="this torch build has no gloo backend")
@pytest.mark.parametrize("kind", ["ddp", pytest.param("fsdp", marks=pytest.mark.skipif(
    not FSDP_ON_CPU, reason=f"torch {torch.__version__}'s fully_shard (FSDP2) does not run on CPU tensors"))])
def test_two_gloo_processes_match_one_process(tmp_path, kind):
    out = tmp_path / "grads.pt"
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(WORKER.parent), os.environ.get("PYTHONPATH", "")]))
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          str(WORKER), str(out), kind], env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    distributed = torch.load(out, weights_only=True)

    single = ddp_worker.model()
    ddp_worker.loss(single, *ddp_worker.batch()).backward()
    for name, p in single.named_parameters():
        # float64: the two runs differ only in how the batch mean is summed (two halves averaged).
        assert torch.allclose(distributed[name], p.grad, rtol=0, atol=1e-10), name
