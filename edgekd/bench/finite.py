"""The finiteness check of a model output (numpy only: the timed worker imports it before measuring memory)."""
from __future__ import annotations

import numpy as np


class NonFiniteOutput(ValueError):
    """The model produced NaN/Inf: the cell is failed with this reason, never ``ok`` with a number."""


def check_finite(values: np.ndarray, what: str) -> None:
    """A NaN or Inf output makes every figure computed from it meaningless: raise, naming how many values."""
    bad = int(np.size(values) - np.count_nonzero(np.isfinite(values)))
    if bad:
        raise NonFiniteOutput(f"{what}: {bad} of {np.size(values)} values are NaN or Inf (NaN/Inf weights, or an "
                              "overflow at this precision); no accuracy or timing of this output can be trusted")
