"""Optimizers with Keras's update formulas, updating parameters in place.

``optimizer.apply_gradients(params)`` takes the Tensors to train and updates each ``p.data`` in place
from ``p.grad`` (parameters without a gradient are skipped; the gradients are left as they are:
zeroing them is the model's job). Per-parameter state (momenta, moments) is created on the first
step, on the parameter's device and in its dtype, and keyed by the parameter object.

Gradient clipping, the chapter's remedy for exploding gradients (at most one of the three, as in
Keras 3): ``clipnorm`` scales each gradient whose own L2 norm exceeds it down to that norm;
``global_clipnorm`` scales all gradients together so that their joint norm is at most it (the
direction of the step is kept); ``clipvalue`` clips each entry to [-clipvalue, clipvalue].

``learning_rate`` is a float or a schedule (fusedrnn.nn.schedules): ``schedule(iterations)``, the
count of steps taken before this one.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Optional, Union

import numpy as np

from .. import _adam
from .._typing import Array
from .._xp import array_module
from . import schedules as _schedules
from .autograd import Tensor

# A learning rate: a number, or a schedule called with the step count (fusedrnn.nn.schedules).
LearningRate = Union[float, Callable[[int], float]]


class Optimizer:
    """Base class: clipping, the learning rate, the step count and the per-parameter slots."""

    slot_names: tuple = ()

    def __init__(self, learning_rate: LearningRate = 0.001, clipnorm: Optional[float] = None,
                 clipvalue: Optional[float] = None, global_clipnorm: Optional[float] = None,
                 name: Optional[str] = None):
        given = [k for k, v in (("clipnorm", clipnorm), ("clipvalue", clipvalue),
                                ("global_clipnorm", global_clipnorm)) if v is not None]
        if len(given) > 1:
            raise ValueError(f"only one of clipnorm, clipvalue and global_clipnorm can be set, got {', '.join(given)}")
        for key, value in (("clipnorm", clipnorm), ("clipvalue", clipvalue), ("global_clipnorm", global_clipnorm)):
            if value is not None and not (isinstance(value, (int, float)) and value > 0):
                raise ValueError(f"{key}: must be a positive number, got {value!r}")
        if not (callable(learning_rate) or (isinstance(learning_rate, (int, float)) and learning_rate >= 0)):
            raise ValueError(f"learning_rate: expected a non-negative number or a schedule, got {learning_rate!r}")
        self.learning_rate = learning_rate
        self.clipnorm = clipnorm
        self.clipvalue = clipvalue
        self.global_clipnorm = global_clipnorm
        self.name = name or type(self).__name__
        self.iterations = 0
        self._slots: dict = {}  # id(param) -> (param, {slot name: array}); the param is held so its id stays unique

    @property
    def current_learning_rate(self) -> float:
        """The learning rate the next step will use."""
        lr = self.learning_rate
        return float(lr(self.iterations)) if callable(lr) else float(lr)

    def apply_gradients(self, params: Iterable[Tensor]) -> None:
        """One step: updates ``p.data`` in place for each Tensor in ``params`` with a ``grad``."""
        pairs = [(p, p.grad) for p in params if p.grad is not None]
        if pairs:
            grads = self._clip([g for _, g in pairs])
            lr = self.current_learning_rate
            for (p, _), g in zip(pairs, grads):
                if g.shape != p.data.shape:
                    raise ValueError(f"gradient of shape {tuple(g.shape)} for a parameter of shape {tuple(p.data.shape)}")
                self._update(p.data, g.astype(p.data.dtype, copy=False), self._slots_of(p), lr)
        self.iterations += 1

    def _clip(self, grads):
        # scales are 0-d float64 arrays on the device: cast, or they would promote float32 gradients
        if self.clipnorm is not None:
            return [g * _scale_to(_norm(g), self.clipnorm).astype(g.dtype) for g in grads]
        if self.global_clipnorm is not None:
            scale = _scale_to(sum(_norm(g) ** 2 for g in grads) ** 0.5, self.global_clipnorm)
            return [g * scale.astype(g.dtype) for g in grads]
        if self.clipvalue is not None:
            return [array_module(g).clip(g, -self.clipvalue, self.clipvalue) for g in grads]
        return grads

    def _slots_of(self, p):
        entry = self._slots.get(id(p))
        if entry is None or entry[0] is not p:
            xp = array_module(p.data)
            entry = (p, {name: xp.zeros_like(p.data) for name in self.slot_names})
            self._slots[id(p)] = entry
        return entry[1]

    def _update(self, var: Array, grad: Array, slots: dict[str, Array], lr: float) -> None:
        """Updates ``var`` in place; ``grad`` has var's dtype; ``slots`` are var-shaped arrays."""
        raise NotImplementedError

    def move_slots(self, convert: Callable[[Array], Array]) -> None:
        """Replaces every slot array by ``convert(array)`` (a model's ``to(device)``)."""
        for _, slots in self._slots.values():
            for name in slots:
                slots[name] = convert(slots[name])

    def get_config(self) -> dict:
        lr = self.learning_rate
        return {"name": self.name,
                "learning_rate": _schedules.serialize(lr) if isinstance(lr, _schedules.LearningRateSchedule) else lr,
                "clipnorm": self.clipnorm, "clipvalue": self.clipvalue, "global_clipnorm": self.global_clipnorm}

    @classmethod
    def from_config(cls, config: dict) -> Optimizer:
        config = dict(config)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = _schedules.deserialize(config["learning_rate"])
        return cls(**config)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(learning_rate={self.learning_rate!r}, iterations={self.iterations})"


