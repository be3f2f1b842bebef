"""Weight conversion between our recurrent layers, PyTorch's and Keras's.

Ours (the op layout, fusedrnn.ops; per direction): ``w_ih (G*H, I)``, ``w_hh (G*H, H)``, ``b_ih (G*H,)``,
``b_hh (G*H,)``; gates LSTM i f g o, GRU r z n (reset after the recurrent product), RNN one block.
An LSTM with projections (``proj_size`` P) has a fifth array ``w_hr (P, H)`` and ``w_hh (4*H, P)``:
its entries are ``(w_ih, w_hh, b_ih, b_hh, w_hr)``, torch's order.

- PyTorch ``nn.LSTM/GRU/RNN`` use the same layout and gate order: only the names differ
  (``weight_ih_l{k}``, ``weight_hh_l{k}``, ``bias_ih_l{k}``, ``bias_hh_l{k}``, ``weight_hr_l{k}`` with
  ``proj_size``, ``_reverse`` for the backward direction), and a stack is a list in the ops' order
  (layer 0 forward, layer 0 reverse, layer 1 forward, ...). ``bias=False`` modules convert with zero
  biases; ``proj_size`` converts to and from five-array entries (every layer and direction has w_hr).
- Keras keeps ``kernel (I, G*H)`` and ``recurrent_kernel (H, G*H)`` (our matrices transposed) and
  orders the GRU's gates z r h. LSTM and SimpleRNN have one bias (G*H,), which is b_ih + b_hh:
  ours to Keras sums them, Keras to ours puts it in b_ih and zeros in b_hh (the same outputs). GRU
  ``reset_after=True`` has ``bias (2, G*H)``: row 0 the input bias, row 1 the recurrent bias. A
  ``reset_after=False`` GRU computes something else and is refused. A Keras ``Bidirectional``
  layer's weight list is its forward layer's followed by its backward layer's. Keras's LSTM has no
  projections: converting an entry or a layer with ``w_hr`` to or from Keras is a ValueError.

The functions on plain arrays work on NumPy or CuPy arrays and return new arrays; the helpers on
layers read and write a layer's ``cell`` ("lstm"/"gru"/"rnn"), ``w_ih``, ``w_hh``, ``b_ih``, ``b_hh``
(Tensors) and ``w_hr`` where its ``proj_size`` is set, or a Bidirectional wrapper's ``forward_layer``
and ``backward_layer``. Writing to a layer checks shapes, casts to the layer's dtype and device and
assigns in place. The RNN's nonlinearity (tanh/relu) is not part of the weights: keep it the same on
both sides. torch is imported only where torch tensors are made.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from .. import ops
from .._cells import PROJECTION_NAME
from .._typing import Array, Params, ParamsLike
from .._xp import array_module

# Views of the cell table (fusedrnn.ops.CELLS), kept as this module's public names.
GATES = {name: cell.gates for name, cell in ops.CELLS.items()}
# Our gate block k is Keras's block KERAS_BLOCKS[cell][k] (GRU: our r z n = Keras's blocks 1 0 2 of z r h).
KERAS_BLOCKS = {name: cell.keras_blocks for name, cell in ops.CELLS.items()}
PARAM_NAMES = ops.cell_info("lstm").param_names  # the same four for every cell
# torch.nn's class name ("LSTM", ...) -> our cell
_TORCH_CELLS = {cell.torch_class: name for name, cell in ops.CELLS.items()}
# torch's parameter names: kind (weight_ih ... weight_hr), layer, reverse
_TORCH_KEY = re.compile(r"^(weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l(\d+)(_reverse)?$")
_NO_KERAS_PROJECTION = "Keras's LSTM has no proj_size (projections, w_hr): only torch's converts"


def _gates(cell) -> int:
    if cell not in GATES:
        raise ValueError(f"cell: expected one of {', '.join(GATES)}, got {cell!r}")
    return GATES[cell]


def _reorder(xp, a, blocks):
    """The gate blocks of ``a`` (G*H, ...) along axis 0 taken in the order ``blocks``."""
    hidden = a.shape[0] // len(blocks)
    index = np.concatenate([np.arange(k * hidden, (k + 1) * hidden) for k in blocks])
    return xp.ascontiguousarray(a[xp.asarray(index)])


def _to_keras_blocks(cell):
    """The inverse permutation: Keras's block j is our block _to_keras_blocks(cell)[j]."""
    return tuple(int(k) for k in np.argsort(KERAS_BLOCKS[cell]))


