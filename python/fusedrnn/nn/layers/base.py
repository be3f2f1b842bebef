"""The Layer base class, symbolic inputs (``Input``) and the graph nodes the functional API records.

A layer is called like a function. On arrays or Tensors it runs (building its weights on the first
call from the input's shape); on the symbolic tensors that ``Input`` returns it records a ``Node``
and returns symbolic outputs with their shapes, from which ``Model(inputs, outputs)`` is made.
Shapes use None for the batch axis (and for any axis of unknown size, e.g. the steps).

Randomness: each layer owns two NumPy generators, one for its initial weights and one for its
dropout masks. A layer given ``seed`` derives both from it; otherwise both are derived from the
global generator at construction, which ``set_random_seed`` resets, so the same code after the same
``set_random_seed`` builds the same weights. ``Sequential(seed=...)`` and ``fit(seed=...)`` reseed a
model's layers.
"""

from __future__ import annotations

import contextlib
import inspect
import re
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np

from .. import initializers
from ..autograd import Tensor
from .. import functional as F
from ... import ops
from ..._typing import Array, ArrayLike, DTypeLike, Shape

__all__ = ["Layer", "InputLayer", "Input", "SymbolicTensor", "Node", "set_random_seed", "clear_session",
           "floatx", "set_floatx"]

_state: dict[str, Any] = {"floatx": "float32", "rng": np.random.default_rng(), "names": {}, "device": "cpu"}
DEVICES = ("cpu", "cuda")


def floatx() -> str:
    """The default float dtype of new layers ("float32" unless set_floatx said otherwise)."""
    return _state["floatx"]


def set_floatx(dtype: DTypeLike) -> None:
    """Sets the default float dtype of layers built from now on: "float32" or "float64"."""
    if np.dtype(dtype) not in (np.float32, np.float64):
        raise ValueError(f"set_floatx: expected 'float32' or 'float64', got {dtype!r}")
    _state["floatx"] = np.dtype(dtype).name


def device_arg(device: str) -> str:
    if device not in DEVICES:
        raise ValueError(f"device: expected 'cpu' or 'cuda', got {device!r}")
    return device


def to_device(array: Array, device: str) -> Array:
    """``array`` (NumPy or CuPy) on ``device``: itself if it is there already, else a copy."""
    if device == "cpu":
        return array.get() if hasattr(array, "get") else array
    import cupy

    return cupy.asarray(array)


@contextlib.contextmanager
def device_scope(device: str) -> Iterator[None]:
    """Weights created inside (layers built lazily on a first call) are put on ``device``."""
    previous, _state["device"] = _state["device"], device_arg(device)
    try:
        yield
    finally:
        _state["device"] = previous


def set_random_seed(seed: Optional[int]) -> None:
    """Reseeds the generator that layers constructed without ``seed`` draw their own seeds from."""
    _state["rng"] = np.random.default_rng(seed)


def clear_session() -> None:
    """Restarts the automatic layer names ("lstm", "lstm_1", ...) from scratch."""
    _state["names"].clear()


def _snake(name: str) -> str:
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def unique_name(prefix: str) -> str:
    """Keras's naming: "lstm", then "lstm_1", "lstm_2", ..."""
    count = _state["names"].get(prefix, 0)
    _state["names"][prefix] = count + 1
    return prefix if count == 0 else f"{prefix}_{count}"


def _new_seed_sequence(seed: Optional[int] = None) -> np.random.SeedSequence:
    if seed is None:
        seed = int(_state["rng"].integers(2**63))
    return np.random.SeedSequence(seed)


# ----------------------------------------------------------------------------------------- structures

def map_structure(fn: Callable[[Any], Any], struct: Any) -> Any:
    """fn applied to every leaf of nested lists, tuples and dicts."""
    if isinstance(struct, (list, tuple)):
        return type(struct)(map_structure(fn, s) for s in struct)
    if isinstance(struct, dict):
        return {k: map_structure(fn, v) for k, v in struct.items()}
    return fn(struct)


