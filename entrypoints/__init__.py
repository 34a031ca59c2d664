"""One thin script per MLproject entry point: parse parameters, call `pyfunc_models`, print."""

import sys

# Progress lines appear as they happen, interleaved correctly with MLflow's log lines.
sys.stdout.reconfigure(line_buffering=True)


def whole_number(text: str) -> int:
    """An MLproject number parameter ('20000', '20000.0', '1e6') as an int (MLproject has no int type)."""
    value = float(text)
    if not value.is_integer():
        raise ValueError(f"expected a whole number, got {text}")
    return int(value)
