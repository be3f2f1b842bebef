"""Weight initializers with Keras's names and formulas, drawn from a NumPy ``Generator``.

An initializer is called as ``init(shape, dtype, rng)`` and returns a NumPy array. Shapes are the
Keras shapes (a Dense kernel is ``(I, U)``, a recurrent kernel ``(H, G*H)``): fan-in and fan-out,
and so the scale of Glorot and the structure of Orthogonal, are what Keras computes. The recurrent
layers then transpose into the op layout. An initializer built with ``seed`` ignores the generator
it is given and draws the same values on every call.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np

from .._typing import ArrayLike, DTypeLike

__all__ = ["Initializer", "Zeros", "Ones", "Constant", "RandomUniform", "RandomNormal", "GlorotUniform",
           "GlorotNormal", "HeUniform", "HeNormal", "Orthogonal", "get"]


def _fans(shape):
    """(fan_in, fan_out) as Keras computes them: the last axis is fan-out, the rest fan-in."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    return int(np.prod(shape[:-1])), shape[-1]


class Initializer:
    """Base class: subclasses implement ``draw(shape, rng) -> float64 array``."""

    def __init__(self, seed: Optional[int] = None):
        self.seed = seed

    def __call__(self, shape: tuple[int, ...], dtype: DTypeLike = np.float32,
                 rng: Optional[np.random.Generator] = None) -> np.ndarray:
        shape = tuple(int(s) for s in shape)
        if self.seed is not None:
            rng = np.random.default_rng(self.seed)
        elif rng is None:
            rng = np.random.default_rng()
        return np.asarray(self.draw(shape, rng), dtype=dtype).reshape(shape)

    def draw(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Zeros(Initializer):
    def draw(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        return np.zeros(shape)


class Ones(Initializer):
    def draw(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        return np.ones(shape)


class Constant(Initializer):
    """A scalar, or an array of exactly the weight's shape (a pretrained embedding matrix)."""

    def __init__(self, value: ArrayLike = 0.0):
        super().__init__()
        self.value = value

    def draw(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        value = np.asarray(self.value, dtype=np.float64)
        if value.ndim == 0:
            return np.full(shape, float(value))
        if value.shape != shape:
            raise ValueError(f"Constant: the value has shape {value.shape}, the weight needs {shape}")
        return value.copy()


class RandomUniform(Initializer):
    def __init__(self, minval: float = -0.05, maxval: float = 0.05, seed: Optional[int] = None):
        super().__init__(seed)
        self.minval, self.maxval = minval, maxval

    def draw(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(self.minval, self.maxval, shape)


class RandomNormal(Initializer):
    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: Optional[int] = None):
        super().__init__(seed)
        self.mean, self.stddev = mean, stddev

    def draw(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        return rng.normal(self.mean, self.stddev, shape)


class GlorotUniform(Initializer):
    """U(-limit, limit), limit = sqrt(6 / (fan_in + fan_out))."""

    def draw(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        fan_in, fan_out = _fans(shape)
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, shape)


class GlorotNormal(Initializer):
    """Truncated normal (at 2 standard deviations), stddev = sqrt(2 / (fan_in + fan_out)) / .8796."""

    def draw(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        fan_in, fan_out = _fans(shape)
        return _truncated_normal(rng, np.sqrt(2.0 / (fan_in + fan_out)) / 0.87962566103423978, shape)


class HeUniform(Initializer):
    """U(-limit, limit), limit = sqrt(6 / fan_in)."""

    def draw(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        limit = np.sqrt(6.0 / _fans(shape)[0])
        return rng.uniform(-limit, limit, shape)


class HeNormal(Initializer):
    def draw(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        return _truncated_normal(rng, np.sqrt(2.0 / _fans(shape)[0]) / 0.87962566103423978, shape)


class Orthogonal(Initializer):
    """Keras's Orthogonal: the Q of a QR of a normal matrix (signs fixed by R's diagonal), transposed
    when the weight is wider than tall, so a recurrent kernel (H, G*H) has orthonormal rows and each
    gate's (H, H) block is orthogonal."""

    def __init__(self, gain: float = 1.0, seed: Optional[int] = None):
        super().__init__(seed)
        self.gain = gain

    def draw(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        if len(shape) < 2:
            raise ValueError(f"Orthogonal: needs a weight of at least 2 dimensions, got shape {shape}")
        rows, cols = int(np.prod(shape[:-1])), shape[-1]
        a = rng.normal(0.0, 1.0, (max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        q = q * np.sign(np.diag(r))
        if rows < cols:
            q = q.T
        return self.gain * q.reshape(shape)


def _truncated_normal(rng, stddev, shape):
    """Normal(0, stddev) redrawn outside two standard deviations."""
    out = rng.normal(0.0, 1.0, shape)
    bad = np.abs(out) > 2.0
    while bad.any():
        out[bad] = rng.normal(0.0, 1.0, int(bad.sum()))
        bad = np.abs(out) > 2.0
    return stddev * out


_NAMES = {
    "zeros": Zeros, "zero": Zeros, "ones": Ones, "one": Ones, "constant": Constant,
    "uniform": RandomUniform, "random_uniform": RandomUniform, "normal": RandomNormal, "random_normal": RandomNormal,
    "glorot_uniform": GlorotUniform, "glorot_normal": GlorotNormal, "he_uniform": HeUniform, "he_normal": HeNormal,
    "orthogonal": Orthogonal,
}


def get(identifier: str | Initializer | Callable[..., Any]) -> Callable[..., Any]:
    """An initializer from a Keras name ("glorot_uniform", "orthogonal", "zeros", ...), an instance
    or any callable ``(shape, dtype, rng) -> array``."""
    if isinstance(identifier, str):
        key = identifier.lower()
        if key not in _NAMES:
            raise ValueError(f"initializer: unknown name {identifier!r}; expected one of {', '.join(sorted(_NAMES))}")
        return _NAMES[key]()
    if callable(identifier):
        return identifier
    raise TypeError(f"initializer: expected a name or a callable, got {type(identifier).__name__}")
