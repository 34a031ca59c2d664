"""What a served model makes from a fitted object on its first use (a lean scorer, a forest's flat arrays, a
statistics table's lookups) and keeps beside it, never in its pickle.

So a predictor pickled before such a helper existed scores through it too, and a logged model stays the fitted
object that scikit-learn, a reviewer or an older version of this code can read. Kept by weak reference: it goes
when the fitted object goes.
"""

from __future__ import annotations

import weakref


class KeptBeside:
    """`get(owner, make)`: `make(owner)` the first time, the same object after; `forget(owner)` when the owner
    changes what it was made from (a refit)."""

    def __init__(self):
        self._made = weakref.WeakKeyDictionary()

    def get(self, owner, make):
        made = self._made.get(owner)
        if made is None:
            made = self._made[owner] = make(owner)
        return made

    def forget(self, owner) -> None:
        self._made.pop(owner, None)

    def __contains__(self, owner) -> bool:
        return owner in self._made
