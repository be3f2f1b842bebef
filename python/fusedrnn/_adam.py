"""The fused Adam step of the training layer (csrc/cpu/adam.h) on host arrays, where the compiled
module is there: beside the data path, as ``_matmul`` is."""

from __future__ import annotations

import numpy as np

from . import _native


def fused_update(var, grad, m, v, alpha: float, beta_1: float, beta_2: float, epsilon: float) -> bool:
    """One pass of Adam over var, m, v (in place; all of var's shape, grad too) with the bias-corrected
    step ``alpha``. False, with nothing changed, where it cannot run (no compiled module, a GPU or
    non-contiguous var): the caller's array form then does the step."""
    core = _native.core()
    if core is None or not isinstance(var, np.ndarray) or not var.flags.c_contiguous:
        return False
    core.adam_update(var, np.ascontiguousarray(grad), m, v, alpha, beta_1, beta_2, epsilon,
                     _native.get_num_threads())
    return True
