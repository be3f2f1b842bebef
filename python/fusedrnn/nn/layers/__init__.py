"""Keras-familiar layers over the fused ops: build lazily, call on arrays/Tensors or on ``Input``s."""

from .base import (Input, InputLayer, Layer, Node, SymbolicTensor, clear_session, floatx, set_floatx,
                   set_random_seed)
from .crf import CRF, CRFLoss
from .core import Activation, Add, Average, Concatenate, Dense, Dropout, Embedding, Masking, Multiply
from .pooling import GlobalAveragePooling1D, LastState
from .recurrent import GRU, LSTM, SimpleRNN
from .wrappers import Bidirectional, TimeDistributed

__all__ = ["Input", "InputLayer", "Layer", "Node", "SymbolicTensor", "clear_session", "floatx", "set_floatx",
           "set_random_seed", "Activation", "Add", "Average", "Concatenate", "Dense", "Dropout", "Embedding",
           "Masking", "Multiply", "GlobalAveragePooling1D", "LastState", "GRU", "LSTM", "SimpleRNN",
           "Bidirectional", "TimeDistributed", "CRF", "CRFLoss"]
