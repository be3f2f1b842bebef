"""The Keras training loop of ``Model``: train_on_batch, fit, evaluate and predict, over the graph
that ``models.Model`` builds and compiles (fusedrnn.nn.models says what a step does and how data
and the GPU are handled). A mixin: ``Model`` inherits these methods; they read the model's compiled
state (``_resolve``, ``optimizer``, ``_device``) and call the model itself."""

from __future__ import annotations

import functools
import sys
from typing import Any, Optional, Sequence

import numpy as np

from .. import ops
from .._typing import ArrayLike
from .._xp import array_module
from . import deferred
from . import functional as F
from .autograd import no_grad
from .callbacks import Callback, CallbackList
from ._numpy_blas import single_threaded_numpy_blas
from .history import History
from .layers.base import is_array, to_device

GPU_LOG_EVERY = 16  # on the GPU, fit reads the loss and metrics back every this many batches


def _as_list(value):
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _all_layers(layer):
    out = []
    for sub in layer._sublayers():
        out.append(sub)
        out.extend(_all_layers(sub))
    return out


def _serial_numpy_blas(method):
    """Runs ``method`` with numpy's BLAS on one thread (fit, evaluate, predict, train_on_batch)."""
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with single_threaded_numpy_blas():
            return method(*args, **kwargs)
    return wrapper


