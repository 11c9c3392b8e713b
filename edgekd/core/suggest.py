"""Near-match suggestions for unknown names: the "did you mean" half of a one-line error.

One helper for every registry (models, losses, backends, device profiles, table columns,
candidates), so a typo is answered the same way everywhere.
"""
from __future__ import annotations

import difflib
from typing import Iterable


def did_you_mean(name: str, known: Iterable[str], *, template: str = " Did you mean {!r}?",
                 cutoff: float = 0.6, n: int = 1) -> str:
    """``template`` filled with the closest known name(s), or ``""`` when nothing is close.

    With ``n > 1`` the template receives the matches joined by ", ". ``cutoff`` is difflib's
    similarity ratio: registries with short names use a lower one.
    """
    near = difflib.get_close_matches(name, list(known), n=n, cutoff=cutoff)
    if not near:
        return ""
    return template.format(near[0] if n == 1 else ", ".join(near))
