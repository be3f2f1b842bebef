"""Models: ``Sequential``, the functional ``Model(inputs, outputs)`` (or a subclass with its own ``call``),
and the Keras training API: compile, fit, evaluate, predict, summary, save_weights/load_weights.

One training step: forward (training=True) -> loss per output (masked over padding by the output's
``lengths``) -> backward -> ``optimizer.apply_gradients`` on the trainable weights -> grads cleared.

Data: ``x`` and ``y`` are arrays, or lists of arrays for several inputs/outputs, with the samples
on axis 0. ``lengths`` (B,) marks the valid steps of a padded sequence input (a list aligned with
the inputs for several; None entries for inputs that are not sequences); ``Embedding(mask_zero=True)``
finds them itself. Progress (tqdm) goes to stderr.

The GPU: ``model.to("cuda")`` (or ``compile(..., device="cuda")``) moves the weights and the
optimizer's state to the GPU as CuPy arrays (weights built later are made there); ``to("cpu")``
brings them back. Then the model takes NumPy data (each batch is copied to the GPU once, and the
host copy is kept for what needs it on the host: ids and padding of masking layers) or CuPy data,
and fit, evaluate, train_on_batch and the optimizers run on the GPU without waiting for it at
every step: the loss and metrics are read back every ``GPU_LOG_EVERY`` batches and at the end of
each epoch, so the per-batch logs (progress bar, callbacks' batch hooks) lag by up to that many
batches, and a bad class id in a GPU batch raises when they are read (fusedrnn.nn.deferred).
``predict`` returns NumPy arrays, copied once at the end. CuPy data on a model on the CPU is a
TypeError. Dropout masks come from a counter-based generator that draws the same bits on both
devices (fusedrnn._dropout), so a seed gives the same training on both.
Checkpoints (save_weights) write host copies.
"""

from __future__ import annotations

import copy
import functools
import os
from typing import Any, Callable, Optional, Sequence

import numpy as np

from . import losses as _losses
from . import metrics as _metrics
from . import optimizers as _optimizers
from . import saving as _saving
from .. import ops
from . import _training
from ._training import Training, _as_list
from .autograd import Tensor, topological_order
from .history import History
from .layers.base import (Input, InputLayer, Layer, SymbolicTensor, _has_symbolic, _unique, device_arg, device_scope,
                          is_array, map_structure, to_device, unique_name)
from .layers.core import Embedding

__all__ = ["Model", "Sequential"]

# fit reads the loss and metrics back from the GPU every this many batches (the loop's own value,
# fusedrnn.nn._training.GPU_LOG_EVERY, is the one it uses)
GPU_LOG_EVERY = _training.GPU_LOG_EVERY


def _format_shape(shape):
    if isinstance(shape, list):
        return ", ".join(_format_shape(s) for s in shape)
    return "?" if shape is None else str(tuple(shape)).replace(",)", ")")


