"""The ADE adverse-effect tagger: corpus, tokens, splits, evaluation, embeddings, models and CLI (``fusedrnn ade``)."""
