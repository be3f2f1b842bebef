"""The chapter's examples, trained with fusedrnn's own layers and kernels.

Each module has ``add_arguments(parser)`` and ``run(args) -> dict`` (the metrics, printed last as
one JSON line by ``fusedrnn demo NAME``):

- ``rnn_step``: the chapter's NumPy ``step`` function for a vanilla RNN against our fused kernel;
- ``count_ones``: how many ones in a length-20 binary string (Figure 3-3's per-step RNN);
- ``seq2seq``: an encoder-decoder with attention on a synthetic translation task.
"""

# demo name -> module (relative to this package)
EXAMPLES = {
    "rnn-step": ".rnn_step",
    "count-ones": ".count_ones",
    "seq2seq": ".seq2seq",
}
