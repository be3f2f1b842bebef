"""Checks of GPU data whose answer would make the host wait for the GPU at every step.

On NumPy data ``check`` raises at once. On CuPy data the failure flag (a 0-d device boolean) is kept
and looked at by ``raise_pending``, which the training loop calls whenever it reads values back to
the host anyway (every few steps and at each epoch's end; fusedrnn.nn.models): a bad id in a GPU
batch raises a few steps late instead of every step costing a synchronisation.
"""

from __future__ import annotations

import numpy as np

MAX_PENDING = 64  # past this, check now: the flags (and the arrays the messages need) are held until then

_pending: list = []


def check(xp, failed, error):
    """Raises ``error()`` if the 0-d boolean ``failed`` is true: now on NumPy, later on CuPy."""
    if xp is np:
        if bool(failed):
            raise error()
        return
    _pending.append((failed, error))
    if len(_pending) > MAX_PENDING:
        raise_pending()


def raise_pending():
    """Looks at every kept flag (waiting for the GPU) and raises the first failure's error."""
    if not _pending:
        return
    pending = list(_pending)
    _pending.clear()
    for failed, error in pending:
        if bool(failed):
            raise error()