class Model(Training, Layer):
    """The functional model ``Model(inputs, outputs)``: inputs from ``Input``, outputs from calling
    layers on them (several of each allowed, as lists). Without inputs/outputs, subclass and define
    ``call(self, inputs, training=False)``; layers held in attributes are tracked."""

    def __init__(self, inputs: SymbolicTensor | Sequence[SymbolicTensor] | None = None,
                 outputs: SymbolicTensor | Sequence[SymbolicTensor] | None = None, name: Optional[str] = None,
                 **kwargs: Any):
        super().__init__(name=name if name is not None else unique_name(_default_name(self)), **kwargs)
        self.stop_training = False
        self._device = "cpu"
        self.optimizer: Optional[_optimizers.Optimizer] = None
        self.history: Optional[History] = None
        self._compiled: Optional[dict] = None
        self._resolved: Optional[dict] = None
        self._functional = inputs is not None or outputs is not None
        if not self._functional:
            return
        if inputs is None or outputs is None:
            raise ValueError("Model: give both inputs and outputs (or neither, to subclass)")
        self._single_input = not isinstance(inputs, (list, tuple))
        self._single_output = not isinstance(outputs, (list, tuple))
        self.inputs, self.outputs = _as_list(inputs), _as_list(outputs)
        for t in self.inputs:
            if not (isinstance(t, SymbolicTensor) and isinstance(t.node.layer, InputLayer)):
                raise TypeError(f"Model: inputs must come from Input(...), got {t!r}")
        for t in self.outputs:
            if not isinstance(t, SymbolicTensor):
                raise TypeError(f"Model: outputs must be symbolic tensors from calling layers on Inputs, got {t!r}")
        self._nodes = _topological_nodes(self.outputs)
        given = {id(t) for t in self.inputs}
        for node in self._nodes:
            if isinstance(node.layer, InputLayer) and id(node.outputs[0]) not in given:
                raise ValueError(f"Model: the outputs depend on input {node.layer.name!r}, which is not in inputs")
        self._model_layers: list[Layer] = []
        for node in [t.node for t in self.inputs] + self._nodes:
            if node.layer not in self._model_layers:
                self._model_layers.append(node.layer)
        _check_unique_names(self._model_layers)
        self.built = True
        self.input_shape = [t.shape for t in self.inputs] if not self._single_input else self.inputs[0].shape
        self.output_shape = self.compute_output_shape(self.input_shape)

    # -- structure

    @property
    def layers(self) -> list[Layer]:
        return list(self._model_layers) if self._functional else self._sublayers()

    def get_layer(self, name: Optional[str] = None, index: Optional[int] = None) -> Layer:
        if index is not None:
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"{self.name}: no layer named {name!r} (have {', '.join(l.name for l in self.layers)})")

    def named_weights(self) -> list[tuple[str, Tensor]]:
        """[("layername/weightname", Tensor)] over the layers, in order, each weight once: the names
        that save_weights writes."""
        named = [(f"{self.name}/{n}", t) for n, t, _ in self._own_weights]
        for layer in self.layers:
            named.extend(layer.named_weights())
        return _unique(named)

    @property
    def output_names(self) -> list[str]:
        if self._functional:
            names = [t.node.layer.name if len(t.node.outputs) == 1 else f"{t.node.layer.name}_{t.index}"
                     for t in self.outputs]
        else:
            names = [f"output_{i + 1}" for i in range(self._output_count())]
        return names if len(set(names)) == len(names) else [f"{n}_{i}" for i, n in enumerate(names)]

    def _output_count(self) -> int:
        return len(self.outputs) if self._functional else getattr(self, "_outputs_seen", 1)

    # -- device

    @property
    def device(self) -> str:
        """Where the weights live: "cpu" (NumPy arrays) or "cuda" (CuPy arrays)."""
        return self._device

    def to(self, device: str) -> Model:
        """Moves the weights and the optimizer's state to ``device`` ("cpu" or "cuda") in place, and
        makes the weights of layers built later there; returns the model. Gradients are dropped."""
        device = device_arg(device)
        if device == "cuda":
            ops.require_cuda()  # a clear error now if the backend, CuPy or a device is missing
        convert = functools.partial(to_device, device=device)
        for _, tensor in self.named_weights():
            tensor.data = convert(tensor.data)
            tensor.grad = None
        if self.optimizer is not None:
            self.optimizer.move_slots(convert)
        self._device = device
        return self

    def __call__(self, inputs: Any, **kwargs: Any) -> Any:
        if self._device == "cpu" or _has_symbolic((inputs, kwargs)):
            return super().__call__(inputs, **kwargs)
        inputs = map_structure(_to_gpu, self._convert_inputs(inputs))
        kwargs = {k: v if k == "lengths" else map_structure(_to_gpu, v) for k, v in kwargs.items()}
        with device_scope(self._device):
            return super().__call__(inputs, **kwargs)

    def _check_data_device(self, x, y=None):
        arrays = _as_list(x) + ([] if y is None else _as_list(y))
        if self._device == "cpu" and any(ops.is_device_array(a) for a in arrays):
            raise TypeError(f"x: GPU (CuPy) arrays, but {self.name} is on the CPU; move it first with "
                            "model.to('cuda') (or compile(..., device='cuda'))")

    # -- running

    def call(self, inputs: Any, training: bool = False) -> Any:
        if not self._functional:
            raise NotImplementedError(f"{type(self).__name__}: a subclassed Model must define call()")
        values = self._bind_inputs(inputs)
        lookup = lambda t: values[id(t)] if isinstance(t, SymbolicTensor) else t  # noqa: E731
        for node in self._nodes:
            if isinstance(node.layer, InputLayer):
                continue
            kwargs = map_structure(lookup, node.kwargs)
            kwargs.setdefault("training", training)
            out = node.layer(map_structure(lookup, node.inputs), **kwargs)
            for symbol, value in zip(node.outputs, _as_list(out)):
                values[id(symbol)] = value
        outputs = [values[id(t)] for t in self.outputs]
        return outputs[0] if self._single_output else outputs

    def _bind_inputs(self, inputs):
        given = _as_list(inputs)
        if len(given) != len(self.inputs):
            raise ValueError(f"{self.name}: expected {len(self.inputs)} input(s), got {len(given)}")
        values = {}
        for symbol, value in zip(self.inputs, given):
            _check_input_shape(self, symbol, value)
            values[id(symbol)] = value
        return values

    def _convert_inputs(self, inputs):
        if not self._functional:
            return super()._convert_inputs(inputs)
        given = _as_list(inputs)
        if len(given) != len(self.inputs):
            raise ValueError(f"{self.name}: expected {len(self.inputs)} input(s), got {len(given)}")
        converted = [_convert_to(value, symbol.dtype) for value, symbol in zip(given, self.inputs)]
        return converted[0] if not isinstance(inputs, (list, tuple)) else converted

    def compute_output_shape(self, input_shape: Any) -> Any:
        if not self._functional:
            return super().compute_output_shape(input_shape)
        shapes = [t.shape for t in self.outputs]
        return shapes[0] if self._single_output else shapes

    # -- compile

    def compile(self, optimizer: str | _optimizers.Optimizer = "rmsprop", loss: Any = None, metrics: Any = None,
                loss_weights: Optional[Sequence[float] | dict[str, float]] = None,
                device: Optional[str] = None) -> None:
        """optimizer: a name ("adam", "sgd", "rmsprop") or an Optimizer. loss: a name, Loss or callable,
        or a list/dict (by output name) for several outputs. metrics: a list applied to every output,
        or a list of lists / dict per output. loss_weights: a list/dict of factors for the total loss.
        device: "cpu" or "cuda" moves the model there (``to``); None keeps it where it is."""
        if loss is None:
            raise ValueError("compile: a loss is required")
        device = self._device if device is None else device_arg(device)
        self.optimizer = _optimizers.get(optimizer)
        self.to(device)
        self._compiled = {"loss": loss, "metrics": metrics, "loss_weights": loss_weights}
        self._resolved = None

    def _check_compiled(self):
        if self._compiled is None:
            raise RuntimeError(f"{self.name}: compile the model before fit/evaluate")

    def _resolve(self):
        """Per-output losses, weights and metrics, once the number of outputs is known (after a first call)."""
        self._check_compiled()
        if self._resolved is not None:
            return self._resolved
        names = self.output_names
        spec = self._compiled
        losses = [_losses.get(x) for x in _per_output(spec["loss"], names, "loss")]
        weights = [1.0] * len(names) if spec["loss_weights"] is None else [
            float(w) for w in _per_output(spec["loss_weights"], names, "loss_weights", broadcast=False)]
        metrics_spec = spec["metrics"] or []
        if isinstance(metrics_spec, dict):
            per_output = [_as_list(metrics_spec.get(n, [])) for n in names]
        elif metrics_spec and all(isinstance(m, (list, tuple)) for m in metrics_spec):
            if len(metrics_spec) != len(names):
                raise ValueError(f"metrics: {len(metrics_spec)} lists for {len(names)} outputs")
            per_output = [list(m) for m in metrics_spec]
        else:
            per_output = [list(_as_list(metrics_spec))] * len(names)
        metrics = []
        for i, (specs, loss) in enumerate(zip(per_output, losses)):
            made = []
            for m in specs:
                metric = _metrics.get(m, loss=loss)
                made.append(copy.deepcopy(metric) if metric is m and i > 0 else metric)
            metrics.append(made)
        prefix = [(n + "_") if len(names) > 1 else "" for n in names]
        self._resolved = {"names": names, "losses": losses, "weights": weights, "metrics": metrics, "prefix": prefix}
        return self._resolved

    @property
    def metrics_names(self) -> list[str]:
        r = self._resolve()
        names = ["loss"] + ([p + "loss" for p in r["prefix"]] if len(r["names"]) > 1 else [])
        return names + [p + m.name for p, ms in zip(r["prefix"], r["metrics"]) for m in ms]

    # -- inspection and persistence

    def summary(self, print_fn: Callable[[str], Any] = print) -> None:
        """Prints each layer's name, type, output shape and parameter count, then the totals.

        Counts are of the arrays we hold. The recurrent layers keep two bias vectors (b_ih and b_hh,
        as PyTorch and cuDNN do), so an LSTM has 4*H*(I+H) + 8*H parameters (GRU 3*H*(I+H) + 6*H,
        SimpleRNN H*(I+H) + 2*H): torch.nn's counts, H more per gate than Keras's single-bias LSTM."""
        if not self.built:
            raise ValueError(f"{self.name}: the model is not built yet, so its shapes and parameters are unknown; "
                             "start it with an Input (or give the first layer input_shape=...) or call it on data")
        rows = [(f"{layer.name} ({type(layer).__name__})", _format_shape(layer.output_shape),
                 str(layer.count_params() if layer.built else 0)) for layer in self.layers]
        header = ("Layer (type)", "Output Shape", "Param #")
        widths = [max(len(r[i]) for r in rows + [header]) + 2 for i in range(3)]
        line = lambda r: "".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
        rule = "=" * sum(widths)
        weights = self.weights
        trainable = sum(int(t.data.size) for t in weights if t.requires_grad)
        total = sum(int(t.data.size) for t in weights)
        print_fn(f'Model: "{self.name}"')
        print_fn(rule)
        print_fn(line(header))
        print_fn(rule)
        for row in rows:
            print_fn(line(row))
        print_fn(rule)
        print_fn(f"Total params: {total:,}")
        print_fn(f"Trainable params: {trainable:,}")
        print_fn(f"Non-trainable params: {total - trainable:,}")

    def save_weights(self, path: str | os.PathLike) -> None:
        """Writes every weight under its "layername/weightname" (fusedrnn.nn.saving; atomic .npz)."""
        if not self.built:
            raise ValueError(f"{self.name}: the model is not built yet: there are no weights to save")
        _saving.save_weights(self.named_weights(), path)

    def load_weights(self, path: str | os.PathLike, allow_float_cast: bool = False, by_name: bool = False) -> None:
        """Sets the weights from a file save_weights wrote; nothing changes if it does not match this
        model (the error says what differs). Weights are matched by name; when the names differ (the
        same architecture built again in one session gets "lstm_1" for "lstm") but the file holds the
        same weights in the same order (same weight names within each layer, same shapes), they are
        matched by position, as Keras matches by topology. ``by_name=True``: names only."""
        if not self.built:
            raise ValueError(f"{self.name}: build the model (Input, input_shape or a call on data) before loading")
        named = self.named_weights()
        saved = _saving.read_weights(path)
        if not by_name and set(saved) != {n for n, _ in named} and _same_structure(saved, named):
            named = [(file_name, tensor) for file_name, (_, tensor) in zip(saved, named)]
        _saving.load_weights(named, path, allow_float_cast=allow_float_cast)


