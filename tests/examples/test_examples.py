"""The chapter's examples (fusedrnn.examples, ``fusedrnn demo``): each learns on a small, fast
configuration (the --quick one) and must reach a real accuracy, not merely run."""

import json
import subprocess
import sys

import numpy as np
import pytest

from fusedrnn.examples import count_ones, rnn_step, seq2seq


# ----------------------------------------------------------------------------------------- rnn-step

@pytest.mark.parametrize("shape", [(4, 20, 8, 16), (1, 1, 3, 5), (7, 33, 2, 40)])
def test_rnn_step_agrees_with_the_fused_kernel_in_float64(shape):
    metrics = rnn_step.compare(*shape, dtype="float64", seed=3)
    # The same float64 arithmetic in another order through a contracting tanh: ~1e-16 per step.
    assert metrics["max_abs_diff"] <= 1e-12 and metrics["ok"]


def test_rnn_step_float32_within_its_tolerance():
    metrics = rnn_step.compare(8, 50, 16, 64, dtype="float32", seed=1)
    assert metrics["ok"] and metrics["max_abs_diff"] <= 1e-5


def test_cli_demo_rnn_step_prints_json_last():
    result = subprocess.run([sys.executable, "-m", "fusedrnn", "demo", "rnn-step", "--seed", "5"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) >= 2 and "max |difference|" in lines[0]
    metrics = json.loads(lines[-1])
    assert metrics["example"] == "rnn-step" and metrics["seed"] == 5 and metrics["ok"] is True
    assert metrics["dtype"] == "float64" and metrics["max_abs_diff"] <= 1e-12


def test_cli_demo_rejects_unknown_names():
    result = subprocess.run([sys.executable, "-m", "fusedrnn", "demo", "count-twos"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2 and "count-ones" in result.stderr


# ----------------------------------------------------------------------------------------- count-ones

def test_count_ones_data():
    x, y = count_ones.make_data(50, np.random.default_rng(0))
    assert x.shape == (50, 20, 1) and x.dtype == np.float32 and set(np.unique(x)) <= {0.0, 1.0}
    np.testing.assert_array_equal(y, x[:, :, 0].sum(axis=1))


def test_count_ones_learns(tmp_path):
    metrics = count_ones.train("lstm", **count_ones.QUICK, seed=0, out=tmp_path, verbose=0)
    # --quick reached 0.989-0.997 over seeds 0-2; 21 classes, so chance is under 0.18 and always
    # answering the commonest count (10) scores about 0.18.
    assert metrics["test_accuracy"] >= 0.97, metrics
    assert metrics["epochs"] == count_ones.QUICK["epochs"] and metrics["seconds"] > 0
    assert (tmp_path / "count_ones_history.png").read_bytes()[:4] == b"\x89PNG"


# ----------------------------------------------------------------------------------------- seq2seq

@pytest.mark.parametrize("task", seq2seq.TASKS)
def test_seq2seq_pairs(task):
    source, decoder_input, decoder_target, lengths, targets = seq2seq.make_pairs(
        np.random.default_rng(1), 30, 1, 6, task)
    assert source.shape == (30, 6) and decoder_input.shape == decoder_target.shape == (30, 7)
    for i, n in enumerate(lengths):
        digits = source[i, :n] - 1
        assert np.all(source[i, n:] == seq2seq.PAD) and np.all(digits >= 0)
        want = digits[::-1] if task == "reverse" else np.sort(digits)
        np.testing.assert_array_equal(targets[i], want)
        # teacher forcing: <GO> then the target; the decoder predicts the target then <DONE>
        assert decoder_input[i, 0] == seq2seq.GO
        np.testing.assert_array_equal(decoder_input[i, 1:n + 1] - 3, want)
        np.testing.assert_array_equal(decoder_target[i, :n] - 3, want)
        assert decoder_target[i, n] == seq2seq.DONE
        assert np.all(decoder_input[i, n + 1:] == seq2seq.PAD) and np.all(decoder_target[i, n + 1:] == seq2seq.PAD)


@pytest.mark.parametrize("attention, bidirectional, layers, peek", [
    ("none", False, 1, False), ("dot", False, 1, True), ("general", True, 1, False), ("additive", True, 2, True),
    ("dot", False, 2, False)])
def test_greedy_decoding_agrees_with_the_teacher_forced_graph(attention, bidirectional, layers, peek):
    """Greedy decoding runs the layers one step at a time with the carried state; the training graph
    runs them over whole sequences. Fed its own greedy output as decoder input, the training graph
    must pick the same token at every step (an untrained model: the wiring is what is tested)."""
    config = seq2seq.Config(attention, bidirectional, layers, peek, embedding=8, units=6, seed=2)
    model = seq2seq.Seq2Seq(config)
    source, *_ = seq2seq.make_pairs(np.random.default_rng(2), 16, 1, 7, "reverse")
    tokens, weights = model.greedy(source, 8)
    decoder_input = np.concatenate([np.full((16, 1), seq2seq.GO), tokens[:, :-1]], axis=1)
    for i in range(16):  # each row's input up to its <DONE>, then padding (nothing after it is fed back)
        row = list(tokens[i])
        stop = row.index(seq2seq.DONE) + 1 if seq2seq.DONE in row else len(row)
        decoder_input[i, stop:] = seq2seq.PAD
    forced = seq2seq.best_token(model.model.predict([source, decoder_input], verbose=0))
    for i in range(16):
        row = list(tokens[i])
        stop = row.index(seq2seq.DONE) + 1 if seq2seq.DONE in row else len(row)
        np.testing.assert_array_equal(forced[i, :stop], tokens[i, :stop], err_msg=f"row {i}")
    if attention == "none":
        assert weights is None
    else:
        lengths = (source != seq2seq.PAD).sum(axis=1)
        assert weights.shape == (16, tokens.shape[1], source.shape[1])
        # rows attend only to their own valid source steps
        padding = np.arange(source.shape[1])[None, :] >= lengths[:, None]  # (B, Te)
        assert np.all(weights[np.broadcast_to(padding[:, None, :], weights.shape)] == 0.0)


def test_seq2seq_attention_wins_on_long_sequences(tmp_path):
    metrics = seq2seq.run_experiment(("none", "dot"), **seq2seq.QUICK, seed=0, out=tmp_path, verbose=0)
    exact = metrics["exact_match"]
    attention, plain = exact["dot attention"], exact["no attention"]
    longest = str(max(seq2seq.QUICK["eval_lengths"]))
    # --quick (reverse, lengths up to 12, 6 epochs): dot attention scored 1.0/1.0/0.995 at lengths
    # 4/8/12 and no attention 0.99/0.83/0.09. Exact match needs every one of up to 13 tokens right.
    assert min(attention.values()) >= 0.9, exact
    assert attention[longest] >= plain[longest] + 0.4, exact
    for name in ("seq2seq_accuracy.png", "seq2seq_attention.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    table = seq2seq.format_table(exact)
    assert table.splitlines()[0] == "| length | no attention | dot attention |"
