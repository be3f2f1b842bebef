"""Linear-chain conditional random field: the math, written once over ``xp`` (NumPy or CuPy).

A tag path y_0 .. y_{L-1} of a sequence of length L scores

    start[y_0] + sum_t scores[t, y_t] + sum_{t >= 1} transitions[y_{t-1}, y_t] + end[y_{L-1}]

and its probability is exp(score - log_z), log_z summing exp(score) over all C^L paths with the
forward algorithm. Steps t >= L (padding) take no part. Shapes: B batch, T steps, C tags; ``lengths``
(B,) NumPy integers in 1..T. The loops run over time only, up to the longest row, vectorized over the
batch and the tags.
"""

from __future__ import annotations

import numpy as np


def _logsumexp(xp, a, axis):
    top = a.max(axis=axis, keepdims=True)
    return (top + xp.log(xp.exp(a - top).sum(axis=axis, keepdims=True))).squeeze(axis)


def _up_to_longest(array, lengths):
    """array (B, T, ...) without the steps past the longest row: the loops over time skip them."""
    return array[:, :int(np.max(lengths))]


def valid_steps(xp, lengths, steps):
    """(B, T) booleans: step t of row b is inside its length."""
    return xp.arange(steps)[None, :] < xp.asarray(lengths)[:, None]


def path_scores(xp, scores, tags, valid, transitions, start, end):
    """Scores of the given paths: scores (B, T, C), tags (B, T) integers in 0..C-1 (any at padding),
    valid (B, T) -> (B,)."""
    rows = xp.arange(scores.shape[0])
    tags = xp.where(valid, tags, 0)
    last = tags[rows, valid.sum(axis=1) - 1]
    unary = (xp.take_along_axis(scores, tags[:, :, None], axis=2)[:, :, 0] * valid).sum(axis=1)
    pairs = (transitions[tags[:, :-1], tags[:, 1:]] * valid[:, 1:]).sum(axis=1)
    return start[tags[:, 0]] + unary + pairs + end[last]


def forward_backward(xp, scores, valid, transitions, start, end):
    """log_z (B,) and the log-space messages: alpha (B, T, C), the log-sum of the scores of all
    prefixes ending in each tag at step t (carried unchanged past the row's end); beta (B, T, C), of
    all suffixes after it (``end`` at and past the row's last step)."""
    batch, steps, _ = scores.shape
    alpha = xp.empty_like(scores)
    beta = xp.empty_like(scores)
    alpha[:, 0] = start + scores[:, 0]
    for t in range(1, steps):
        step = _logsumexp(xp, alpha[:, t - 1, :, None] + transitions, axis=1) + scores[:, t]
        alpha[:, t] = xp.where(valid[:, t, None], step, alpha[:, t - 1])
    beta[:, steps - 1] = end
    for t in range(steps - 2, -1, -1):
        step = _logsumexp(xp, transitions + (scores[:, t + 1] + beta[:, t + 1])[:, None, :], axis=2)
        beta[:, t] = xp.where(valid[:, t + 1, None], step, end)
    log_z = _logsumexp(xp, alpha[:, steps - 1] + end, axis=1)
    return log_z, alpha, beta


def negative_log_likelihood(xp, scores, tags, lengths, transitions, start, end):
    """-log p(tags) per row and a function giving its gradients.

    scores (B, T, C); tags (B, T) integers; lengths (B,) -> (nll (B,), grads(row_weights (B,)) ->
    (d scores (B, T, C), d transitions (C, C), d start (C,), d end (C,)) of sum_b w_b nll_b)."""
    full_steps = scores.shape[1]
    scores, tags = _up_to_longest(scores, lengths), _up_to_longest(tags, lengths)
    batch, steps, classes = scores.shape
    valid = valid_steps(xp, lengths, steps)
    log_z, alpha, beta = forward_backward(xp, scores, valid, transitions, start, end)
    nll = log_z - path_scores(xp, scores, tags, valid, transitions, start, end)

    def grads(weights):
        w = weights.astype(scores.dtype)
        fv = valid.astype(scores.dtype)
        # d log_z: the marginals of the tags and of the tag pairs; d score(tags): their counts.
        # Padding steps get log 0 before exp: their scores may be anything, even overflow exp.
        marginal = xp.exp(xp.where(valid[:, :, None], alpha + beta - log_z[:, None, None], -np.inf))  # (B, T, C)
        pair = xp.exp(xp.where(valid[:, 1:, None, None], alpha[:, :-1, :, None] + transitions
                               + (scores[:, 1:] + beta[:, 1:])[:, :, None, :] - log_z[:, None, None, None],
                               -np.inf))  # (B, T-1, C, C)
        gold = (xp.where(valid, tags, 0)[:, :, None] == xp.arange(classes)).astype(scores.dtype) * fv[:, :, None]
        is_last = (xp.arange(steps)[None, :] == xp.asarray(lengths)[:, None] - 1).astype(scores.dtype)
        gold_pairs = xp.einsum("bti,btj->bij", gold[:, :-1], gold[:, 1:])  # (B, C, C); zeros when T = 1
        d_scores = xp.zeros((batch, full_steps, classes), scores.dtype)
        d_scores[:, :steps] = (marginal - gold) * w[:, None, None]
        d_transitions = xp.einsum("b,bij->ij", w, pair.sum(axis=1) - gold_pairs)
        d_start = xp.einsum("b,bc->c", w, marginal[:, 0] - gold[:, 0])
        d_end = xp.einsum("b,btc->c", w, (marginal - gold) * is_last[:, :, None])
        return d_scores, d_transitions, d_start, d_end

    return nll, grads


def viterbi(xp, scores, lengths, transitions, start, end):
    """The best path of each row: scores (B, T, C), lengths (B,) -> tags (B, T) int64, 0 at padding."""
    full_steps = scores.shape[1]
    scores = _up_to_longest(scores, lengths)
    batch, steps, _ = scores.shape
    valid = valid_steps(xp, lengths, steps)
    best = start + scores[:, 0]  # (B, C) best score of a prefix ending in each tag
    back = xp.zeros((batch, steps, scores.shape[2]), np.int64)  # best previous tag
    for t in range(1, steps):
        candidates = best[:, :, None] + transitions  # (B, C previous, C)
        back[:, t] = candidates.argmax(axis=1)
        best = xp.where(valid[:, t, None], candidates.max(axis=1) + scores[:, t], best)
    rows = xp.arange(batch)
    tag = (best + end).argmax(axis=1)
    path = xp.zeros((batch, full_steps), np.int64)
    for t in range(steps - 1, -1, -1):  # rows shorter than t + 1 keep their last tag until they start
        path[:, t] = xp.where(valid[:, t], tag, 0)
        if t:
            tag = xp.where(valid[:, t], back[rows, t, tag], tag)
    return path