class Sequential(Model):
    """A stack of single-input, single-output layers. Start it with ``Input(shape)`` (or give the
    first layer ``input_shape=``) to build it at once, or let the first batch build it. ``seed``
    reseeds the initial weights and dropout of the layers added that have no seed of their own."""

    def __init__(self, layers: Optional[Sequence[Layer | SymbolicTensor]] = None, name: Optional[str] = None,
                 seed: Optional[int] = None):
        super().__init__(name=name)
        self._layers: list[Layer] = []
        self._input: Optional[SymbolicTensor] = None
        self._output: Optional[SymbolicTensor] = None
        self._model_seed = seed
        for layer in layers or []:
            self.add(layer)

    def add(self, layer: Layer | SymbolicTensor) -> None:
        if isinstance(layer, SymbolicTensor):
            if self._layers or self._input is not None or not isinstance(layer.node.layer, InputLayer):
                raise ValueError("Sequential: an Input(...) may only come first")
            self._input = self._output = layer
            return
        if isinstance(layer, InputLayer):
            raise TypeError("Sequential: use Input(shape) (the tensor it returns), not an InputLayer")
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential: expected a layer, got {type(layer).__name__}")
        if any(layer.name == other.name for other in self._layers):
            raise ValueError(f"Sequential: two layers named {layer.name!r}")
        if self._model_seed is not None and layer.seed is None and not layer.built:
            layer._reseed(np.random.SeedSequence([self._model_seed, len(self._layers)]))
        self._layers.append(layer)
        if self._input is None and len(self._layers) == 1 and layer._batch_input_shape is not None:
            self._input = self._output = _input_for(layer, layer._batch_input_shape)
        if self._output is not None:
            self._output = layer(self._output)
            if isinstance(self._output, list):
                raise ValueError(f"Sequential: {layer.name} has several outputs; use the functional Model")
            self.built = True

    @property
    def layers(self) -> list[Layer]:
        return list(self._layers)

    @property
    def output_names(self) -> list[str]:
        return [self._layers[-1].name] if self._layers else ["output_1"]

    def _output_count(self) -> int:
        return 1

    def build(self, input_shape: Any) -> None:
        if self._input is None:
            self._input = self._output = _input_for(self._layers[0] if self._layers else None, input_shape,
                                                    from_data=True)
            for layer in self._layers:
                self._output = layer(self._output)
        self.built = True

    def call(self, inputs: Any, training: bool = False) -> Any:
        if not self._layers:
            raise ValueError(f"{self.name}: no layers")
        if self._input is not None:
            _check_input_shape(self, self._input, inputs)
        x = inputs
        for layer in self._layers:
            x = layer(x, training=training)
            if isinstance(x, list):
                raise ValueError(f"Sequential: {layer.name} has several outputs; use the functional Model")
        return x

    def compute_output_shape(self, input_shape: Any) -> Any:
        shape = input_shape
        for layer in self._layers:
            shape = layer.compute_output_shape(shape)
        return shape