def flatten(struct: Any) -> list:
    out: list = []
    map_structure(out.append, struct)
    return out


def is_array(value: Any) -> bool:
    return isinstance(value, np.ndarray) or type(value).__module__.startswith("cupy")


def batchless(shape: Sequence[Any]) -> Shape:
    """A concrete shape with the batch axis shown as None."""
    return (None,) + tuple(int(s) for s in shape[1:])


# ----------------------------------------------------------------------------------------- symbolic graph

class SymbolicTensor:
    """A placeholder for a layer's output in the functional API: shape (None for unknown sizes), dtype,
    and the node (layer call) that produces it."""

    def __init__(self, shape: Sequence[Optional[int]], dtype: DTypeLike, node: Node, index: int = 0):
        self.shape: Shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.node = node
        self.index = index

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def layer(self) -> Layer:
        return self.node.layer

    def __repr__(self) -> str:
        return f"SymbolicTensor(shape={self.shape}, dtype={self.dtype.name}, layer={self.node.layer.name!r})"


class Node:
    """One call of a layer in the functional graph: its symbolic inputs and keyword arguments
    (which may hold symbolic tensors too, e.g. ``initial_state``) and its symbolic outputs."""

    def __init__(self, layer: Layer, inputs: Any, kwargs: dict):
        self.layer = layer
        self.inputs = inputs
        self.kwargs = kwargs
        self.outputs: list[SymbolicTensor] = []

    def parents(self) -> list[SymbolicTensor]:
        return [t for t in flatten((self.inputs, self.kwargs)) if isinstance(t, SymbolicTensor)]


def _has_symbolic(struct) -> bool:
    return any(isinstance(t, SymbolicTensor) for t in flatten(struct))


# ----------------------------------------------------------------------------------------- Layer

_CALL_ARGS: dict = {}


def _call_parameters(layer) -> set:
    """Names ``layer.call`` accepts (cached per class), to pass ``training`` only where it is wanted."""
    cls = type(layer)
    if cls not in _CALL_ARGS:
        params = inspect.signature(layer.call).parameters
        accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        _CALL_ARGS[cls] = None if accepts_any else set(params)
    return _CALL_ARGS[cls]