def check_params(cell: str, params: ParamsLike, where: str = "params") -> tuple[int, int]:
    """Checks one direction's (w_ih, w_hh, b_ih, b_hh), or (w_ih, w_hh, b_ih, b_hh, w_hr) for a
    projectable cell (LSTM), against the op layout; returns (I, H)."""
    inputs, hidden, _ = _entry_sizes(cell, params, where)
    return inputs, hidden


def _entry_sizes(cell, params, where):
    """check_params -> (I, H, R): R, the size of h, is P with projections, else H."""
    G = _gates(cell)
    projectable = ops.cell_info(cell).projectable
    entry = "(w_ih, w_hh, b_ih, b_hh)" + (" or (w_ih, w_hh, b_ih, b_hh, w_hr)" if projectable else "")
    if not isinstance(params, (tuple, list)) or len(params) not in ((4, 5) if projectable else (4,)):
        raise TypeError(f"{where}: expected a tuple {entry}")
    w_ih, w_hh, b_ih, b_hh = params[:4]
    if len(params) == 5:  # projections: w_hr (P, H), w_hh (G*H, P)
        w_hr = params[4]
        if getattr(w_hr, "ndim", None) != 2 or not 0 < w_hr.shape[0] < w_hr.shape[1]:
            raise ValueError(f"{where}: w_hr must be (P, H) with 0 < P < H, got {getattr(w_hr, 'shape', None)}")
        R, H = w_hr.shape
        if getattr(w_hh, "shape", None) != (G * H, R):
            raise ValueError(f"{where}: w_hh must be ({G}*H, P) = {(G * H, R)} with w_hr (P, H) = {(R, H)}, "
                             f"got {getattr(w_hh, 'shape', None)}")
    else:
        if getattr(w_hh, "ndim", None) != 2 or w_hh.shape[0] != G * w_hh.shape[1]:
            raise ValueError(f"{where}: w_hh must be ({G}*H, H) for {cell}, got {getattr(w_hh, 'shape', None)}")
        R = H = w_hh.shape[1]
    if getattr(w_ih, "ndim", None) != 2 or w_ih.shape[0] != G * H:
        raise ValueError(f"{where}: w_ih must be ({G * H}, I), got {getattr(w_ih, 'shape', None)}")
    for name, b in (("b_ih", b_ih), ("b_hh", b_hh)):
        if getattr(b, "shape", None) != (G * H,):
            raise ValueError(f"{where}: {name} must be ({G * H},), got {getattr(b, 'shape', None)}")
    return w_ih.shape[1], H, R


# ---------------------------------------------------------------------------------------------- Keras