# ----------------------------------------------------------------------------------------- helpers

def _default_name(model):
    return "sequential" if isinstance(model, Sequential) else "model" if type(model) is Model else \
        type(model).__name__.lower()


def _input_for(first_layer, batch_shape, from_data=False):
    """The Input a Sequential starts from: integer ids for an Embedding, floats otherwise. Built from
    a batch of data, only the feature axis is fixed (later batches may have other step counts)."""
    if isinstance(first_layer, Embedding):
        shape = (None,) * len(batch_shape) if from_data else tuple(batch_shape)
        return Input(batch_shape=(None,) + shape[1:], dtype="int64")
    if from_data and len(batch_shape) > 2:
        batch_shape = (None,) * (len(batch_shape) - 1) + tuple(batch_shape[-1:])
    return Input(batch_shape=(None,) + tuple(batch_shape[1:]))


def _same_structure(saved: dict, named: list) -> bool:
    """The file's weights and the model's pair up by position: same count, shapes and last name parts."""
    return len(saved) == len(named) and all(
        file_name.rsplit("/", 1)[-1] == name.rsplit("/", 1)[-1] and tuple(array.shape) == tuple(tensor.shape)
        for (file_name, array), (name, tensor) in zip(saved.items(), named))


def _check_input_shape(model, symbol, value):
    expected = symbol.shape
    if value.ndim != len(expected) or any(e is not None and e != g for e, g in zip(expected[1:], value.shape[1:])):
        raise ValueError(f"{model.name}: input {symbol.node.layer.name!r} expects shape {expected}, "
                         f"got {tuple(value.shape)}")