def _norm(g):
    """The L2 norm of an array, as a 0-d float64 array on its device (no host round trip)."""
    xp = array_module(g)
    flat = g.reshape(-1).astype(xp.float64, copy=False)
    return xp.sqrt(flat @ flat)


def _scale_to(norm, limit):
    """limit / max(norm, limit): 1 when the norm is within the limit."""
    return limit / array_module(norm).maximum(norm, limit)


class SGD(Optimizer):
    """Keras's SGD: without momentum ``var -= lr * g``; with it ``m = momentum * m - lr * g`` and
    ``var += m`` (nesterov: ``var += momentum * m - lr * g``). For a constant learning rate this is
    PyTorch's SGD (its buffer is ``-m / lr``)."""

    def __init__(self, learning_rate: LearningRate = 0.01, momentum: float = 0.0, nesterov: bool = False,
                 **kwargs: Any):
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum: must be in [0, 1], got {momentum}")
        super().__init__(learning_rate, **kwargs)
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        self.slot_names = ("momentum",) if self.momentum > 0 else ()

    def _update(self, var: Array, grad: Array, slots: dict[str, Array], lr: float) -> None:
        if not self.slot_names:
            var -= lr * grad
            return
        m = slots["momentum"]
        m *= self.momentum
        m -= lr * grad
        if self.nesterov:
            var += self.momentum * m - lr * grad
        else:
            var += m

    def get_config(self) -> dict:
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Keras's Adam: ``m += (g - m)(1 - beta_1)``, ``v += (g^2 - v)(1 - beta_2)``,
    ``var -= lr sqrt(1 - beta_2^t) / (1 - beta_1^t) * m / (sqrt(v) + epsilon)`` with t = iterations + 1;
    amsgrad uses the running maximum of v. PyTorch puts epsilon after the bias correction
    (``m_hat / (sqrt(v_hat) + eps)``): the two agree when epsilon is negligible next to sqrt(v)."""

    def __init__(self, learning_rate: LearningRate = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, amsgrad: bool = False, **kwargs: Any):
        for key, value in (("beta_1", beta_1), ("beta_2", beta_2)):
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{key}: must be in [0, 1), got {value}")
        if not epsilon >= 0:
            raise ValueError(f"epsilon: must be non-negative, got {epsilon}")
        super().__init__(learning_rate, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)
        self.amsgrad = bool(amsgrad)
        self.slot_names = ("m", "v", "v_hat") if self.amsgrad else ("m", "v")

    def _update(self, var: Array, grad: Array, slots: dict[str, Array], lr: float) -> None:
        xp = array_module(var)
        t = self.iterations + 1
        alpha = lr * math.sqrt(1.0 - self.beta_2 ** t) / (1.0 - self.beta_1 ** t)
        m, v = slots["m"], slots["v"]
        if not self.amsgrad and _adam.fused_update(var, grad, m, v, alpha, self.beta_1, self.beta_2, self.epsilon):
            return  # one fused pass (csrc/cpu/adam.h): the array form below makes a dozen passes over memory
        if xp is not np and not self.amsgrad:
            _cupy_adam_kernel()(grad, alpha, self.beta_1, self.beta_2, self.epsilon, var, m, v)  # one kernel
            return
        tmp = grad * (1.0 - self.beta_1)
        m *= self.beta_1
        m += tmp
        xp.multiply(grad, grad, out=tmp)
        tmp *= 1.0 - self.beta_2
        v *= self.beta_2
        v += tmp
        if self.amsgrad:
            v = xp.maximum(slots["v_hat"], v, out=slots["v_hat"])
        xp.sqrt(v, out=tmp)
        tmp += self.epsilon
        xp.divide(m, tmp, out=tmp)
        tmp *= alpha
        var -= tmp

    def get_config(self) -> dict:
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon,
                "amsgrad": self.amsgrad}


_adam_kernel = None


def _cupy_adam_kernel():
    """Adam's update as one CuPy elementwise kernel, the formula of csrc/cpu/adam.cpp (compiled once,
    at the first GPU step). Scalars arrive as Python floats, cast to the arrays' type T."""
    global _adam_kernel
    if _adam_kernel is None:
        import cupy

        _adam_kernel = cupy.ElementwiseKernel(
            "T g, T alpha, T beta1, T beta2, T epsilon", "T var, T m, T v",
            """
            m = beta1 * m + (1 - beta1) * g;
            v = beta2 * v + (1 - beta2) * g * g;
            var -= alpha * m / (sqrt(v) + epsilon);
            """,
            "fusedrnn_adam_update")
    return _adam_kernel


