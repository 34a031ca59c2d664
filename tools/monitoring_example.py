"""Writes examples/monitoring_report.png, the README's example monitoring report:

    python -m tools.monitoring_example

In a temporary tracking store: a generated 10-year ledger (seed 11), the four models trained on its first year and
registered, then `monitor` on the month after it with 40% of the rows moved to merchants never seen; the category
champion's monitoring report (the run's monitoring/report.png) is copied to the example."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import mlflow
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
OUTPUT = REPO / "examples" / "monitoring_report.png"


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{folder}/mlflow.db"
        os.chdir(folder)  # artifacts under the temporary folder
        sys.path.insert(0, str(REPO))
        from pyfunc_models import jobs, registry
        from pyfunc_models.generator import generate_ledger
        from pyfunc_models.model_types import TASKS
        from pyfunc_models.monitoring import job
        from tests.test_monitoring import new_merchants

        raw = generate_ledger(rows=50_000, seed=11, days=3650, anomaly_rate=0.03).astype(str).replace("nan", "")
        dates = pd.to_datetime(raw["Date"])
        start = dates.min() + pd.Timedelta(days=365)
        raw[dates < start].to_csv("reference.csv", index=False)
        month = raw[(dates >= start) & (dates < start + pd.Timedelta(days=30))]
        new_merchants(month).to_csv("november.csv", index=False)
        for task in TASKS:
            trained = jobs.train_model(task(), "reference.csv")
            registry.register(task.model_type, trained.run_id)
        category = next(m for m in job.monitor("november.csv") if m.model_type == "category")
        path = mlflow.artifacts.download_artifacts(run_id=category.run_id, artifact_path=job.FIGURE_ARTIFACT)
        shutil.copy(path, OUTPUT)
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main()
