"""Callbacks for ``Model.fit``, with Keras's names and semantics: EarlyStopping, ModelCheckpoint,
CSVLogger (and History, in fusedrnn.nn.history, which fit always adds).

Hooks receive ``logs``, a dict of floats: per batch the running "loss" and metrics of the epoch so
far; per epoch those plus "val_*" when there is validation data. Epochs count from 0 in the hooks
(and from 1 in file names and messages, as in Keras). A callback stops training by setting
``self.model.stop_training = True``.
"""

from __future__ import annotations

import csv
import math
import os
import sys
import warnings
from typing import TYPE_CHECKING, Any, Iterable, Optional

if TYPE_CHECKING:  # only for the annotations: models imports this module
    from .models import Model

# What the hooks receive: the running loss and metrics by name (per epoch also "val_*").
Logs = Optional[dict[str, float]]

__all__ = ["Callback", "CallbackList", "EarlyStopping", "ModelCheckpoint", "CSVLogger"]


class Callback:
    """Base class: override the hooks you need. ``self.model`` and ``self.params`` (epochs, steps,
    verbose) are set by fit before ``on_train_begin``."""

    def __init__(self) -> None:
        self.model: Any = None  # the Model being fitted (Any: hooks use it without a None check)
        self.params: dict[str, Any] = {}

    def set_model(self, model: Model) -> None:
        self.model = model

    def set_params(self, params: dict[str, Any]) -> None:
        self.params = params

    def on_train_begin(self, logs: Logs = None) -> None:
        pass

    def on_train_end(self, logs: Logs = None) -> None:
        pass

    def on_epoch_begin(self, epoch: int, logs: Logs = None) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        pass

    def on_batch_begin(self, batch: int, logs: Logs = None) -> None:
        pass

    def on_batch_end(self, batch: int, logs: Logs = None) -> None:
        pass

    def on_train_batch_begin(self, batch: int, logs: Logs = None) -> None:
        self.on_batch_begin(batch, logs)

    def on_train_batch_end(self, batch: int, logs: Logs = None) -> None:
        self.on_batch_end(batch, logs)


class CallbackList:
    """Calls a hook on every callback in order."""

    def __init__(self, callbacks: Iterable[Callback], model: Model, params: dict[str, Any]):
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks: expected Callback instances, got {type(cb).__name__}")
            cb.set_model(model)
            cb.set_params(params)

    def __getattr__(self, hook: str) -> Any:
        if not hook.startswith("on_"):
            raise AttributeError(hook)

        def call(*args):
            for cb in self.callbacks:
                getattr(cb, hook)(*args)
        return call


def _resolve_mode(monitor, mode):
    """'max' or 'min' ('auto': max for accuracies, else min, as Keras decides)."""
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode: expected 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        return "max" if monitor.endswith(("acc", "accuracy", "auc")) else "min"
    return mode


def _better(mode, a, b) -> bool:
    return a > b if mode == "max" else a < b


def _monitored(logs, monitor, who):
    value = (logs or {}).get(monitor)
    if value is None:
        warnings.warn(f"{who}: the monitored quantity {monitor!r} is not in the logs "
                      f"(available: {', '.join(sorted(logs or {})) or 'none'}); skipping", RuntimeWarning, stacklevel=3)
    return value


