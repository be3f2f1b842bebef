"""Attention over encoder outputs as coarse differentiable ops (one graph node each).

A decoder's queries attend over an encoder's keys (usually its outputs):

    scores  = score(query, keys)                       (B, Tq, Tk)
    weights = masked_softmax(scores, lengths)          (B, Tq, Tk); padding steps get exactly 0
    context = weighted_sum(weights, values)            (B, Tq, Hv)

Scores (Luong et al. 2015; Bahdanau et al. 2015):

    "dot"       q . k                                   (needs Hq == Hk)
    "general"   q W k                                   W (Hq, Hk)
    "additive"  v . tanh(q Wq + k Wk)                   Wq (Hq, A), Wk (Hk, A), v (A,)

Whole decoder sequences are scored at once (teacher-forced training: no Python loop over time);
greedy decoding passes one step, a (B, H) query, and gets (B, Hv) and (B, Tk) back.
Kernels use the (in, out) layout of ``functional.linear``. Arrays are NumPy or CuPy (``xp``).
``Attention`` wraps them as a layer with its own weights, for models and the functional API.
"""

from __future__ import annotations

from .. import _files
from .autograd import Tensor, as_tensor, record
from .functional import reshape, sequence_mask
from .layers.base import Layer

SCORES = ("dot", "general", "additive")
# parameters each score takes, in the order ``attention(..., params=...)`` expects them
SCORE_PARAMS = {"dot": (), "general": ("kernel",), "additive": ("query_kernel", "key_kernel", "v")}


def _transpose(xp, a):  # (B, M, N) -> (B, N, M)
    return xp.swapaxes(a, -1, -2)


def _sum_batch(a):  # (B, M, N) -> (M, N): a weight shared by every row of the batch
    return a.sum(axis=0)


def dot_scores(query: Tensor, keys: Tensor) -> Tensor:
    """query (B, Tq, H), keys (B, Tk, H) -> q . k (B, Tq, Tk)."""
    query, keys = as_tensor(query), as_tensor(keys)
    _check_pair(query, keys, "keys", same_features=True)
    xp = query.xp
    out = query.data @ _transpose(xp, keys.data)

    def backward(g):  # g (B, Tq, Tk)
        return (g @ keys.data, _transpose(xp, g) @ query.data)
    return record(out, (query, keys), backward)


def general_scores(query: Tensor, keys: Tensor, kernel: Tensor) -> Tensor:
    """query (B, Tq, Hq), keys (B, Tk, Hk), kernel (Hq, Hk) -> q W k (B, Tq, Tk)."""
    query, keys, kernel = as_tensor(query), as_tensor(keys), as_tensor(kernel)
    _check_pair(query, keys, "keys")
    _check_shape(kernel, "kernel", (query.shape[-1], keys.shape[-1]))
    xp = query.xp
    projected = query.data @ kernel.data  # (B, Tq, Hk)
    out = projected @ _transpose(xp, keys.data)

    def backward(g):  # g (B, Tq, Tk)
        d_projected = g @ keys.data  # (B, Tq, Hk)
        return (d_projected @ kernel.data.T,
                _transpose(xp, g) @ projected,
                _sum_batch(_transpose(xp, query.data) @ d_projected))
    return record(out, (query, keys, kernel), backward)


def additive_scores(query: Tensor, keys: Tensor, query_kernel: Tensor, key_kernel: Tensor, v: Tensor) -> Tensor:
    """query (B, Tq, Hq), keys (B, Tk, Hk), query_kernel (Hq, A), key_kernel (Hk, A), v (A,)
    -> v . tanh(q Wq + k Wk) (B, Tq, Tk). Holds one (B, Tq, Tk, A) array for the backward."""
    query, keys, query_kernel, key_kernel, v = (as_tensor(t) for t in (query, keys, query_kernel, key_kernel, v))
    _check_pair(query, keys, "keys")
    if v.ndim != 1:
        raise ValueError(f"v: expected shape (A,), got {tuple(v.shape)}")
    A = v.shape[0]
    _check_shape(query_kernel, "query_kernel", (query.shape[-1], A))
    _check_shape(key_kernel, "key_kernel", (keys.shape[-1], A))
    xp = query.xp
    hidden = xp.tanh((query.data @ query_kernel.data)[:, :, None, :]
                     + (keys.data @ key_kernel.data)[:, None, :, :])  # (B, Tq, Tk, A)
    out = hidden @ v.data

    def backward(g):  # g (B, Tq, Tk)
        d_pre = g[..., None] * v.data * (1.0 - hidden * hidden)  # (B, Tq, Tk, A)
        d_q_proj = d_pre.sum(axis=2)  # (B, Tq, A)
        d_k_proj = d_pre.sum(axis=1)  # (B, Tk, A)
        return (d_q_proj @ query_kernel.data.T,
                d_k_proj @ key_kernel.data.T,
                _sum_batch(_transpose(xp, query.data) @ d_q_proj),
                _sum_batch(_transpose(xp, keys.data) @ d_k_proj),
                (g[..., None] * hidden).sum(axis=(0, 1, 2)))
    return record(out, (query, keys, query_kernel, key_kernel, v), backward)


