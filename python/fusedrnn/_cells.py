"""The Python cell table: every per-cell fact the package asks, in one place.

It mirrors ``csrc/include/fusedrnn/cells.h`` (gate count G, saved values A, cell state, split
input-side gradients) and adds what only Python needs: the nonlinearities a cell takes, its
PyTorch and Keras names and the Keras gate order. Every other module asks here (``cell("lstm").gates``,
``CELLS``) instead of naming a cell; a cell registered here with its kernels and its reference
functions (``reference.<name>_forward`` / ``<name>_backward``) gets the ops, the layers above and
every parametrized test. See ARCHITECTURE.md, "Adding a cell".
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping, Optional, Tuple


@dataclass(frozen=True)
class Cell:
    """One recurrent cell's facts. Shapes in the letters of ARCHITECTURE.md, "Shapes and weights"."""

    name: str  # the ops' and kernels' name: "lstm", ...
    gates: int  # G: gate blocks of w_ih (G*H, I), w_hh (G*H, H), b_ih, b_hh (G*H,)
    aux: int  # A: values saved per unit and step besides the gates (aux (B, T, A*H))
    has_cell_state: bool  # carries c besides h: takes c0 / dc_n, returns c_n / dc0
    input_grads_differ: bool  # W_ih and W_hh see different pre-activation gradients (GRU's n gate)
    projectable: bool  # may take a projection w_hr (P, H), torch's proj_size (LSTM only)
    nonlinearities: Tuple[str, ...]  # the ``nonlinearity`` values it accepts; the first is the default
    torch_class: str  # torch.nn's class: "LSTM", "GRU", "RNN"
    keras_class: str  # fusedrnn.nn's (and Keras's) layer class: "LSTM", "GRU", "SimpleRNN"
    # Our gate block k is Keras's block keras_blocks[k] (GRU: our r z n are Keras's z r h blocks 1 0 2).
    keras_blocks: Tuple[int, ...]
    # Keras keeps the input and recurrent biases apart as bias (2, G*H) (GRU reset_after=True);
    # otherwise its one bias (G*H,) is b_ih + b_hh.
    keras_split_bias: bool
    # Keras initialises b_hh with bias_initializer (a GRU's second bias row); else b_hh starts at zero.
    keras_recurrent_bias_initialized: bool

    @property
    def states(self) -> Tuple[str, ...]:
        """The states a layer carries, in the order layers return them: ("h", "c") or ("h",)."""
        return ("h", "c") if self.has_cell_state else ("h",)

    @property
    def param_names(self) -> Tuple[str, ...]:
        """One params entry: (w_ih, w_hh, b_ih, b_hh). A projectable cell given a projection carries
        w_hr (P, H) as a fifth array (PROJECTION_NAME), as torch.nn's LSTM(proj_size=P) does."""
        return PARAM_NAMES

    @property
    def torch_modes(self) -> Mapping[str, str]:
        """torch.nn's ``mode`` strings of this cell -> the nonlinearity each means."""
        if len(self.nonlinearities) == 1:
            return {self.torch_class: self.nonlinearities[0]}
        return {f"{self.torch_class}_{n.upper()}": n for n in self.nonlinearities}

    def saved_shapes(self, batch: int, steps: int, hidden: int, state: Optional[int] = None) -> list:
        """Shapes of one direction's saved (gates (B, T, G*H), aux (B, T, A*H), h_prev (B, T, R));
        ``state`` R is h's size: P with projections, else H (the default)."""
        return [(batch, steps, self.gates * hidden), (batch, steps, self.aux * hidden), (batch, steps, state or hidden)]


PARAM_NAMES = ("w_ih", "w_hh", "b_ih", "b_hh")
PROJECTION_NAME = "w_hr"  # the optional fifth array of a projectable cell's params entry

_TABLE = (
    Cell("lstm", gates=4, aux=2, has_cell_state=True, input_grads_differ=False, projectable=True,
         nonlinearities=("tanh",), torch_class="LSTM", keras_class="LSTM", keras_blocks=(0, 1, 2, 3),
         keras_split_bias=False, keras_recurrent_bias_initialized=False),
    Cell("gru", gates=3, aux=1, has_cell_state=False, input_grads_differ=True, projectable=False,
         nonlinearities=("tanh",), torch_class="GRU", keras_class="GRU", keras_blocks=(1, 0, 2),
         keras_split_bias=True, keras_recurrent_bias_initialized=True),
    Cell("rnn", gates=1, aux=0, has_cell_state=False, input_grads_differ=False, projectable=False,
         nonlinearities=("tanh", "relu"), torch_class="RNN", keras_class="SimpleRNN", keras_blocks=(0,),
         keras_split_bias=False, keras_recurrent_bias_initialized=False),
)

# name -> Cell, in registration order; the public table is a read-only view of _BY_NAME, which
# cell() reads: torch.compile in torch 2.4 and 2.5 cannot trace a lookup in a mappingproxy.
_BY_NAME = {c.name: c for c in _TABLE}
CELLS: Mapping[str, Cell] = MappingProxyType(_BY_NAME)
# torch.nn's mode ("LSTM", "RNN_TANH", ...) -> (our cell, nonlinearity)
TORCH_MODES: Mapping[str, Tuple[str, str]] = MappingProxyType(
    {mode: (c.name, n) for c in _TABLE for mode, n in c.torch_modes.items()})
NONLINEARITIES = tuple(dict.fromkeys(n for c in _TABLE for n in c.nonlinearities))  # every cell's, once


def cell(name: str) -> Cell:
    """The Cell called ``name``; ValueError naming the known cells for anything else."""
    try:
        return _BY_NAME[name]
    except (KeyError, TypeError):
        raise ValueError(f"cell: expected one of {', '.join(CELLS)}, got {name!r}") from None


def gate_counts() -> Mapping[str, int]:
    """name -> G, for the modules that kept a GATES table as a public name."""
    return MappingProxyType({c.name: c.gates for c in _TABLE})
