"""Parametrised sweeps split between the tiers: the fast tier (`-m "not slow"`) runs a sweep's first cases, CI
(`.ci/run`) every case. A property is still checked in the inner loop; its long tail (more seeds, longer
horizons) waits for the full suite."""

from __future__ import annotations

import pytest


def sweep(values, fast: int = 1) -> list:
    """`values` as parametrize cases, all but the first `fast` marked slow."""
    return [value if i < fast else pytest.param(value, marks=pytest.mark.slow) for i, value in enumerate(values)]