class Layer:
    """Base class of every layer (and of models).

    Subclasses implement ``build(input_shape)`` (creating weights with ``add_weight``),
    ``call(inputs, training=False, ...)`` on Tensors with ``fusedrnn.nn.functional`` ops, and
    ``compute_output_shape(input_shape)`` (shapes with None for unknown sizes) for the functional API.
    Layers held in attributes (or lists in attributes) are sublayers: their weights are this layer's too.
    """

    def __init__(self, name: Optional[str] = None, trainable: bool = True, dtype: Optional[DTypeLike] = None,
                 seed: Optional[int] = None, input_shape: Optional[Sequence[Optional[int]]] = None,
                 input_dim: Optional[int] = None, batch_input_shape: Optional[Sequence[Optional[int]]] = None,
                 weights: Optional[Sequence[ArrayLike]] = None):
        self.name = name if name is not None else unique_name(_snake(type(self).__name__))
        if not isinstance(self.name, str) or not self.name or "/" in self.name:
            raise ValueError(f"name: expected a non-empty string without '/', got {self.name!r}")
        self._trainable = bool(trainable)
        self.dtype = np.dtype(dtype if dtype is not None else floatx())
        self.seed = seed
        self.built = False
        self._own_weights: list = []  # [short name, Tensor, trainable flag]
        self._initial_weights = weights
        self.input_shape: Any = None  # of the first call, batch axis None (a Shape, or a list of them)
        self.output_shape: Any = None
        if batch_input_shape is None and input_shape is not None:
            batch_input_shape = (None,) + tuple(input_shape)
        if batch_input_shape is None and input_dim is not None:
            batch_input_shape = (None, input_dim)
        self._batch_input_shape: Optional[Shape] = None if batch_input_shape is None else tuple(batch_input_shape)
        self._seed_entropy = _new_seed_sequence(seed).entropy
        self._reseed(np.random.SeedSequence(self._seed_entropy))

    # -- randomness

    def _reseed(self, sequence: np.random.SeedSequence) -> None:
        """Derives the initializer and dropout generators (and the sublayers') from ``sequence``."""
        subs = self._sublayers()
        children = sequence.spawn(2 + len(subs))
        self._init_rng = np.random.default_rng(children[0])
        self.rng = np.random.default_rng(children[1])
        for sub, child in zip(subs, children[2:]):
            sub._reseed(child)

    # -- sublayers and weights

    def _sublayers(self) -> list[Layer]:
        found, seen = [], set()
        for value in list(vars(self).values()):
            for item in (value if isinstance(value, (list, tuple)) else (value,)):
                if isinstance(item, Layer) and id(item) not in seen:
                    seen.add(id(item))
                    found.append(item)
        return found

    def add_weight(self, name: str, shape: Sequence[int], initializer: Any = "glorot_uniform", trainable: bool = True,
                   dtype: Optional[DTypeLike] = None) -> Tensor:
        """A new weight Tensor ``layername/name``, drawn from ``initializer`` with this layer's generator."""
        if any(entry[0] == name for entry in self._own_weights):
            raise ValueError(f"{self.name}: a weight named {name!r} already exists")
        dtype = np.dtype(dtype if dtype is not None else self.dtype)
        value = initializers.get(initializer)(tuple(shape), dtype, self._init_rng)
        value = np.ascontiguousarray(value, dtype=dtype)
        if value.shape != tuple(shape):
            raise ValueError(f"{self.name}/{name}: the initializer gave shape {value.shape}, expected {tuple(shape)}")
        # drawn on the host whatever the device: the same seed gives the same weights everywhere
        tensor = Tensor(to_device(value, _state["device"]), requires_grad=self._trainable and trainable, name=f"{self.name}/{name}")
        self._own_weights.append([name, tensor, bool(trainable)])
        return tensor

    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        """Freezes (False) or unfreezes this layer's weights and its sublayers'."""
        self._trainable = bool(value)
        for _, tensor, flag in self._own_weights:
            tensor.requires_grad = self._trainable and flag
        for sub in self._sublayers():
            sub.trainable = value

    def named_weights(self) -> list[tuple[str, Tensor]]:
        """[("layername/weightname", Tensor)] in a stable order (own weights, then sublayers')."""
        out = [(f"{self.name}/{name}", tensor) for name, tensor, _ in self._own_weights]
        for sub in self._sublayers():
            out.extend((f"{self.name}/{name}", tensor) for name, tensor in sub.named_weights())
        return _unique(out)

    @property
    def weights(self) -> list[Tensor]:
        return [t for _, t in self.named_weights()]

    @property
    def trainable_weights(self) -> list[Tensor]:
        return [t for t in self.weights if t.requires_grad]

    @property
    def non_trainable_weights(self) -> list[Tensor]:
        return [t for t in self.weights if not t.requires_grad]

    def get_weights(self) -> list[np.ndarray]:
        """Copies of the weights as NumPy arrays, in the order of ``weights``."""
        return [np.array(t.numpy(), copy=True) for t in self.weights]

    def set_weights(self, values: Sequence[ArrayLike]) -> None:
        """Sets the weights (in place) from NumPy arrays in the order of ``weights``, checking count and shapes."""
        named = self.named_weights()
        values = list(values)
        if len(values) != len(named):
            raise ValueError(f"{self.name}.set_weights: expected {len(named)} arrays "
                             f"({', '.join(n for n, _ in named) or 'no weights: is the layer built?'}), got {len(values)}")
        for (name, tensor), value in zip(named, values):
            value = np.asarray(value)
            if tuple(value.shape) != tuple(tensor.shape):
                raise ValueError(f"{self.name}.set_weights: {name} has shape {tuple(tensor.shape)}, "
                                 f"got an array of shape {tuple(value.shape)}")
        for (_, tensor), value in zip(named, values):
            tensor.data[...] = tensor.xp.asarray(np.asarray(value), dtype=tensor.dtype)

    def count_params(self) -> int:
        if not self.built:
            raise ValueError(f"{self.name}: not built yet, so its parameters are not known; call it on data "
                             "or give it an input shape first")
        return int(sum(t.data.size for t in self.weights))

    # -- building and calling

    def build(self, input_shape: Any) -> None:
        """Creates the weights for inputs of ``input_shape`` (batch axis None)."""

    def _maybe_build(self, input_shape: Any) -> None:
        if self.built:
            return
        self.build(input_shape)
        self.built = True
        if self._initial_weights is not None:
            self.set_weights(self._initial_weights)
            self._initial_weights = None

    def call(self, inputs: Any, training: bool = False) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.call")

    def compute_output_shape(self, input_shape: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} cannot be used in the functional API: it does not "
                                  "define compute_output_shape")

    def output_dtype(self, input_dtypes: Any) -> np.dtype:
        return self.dtype

    def __call__(self, inputs: Any, **kwargs: Any) -> Any:
        """Runs the layer on arrays or Tensors, or records it in the graph when given symbolic inputs.

        ``lengths`` (B,) (a list aligned with the inputs for several inputs) marks the valid steps of
        sequence inputs; ``training`` switches dropout on."""
        if _has_symbolic((inputs, kwargs)):
            return self._call_symbolic(inputs, kwargs)
        lengths = kwargs.pop("lengths", None)
        inputs = self._convert_inputs(inputs)
        if lengths is not None:
            inputs = _attach_lengths(inputs, lengths)
        kwargs = {k: map_structure(self._convert_leaf, v) for k, v in kwargs.items()}
        if not self.built:
            self._maybe_build(map_structure(lambda t: batchless(t.shape), inputs))
        accepted = _call_parameters(self)
        if accepted is not None:
            kwargs = {k: v for k, v in kwargs.items() if k in accepted or k != "training"}
        outputs = self.call(inputs, **kwargs)
        if self.output_shape is None:
            self.input_shape = map_structure(lambda t: batchless(t.shape), inputs)
            self.output_shape = map_structure(lambda t: batchless(t.shape), outputs)
        return outputs

    def _convert_inputs(self, inputs):
        """Arrays (and lists of numbers) to Tensors: float arrays in this layer's dtype, integer arrays (ids) kept."""
        return map_structure(lambda v: self._convert_leaf(v if is_array(v) or isinstance(v, Tensor)
                                                          else np.asarray(v)), inputs)

    def _convert_leaf(self, value):
        """An array to a Tensor (floats cast to this layer's dtype); anything else as it is."""
        if not is_array(value):
            return value
        if value.dtype.kind == "f" and value.dtype != self.dtype:
            value = value.astype(self.dtype)
        return Tensor(value)

    def _call_symbolic(self, inputs, kwargs):
        shapes = map_structure(lambda t: t.shape, inputs)
        self._maybe_build(shapes)
        out_shapes = self.compute_output_shape(shapes)
        dtype = self.output_dtype(map_structure(lambda t: t.dtype, inputs))
        node = Node(self, inputs, kwargs)
        if isinstance(out_shapes, list):
            node.outputs = [SymbolicTensor(s, dtype, node, i) for i, s in enumerate(out_shapes)]
            outputs = list(node.outputs)
        else:
            node.outputs = [SymbolicTensor(out_shapes, dtype, node, 0)]
            outputs = node.outputs[0]
        if self.output_shape is None:
            self.input_shape, self.output_shape = shapes, out_shapes
        return outputs

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r} built={self.built}>"


