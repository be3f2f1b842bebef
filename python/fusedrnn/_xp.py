"""``array_module``: which array library (NumPy or CuPy) an array belongs to.

A leaf: the reference, the ops' data path and the training layer all ask it, and it imports
nothing of the package (CuPy only when a CuPy array is seen)."""

from __future__ import annotations

import numpy as np


def array_module(x):
    """numpy or cupy, whichever ``x`` belongs to."""
    if type(x).__module__.startswith("cupy"):
        import cupy

        return cupy
    return np