def keras_to_params(cell: str, weights: Sequence[Array]) -> Params:
    """A Keras LSTM / GRU (reset_after=True) / SimpleRNN weight list ``[kernel (I, G*H),
    recurrent_kernel (H, G*H), bias]`` (bias may be absent: use_bias=False) -> (w_ih, w_hh, b_ih, b_hh)."""
    G = _gates(cell)
    weights = list(weights)
    if len(weights) not in (2, 3):
        raise ValueError(f"weights: expected [kernel, recurrent_kernel, bias] (or without bias), "
                         f"got {len(weights)} arrays")
    kernel, recurrent = weights[0], weights[1]
    bias = weights[2] if len(weights) == 3 else None
    xp = array_module(kernel)
    if getattr(recurrent, "ndim", None) != 2 or recurrent.shape[1] != G * recurrent.shape[0]:
        hint = f" ({_NO_KERAS_PROJECTION})" if ops.cell_info(cell).projectable else ""
        raise ValueError(f"recurrent_kernel: must be (H, {G}*H) for {cell}, got {getattr(recurrent, 'shape', None)}"
                         f"{hint}")
    H = recurrent.shape[0]
    if getattr(kernel, "ndim", None) != 2 or kernel.shape[1] != G * H:
        raise ValueError(f"kernel: must be (I, {G * H}) for {cell} with H = {H}, got {getattr(kernel, 'shape', None)}")
    order = KERAS_BLOCKS[cell]
    w_ih = _reorder(xp, xp.asarray(kernel).T, order)
    w_hh = _reorder(xp, xp.asarray(recurrent).T, order)
    zeros = xp.zeros(G * H, w_ih.dtype)
    if bias is None:
        return w_ih, w_hh, zeros, zeros.copy()
    bias = xp.asarray(bias)
    if ops.cell_info(cell).keras_split_bias:
        if bias.shape == (G * H,):
            raise ValueError("bias: a GRU bias of shape (3H,) is Keras's reset_after=False GRU, which applies the "
                             "reset gate before the recurrent product; only reset_after=True (bias (2, 3H)) converts")
        if bias.shape != (2, G * H):
            raise ValueError(f"bias: must be (2, {G * H}) for a reset_after=True GRU, got {bias.shape}")
        return w_ih, w_hh, _reorder(xp, bias[0], order), _reorder(xp, bias[1], order)
    if bias.shape != (G * H,):
        raise ValueError(f"bias: must be ({G * H},) for {cell}, got {bias.shape}")
    return w_ih, w_hh, _reorder(xp, bias, order), zeros


def params_to_keras(cell: str, params: ParamsLike) -> list[Array]:
    """(w_ih, w_hh, b_ih, b_hh) -> the Keras weight list [kernel, recurrent_kernel, bias]."""
    check_params(cell, params)
    if len(params) == 5:
        raise ValueError(f"params: an entry with w_hr does not convert to Keras ({_NO_KERAS_PROJECTION})")
    w_ih, w_hh, b_ih, b_hh = params
    xp = array_module(w_ih)
    order = _to_keras_blocks(cell)
    kernel = xp.ascontiguousarray(_reorder(xp, w_ih, order).T)
    recurrent = xp.ascontiguousarray(_reorder(xp, w_hh, order).T)
    if ops.cell_info(cell).keras_split_bias:
        bias = xp.stack([_reorder(xp, b_ih, order), _reorder(xp, b_hh, order)])
    else:
        bias = _reorder(xp, b_ih + b_hh, order)
    return [kernel, recurrent, bias]


# -------------------------------------------------------------------------------------------- PyTorch


def torch_keys(layer: int, reverse: bool, projected: bool = False) -> tuple[str, ...]:
    """PyTorch's names for (w_ih, w_hh, b_ih, b_hh) of one layer and direction, and w_hr's fifth
    when ``projected`` (proj_size)."""
    suffix = f"_l{layer}" + ("_reverse" if reverse else "")
    kinds = ("weight_ih", "weight_hh", "bias_ih", "bias_hh") + (("weight_hr",) if projected else ())
    return tuple(kind + suffix for kind in kinds)


def _host_copy(value):
    """A NumPy copy of a torch tensor or an array."""
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy().copy()
    if hasattr(value, "get"):
        return value.get()
    return np.array(value)