class Training:
    """fit, evaluate, predict and train_on_batch of a Model (see fusedrnn.nn.models)."""

    def _forward(self, xs, lengths, training):
        outputs = self(xs if len(xs) > 1 else xs[0], training=training,
                       **({} if lengths is None else {"lengths": lengths if len(xs) > 1 else lengths[0]}))
        outputs = _as_list(outputs)
        if not self._functional:
            self._outputs_seen = len(outputs)
        return outputs

    def _losses_of(self, ys, outputs):
        r = self._resolve()
        if len(ys) != len(outputs):
            raise ValueError(f"{self.name}: {len(outputs)} output(s) but {len(ys)} target array(s)")
        parts = [loss(y, out) for loss, y, out in zip(r["losses"], ys, outputs)]
        total = parts[0] if r["weights"][0] == 1.0 else F.scale(parts[0], r["weights"][0])
        for part, weight in zip(parts[1:], r["weights"][1:]):
            total = F.add(total, part if weight == 1.0 else F.scale(part, weight))
        return total, parts

    def _update_metrics(self, ys, outputs):
        for metrics, y, out in zip(self._resolved["metrics"], ys, outputs):
            for metric in metrics:
                metric.update(y, out)

    def _logs(self, loss_sum, part_sums, count):
        """Floats for the logs: on the GPU this is where the host waits for it."""
        deferred.raise_pending()
        r = self._resolved
        logs = {"loss": float(loss_sum) / count}
        if len(r["names"]) > 1:
            logs.update({p + "loss": float(s) / count for p, s in zip(r["prefix"], part_sums)})
        for prefix, metrics in zip(r["prefix"], r["metrics"]):
            logs.update({prefix + m.name: m.result() for m in metrics})
        return logs

    def _reset_metrics(self):
        for metrics in self._resolved["metrics"]:
            for metric in metrics:
                metric.reset()

    @_serial_numpy_blas
    def train_on_batch(self, x: ArrayLike | Sequence[ArrayLike], y: ArrayLike | Sequence[ArrayLike],
                       lengths: Any = None) -> float:
        """One training step on one batch; returns its loss."""
        self._check_compiled()
        self._check_data_device(x, y)
        xs, ys, ls = _prepare(x, y, lengths)
        self._ensure_built(xs, ls)
        self._resolve()
        loss = self._train_step(xs, ys, ls, self.trainable_weights)[0]
        deferred.raise_pending()
        return float(loss)

    def _train_step(self, xs, ys, ls, params):
        """-> loss, [loss per output]: floats, or on the GPU float64 0-d arrays (read later)."""
        ys = self._targets_on_device(ys)
        outputs = self._forward(xs, ls, training=True)
        total, parts = self._losses_of(ys, outputs)
        total.backward()
        self.optimizer.apply_gradients(params)
        for p in params:
            p.grad = None
        self._update_metrics(ys, outputs)
        return _accumulable(total.data), [_accumulable(p.data) for p in parts]

    def _targets_on_device(self, ys):
        """Targets copied to the GPU once per batch (the loss and the metrics both read them)."""
        return ys if self._device == "cpu" else [to_device(y, self._device) for y in ys]

    def _ensure_built(self, xs, ls):
        """Builds the layers from a first batch (a forward without a graph), so the weights exist to train."""
        if not self.built:
            with no_grad():
                self._forward([a[:1] for a in xs], None if ls is None else [None if l is None else l[:1] for l in ls],
                              training=False)
            self.built = True

    @_serial_numpy_blas
    def fit(self, x: Any = None, y: Any = None, batch_size: Optional[int] = 32, epochs: int = 1, verbose: int = 1,
            callbacks: Optional[Sequence[Callback]] = None, validation_split: float = 0.0,
            validation_data: Optional[Sequence[Any]] = None, shuffle: bool = True, initial_epoch: int = 0,
            seed: Optional[int] = None, lengths: Any = None) -> History:
        """Trains for ``epochs`` epochs over (x, y) in batches; returns a History.

        validation_data: (x_val, y_val) or (x_val, y_val, lengths_val); validation_split: the last
        fraction of the samples (taken before shuffling) is held out instead. shuffle: a new order each
        epoch. seed: makes the shuffling and every layer's dropout masks reproducible. verbose: 0
        silent, 1 a progress bar per epoch (loss and metrics per batch, val_* at the end), 2 one line
        per epoch."""
        self._check_compiled()
        self._check_data_device(x, y)
        xs, ys, ls = _prepare(x, y, lengths)
        if validation_data is not None:
            val = _prepare(*_split_validation_data(validation_data))
        elif validation_split:
            if not 0.0 < validation_split < 1.0:
                raise ValueError(f"validation_split: expected a fraction in (0, 1), got {validation_split!r}")
            split = int(len(xs[0]) * (1.0 - validation_split))
            if split == 0 or split == len(xs[0]):
                raise ValueError(f"validation_split={validation_split} leaves an empty training or validation set "
                                 f"from {len(xs[0])} samples")
            val = _slice_all((xs, ys, ls), slice(split, None))
            xs, ys, ls = _slice_all((xs, ys, ls), slice(0, split))
        else:
            val = None
        batch_size = _positive(batch_size or 32, "batch_size")
        rng = np.random.default_rng(seed)
        if seed is not None:
            self._reseed_dropout(seed)
        self._ensure_built(xs, ls)
        r = self._resolve()
        params = self.trainable_weights
        count = len(xs[0])
        steps = -(-count // batch_size)
        self.history = History()
        cbs = CallbackList([self.history] + list(callbacks or []), self,
                           {"epochs": epochs, "steps": steps, "verbose": verbose})
        self.stop_training = False
        on_host = self._device == "cpu"
        cbs.on_train_begin()
        for epoch in range(initial_epoch, epochs):
            cbs.on_epoch_begin(epoch)
            self._reset_metrics()
            order = rng.permutation(count) if shuffle else None
            bar = _progress(verbose, steps, f"Epoch {epoch + 1}/{epochs}")
            loss_sum, part_sums, seen, logs, fresh = 0.0, [0.0] * len(r["names"]), 0, {}, True
            for step in range(steps):
                rows: Any = slice(step * batch_size, (step + 1) * batch_size)
                if order is not None:
                    rows = order[rows]
                batch = _slice_all((xs, ys, ls), rows)
                cbs.on_train_batch_begin(step)
                loss, parts = self._train_step(*batch, params)
                size = len(batch[0][0])
                seen += size
                loss_sum += loss * size
                part_sums = [s + p * size for s, p in zip(part_sums, parts)]
                fresh = on_host or (step + 1) % GPU_LOG_EVERY == 0 or step + 1 == steps
                if fresh:
                    logs = self._logs(loss_sum, part_sums, seen)
                if bar is not None:
                    bar.set_postfix_str(_format_logs(logs), refresh=False)
                    bar.update(1)
                cbs.on_train_batch_end(step, logs)
                if self.stop_training:
                    break
            if not fresh:  # stopped between two reads on the GPU
                logs = self._logs(loss_sum, part_sums, seen)
            epoch_logs = dict(logs)
            if val is not None:
                epoch_logs.update({"val_" + k: v for k, v in self._evaluate_arrays(*val, batch_size).items()})
            if bar is not None:
                bar.set_postfix_str(_format_logs(epoch_logs))
                bar.close()
            elif verbose == 2:
                print(f"Epoch {epoch + 1}/{epochs} - {_format_logs(epoch_logs)}", file=sys.stderr)
            cbs.on_epoch_end(epoch, epoch_logs)
            if self.stop_training:
                break
        cbs.on_train_end()
        return self.history

    def _reseed_dropout(self, seed):
        for k, layer in enumerate(_all_layers(self)):
            layer.rng = np.random.default_rng([seed, k])

    def _evaluate_arrays(self, xs, ys, ls, batch_size):
        self._check_compiled()
        self._ensure_built(xs, ls)
        self._resolve()
        self._reset_metrics()
        loss_sum, part_sums, count = 0.0, None, len(xs[0])
        with no_grad():
            for start in range(0, count, batch_size):
                bx, by, bl = _slice_all((xs, ys, ls), slice(start, start + batch_size))
                by = self._targets_on_device(by)
                outputs = self._forward(bx, bl, training=False)
                total, parts = self._losses_of(by, outputs)
                size = len(bx[0])
                loss_sum += _accumulable(total.data) * size
                values = [_accumulable(p.data) * size for p in parts]
                part_sums = values if part_sums is None else [a + b for a, b in zip(part_sums, values)]
                self._update_metrics(by, outputs)
        return self._logs(loss_sum, part_sums, count)

    @_serial_numpy_blas
    def evaluate(self, x: Any = None, y: Any = None, batch_size: Optional[int] = 32, verbose: int = 0,
                 lengths: Any = None, return_dict: bool = False) -> float | list[float] | dict[str, float]:
        """The loss (and metrics) over (x, y), in inference mode. Returns a float when there is only
        the loss, else a list in the order of ``metrics_names``, or a dict with ``return_dict=True``."""
        self._check_data_device(x, y)
        xs, ys, ls = _prepare(x, y, lengths)
        logs = self._evaluate_arrays(xs, ys, ls, _positive(batch_size or 32, "batch_size"))
        if verbose:
            print(_format_logs(logs), file=sys.stderr)
        if return_dict:
            return logs
        values = [logs[k] for k in self.metrics_names]
        return values[0] if len(values) == 1 else values

    @_serial_numpy_blas
    def predict(self, x: Any, batch_size: Optional[int] = 32, verbose: int = 0,
                lengths: Any = None) -> np.ndarray | list[np.ndarray]:
        """The outputs for x in inference mode (no dropout, no graph), as NumPy arrays (a list for
        several outputs), batch by batch (on the GPU copied to the host once, at the end)."""
        self._check_data_device(x)
        xs, _, ls = _prepare(x, None, lengths)
        batch_size = _positive(batch_size or 32, "batch_size")
        count = len(xs[0])
        chunks = None
        bar = _progress(verbose, -(-count // batch_size), "predict")
        with no_grad():
            for start in range(0, count, batch_size):
                bx, _, bl = _slice_all((xs, [], ls), slice(start, start + batch_size))
                outputs = [o.data for o in self._forward(bx, bl, training=False)]
                chunks = [[o] for o in outputs] if chunks is None else [c + [o] for c, o in zip(chunks, outputs)]
                if bar is not None:
                    bar.update(1)
        if bar is not None:
            bar.close()
        if chunks is None:
            raise ValueError("predict: x has no samples")
        results = [to_device(array_module(c[0]).concatenate(c, axis=0), "cpu") for c in chunks]
        return results[0] if len(results) == 1 else results


def _prepare(x: Any, y: Any, lengths: Any) -> tuple[list, list, Optional[list]]:
    """Lists of arrays (x per input, y per output, lengths per input or None), same sample counts."""
    if x is None:
        raise ValueError("x: no input data given")
    xs = [_as_array(a) for a in _as_list(x)]
    ys = [] if y is None else [_as_array(a) for a in _as_list(y)]
    ls = None
    if lengths is not None:
        ls = list(lengths) if isinstance(lengths, (list, tuple)) and len(xs) > 1 else [lengths]
        ls = [None if l is None else np.asarray(l) for l in ls]
        ls += [None] * (len(xs) - len(ls))
    counts = {len(a) for a in xs + ys + [l for l in (ls or []) if l is not None]}
    if len(counts) != 1:
        raise ValueError(f"x, y and lengths must have the same number of samples on axis 0, got {sorted(counts)}")
    return xs, ys, ls


def _as_array(value):
    """NumPy and GPU arrays (CuPy, or any with __cuda_array_interface__ / CUDA DLPack) as they are;
    anything else through np.asarray."""
    if is_array(value):
        return value
    if ops.is_device_array(value):
        return ops.as_array("x", value)  # a CuPy view; RuntimeError naming CuPy where it is missing
    return np.asarray(value)


def _split_validation_data(data):
    if not isinstance(data, (list, tuple)) or len(data) not in (2, 3):
        raise ValueError("validation_data: expected (x_val, y_val) or (x_val, y_val, lengths_val)")
    return tuple(data) if len(data) == 3 else (data[0], data[1], None)


def _slice_all(parts: tuple[list, list, Optional[list]], rows: Any) -> tuple[list, list, Optional[list]]:
    xs, ys, ls = parts
    return ([_take(a, rows) for a in xs], [_take(a, rows) for a in ys],
            None if ls is None else [None if l is None else _take(l, rows) for l in ls])


def _take(array, rows):
    """array[rows]; rows (a slice or NumPy indices) moved to the GPU for a CuPy array."""
    if isinstance(array, np.ndarray) or isinstance(rows, slice):
        return array[rows]
    return array[array_module(array).asarray(rows)]


def _accumulable(value):
    """A 0-d loss value to sum over batches: a float on the host; on the GPU a float64 0-d array,
    so that summing does not wait for the GPU."""
    return value.astype(np.float64) if type(value).__module__.startswith("cupy") else float(value)


def _positive(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{what}: expected a positive integer, got {value!r}")
    return int(value)


def _format_logs(logs):
    return " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())


def _progress(verbose, steps, desc):
    if verbose != 1:
        return None
    from tqdm import tqdm

    return tqdm(total=steps, desc=desc, unit="batch", file=sys.stderr, leave=True, dynamic_ncols=True)
