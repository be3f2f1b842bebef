"""Type aliases of the public API's annotations (fusedrnn.ops, fusedrnn.nn)."""

from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple

import numpy.typing as npt

# A NumPy or a CuPy array (CuPy is optional and has no static types of its own, so Any).
Array = Any  # numpy.ndarray or cupy.ndarray
# A NumPy or CuPy array, or anything np.asarray takes (lists of numbers, scalars).
ArrayLike = Any  # npt.ArrayLike or cupy.ndarray
DTypeLike = npt.DTypeLike
# One direction's weights in the op layout: w_ih (G*H, I), w_hh (G*H, H), b_ih (G*H,), b_hh (G*H,);
# ParamsLike where a list of the four is accepted too (and a fifth, w_hr (P, H), for an LSTM with
# projections).
Params = Tuple[Array, Array, Array, Array]
ParamsLike = Sequence[Array]
# A shape in the functional API: None for the batch axis and any size known only at run time.
Shape = Tuple[Optional[int], ...]