def torch_state_dict_to_params(cell: str, state_dict: Mapping[str, Any], num_layers: Optional[int] = None,
                               bidirectional: Optional[bool] = None, prefix: str = "") -> list[Params]:
    """A ``torch.nn.LSTM/GRU/RNN`` state dict -> [(w_ih, w_hh, b_ih, b_hh), ...] in the ops' order
    (NumPy copies, the tensors' dtype); an LSTM with ``proj_size`` (``weight_hr_l{k}`` keys) ->
    [(w_ih, w_hh, b_ih, b_hh, w_hr), ...]. ``num_layers`` and ``bidirectional`` are read from the keys
    and, when given, checked. ``prefix``: the module's name in a larger state dict (e.g. "rnn.")."""
    _gates(cell)
    entries = {key[len(prefix):]: value for key, value in state_dict.items() if key.startswith(prefix)}
    unknown = [prefix + k for k in entries if not _TORCH_KEY.match(k)]
    if unknown:
        raise ValueError(f"state_dict: keys that torch's {ops.cell_info(cell).torch_class} does not have: "
                         f"{', '.join(sorted(unknown))}")
    if not entries:
        raise ValueError(f"state_dict: no weight_ih_l0 / weight_hh_l0 keys{f' under {prefix!r}' if prefix else ''}")
    projected = any(k.startswith("weight_hr") for k in entries)
    if projected and not ops.cell_info(cell).projectable:
        hr = sorted(prefix + k for k in entries if k.startswith("weight_hr"))
        raise ValueError(f"state_dict: {cell} has no projections (proj_size is torch's LSTM's only): {', '.join(hr)}")
    layers = 1 + max(int(_TORCH_KEY.match(k).group(2)) for k in entries)  # type: ignore[union-attr]
    reverse = any(k.endswith("_reverse") for k in entries)
    if num_layers is not None and num_layers != layers:
        raise ValueError(f"num_layers: {num_layers} given, the state dict has {layers} layers")
    if bidirectional is not None and bool(bidirectional) != reverse:
        raise ValueError(f"bidirectional: {bidirectional} given, the state dict is "
                         f"{'bidirectional' if reverse else 'unidirectional'}")
    params: list[Params] = []
    sizes: Optional[tuple[int, int]] = None  # (H, R) of layer 0
    expected_keys: set[str] = set()
    for layer in range(layers):
        for direction in range(2 if reverse else 1):
            keys = torch_keys(layer, direction == 1, projected)
            expected_keys.update(keys)
            has_bias = [k in entries for k in keys[2:4]]
            # no bias at all: a bias=False module
            required = keys if any(has_bias) else keys[:2] + keys[4:]
            missing = [prefix + k for k in required if k not in entries]
            if missing:
                raise ValueError(f"state_dict: missing {', '.join(missing)}")
            w_ih, w_hh = _host_copy(entries[keys[0]]), _host_copy(entries[keys[1]])
            if all(has_bias):
                b_ih, b_hh = _host_copy(entries[keys[2]]), _host_copy(entries[keys[3]])
            else:  # bias=False
                b_ih, b_hh = np.zeros(w_ih.shape[:1], w_ih.dtype), np.zeros(w_ih.shape[:1], w_ih.dtype)
            entry = (w_ih, w_hh, b_ih, b_hh) + ((_host_copy(entries[keys[4]]),) if projected else ())
            where = f"state_dict layer {layer}{' reverse' if direction else ''}"
            inputs, H, R = _entry_sizes(cell, entry, where)
            if sizes is not None and (H, R) != sizes:
                raise ValueError(f"{where}: hidden size {H}{f' and proj_size {R}' if projected else ''}, layer 0 "
                                 f"has {sizes[0]}{f' and {sizes[1]}' if projected else ''}")
            sizes = (H, R)
            if layer > 0 and inputs != (2 if reverse else 1) * R:
                raise ValueError(f"{where}: w_ih has {inputs} inputs, expected the previous layer's "
                                 f"{(2 if reverse else 1) * R} outputs")
            params.append(entry)
    stray = sorted(prefix + k for k in set(entries) - expected_keys)
    if stray:
        raise ValueError(f"state_dict: keys outside the {layers} layer(s) found: {', '.join(stray)}")
    return params


