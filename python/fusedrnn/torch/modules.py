"""``LSTM``, ``GRU`` and ``RNN``: torch.nn's recurrent modules, run on fusedrnn's fused kernels.

Each class is a ``torch.nn.RNNBase`` as its torch.nn namesake is, and takes from it all but
``forward`` (and ``flatten_parameters``, a no-op here): constructor, parameters and their names,
initialisation, ``state_dict``, ``extra_repr`` and the forms of inputs, states and outputs are
torch.nn's own, so a script swaps the class and changes nothing else. They are not subclasses of
torch.nn.LSTM/GRU/RNN themselves: torch.compile refuses to trace those (dynamo's ``allow_rnn``),
and traces ours in one graph.

LSTM's ``proj_size`` (projections, h = W_hr (o * tanh c), parameters ``weight_hr_l{k}``) runs on
CPU tensors; on CUDA tensors it is a NotImplementedError at the call (the CUDA kernels do not take
projections yet): run that module on the CPU, or use torch.nn.LSTM on the GPU.
Half precision: the kernels take float32 and float64, so a module or input of float16/bfloat16 is a
TypeError at the call, except under ``torch.autocast``, where the layer runs as an op of autocast's
float32 list: floating inputs and states are cast to the weights' dtype (as
``torch.amp.custom_fwd(cast_inputs=torch.float32)`` does for a custom op) and the outputs have it.
"""

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from .. import ops
from ._arrays import ArrayViews
from ._ops import run

SUPPORTED_DTYPES = (torch.float32, torch.float64)
# torch.nn's mode -> (our cell, nonlinearity), from the cell table
CELLS = {mode: (cell.name, nonlinearity) for cell in ops.CELLS.values()
         for mode, nonlinearity in cell.torch_modes.items()}


@torch.compiler.disable
def _padded(data, batch_sizes):
    """A packed sequence's data (N, I) as x (B, T, I) in the sorted order and C order (as the op's
    results are, and its compiled form promises), with the lengths (B,) on the CPU: the kernels take
    both as they are. torch.compile runs this eagerly, between two graphs: the padding's size
    depends on batch_sizes' values. torch 2.13's dynamo skips pad_packed_sequence by itself;
    2.10's and 2.11's traced it with fake tensors and failed."""
    x, lengths = pad_packed_sequence(PackedSequence(data, batch_sizes), batch_first=True)
    return x.contiguous(), lengths


