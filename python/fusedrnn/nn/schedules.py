"""Learning-rate schedules: callables ``schedule(step) -> float`` usable as an optimizer's learning_rate.

``step`` is the optimizer's ``iterations`` before the update (0 for the first batch), as in Keras:
the schedules count batches, not epochs.
"""

from __future__ import annotations

import bisect
import math


class LearningRateSchedule:
    """Base class: ``__call__(step) -> float`` and ``get_config()``."""

    def __call__(self, step: int) -> float:
        raise NotImplementedError

    def get_config(self) -> dict:
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class ExponentialDecay(LearningRateSchedule):
    """initial_learning_rate * decay_rate ** (step / decay_steps); with ``staircase`` the exponent is
    floored, so the rate drops by ``decay_rate`` every ``decay_steps`` steps (PyTorch's StepLR)."""

    def __init__(self, initial_learning_rate: float, decay_steps: int, decay_rate: float, staircase: bool = False):
        if not decay_steps > 0:
            raise ValueError(f"decay_steps: must be positive, got {decay_steps}")
        self.initial_learning_rate = float(initial_learning_rate)
        self.decay_steps = decay_steps
        self.decay_rate = float(decay_rate)
        self.staircase = bool(staircase)

    def __call__(self, step: int) -> float:
        exponent = step / self.decay_steps
        if self.staircase:
            exponent = math.floor(exponent)
        return self.initial_learning_rate * self.decay_rate ** exponent

    def get_config(self) -> dict:
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase}


class PiecewiseConstantDecay(LearningRateSchedule):
    """values[0] while step <= boundaries[0], values[1] while step <= boundaries[1], ..., values[-1]
    after the last boundary (Keras's rule). len(values) == len(boundaries) + 1."""

    def __init__(self, boundaries, values):
        boundaries, values = list(boundaries), [float(v) for v in values]
        if len(values) != len(boundaries) + 1:
            raise ValueError(f"values: expected len(boundaries) + 1 = {len(boundaries) + 1} values, "
                             f"got {len(values)}")
        if any(later <= earlier for earlier, later in zip(boundaries, boundaries[1:])):
            raise ValueError(f"boundaries: must be increasing, got {boundaries}")
        self.boundaries = boundaries
        self.values = values

    def __call__(self, step: int) -> float:
        return self.values[bisect.bisect_left(self.boundaries, step)]

    def get_config(self) -> dict:
        return {"boundaries": self.boundaries, "values": self.values}


# The step schedule of the issue: constant pieces between step boundaries.
StepDecay = PiecewiseConstantDecay

_BY_NAME = {cls.__name__: cls for cls in (ExponentialDecay, PiecewiseConstantDecay)}


def serialize(schedule: LearningRateSchedule) -> dict:
    return {"class_name": type(schedule).__name__, "config": schedule.get_config()}


def deserialize(config: dict) -> LearningRateSchedule:
    cls = _BY_NAME.get(config.get("class_name"))
    if cls is None:
        raise ValueError(f"schedule: unknown class {config.get('class_name')!r}; expected one of {sorted(_BY_NAME)}")
    return cls.from_config(config["config"])
