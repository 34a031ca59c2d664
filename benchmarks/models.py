"""The models and requests the overhead and REST benchmarks use: the four champions trained by the real
`main` entry point in the workspace store, an identity pyfunc (the served floor), and raw request rows
as a client sends them, from a generated ledger the models never saw (another seed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import PYTHON, Workspace, run_measured, say, without_mlflow_advice
from pyfunc_models.model_types import MODEL_NAMES, MODEL_TYPES

SCORING_LEDGER_ROWS = 15_000  # enough for 10,000-row batches of categorised expenses
SCORING_SEED = 7
BENCHMARK_EXPERIMENT = "titans-benchmarks"


def champions(workspace: Workspace, rows: int, timeout: float | None = None) -> dict:
    """Train and register all four models with `python -m entrypoints.main` on a generated ledger;
    the URI of each champion (or of its newest version when the gate did not promote it)."""
    from mlflow.tracking import MlflowClient

    from pyfunc_models import config

    ledger = workspace.ledger(rows)
    say(f"models: training and registering all four models on {rows:,} rows (entrypoints.main)")
    measured = run_measured([PYTHON, "-m", "entrypoints.main", "--data", str(ledger)], workspace, "main",
                            timeout=timeout)
    client = MlflowClient(workspace.tracking_uri)
    found = {"main_wall_seconds": measured.wall_seconds, "main_peak_rss_bytes": measured.peak_rss_bytes,
             "ledger_rows": rows, "uris": {}, "notes": []}
    for model_type in MODEL_TYPES:
        name = MODEL_NAMES[model_type]
        try:
            version = client.get_model_version_by_alias(name, config.CHAMPION)
            found["uris"][model_type] = f"models:/{name}@{config.CHAMPION}"
        except Exception:  # noqa: BLE001 - no champion: fall back to the newest version, and say so
            versions = client.search_model_versions(f"name = '{name}'")
            if not versions:
                found["notes"].append(f"{model_type}: no registered version (main exited {measured.returncode})")
                continue
            version = max(versions, key=lambda v: int(v.version))
            found["uris"][model_type] = f"models:/{name}/{version.version}"
            found["notes"].append(f"{model_type}: no champion; using version {version.version}")
    if measured.returncode != 0:
        found["notes"].append(f"main exited {measured.returncode}: {measured.tail[-400:]}")
    say(f"models: {found['uris']}")
    return found


def identity_models(workspace: Workspace) -> dict:
    """The identity pyfunc, logged without a signature as the champions are logged without an input schema:
    the served floor, {"identity": its model URI}."""
    import mlflow

    workspace.prepare_store(BENCHMARK_EXPERIMENT)
    mlflow.set_tracking_uri(workspace.tracking_uri)
    mlflow.set_experiment(BENCHMARK_EXPERIMENT)
    code = str(Path(__file__).with_name("identity_model.py"))
    requirement = [f"mlflow=={mlflow.__version__}"]
    # The floor needs no input example and takes no type hints: MLflow would advise both.
    with mlflow.start_run(run_name="identity-floor"), without_mlflow_advice("input example", "Add type hints"):
        return {"identity": mlflow.pyfunc.log_model(name="identity", python_model=code,
                                                    pip_requirements=requirement).model_uri}


class Requests:
    """Raw transactions as a client sends them (ISO dates, numbers, text), per model type."""

    def __init__(self, workspace: Workspace):
        from pyfunc_models.ledger import load_ledger

        self.ledger, _ = load_ledger(workspace.ledger(SCORING_LEDGER_ROWS, seed=SCORING_SEED))

    def rows(self, model_type: str, size: int, offset: int = 0) -> pd.DataFrame:
        """`size` request rows for a model. Cash flow takes a history, not rows to score: its batch is `size`
        transactions spread evenly over the whole ledger (always more than the 90 days it needs)."""
        from pyfunc_models.amount import AmountPredictor
        from pyfunc_models.anomaly import AnomalyDetector
        from pyfunc_models.cashflow import CashflowPredictor
        from pyfunc_models.category import CategoryPredictor
        from pyfunc_models.ledger import request_rows

        ledger = self.ledger
        if model_type == "category":
            pool = ledger[(ledger["type"] == "expense") & (ledger["category"] != "")]
            columns = CategoryPredictor.input_columns
        else:
            pool = ledger
            columns = {"amount": AmountPredictor, "anomaly": AnomalyDetector,
                       "cashflow": CashflowPredictor}[model_type].input_columns
        if model_type == "cashflow":
            picked = pool.iloc[np.unique(np.linspace(0, len(pool) - 1, size).round().astype(int))]
        else:
            if size > len(pool):
                raise ValueError(f"the scoring ledger has {len(pool)} {model_type} rows; {size} asked")
            start = offset % max(1, len(pool) - size + 1)
            picked = pool.iloc[start:start + size]
        return request_rows(picked, columns=columns)