class EarlyStopping(Callback):
    """Stops training when ``monitor`` has not improved by more than ``min_delta`` for ``patience``
    epochs. ``mode``: "min", "max" or "auto" (max for accuracies, else min). ``restore_best_weights``:
    when it stops, the weights of the best epoch are put back. ``baseline``: the value to beat first."""

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0.0, patience: int = 0, verbose: int = 0,
                 mode: str = "auto", baseline: Optional[float] = None, restore_best_weights: bool = False,
                 start_from_epoch: int = 0):
        super().__init__()
        self.monitor = monitor
        self.patience = int(patience)
        self.verbose = verbose
        self.baseline = baseline
        self.restore_best_weights = bool(restore_best_weights)
        self.start_from_epoch = int(start_from_epoch)
        self.mode = _resolve_mode(monitor, mode)
        # an improvement is better(current - min_delta, best): min_delta counts towards the mode's direction
        self.min_delta = abs(min_delta) if self.mode == "max" else -abs(min_delta)
        self.on_train_begin()

    def on_train_begin(self, logs: Logs = None) -> None:
        self.wait = 0
        self.stopped_epoch = 0
        self.best_epoch = 0
        self.best_weights = None
        if self.baseline is not None:
            self.best = self.baseline
        else:
            self.best = -math.inf if self.mode == "max" else math.inf

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        current = _monitored(logs, self.monitor, "EarlyStopping")
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
        self.wait += 1
        if _better(self.mode, current - self.min_delta, self.best):
            self.best, self.best_epoch, self.wait = current, epoch, 0
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True
            if self.restore_best_weights and self.best_weights is not None:
                if self.verbose:
                    print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.",
                          file=sys.stderr)
                self.model.set_weights(self.best_weights)

    def on_train_end(self, logs: Logs = None) -> None:
        if self.stopped_epoch > 0 and self.verbose:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping", file=sys.stderr)


class ModelCheckpoint(Callback):
    """Saves the model's weights (``model.save_weights``) after each epoch to ``filepath``, which may
    hold ``{epoch}`` (from 1) and any logged value with a format, e.g.
    ``"ckpt/weights.{epoch:02d}-{val_loss:.3f}.npz"``. ``save_best_only``: only when ``monitor``
    improves (``mode`` as in EarlyStopping). Only weights are saved (``save_weights_only=True``)."""

    def __init__(self, filepath: str | os.PathLike, monitor: str = "val_loss", verbose: int = 0,
                 save_best_only: bool = False, save_weights_only: bool = True, mode: str = "auto",
                 save_freq: str = "epoch", initial_value_threshold: Optional[float] = None):
        super().__init__()
        if not save_weights_only:
            raise ValueError("ModelCheckpoint: only weights can be saved (save_weights_only=True); rebuild the "
                             "model in code and load_weights to restore it")
        if save_freq != "epoch":
            raise ValueError(f"ModelCheckpoint: save_freq must be 'epoch', got {save_freq!r}")
        self.filepath = os.fspath(filepath)
        self.monitor = monitor
        self.verbose = verbose
        self.save_best_only = bool(save_best_only)
        self.mode = _resolve_mode(monitor, mode)
        if initial_value_threshold is not None:
            self.best = initial_value_threshold
        else:
            self.best = -math.inf if self.mode == "max" else math.inf

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        logs = logs or {}
        if self.save_best_only:
            current = _monitored(logs, self.monitor, "ModelCheckpoint")
            if current is None or not _better(self.mode, current, self.best):
                return
            self.best = current
        path = self.filepath.format(epoch=epoch + 1, **logs)
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        self.model.save_weights(path)
        if self.verbose:
            print(f"Epoch {epoch + 1}: saved weights to {path}", file=sys.stderr)


class CSVLogger(Callback):
    """Writes one row per epoch (``epoch`` then every logged value, columns sorted) to ``filename``;
    ``append=True`` continues an existing file (without a second header)."""

    def __init__(self, filename: str | os.PathLike, separator: str = ",", append: bool = False):
        super().__init__()
        self.filename = os.fspath(filename)
        self.sep = separator
        self.append = bool(append)
        self._file: Any = None  # the open file between on_train_begin and on_train_end
        self._writer: Any = None  # a csv.DictWriter once the first epoch's keys are known
        self.keys: Any = None  # the logged names (columns after "epoch"), from the first epoch

    def on_train_begin(self, logs: Logs = None) -> None:
        self._has_header = self.append and os.path.exists(self.filename) and os.path.getsize(self.filename) > 0
        self._file = open(self.filename, "a" if self.append else "w", newline="", encoding="utf-8")
        self._writer = None

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        logs = logs or {}
        if self._writer is None:
            self.keys = sorted(logs)
            self._writer = csv.DictWriter(self._file, fieldnames=["epoch"] + self.keys, delimiter=self.sep)
            if not self._has_header:
                self._writer.writeheader()
        self._writer.writerow({"epoch": epoch, **{k: logs.get(k, "NA") for k in self.keys}})
        self._file.flush()

    def on_train_end(self, logs: Logs = None) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