def params_to_torch_state_dict(cell: str, params: Sequence[ParamsLike], num_layers: Optional[int] = None,
                               bidirectional: bool = False, prefix: str = "",
                               tensors: str = "torch") -> OrderedDict[str, Any]:
    """[(w_ih, w_hh, b_ih, b_hh), ...] in the ops' order -> an ordered state dict for
    ``torch.nn.LSTM/GRU/RNN`` (``module.load_state_dict``); five-array entries (w_hr fifth) for an
    LSTM with ``proj_size``. ``tensors``: "torch" (CPU tensors, the arrays' dtype) or "numpy"."""
    if tensors not in ("torch", "numpy"):
        raise ValueError(f"tensors: expected 'torch' or 'numpy', got {tensors!r}")
    directions = 2 if bidirectional else 1
    params = list(params)
    if num_layers is None:
        num_layers = len(params) // directions
    if len(params) != num_layers * directions or not params:
        raise ValueError(f"params: expected num_layers * directions = {num_layers} * {directions} entries, "
                         f"got {len(params)}")
    convert = _torch_tensor if tensors == "torch" else _host_copy
    state = OrderedDict()
    for k, p in enumerate(params):
        layer, direction = divmod(k, directions)
        if isinstance(p, (tuple, list)) and len(p) != len(params[0]):  # one proj_size for the whole torch module
            raise ValueError(f"params[{k}]: {len(p)} arrays, params[0] has {len(params[0])}; every layer and "
                             "direction has projections (w_hr) or none has")
        check_params(cell, p, f"params[{k}]")
        for key, value in zip(torch_keys(layer, direction == 1, len(p) == 5), p):
            state[prefix + key] = convert(value)
    return state


def _torch_tensor(value):
    import torch

    return torch.from_numpy(np.ascontiguousarray(_host_copy(value)))


# -------------------------------------------------------------------------------------------- layers


def _directions(layer):
    """The one-direction layers of ``layer``: itself, or a Bidirectional's forward and backward layers."""
    if hasattr(layer, "forward_layer"):
        return [layer.forward_layer, layer.backward_layer]
    return [layer]


def _layer_cell(layer):
    cell = getattr(_directions(layer)[0], "cell", None)
    _gates(cell)
    return cell


def _param_names(direction):
    """The names of a one-direction layer's params entry: w_hr fifth where its proj_size is set."""
    return PARAM_NAMES + ((PROJECTION_NAME,) if getattr(direction, "proj_size", 0) else ())


def get_layer_params(layer: Any) -> list[Params]:
    """[(w_ih, w_hh, b_ih, b_hh)] per direction of a layer, as NumPy copies; (w_ih, w_hh, b_ih, b_hh,
    w_hr) for an LSTM with proj_size."""
    out = []
    for direction in _directions(layer):
        tensors: list[Any] = [getattr(direction, name, None) for name in _param_names(direction)]
        if any(t is None for t in tensors):
            raise ValueError(f"{type(direction).__name__}: no weights yet (build the layer, e.g. call it on data, first)")
        out.append(tuple(_host_copy(t.data) for t in tensors))
    return out


