"""The ADE adverse-effect tagger: corpus, tokens, splits and evaluation (models and CLI come later)."""
