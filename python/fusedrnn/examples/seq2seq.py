"""Encoder-decoder on a synthetic translation task, with and without attention, as length grows.

The task: a digit sequence in, the same digits reversed (``--task reverse``) or sorted
(``--task sort``) out. The target side has its own vocabulary with ``<GO>`` and ``<DONE>``:

    source  3 1 4 1 5                 decoder input   <GO> 5 1 4 1 3
    target  5 1 4 1 3 <DONE>          (teacher forcing: the target shifted right behind <GO>)

Model (built from fusedrnn.nn layers; the functional ``Model`` for training):

    encoder   Embedding(mask_zero) -> LSTM (or Bidirectional(LSTM)) x layers, return_sequences + return_state
    decoder   Embedding(mask_zero) [+ the encoder's final state at every step: "peeking"]
              -> LSTM(initial_state = encoder's final states)
              [-> Attention(decoder states, encoder outputs) -> Dense(tanh) over [state; context] (Luong)]
              -> Dense(vocabulary, softmax)

Training is teacher-forced over whole sequences: the decoder LSTM is one fused call and attention
scores all decoder steps at once (Luong-style attention after the recurrent layer, no input feeding),
so nothing loops over time in Python. Greedy decoding calls the *same layers* one step at a time:
the decoder LSTM with ``return_state=True`` and ``initial_state`` = the carried (h, c) on a T=1 input,
feeding back the argmax until every row has said ``<DONE>``.

Exact-match accuracy (the whole output sequence right) is reported per source length for each
model, as a table and a PNG plot; the attention model's weights on one example go to a heat map.
Reversal is where attention shows: without it every digit must survive in the final state (default
run, seed 0: 1.00 / 0.96 / 0.68 / 0.11 exact match at lengths 5 / 10 / 15 / 20; dot attention 1.00 at
all four). Sorting is the contrast: the digit counts are a summary that fits in the final state, so
both models reach 1.00 at every length in the default run (under --quick the attention model is the
slower learner there).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import _files
from ..nn import functional as F
from ..nn import layers
from ..nn.attention import Attention, save_heatmap
from ..nn.autograd import no_grad, record
from ..nn.layers import Layer
from ..nn.models import Model
from ..nn.optimizers import Adam

PAD = 0
GO, DONE = 1, 2  # target-side ids; digits d are d + 3 there and d + 1 on the source side
SOURCE_VOCAB = 11  # <PAD> and 10 digits
TARGET_VOCAB = 13  # <PAD> <GO> <DONE> and 10 digits
TASKS = ("reverse", "sort")
ATTENTION = ("none", "dot", "general", "additive")

# The default run trains each model for a couple of minutes at most on two cores; --quick is the
# tests' configuration (shorter sequences, fewer samples and epochs).
DEFAULT = dict(max_length=20, eval_lengths=(5, 10, 15, 20), train=24000, eval_per_length=300, embedding=32,
               units=64, epochs=12, batch_size=64, learning_rate=0.005)
QUICK = dict(max_length=12, eval_lengths=(4, 8, 12), train=6000, eval_per_length=200, embedding=16,
             units=48, epochs=6, batch_size=64, learning_rate=0.01)


# ----------------------------------------------------------------------------------------- data

def translate(digits, task):
    """The target digits for source digits (1-D int array)."""
    return digits[::-1] if task == "reverse" else np.sort(digits)


def make_pairs(rng, n, min_length, max_length, task):
    """n random pairs with source lengths uniform in [min_length, max_length], post-padded with 0.

    -> source (n, max_length) ids, decoder_input (n, max_length + 1) = <GO> + target,
    decoder_target (n, max_length + 1) = target + <DONE>, lengths (n,), digits: list of target digit arrays."""
    lengths = rng.integers(min_length, max_length + 1, size=n)
    source = np.zeros((n, max_length), np.int64)
    decoder_input = np.zeros((n, max_length + 1), np.int64)
    decoder_target = np.zeros((n, max_length + 1), np.int64)
    targets = []
    for i, length in enumerate(lengths):
        digits = rng.integers(0, 10, size=length)
        target = translate(digits, task)
        source[i, :length] = digits + 1
        decoder_input[i, 0] = GO
        decoder_input[i, 1:length + 1] = target + 3
        decoder_target[i, :length] = target + 3
        decoder_target[i, length] = DONE
        targets.append(target)
    return source, decoder_input, decoder_target, lengths, targets


# ----------------------------------------------------------------------------------------- model

class AppendToSteps(Layer):
    """[vector (B, H), sequence (B, T, E)] -> (B, T, E + H): the vector appended to every step of the
    sequence ("peeking"); the sequence's lengths carry over."""

    def call(self, inputs, training=False):
        vector, sequence = inputs
        repeated = record(vector.xp.repeat(vector.data[:, None, :], sequence.shape[1], axis=1), (vector,),
                          lambda g: (g.sum(axis=1),))  # (B, T, H)
        out = F.concat([sequence, repeated], axis=-1)
        out.lengths = sequence.lengths
        return out

    def compute_output_shape(self, input_shape):
        vector, sequence = input_shape
        return tuple(sequence[:-1]) + (sequence[-1] + vector[-1],)