def set_layer_params(layer: Any, params: Sequence[ParamsLike]) -> None:
    """Sets a layer's weights in place from [(w_ih, w_hh, b_ih, b_hh)] per direction, or five-array
    entries (w_hr fifth) for an LSTM with proj_size (cast to the layer's dtype and device); checks
    every shape before changing anything."""
    directions = _directions(layer)
    params = list(params)
    if len(params) != len(directions):
        raise ValueError(f"params: the layer has {len(directions)} direction(s), got {len(params)} entries")
    cell = _layer_cell(layer)
    targets = []
    for d, (direction, p) in enumerate(zip(directions, params)):
        label = ("forward_layer", "backward_layer")[d] if len(directions) == 2 else "layer"
        names = _param_names(direction)
        if isinstance(p, (tuple, list)) and len(p) != len(names):  # before the shapes: the likelier mistake
            proj = getattr(direction, "proj_size", 0)
            raise ValueError(f"params for {label}: {len(p)} arrays given, the layer has " +
                             (f"proj_size={proj} and takes (w_ih, w_hh, b_ih, b_hh, w_hr)" if proj else
                              "no projections (proj_size=0) and takes (w_ih, w_hh, b_ih, b_hh)"))
        check_params(cell, p, f"params for {label}")
        for name, value in zip(names, p):
            tensor = getattr(direction, name, None)
            if tensor is None:
                raise ValueError(f"{label}: no weights yet (build the layer, e.g. call it on data, first)")
            if tuple(value.shape) != tuple(tensor.data.shape):
                raise ValueError(f"{label}.{name}: shape {tuple(value.shape)} given, "
                                 f"{tuple(tensor.data.shape)} in the layer")
            targets.append((tensor, value))
    for tensor, value in targets:
        xp = array_module(tensor.data)
        same_device = array_module(value) is xp and not hasattr(value, "detach")
        tensor.data[...] = xp.asarray(value if same_device else _host_copy(value), dtype=tensor.data.dtype)


def layer_to_keras(layer: Any) -> list[Array]:
    """The Keras weight list of a layer (a Bidirectional: forward's then backward's)."""
    cell = _layer_cell(layer)
    return [w for p in get_layer_params(layer) for w in params_to_keras(cell, p)]


def layer_from_keras(layer: Any, weights: Sequence[Array]) -> None:
    """Sets a layer from a Keras weight list (a Bidirectional's: forward's then backward's)."""
    cell = _layer_cell(layer)
    if any(getattr(d, "proj_size", 0) for d in _directions(layer)):
        raise ValueError(f"layer: a layer with proj_size does not convert from Keras ({_NO_KERAS_PROJECTION})")
    weights = list(weights)
    count = len(_directions(layer))
    if len(weights) % count:
        raise ValueError(f"weights: {len(weights)} arrays do not split into {count} direction(s)")
    per = len(weights) // count
    set_layer_params(layer, [keras_to_params(cell, weights[d * per:(d + 1) * per]) for d in range(count)])


def _stack(layers):
    """layers: one layer or a list of stacked layers -> (list, cell, bidirectional)."""
    layers = list(layers) if isinstance(layers, (list, tuple)) else [layers]
    if not layers:
        raise ValueError("layers: expected at least one recurrent layer")
    cells = {_layer_cell(layer) for layer in layers}
    counts = {len(_directions(layer)) for layer in layers}
    if len(cells) != 1 or len(counts) != 1:
        raise ValueError("layers: a torch module's stack has one cell type and one direction count throughout")
    return layers, cells.pop(), counts.pop() == 2


def layers_to_torch_state_dict(layers: Any, prefix: str = "", tensors: str = "torch") -> OrderedDict[str, Any]:
    """The state dict of the ``torch.nn.LSTM/GRU/RNN`` (num_layers = len(layers), bidirectional
    when they are Bidirectional wrappers) equivalent to a stack of our layers."""
    layers, cell, bidirectional = _stack(layers)
    params = [p for layer in layers for p in get_layer_params(layer)]
    return params_to_torch_state_dict(cell, params, len(layers), bidirectional, prefix, tensors)


def layers_from_torch(layers: Any, source: Any, prefix: str = "") -> None:
    """Sets a stack of our layers from a ``torch.nn.LSTM/GRU/RNN`` module or its state dict."""
    layers, cell, bidirectional = _stack(layers)
    if hasattr(source, "state_dict"):
        kind = _TORCH_CELLS.get(type(source).__name__)
        if kind is not None and kind != cell:
            raise ValueError(f"source: a torch {type(source).__name__} cannot fill {cell} layers")
        source = source.state_dict()
    params = torch_state_dict_to_params(cell, source, len(layers), bidirectional, prefix)
    directions = 2 if bidirectional else 1
    for k, layer in enumerate(layers):
        set_layer_params(layer, params[k * directions:(k + 1) * directions])