def masked_softmax(scores: Tensor, lengths=None) -> Tensor:
    """Softmax of scores (B, Tq, Tk) over the last axis, restricted to steps t < lengths[b] (B,);
    the others get exactly zero weight and zero gradient. lengths None: every step is valid."""
    scores = as_tensor(scores)
    xp = scores.xp
    if scores.ndim != 3:
        raise ValueError(f"scores: expected (B, Tq, Tk), got shape {tuple(scores.shape)}")
    B, _, Tk = scores.shape
    s = scores.data
    if lengths is None:
        e = xp.exp(s - s.max(axis=-1, keepdims=True))
    else:
        valid = sequence_mask(xp, _check_lengths(xp, lengths, B, Tk), Tk, bool)[:, None, :]  # (B, 1, Tk)
        # padding never enters the max or the exponential: a large score there cannot overflow
        top = xp.where(valid, s, -xp.inf).max(axis=-1, keepdims=True)
        e = xp.where(valid, xp.exp(xp.where(valid, s - top, 0.0)), 0.0)
    weights = e / e.sum(axis=-1, keepdims=True)

    def backward(g):  # g (B, Tq, Tk); zero wherever the weight is zero
        return (weights * (g - (g * weights).sum(axis=-1, keepdims=True)),)
    return record(weights, (scores,), backward)


def weighted_sum(weights: Tensor, values: Tensor) -> Tensor:
    """weights (B, Tq, Tk), values (B, Tk, Hv) -> context (B, Tq, Hv)."""
    weights, values = as_tensor(weights), as_tensor(values)
    if weights.ndim != 3 or values.ndim != 3 or values.shape[:2] != (weights.shape[0], weights.shape[2]):
        raise ValueError(f"values: expected (B, Tk, Hv) matching weights {tuple(weights.shape)}, "
                         f"got shape {tuple(values.shape)}")
    xp = weights.xp

    def backward(g):  # g (B, Tq, Hv)
        return (g @ _transpose(xp, values.data), _transpose(xp, weights.data) @ g)
    return record(weights.data @ values.data, (weights, values), backward)


def score(name: str, query: Tensor, keys: Tensor, params=()) -> Tensor:
    """The scores (B, Tq, Tk) of ``name`` in SCORES, with its parameters (SCORE_PARAMS) in order."""
    if name not in SCORE_PARAMS:
        raise ValueError(f"score: expected one of {', '.join(SCORES)}, got {name!r}")
    params = tuple(params)
    if len(params) != len(SCORE_PARAMS[name]):
        raise ValueError(f"params: the {name!r} score takes {len(SCORE_PARAMS[name])} "
                         f"({', '.join(SCORE_PARAMS[name]) or 'none'}), got {len(params)}")
    return {"dot": dot_scores, "general": general_scores, "additive": additive_scores}[name](query, keys, *params)


def attention(query: Tensor, keys: Tensor, values: Tensor | None = None, lengths=None, score_name: str = "dot",
              params=()):
    """-> (context, weights).

    query (B, Tq, Hq) -> context (B, Tq, Hv), weights (B, Tq, Tk); or one step, query (B, Hq) ->
    context (B, Hv), weights (B, Tk). keys (B, Tk, Hk); values (B, Tk, Hv), default the keys;
    lengths (B,) valid encoder steps or None."""
    query, keys = as_tensor(query), as_tensor(keys)
    values = keys if values is None else as_tensor(values)
    one_step = query.ndim == 2
    if one_step:
        query = reshape(query, (query.shape[0], 1, query.shape[1]))
    weights = masked_softmax(score(score_name, query, keys, params), lengths)
    context = weighted_sum(weights, values)
    if one_step:
        context = reshape(context, (context.shape[0], context.shape[2]))
        weights = reshape(weights, (weights.shape[0], weights.shape[2]))
    return context, weights