class RMSprop(Optimizer):
    """Keras's RMSprop: ``v = rho v + (1 - rho) g^2`` (centered: minus the square of the running mean
    gradient), ``step = lr * g / sqrt(v + epsilon)``; with momentum ``m = momentum * m + step`` and
    ``var -= m``, else ``var -= step``. PyTorch divides by ``sqrt(v) + eps`` instead: the same when
    epsilon is negligible."""

    def __init__(self, learning_rate: LearningRate = 0.001, rho: float = 0.9, momentum: float = 0.0,
                 epsilon: float = 1e-7, centered: bool = False, **kwargs: Any):
        if not 0.0 <= rho < 1.0:
            raise ValueError(f"rho: must be in [0, 1), got {rho}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum: must be in [0, 1], got {momentum}")
        if not epsilon >= 0:
            raise ValueError(f"epsilon: must be non-negative, got {epsilon}")
        super().__init__(learning_rate, **kwargs)
        self.rho, self.momentum, self.epsilon = float(rho), float(momentum), float(epsilon)
        self.centered = bool(centered)
        self.slot_names = ("velocity",) + (("momentum",) if self.momentum > 0 else ()) + (
            ("average_gradient",) if self.centered else ())

    def _update(self, var: Array, grad: Array, slots: dict[str, Array], lr: float) -> None:
        xp = array_module(var)
        velocity = slots["velocity"]
        velocity *= self.rho
        velocity += (1.0 - self.rho) * grad * grad
        denominator = velocity + self.epsilon
        if self.centered:
            average = slots["average_gradient"]
            average *= self.rho
            average += (1.0 - self.rho) * grad
            denominator -= average * average
        step = lr * grad / xp.sqrt(denominator)
        if self.momentum > 0:
            m = slots["momentum"]
            m *= self.momentum
            m += step
            var -= m
        else:
            var -= step

    def get_config(self) -> dict:
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon,
                "centered": self.centered}


_BY_NAME = {"sgd": SGD, "adam": Adam, "rmsprop": RMSprop}


def get(obj: str | Optimizer | type[Optimizer]) -> Optimizer:
    """An Optimizer from a name ("sgd", "adam", "rmsprop", with Keras's defaults) or an instance."""
    if isinstance(obj, Optimizer):
        return obj
    if isinstance(obj, str):
        cls = _BY_NAME.get(obj.lower())
        if cls is None:
            raise ValueError(f"optimizer: unknown name {obj!r}; expected one of {', '.join(_BY_NAME)}")
        return cls()
    if isinstance(obj, type) and issubclass(obj, Optimizer):
        return obj()
    raise TypeError(f"optimizer: expected a name or an Optimizer, got {type(obj).__name__}")