@dataclass
class Config:
    attention: str = "dot"  # one of ATTENTION
    bidirectional: bool = False
    encoder_layers: int = 1
    peek: bool = False
    embedding: int = 32
    units: int = 64  # per encoder direction; the decoder has units * directions
    learning_rate: float = 0.005
    seed: int = 0

    @property
    def label(self) -> str:
        parts = ["no attention" if self.attention == "none" else f"{self.attention} attention"]
        if self.bidirectional:
            parts.append("bidirectional")
        if self.encoder_layers > 1:
            parts.append(f"{self.encoder_layers} layers")
        if self.peek:
            parts.append("peeking")
        return ", ".join(parts)


class Seq2Seq:
    """The layers of one encoder-decoder, wired by ``encode`` and ``decode``: the same two functions
    build the symbolic training graph and run greedy decoding step by step."""

    def __init__(self, config: Config):
        self.config = config
        layers.set_random_seed(config.seed)
        directions = 2 if config.bidirectional else 1
        self.decoder_units = config.units * directions
        self.source_embedding = layers.Embedding(SOURCE_VOCAB, config.embedding, mask_zero=True)
        self.target_embedding = layers.Embedding(TARGET_VOCAB, config.embedding, mask_zero=True)
        self.encoders = []
        for _ in range(config.encoder_layers):
            lstm = layers.LSTM(config.units, return_sequences=True, return_state=True)
            self.encoders.append(layers.Bidirectional(lstm) if config.bidirectional else lstm)
        self.merge_states = [layers.Concatenate(), layers.Concatenate()] if config.bidirectional else None
        self.peek = AppendToSteps() if config.peek else None
        self.decoder = layers.LSTM(self.decoder_units, return_sequences=True, return_state=True)
        if config.attention != "none":
            self.attention = Attention(config.attention)
            self.join = layers.Concatenate()
            self.attentional = layers.Dense(self.decoder_units, activation="tanh")
        self.output = layers.Dense(TARGET_VOCAB, activation="softmax")

        source = layers.Input((None,), dtype="int64")
        decoder_input = layers.Input((None,), dtype="int64")
        encoded, state = self.encode(source)
        probabilities, _, _ = self.decode(decoder_input, state, encoded, state[0])
        self.model = Model([source, decoder_input], probabilities)
        self.model.compile(optimizer=Adam(learning_rate=config.learning_rate),
                           loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    def encode(self, source):
        """source ids (B, Te) -> encoder outputs (B, Te, D*H), final state [h, c] (B, D*H) each."""
        x = self.source_embedding(source)
        for encoder in self.encoders:
            if self.config.bidirectional:
                x, h_f, c_f, h_b, c_b = encoder(x)
                state = [self.merge_states[0]([h_f, h_b]), self.merge_states[1]([c_f, c_b])]
            else:
                x, h, c = encoder(x)
                state = [h, c]
        return x, state

    def decode(self, decoder_input, state, encoded, summary):
        """decoder input ids (B, Td), state [h, c], encoder outputs (B, Te, D*H), the encoder's final
        h (B, D*H) (what peeking appends to every input step) -> probabilities (B, Td, V), attention
        weights (B, Td, Te) or None, new state [h, c]."""
        x = self.target_embedding(decoder_input)
        if self.peek is not None:
            x = self.peek([summary, x])
        y, h, c = self.decoder(x, initial_state=state)
        weights = None
        if self.config.attention != "none":
            context, weights = self.attention([y, encoded])
            y = self.attentional(self.join([y, context]))
        return self.output(y), weights, [h, c]

    def fit(self, source, decoder_input, decoder_target, epochs, batch_size, validation, verbose=1):
        return self.model.fit([source, decoder_input], decoder_target, batch_size=batch_size, epochs=epochs,
                              validation_data=validation, shuffle=True, verbose=verbose, seed=self.config.seed)

    def greedy(self, source, max_steps):
        """Greedy decoding of source ids (B, Te) -> tokens (B, max_steps) (each row up to and including
        its first <DONE>, then PAD) and attention weights (B, max_steps, Te) or None."""
        B = source.shape[0]
        tokens = np.full((B, max_steps), PAD, np.int64)
        weights = [] if self.config.attention != "none" else None
        with no_grad():
            encoded, state = self.encode(source)
            summary = state[0]
            previous = np.full((B, 1), GO, np.int64)
            done = np.zeros(B, bool)
            for t in range(max_steps):
                probabilities, step_weights, state = self.decode(previous, state, encoded, summary)
                choice = best_token(probabilities.numpy()[:, 0])  # (B,)
                choice[done] = PAD
                tokens[:, t] = choice
                if weights is not None:
                    weights.append(step_weights.numpy()[:, 0])
                done |= choice == DONE
                if done.all():
                    break
                previous = np.where(done, DONE, choice)[:, None]  # finished rows keep a valid id
        if weights is not None:
            weights = np.stack(weights, axis=1)
        return tokens[:, :t + 1], weights


def best_token(probabilities):
    """The most probable id among those a decoder may emit (<DONE> and the digits, never <PAD> or
    <GO>): probabilities (..., V) -> ids (...)."""
    return probabilities[..., DONE:].argmax(axis=-1) + DONE


def decoded_digits(tokens):
    """One row of greedy output -> its digits up to <DONE>, and whether <DONE> came."""
    row = list(tokens)
    finished = DONE in row
    row = row[:row.index(DONE)] if finished else row
    return np.array([tok - 3 for tok in row if tok != PAD]), finished


def exact_match(model, source, targets):
    """Share of rows whose greedy output is exactly the target digits followed by <DONE>."""
    tokens, _ = model.greedy(source, source.shape[1] + 1)
    right = 0
    for row, target in zip(tokens, targets):
        digits, finished = decoded_digits(row)
        right += finished and len(digits) == len(target) and bool(np.all(digits == target))
    return right / len(targets)


# ----------------------------------------------------------------------------------------- experiment

def run_experiment(attention=("none", "dot"), task="reverse", bidirectional=False, encoder_layers=1, peek=False,
                   max_length=20, eval_lengths=(5, 10, 15, 20), train=24000, eval_per_length=300, embedding=32,
                   units=64, epochs=12, batch_size=64, learning_rate=0.005, seed=0, out=None, verbose=1):
    """Trains one model per attention choice on lengths 1..max_length and measures exact match at
    each of eval_lengths -> metrics dict (with the table as "exact_match": {label: {length: acc}})."""
    rng = np.random.default_rng(seed)
    source, decoder_input, decoder_target, _, _ = make_pairs(rng, train, 1, max_length, task)
    validation = make_pairs(rng, max(train // 20, 100), 1, max_length, task)
    tests = {n: make_pairs(rng, eval_per_length, n, n, task) for n in eval_lengths}
    results, seconds, token_accuracy, heatmap = {}, {}, {}, None
    for choice in attention:
        config = Config(choice, bidirectional, encoder_layers, peek, embedding, units, learning_rate, seed)
        model = Seq2Seq(config)
        start = time.perf_counter()
        history = model.fit(source, decoder_input, decoder_target, epochs, batch_size,
                            (list(validation[:2]), validation[2]), verbose)
        seconds[config.label] = round(time.perf_counter() - start, 1)
        token_accuracy[config.label] = round(float(history.history["val_accuracy"][-1]), 4)
        results[config.label] = {n: exact_match(model, test[0], test[4]) for n, test in tests.items()}
        if out is not None and choice != "none" and heatmap is None:
            heatmap = _save_heatmap(model, tests[max(eval_lengths)], Path(out), task)
    metrics = {"example": "seq2seq", "task": task, "bidirectional": bidirectional, "encoder_layers": encoder_layers,
               "peek": peek, "max_length": max_length, "train": train, "epochs": epochs, "units": units,
               "seed": seed, "exact_match": {label: {str(n): acc for n, acc in row.items()}
                                             for label, row in results.items()},
               "val_token_accuracy": token_accuracy, "train_seconds": seconds}
    if out is not None:
        metrics["plot"] = str(_save_plot(results, Path(out), task))
        if heatmap is not None:
            metrics["heatmap"] = str(heatmap)
    return metrics


def format_table(exact: dict) -> str:
    """A markdown table: one row per source length, one column per model."""
    labels = list(exact)
    lengths = list(next(iter(exact.values())))
    lines = ["| length | " + " | ".join(labels) + " |", "|---:|" + "---:|" * len(labels)]
    for n in lengths:
        lines.append(f"| {n} | " + " | ".join(f"{exact[label][n]:.3f}" for label in labels) + " |")
    return "\n".join(lines)


def _save_plot(results, out: Path, task):
    from .._extras import require

    require("matplotlib", "plot").use("Agg")
    plt = require("matplotlib.pyplot", "plot")

    out.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, row in results.items():
        ax.plot(list(row), list(row.values()), marker="o", label=label)
    ax.set_xlabel("source length")
    ax.set_ylabel("exact-match accuracy (greedy)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"seq2seq, {task}: attention vs none")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = out / "seq2seq_accuracy.png"
    _files.save_figure(fig, path)
    plt.close(fig)
    return path


def _save_heatmap(model, test, out: Path, task):
    out.mkdir(parents=True, exist_ok=True)
    source = test[0][:1]
    tokens, weights = model.greedy(source, source.shape[1] + 1)
    names = {PAD: "", GO: "<GO>", DONE: "<DONE>"}
    target_labels = [names.get(tok, str(tok - 3)) for tok in tokens[0]]
    return save_heatmap(weights[0], out / "seq2seq_attention.png", [str(d - 1) for d in source[0]], target_labels,
                        title=f"{model.config.label}, {task}")


def add_arguments(parser):
    parser.add_argument("--task", choices=TASKS, default="reverse", help="reverse or sort the digits (default reverse)")
    parser.add_argument("--attention", default="none,dot", metavar="LIST",
                        help=f"comma-separated models to train and compare, of {', '.join(ATTENTION)} "
                             "(default none,dot)")
    parser.add_argument("--bidirectional", action="store_true", help="a bidirectional encoder")
    parser.add_argument("--encoder-layers", type=int, default=1, help="stacked encoder layers (default 1)")
    parser.add_argument("--peek", action="store_true",
                        help="append the encoder's final state to every decoder input step")
    for key in ("max_length", "train", "epochs", "units", "embedding", "batch_size"):
        parser.add_argument("--" + key.replace("_", "-"), type=int, default=None,
                            help=f"default {DEFAULT[key]} ({QUICK[key]} with --quick)")
    parser.add_argument("--learning-rate", type=float, default=None,
                        help=f"Adam's (default {DEFAULT['learning_rate']}; {QUICK['learning_rate']} with --quick)")


def run(args) -> dict:
    choices = tuple(a.strip() for a in args.attention.split(","))
    unknown = [a for a in choices if a not in ATTENTION]
    if unknown or not choices:
        raise SystemExit(f"fusedrnn demo seq2seq: --attention: unknown {unknown}; expected some of {', '.join(ATTENTION)}")
    config = dict(QUICK if args.quick else DEFAULT)
    for key in ("max_length", "train", "epochs", "units", "embedding", "batch_size", "learning_rate"):
        if getattr(args, key) is not None:
            config[key] = getattr(args, key)
    if args.max_length is not None:
        config["eval_lengths"] = tuple(sorted({max(1, round(config["max_length"] * f)) for f in (0.25, 0.5, 0.75, 1)}))
    metrics = run_experiment(choices, args.task, args.bidirectional, args.encoder_layers, args.peek, **config,
                             seed=args.seed, out=args.out)
    print(f"seq2seq ({args.task}), exact-match accuracy of greedy decoding by source length:")
    print(format_table(metrics["exact_match"]))
    print("training seconds: " + ", ".join(f"{k}: {v}" for k, v in metrics["train_seconds"].items()))
    return metrics