def _convert_to(value, dtype):
    if isinstance(value, Tensor):
        return value
    if not is_array(value):
        value = np.asarray(value)
    if value.dtype != dtype and (dtype.kind == "f" or value.dtype.kind == "f"):
        value = value.astype(dtype)
    return Tensor(value)


def _topological_nodes(outputs):
    return topological_order([t.node for t in outputs], lambda node: [p.node for p in node.parents()])


def _check_unique_names(layers):
    seen = set()
    for layer in layers:
        if layer.name in seen:
            raise ValueError(f"Model: two different layers are named {layer.name!r}; layer names must be unique")
        seen.add(layer.name)


def _per_output(spec, names, what, broadcast=True):
    if isinstance(spec, dict):
        missing = [n for n in names if n not in spec]
        if missing:
            raise ValueError(f"{what}: no entry for output(s) {', '.join(missing)} (outputs: {', '.join(names)})")
        return [spec[n] for n in names]
    if isinstance(spec, (list, tuple)):
        if len(spec) != len(names):
            raise ValueError(f"{what}: {len(spec)} entries for {len(names)} output(s) ({', '.join(names)})")
        return list(spec)
    if not broadcast and len(names) > 1:
        raise ValueError(f"{what}: give a list or dict for {len(names)} outputs")
    return [spec] * len(names)


def _to_gpu(value):
    """A host array or Tensor as a Tensor on the GPU that keeps the host array (``Tensor.host``);
    anything else (GPU data, flags) as it is."""
    data = value.data if isinstance(value, Tensor) else value
    if not isinstance(data, np.ndarray):
        return value
    out = Tensor(to_device(data, "cuda"))
    out.host = data
    out.lengths = value.lengths if isinstance(value, Tensor) else None
    return out