class _Fused:
    """What the three classes share; comes first in their bases, before torch.nn's class."""

    _torch_nn_class = nn.RNNBase  # the torch.nn class whose checks of inputs and states apply

    def flatten_parameters(self) -> None:
        """A no-op: the fused kernels take the parameters as they are (no cuDNN flat buffer)."""

    def __prepare_scriptable__(self):
        # torch.jit.script calls this on every module it is to compile, before reading any source.
        name = type(self).__name__
        raise RuntimeError(f"fusedrnn.torch.{name} cannot be compiled by torch.jit.script: its forward runs the "
                           "fused kernels from Python. Use torch.jit.trace, torch.export or torch.compile (each "
                           f"records the layer as one op, fusedrnn::rnn_stack), or torch.nn.{name} for TorchScript")

    # torch.nn's checks of inputs and states, reached through methods of this file: strict torch.export
    # before torch 2.10 traces no method of a module that torch.nn defines (a class body's
    # ``check_forward_args = nn.LSTM.check_forward_args`` included), but does trace the same function
    # called from here.
    def check_input(self, input, batch_sizes):
        return self._torch_nn_class.check_input(self, input, batch_sizes)

    def check_forward_args(self, input, hidden, batch_sizes):
        return self._torch_nn_class.check_forward_args(self, input, hidden, batch_sizes)

    def check_hidden_size(self, hx, expected_hidden_size, msg="Expected hidden size {}, got {}"):
        return self._torch_nn_class.check_hidden_size(self, hx, expected_hidden_size, msg)

    def get_expected_hidden_size(self, input, batch_sizes):
        return self._torch_nn_class.get_expected_hidden_size(self, input, batch_sizes)

    def permute_hidden(self, hx, permutation):
        return self._torch_nn_class.permute_hidden(self, hx, permutation)

    def _update_flat_weights(self) -> None:
        """torch.nn's refresh of ``_flat_weights`` (for weights swapped by functional_call, pruning,
        ...), after a quick test of the usual case: every weight is still the registered parameter
        the list holds (torch.nn's own test looks each name up through ``Module.__getattr__``)."""
        parameters = self._parameters
        names, weights = self._flat_weights_names, self._flat_weights
        if any(parameters.get(name) is not weight for name, weight in zip(names, weights)):
            super()._update_flat_weights()

    @property
    def _has_cell_state(self) -> bool:
        """hx is (h_0, c_0) and the result (h_n, c_n): the cell carries a cell state (LSTM)."""
        return ops.cell_info(CELLS[self.mode][0]).has_cell_state

    def forward(self, input, hx=None):
        self._update_flat_weights()
        input, hx = self._autocast_inputs(input, hx)
        has_cell_state = self._has_cell_state
        packed = isinstance(input, PackedSequence)
        sorted_indices = unsorted_indices = None
        if packed:
            data, batch_sizes, sorted_indices, unsorted_indices = input
            self._check_call(data, hx)
            if hx is None:
                self.check_input(data, batch_sizes)
            else:
                hx = self.permute_hidden(hx, sorted_indices)  # into the packed (sorted) order
                self.check_forward_args(data, hx, batch_sizes)
            x, lengths = _padded(data, batch_sizes)
        else:
            if input.dim() not in (2, 3):
                raise ValueError(f"{type(self).__name__}: Expected input to be 2D or 3D, got {input.dim()}D instead")
            batched = input.dim() == 3
            batch_dim = 0 if self.batch_first else 1
            if not batched:
                input = input.unsqueeze(batch_dim)
            self._check_call(input, hx)
            if hx is None:
                self.check_input(input, None)
            else:
                hx = self._batched_hx(hx, batched)
                self.check_forward_args(input, hx, None)
            # (B, T, I) in C order: the kernels' layout, and what the backward reads again
            x = (input if self.batch_first else input.transpose(0, 1)).contiguous()
            lengths = None

        if x.shape[1] == 0:
            raise RuntimeError("Expected sequence length to be larger than 0 in RNN")  # torch.nn's words
        y, h_n, c_n = self._run(x, hx, lengths)
        hidden = (h_n, c_n) if has_cell_state else h_n
        if packed:
            output = pack_padded_sequence(y, lengths, batch_first=True).data
            return (PackedSequence(output, batch_sizes, sorted_indices, unsorted_indices),
                    self.permute_hidden(hidden, unsorted_indices))
        output = y if self.batch_first else y.transpose(0, 1).contiguous()  # torch's outputs are contiguous
        if not batched:
            output = output.squeeze(batch_dim)
            hidden = (h_n.squeeze(1), c_n.squeeze(1)) if has_cell_state else h_n.squeeze(1)
        return output, hidden

    def _autocast_inputs(self, input, hx):
        """input (Tensor or PackedSequence) and hx as the kernels take them under torch.autocast:
        floating tensors in the weights' dtype. The kernels have no half precision, so autocast's
        float16/bfloat16 activations (a Linear's output, say) are cast up and the layer runs in the
        weights' precision, as an op on autocast's float32 list. Outside autocast, nothing changes:
        a dtype mismatch stays torch.nn's error."""
        data = input.data if isinstance(input, PackedSequence) else input
        if not (isinstance(data, Tensor) and data.device.type in ("cpu", "cuda")
                and torch.is_autocast_enabled(data.device.type)):
            return input, hx
        dtype = self._flat_weights[0].dtype
        if dtype not in SUPPORTED_DTYPES:  # a half-precision module: _check_call's TypeError
            return input, hx

        def cast(t):
            return t.to(dtype) if isinstance(t, Tensor) and t.is_floating_point() and t.dtype != dtype else t

        if isinstance(input, PackedSequence):
            input = PackedSequence(cast(input.data), input.batch_sizes, input.sorted_indices, input.unsorted_indices)
        else:
            input = cast(input)
        if isinstance(hx, (tuple, list)):
            hx = type(hx)(cast(t) for t in hx)
        else:
            hx = cast(hx)
        return input, hx

    def _run(self, x, hx, lengths):
        """x (B, T, I), hx as torch.nn takes it (batched, in x's order) or None, lengths (B,) or None
        -> y (B, T, D*R), h_n (L*D, B, R), c_n (L*D, B, H) (c_n None but for LSTM); R is h's size,
        proj_size with projections, else H."""
        cell, nonlinearity = CELLS[self.mode]
        h0, c0 = (hx if hx is not None else (None, None)) if self._has_cell_state else (hx, None)
        # What the module keeps from call to call (the weights' arrays, zero biases) serves eager
        # calls; a compiled graph keeps its own, and writing module state while dynamo traces breaks
        # the graph (fullgraph=True refuses it).
        eager = not torch.compiler.is_compiling()
        return run(x, self._weights(x, keep=eager), h0, c0, lengths, self._dropout_masks(x), cell, nonlinearity,
                   self.num_layers, self.bidirectional, self._weight_views() if eager else None)

    def _weights(self, x, keep=True):
        """(w_ih, w_hh, b_ih, b_hh) per layer and direction, with w_hr fifth for an LSTM with
        projections, flat (torch's order with biases); zero biases where bias=False, kept on the
        module for the next call if ``keep``."""
        weights = self._flat_weights
        if self.bias:
            return weights
        zeros = self.__dict__.get("_zero_bias")  # (G*H,), read only; kept, so that the kept views are reused
        if zeros is None or zeros.dtype != x.dtype or zeros.device != x.device:
            zeros = torch.zeros(weights[1].shape[0], dtype=x.dtype, device=x.device)
            if keep:
                self.__dict__["_zero_bias"] = zeros
        # torch's order without biases: (w_ih, w_hh) per layer and direction, or (w_ih, w_hh, w_hr)
        n = 3 if self.proj_size > 0 else 2
        return [w for k in range(0, len(weights), n) for w in (weights[k], weights[k + 1], zeros, zeros,
                                                               *weights[k + 2:k + n])]

    def _weight_views(self):
        """The keeper of the weights' arrays from call to call (made on first use: not a torch.nn attribute)."""
        views = self.__dict__.get("_weight_arrays")
        if views is None:
            views = self.__dict__["_weight_arrays"] = ArrayViews()
        return views

    def __getstate__(self):
        # The kept views and zero biases are derived (and NumPy arrays): never pickled with the module.
        state = super().__getstate__()
        state.pop("_weight_arrays", None)
        state.pop("_zero_bias", None)
        return state

    def _dropout_masks(self, x):
        """The multipliers (L-1, B, T, D*R) of every layer's output but the last's (R: proj_size with
        projections, else H), drawn from torch's generator (torch.manual_seed makes them
        reproducible); None outside training."""
        if not (self.training and self.dropout > 0 and self.num_layers > 1):
            return None
        shape = (self.num_layers - 1, x.shape[0], x.shape[1],
                 (2 if self.bidirectional else 1) * (self.proj_size or self.hidden_size))
        keep = 1.0 - self.dropout
        masks = torch.empty(shape, dtype=x.dtype, device=x.device)
        return masks.bernoulli_(keep).div_(keep) if keep > 0 else masks.zero_()

    def _check_call(self, input: Tensor, hx) -> None:
        """What torch.nn checks inside its kernels, as clear errors before ours run: the device of
        input, states and parameters, the dtypes the kernels take, the form of hx. And what ours
        do not take: projections on CUDA tensors (the ops' ValueError there names w_hr, which a
        torch user never wrote)."""
        weight = self._flat_weights[0]
        if input.device != weight.device:
            raise RuntimeError("Input and parameter tensors are not at the same device, found input tensor at "
                               f"{input.device} and parameter tensor at {weight.device}")
        if self.proj_size > 0 and input.is_cuda:
            raise NotImplementedError(f"fusedrnn.torch.{type(self).__name__}: proj_size > 0 (LSTM with projections) "
                                      "is not supported on CUDA tensors yet (the CUDA kernels do not take "
                                      "projections); run this module on the CPU, or use torch.nn.LSTM on the GPU")
        if input.dtype == weight.dtype and input.dtype not in SUPPORTED_DTYPES:
            raise TypeError(f"fusedrnn.torch.{type(self).__name__}: {input.dtype} is not supported by the fused "
                            "kernels (float32 and float64 are); use torch.nn for half precision")
        if hx is None:
            return
        states = hx if self._has_cell_state else (hx,)
        if self._has_cell_state and not (isinstance(hx, (tuple, list)) and len(hx) == 2):
            raise TypeError(f"hx: expected a tuple (h_0, c_0) of tensors, got {type(hx).__name__}")
        for name, state in zip(("h_0", "c_0"), states):
            if not isinstance(state, Tensor):
                raise TypeError(f"hx: expected {name} to be a tensor, got {type(state).__name__}")
            if state.device != input.device:
                raise RuntimeError("Input and hidden tensors are not at the same device, found input tensor at "
                                   f"{input.device} and hidden tensor at {state.device}")
            if state.dtype != input.dtype:  # torch.nn raises a RuntimeError here too
                raise RuntimeError(f"hx: {name} has dtype {state.dtype}, but the input has {input.dtype}")

    def _batched_hx(self, hx, batched):
        """hx as the batched (L*D, B, R) states (c: (L*D, B, H)), after torch.nn's checks of their dimensions."""
        if self._has_cell_state:
            want = 3 if batched else 2
            if hx[0].dim() != want or hx[1].dim() != want:
                raise RuntimeError(f"For {'batched 3-D' if batched else 'unbatched 2-D'} input, hx and cx should "
                                   f"also be {want}-D but got ({hx[0].dim()}-D, {hx[1].dim()}-D) tensors")
            return hx if batched else (hx[0].unsqueeze(1), hx[1].unsqueeze(1))
        if batched and hx.dim() != 3:
            raise RuntimeError(f"For batched 3-D input, hx should also be 3-D but got {hx.dim()}-D tensor")
        if not batched and hx.dim() != 2:
            raise RuntimeError(f"For unbatched 2-D input, hx should also be 2-D but got {hx.dim()}-D tensor")
        return hx if batched else hx.unsqueeze(1)


