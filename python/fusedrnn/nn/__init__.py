"""The training layer: a thin autograd over the fused ops, Keras-familiar layers and models."""

from .autograd import Tensor, as_tensor, no_grad
from . import callbacks, initializers, layers, models
from .callbacks import Callback, CSVLogger, EarlyStopping, ModelCheckpoint
from .history import History
from .layers import (CRF, GRU, LSTM, Activation, Add, Average, Bidirectional, Concatenate, Dense, Dropout, Embedding,
                     GlobalAveragePooling1D, Input, LastState, Layer, Masking, Multiply, SimpleRNN, TimeDistributed,
                     clear_session, set_random_seed)
from .models import Model, Sequential

__all__ = ["Tensor", "as_tensor", "no_grad"]
__all__ += ["callbacks", "initializers", "layers", "models", "Callback", "CSVLogger", "EarlyStopping",
            "ModelCheckpoint", "History", "CRF", "GRU", "LSTM", "Activation", "Add", "Average", "Bidirectional",
            "Concatenate", "Dense", "Dropout", "Embedding", "GlobalAveragePooling1D", "Input", "LastState", "Layer",
            "Masking", "Multiply", "SimpleRNN", "TimeDistributed", "clear_session", "set_random_seed", "Model",
            "Sequential"]