def _unique(named):
    seen, out = set(), []
    for name, tensor in named:
        if id(tensor) not in seen:
            seen.add(id(tensor))
            out.append((name, tensor))
    return out


def _attach_lengths(inputs, lengths):
    """inputs with ``lengths`` set: one array for one input (or the first of several), or a list
    aligned with the inputs (None for inputs that are not sequences). Checked: (B,) integers in 1..T."""
    if isinstance(inputs, (list, tuple)):
        per_input = lengths if isinstance(lengths, (list, tuple)) else [lengths] + [None] * (len(inputs) - 1)
        if len(per_input) != len(inputs):
            raise ValueError(f"lengths: expected one entry per input ({len(inputs)}), got {len(per_input)}")
        return [t if ln is None else with_lengths(t, ln) for t, ln in zip(inputs, per_input)]
    return with_lengths(inputs, lengths)


def with_lengths(tensor: Tensor, lengths: ArrayLike) -> Tensor:
    """``tensor`` (B, T, ...) marked with ``lengths`` (checked), as a new Tensor (the caller's is left alone)."""
    if tensor.ndim < 2:
        raise ValueError(f"lengths: given for an input of shape {tuple(tensor.shape)}, which has no time axis")
    lengths = ops.check_lengths(lengths, tensor.shape[0], tensor.shape[1])
    out = F.identity(tensor)
    out.lengths = lengths
    out.host = tensor.host
    return out