class LSTM(_Fused, nn.RNNBase):
    """torch.nn.LSTM on the fused kernels (same constructor, parameters, inputs and outputs).
    ``proj_size`` > 0 (projections, ``weight_hr_l{k}``) runs on CPU tensors only: on CUDA
    tensors the call is a NotImplementedError."""

    def __init__(self, *args, **kwargs):
        super().__init__("LSTM", *args, **kwargs)

    # torch.nn.LSTM's own handling of the (h_0, c_0) pair (h_0 (L*D, B, proj_size) with
    # projections: RNNBase.get_expected_hidden_size knows it).
    _torch_nn_class = nn.LSTM

    def get_expected_cell_size(self, input, batch_sizes):
        return nn.LSTM.get_expected_cell_size(self, input, batch_sizes)


class GRU(_Fused, nn.RNNBase):
    """torch.nn.GRU on the fused kernels (same constructor, parameters, inputs and outputs)."""

    def __init__(self, *args, **kwargs):
        if "proj_size" in kwargs:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        super().__init__("GRU", *args, **kwargs)

    _torch_nn_class = nn.GRU


class RNN(_Fused, nn.RNNBase):
    """torch.nn.RNN (tanh or relu) on the fused kernels (same constructor, parameters, inputs and outputs)."""

    def __init__(self, *args, **kwargs):
        if "proj_size" in kwargs:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        if len(args) > 3:  # torch.nn.RNN's positional order: input_size, hidden_size, num_layers, nonlinearity, ...
            self.nonlinearity, args = args[3], args[:3] + args[4:]
        else:
            self.nonlinearity = kwargs.pop("nonlinearity", "tanh")
        modes = {nonlinearity: mode for mode, nonlinearity in ops.cell_info("rnn").torch_modes.items()}
        if self.nonlinearity not in modes:
            raise ValueError(f"Unknown nonlinearity '{self.nonlinearity}'. Select from 'tanh' or 'relu'.")
        super().__init__(modes[self.nonlinearity], *args, **kwargs)

    _torch_nn_class = nn.RNN
