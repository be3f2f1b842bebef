"""A thin define-by-run autograd over coarse operations.

Each operation (a whole fused RNN sequence, a dense layer, a loss, ...) computes its output arrays
and records one backward closure; ``loss.backward()`` walks the recorded graph once in reverse
topological order. There is no per-scalar graph and no Python loop over time: a recurrent layer is
one node whose backward is one call to the fused kernels. Arrays are NumPy or CuPy (``xp``).
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np

from .._typing import Array, ArrayLike, DTypeLike
from .._xp import array_module

_grad_enabled = True


@contextlib.contextmanager
def no_grad() -> Iterator[None]:
    """Inside, operations record nothing (inference: no backward, less memory)."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, False
    try:
        yield
    finally:
        _grad_enabled = previous


def grad_enabled() -> bool:
    return _grad_enabled


def needs_grad(parents: Sequence[Optional["Tensor"]]) -> bool:
    """Whether an operation on ``parents`` is recorded for a backward (else it may skip saving)."""
    return _grad_enabled and any(p is not None and p.requires_grad for p in parents)


class Tensor:
    """An array with, if it requires a gradient, the operation that made it."""

    __slots__ = ("data", "grad", "requires_grad", "parents", "backward_fn", "name", "lengths", "host")

    def __init__(self, data: Array, requires_grad: bool = False, name: Optional[str] = None):
        self.data = data
        # (B,) valid steps of a (B, T, ...) sequence, set by masking layers (Embedding(mask_zero=True),
        # explicit lengths) and carried by layers that keep the time axis; the RNN kernels and the
        # losses read it. None: every step is valid.
        self.lengths: Optional[Array] = None
        # The NumPy array ``data`` was copied from when a model moved an input to the GPU (else None):
        # masking layers read ids and padding from it without waiting for the GPU.
        self.host: Optional[Array] = None
        self.grad: Optional[Array] = None
        self.requires_grad = bool(requires_grad)
        self.parents: tuple = ()
        self.backward_fn: Optional[Callable] = None
        self.name = name

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def xp(self) -> Any:
        """The array module of the data: numpy or cupy."""
        return array_module(self.data)

    def numpy(self) -> np.ndarray:
        """The data as a NumPy array (copied from the GPU if it lives there)."""
        return self.data.get() if hasattr(self.data, "get") else np.asarray(self.data)

    def __repr__(self) -> str:
        return f"Tensor(shape={tuple(self.shape)}, dtype={self.dtype}, requires_grad={self.requires_grad})"

    def backward(self, grad: Optional[Array] = None) -> None:
        """Accumulates d(self)/d(leaf) into every leaf's ``.grad`` that requires a gradient."""
        if not self.requires_grad:
            raise RuntimeError("backward: this tensor does not depend on anything that requires a gradient")
        if grad is None:
            if self.data.size != 1:
                raise ValueError(f"grad: required for a non-scalar tensor of shape {tuple(self.shape)}")
            grad = self.xp.ones_like(self.data)
        grads = {id(self): grad}
        for node in reversed(_topological_order(self)):
            g = grads.pop(id(node), None)
            if g is None:
                continue
            if node.backward_fn is None:  # a leaf: a parameter or an input that asked for it
                node.grad = g if node.grad is None else node.grad + g
                continue
            for parent, parent_grad in zip(node.parents, node.backward_fn(g)):
                if parent is None or parent_grad is None or not parent.requires_grad:
                    continue
                key = id(parent)
                grads[key] = parent_grad if key not in grads else parent.accumulate(grads[key], parent_grad)

    @staticmethod
    def accumulate(total: Any, more: Any) -> Any:
        return total + more


class _Outputs(Tensor):
    """The joint node of a multi-output operation: its gradient is a list, one slot per output."""

    __slots__ = ()

    @staticmethod
    def accumulate(total: Any, more: Any) -> Any:
        return [a if b is None else b if a is None else a + b for a, b in zip(total, more)]


def topological_order(roots: Sequence[Any], parents_of: Callable[[Any], Sequence[Any]]) -> list:
    """Nodes reachable from ``roots``, each after all its parents (``parents_of(node)``), iteratively:
    graphs can be deeper than Python's recursion limit."""
    order, seen, stack = [], set(), [(node, False) for node in reversed(roots)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        stack.extend((p, False) for p in reversed(parents_of(node)) if id(p) not in seen)
    return order


def _topological_order(root):
    return topological_order([root], lambda node: [p for p in node.parents if p is not None and p.requires_grad])


def record(data: Array, parents: Sequence[Optional[Tensor]], backward: Callable, name: Optional[str] = None) -> Tensor:
    """A new tensor holding ``data``, made from ``parents`` by an operation whose ``backward(grad)``
    returns one gradient (or None) per parent."""
    out = Tensor(data, name=name)
    if needs_grad(parents):
        out.requires_grad = True
        out.parents = tuple(parents)
        out.backward_fn = backward
    return out


def record_many(datas: Sequence, parents: Sequence[Optional[Tensor]], backward: Callable) -> list:
    """Tensors for the outputs of one operation. ``backward(grads)`` gets a list with one gradient
    per output (None where an output was not used) and returns one per parent."""
    joint = _Outputs(None)
    if not needs_grad(parents):
        return [Tensor(d) for d in datas]
    joint.requires_grad = True
    joint.parents = tuple(parents)
    joint.backward_fn = backward
    outputs = []
    for i, data in enumerate(datas):
        def pick(g, i=i, n=len(datas)):
            slots = [None] * n
            slots[i] = g
            return (slots,)
        out = Tensor(data)
        out.requires_grad = True
        out.parents = (joint,)
        out.backward_fn = pick
        outputs.append(out)
    return outputs


def as_tensor(value: ArrayLike, dtype: Optional[DTypeLike] = None) -> Tensor:
    """``value`` as a Tensor (arrays are wrapped, not copied, when the dtype already matches)."""
    if isinstance(value, Tensor):
        return value
    xp = array_module(value)
    data = xp.asarray(value, dtype=dtype)
    return Tensor(data)