class Attention(Layer):
    """Attention of a query sequence over a value sequence, Keras-style: called on ``[query, value]``
    or ``[query, value, key]`` (key defaults to value) -> ``[context, weights]``.

    query (B, Tq, Hq) or one step (B, Hq); value (B, Tk, Hv); key (B, Tk, Hk). The key's (else the
    value's) ``lengths`` mask the encoder's padding; the context keeps the query's lengths, so a loss
    downstream still sees the decoder's padding. ``score``: "dot" (Luong; Hq == Hk), "general"
    (Luong; kernel (Hq, Hk)) or "additive" (Bahdanau; query_kernel (Hq, units), key_kernel
    (Hk, units), v (units,); ``units`` defaults to Hk)."""

    def __init__(self, score="dot", units=None, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        if score not in SCORES:
            raise ValueError(f"score: expected one of {', '.join(SCORES)}, got {score!r}")
        if units is not None and (isinstance(units, bool) or not isinstance(units, int) or units < 1):
            raise ValueError(f"units: expected a positive integer or None, got {units!r}")
        self.score = score
        self.units = units
        self.kernel_initializer = kernel_initializer
        self.params = ()

    @staticmethod
    def _split(inputs):
        if not isinstance(inputs, (list, tuple)) or len(inputs) not in (2, 3):
            raise ValueError("Attention: expected [query, value] or [query, value, key]")
        query, value = inputs[0], inputs[1]
        return query, value, (inputs[2] if len(inputs) == 3 else value)

    def build(self, input_shape):
        query, _, key = self._split(input_shape)
        hq, hk = query[-1], key[-1]
        if hq is None or hk is None:
            raise ValueError(f"{self.name}: the feature axes of query and key must be known, got {input_shape}")
        init = self.kernel_initializer
        if self.score == "general":
            self.params = (self.add_weight("kernel", (hq, hk), init),)
        elif self.score == "additive":
            units = self.units or hk
            self.params = (self.add_weight("query_kernel", (hq, units), init),
                           self.add_weight("key_kernel", (hk, units), init),
                           self.add_weight("v", (units,), init))

    def call(self, inputs, training=False):
        query, value, key = self._split(inputs)
        lengths = key.lengths if key.lengths is not None else value.lengths
        context, weights = attention(query, key, value, lengths, self.score, self.params)
        if query.ndim == 3 and query.lengths is not None:
            context.lengths = weights.lengths = query.lengths
        return [context, weights]

    def compute_output_shape(self, input_shape):
        query, value, key = self._split(input_shape)
        return [tuple(query[:-1]) + (value[-1],), tuple(query[:-1]) + (key[1],)]


def save_heatmap(weights, path, source_labels=None, target_labels=None, title=None):
    """Writes one example's attention weights (Tq, Tk) as a heat map PNG: decoder steps down, encoder
    steps across (labels optional). Uses matplotlib's Agg backend; returns the path."""
    import numpy as np

    from .._extras import require

    require("matplotlib", "plot").use("Agg")
    plt = require("matplotlib.pyplot", "plot")

    weights = weights.numpy() if isinstance(weights, Tensor) else np.asarray(getattr(weights, "get", lambda: weights)())
    if weights.ndim != 2:
        raise ValueError(f"weights: expected one example's (Tq, Tk), got shape {weights.shape}")
    Tq, Tk = weights.shape
    fig, ax = plt.subplots(figsize=(1.0 + 0.35 * Tk, 1.0 + 0.35 * Tq))
    image = ax.imshow(weights, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    for labels, set_ticks, set_labels, n in ((source_labels, ax.set_xticks, ax.set_xticklabels, Tk),
                                             (target_labels, ax.set_yticks, ax.set_yticklabels, Tq)):
        if labels is not None:
            set_ticks(range(n))
            set_labels([str(label) for label in labels][:n])
    ax.set_xlabel("encoder step")
    ax.set_ylabel("decoder step")
    if title:
        ax.set_title(title)
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    _files.save_figure(fig, path)
    plt.close(fig)
    return path


def _check_pair(query: Tensor, keys: Tensor, name: str, same_features: bool = False):
    if query.ndim != 3:
        raise ValueError(f"query: expected (B, Tq, Hq), got shape {tuple(query.shape)}")
    if keys.ndim != 3 or keys.shape[0] != query.shape[0]:
        raise ValueError(f"{name}: expected (B, Tk, Hk) with B = {query.shape[0]}, got shape {tuple(keys.shape)}")
    if same_features and keys.shape[2] != query.shape[2]:
        raise ValueError(f"{name}: the dot score needs the query's {query.shape[2]} features, "
                         f"got shape {tuple(keys.shape)}")


def _check_shape(t: Tensor, name: str, expected):
    if tuple(t.shape) != tuple(expected):
        raise ValueError(f"{name}: expected shape {tuple(expected)}, got {tuple(t.shape)}")


def _check_lengths(xp, lengths, B, Tk):
    lengths = xp.asarray(lengths)
    if lengths.shape != (B,) or lengths.dtype.kind not in "iu":
        raise ValueError(f"lengths: expected ({B},) integers, got {lengths.dtype} of shape {lengths.shape}")
    if lengths.size and (int(lengths.min()) < 1 or int(lengths.max()) > Tk):
        raise ValueError(f"lengths: expected values in 1..{Tk}, got {int(lengths.min())}..{int(lengths.max())}")
    return lengths