def lengths_from_valid(valid: Array, what: str) -> np.ndarray:
    """(B,) lengths (NumPy) from a (B, T) boolean array of valid steps that must be post-padded (every
    row valid from step 0 to its length, then padding). ``what`` names the source in errors. A GPU
    array is copied to the host (a synchronisation): give a host copy where there is one."""
    valid = valid.get() if hasattr(valid, "get") else np.asarray(valid)
    lengths = valid.sum(axis=1).astype(np.int64)
    expected = np.arange(valid.shape[1])[None, :] < lengths[:, None]
    if not np.array_equal(valid, expected):
        row = int(np.nonzero((valid != expected).any(axis=1))[0][0])
        raise ValueError(f"{what}: row {row} has padding before a valid step; only post-padding (valid steps "
                         "first, then padding) is supported, so pad sequences at the end")
    if valid.shape[1] and (lengths == 0).any():
        row = int(np.nonzero(lengths == 0)[0][0])
        raise ValueError(f"{what}: row {row} is all padding; every sequence needs at least one valid step")
    return lengths


# ----------------------------------------------------------------------------------------- inputs

class InputLayer(Layer):
    """The layer behind ``Input``: passes its input through."""

    def __init__(self, batch_shape: Sequence[Optional[int]], dtype: Optional[DTypeLike] = None,
                 name: Optional[str] = None):
        super().__init__(name=name if name is not None else unique_name("input_layer"), dtype=dtype)
        self.built = True
        self.input_shape = self.output_shape = tuple(batch_shape)

    def call(self, inputs: Any) -> Any:  # type: ignore[override]  # no training flag to take
        return inputs

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape


def Input(shape: Optional[int | Sequence[Optional[int]]] = None, batch_size: Optional[int] = None,
          dtype: Optional[DTypeLike] = None, name: Optional[str] = None,
          batch_shape: Optional[Sequence[Optional[int]]] = None) -> SymbolicTensor:
    """A symbolic model input of per-sample ``shape`` (None for a size known only at run time, e.g.
    the steps), e.g. ``Input((None,), dtype="int64")`` for padded ids or ``Input((20, 1))``."""
    if batch_shape is None:
        if shape is None:
            raise ValueError("Input: give shape (per sample) or batch_shape")
        if isinstance(shape, int):
            shape = (shape,)
        batch_shape = (batch_size,) + tuple(shape)
    batch_shape = tuple(None if s is None else int(s) for s in batch_shape)
    layer = InputLayer(batch_shape, dtype=dtype, name=name)
    node = Node(layer, None, {})
    node.outputs = [SymbolicTensor(batch_shape, layer.dtype, node, 0)]
    return node.outputs[0]
