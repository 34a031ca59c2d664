"""Batch scoring at scale: Spark `batch_score` against in-process `pyfunc.predict` on the same rows of a
generated ledger, with the same model.

    python -m benchmarks.batch_score_bench                       # 1,000,000 rows; trains a category model
    python -m benchmarks.batch_score_bench --rows 20000 --master 'local[2]'
    python -m benchmarks.batch_score_bench --model-uri models:/titans-finance-category-prediction@champion

Each side is a child process of its own, timed from launch to exit (Spark's start-up counts, as it does for a
nightly job) beside the time of the scoring itself. Peak memory is the largest sum of RSS over the child's
process tree (for Spark: driver, JVM and Python workers), sampled every 0.2 s. Both sides read the same CSV
as text and write Parquet; afterwards their answers are compared row by row.

Without `model_uri`, a model of `model_type` is trained on a separate `train_rows`-row ledger by the shared
training job, in a tracking store inside the work directory (the repository's mlflow.db is never touched);
a given `model_uri` is read from `tracking_uri`, else from where MLflow points (MLFLOW_TRACKING_URI).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE_SECONDS = 0.2

SPARK_SIDE = """
import json, sys
from pyfunc_models import batch
done = batch.batch_score(sys.argv[1], sys.argv[2], sys.argv[3], master=sys.argv[4],
                         log=lambda line: print(line, file=sys.stderr, flush=True))
print(json.dumps(done))
"""

IN_PROCESS_SIDE = """
import json, sys, time
started = time.perf_counter()
import mlflow, pandas as pd
from pyfunc_models import batch
model = mlflow.pyfunc.load_model(sys.argv[1])
loaded = time.perf_counter()
raw = pd.read_csv(sys.argv[2], dtype=str, keep_default_na=False)
read = time.perf_counter()
answers = model.predict(batch.model_rows(raw, model.metadata.get_input_schema()))
predicted = time.perf_counter()
pd.concat([raw, answers.add_prefix("answer_")], axis=1).to_parquet(sys.argv[3], index=False)
print(json.dumps({"load_seconds": loaded - started, "read_seconds": read - loaded,
                  "predict_seconds": predicted - read, "write_seconds": time.perf_counter() - predicted}))
"""


def _tree_rss(root: int) -> int:
    """Bytes of resident memory of a process and all its descendants, from /proc."""
    children, rss = {}, {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry.name))
            rss[int(entry.name)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo.extend(children.get(pid, []))
    return total


def measured(command: list, env: dict, cwd: Path) -> dict:
    """Run a child to its end: wall seconds, peak RSS of its process tree, its last stdout line as JSON."""
    peak = [0]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _tree_rss(process.pid))
            done.wait(SAMPLE_SECONDS)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = process.communicate()
    wall = time.perf_counter() - started
    done.set()
    sampler.join()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, command[:3]))} ... failed ({process.returncode}):\n{stderr[-3000:]}")
    return {"wall_seconds": wall, "peak_rss_mb": peak[0] / 2 ** 20, "log": stderr,
            "report": json.loads(stdout.strip().splitlines()[-1])}


@contextlib.contextmanager
def _tracking(uri: str):
    """MLFLOW_TRACKING_URI for this process and its children, restored afterwards."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = before


def train(model_type: str, rows: int, seed: int, workdir: Path) -> str:
    """A model of `model_type` from the shared training job on a generated ledger; its model URI."""
    from mlflow.tracking import MlflowClient

    from pyfunc_models import config, jobs
    from pyfunc_models.amount import AmountTask
    from pyfunc_models.anomaly import AnomalyTask
    from pyfunc_models.category import CategoryTask
    from pyfunc_models.generator import write_ledger

    if MlflowClient().get_experiment_by_name(config.EXPERIMENT_NAME) is None:
        MlflowClient().create_experiment(config.EXPERIMENT_NAME, artifact_location=(workdir / "mlruns").as_uri())
    ledger = workdir / f"train_ledger_{rows}.csv"
    write_ledger(ledger, rows=rows, seed=seed + 1)
    task = {"category": CategoryTask, "amount": AmountTask, "anomaly": AnomalyTask}[model_type]()
    return jobs.train_model(task, str(ledger), seed=seed).model_uri


def same_answers(spark_output: Path, in_process_output: Path, columns: list) -> bool:
    """Every answer column equal, row by row (missing equal to missing)."""
    import pandas as pd

    spark = pd.read_parquet(spark_output)
    mine = pd.read_parquet(in_process_output, columns=[f"answer_{c}" for c in columns])
    for column in columns:
        left = spark[f"predicted_{column}" if f"predicted_{column}" in spark else column].tolist()
        right = mine[f"answer_{column}"].tolist()
        if len(left) != len(right):
            return False
        for a, b in zip(left, right, strict=True):
            if not (a is b or _missing(a) and _missing(b) or _plain(a) == _plain(b)):
                return False
    return True


def _missing(value) -> bool:
    import pandas as pd

    return not hasattr(value, "__len__") and pd.isna(value)


def _plain(value):
    """Arrays of structs as lists of dicts, so both sides' nested answers compare."""
    if hasattr(value, "tolist") and not isinstance(value, str):
        value = value.tolist()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def run(rows: int = 1_000_000, model_uri: str | None = None, model_type: str = "category", train_rows: int = 20_000,
        master: str = "local[*]", seed: int = 42, workdir=None, tracking_uri: str | None = None) -> dict:
    """Spark batch_score vs in-process predict on the same `rows` generated rows; the figures as a dict."""
    own_folder = workdir is None
    folder = Path(workdir or tempfile.mkdtemp(prefix="titans-batch-bench-")) / f"batch_score_{rows}"
    folder.mkdir(parents=True, exist_ok=True)
    if tracking_uri is None:  # a given model lives in the caller's store; one trained here, in the work folder
        import mlflow

        tracking_uri = mlflow.get_tracking_uri() if model_uri else f"sqlite:///{folder}/mlflow.db"
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    env.pop("MLFLOW_RUN_ID", None)
    try:
        from pyfunc_models.generator import write_ledger

        results = {"rows": rows, "master": master, "seed": seed, "load_average_before": os.getloadavg()}
        started = time.perf_counter()
        ledger = folder / f"ledger_{rows}.csv"
        write_ledger(ledger, rows=rows, seed=seed)
        results["ledger_seconds"] = time.perf_counter() - started
        with _tracking(tracking_uri):
            if model_uri is None:
                started = time.perf_counter()
                model_uri = train(model_type, train_rows, seed, folder)
                results.update(train_rows=train_rows, train_seconds=time.perf_counter() - started)
            from pyfunc_models import batch

            model = batch.describe_model(model_uri)
        if model.plan == batch.PER_LEDGER:
            raise ValueError(f"{model_uri} forecasts a whole ledger: there are no rows to compare with predict")
        results["model_uri"] = model_uri

        spark_output, in_process_output = folder / "spark_scores.parquet", folder / "in_process_scores.parquet"
        shutil.rmtree(spark_output, ignore_errors=True)
        spark = measured([sys.executable, "-c", SPARK_SIDE, model_uri, str(ledger), str(spark_output), master],
                         env, folder)
        in_process = measured([sys.executable, "-c", IN_PROCESS_SIDE, model_uri, str(ledger), str(in_process_output)],
                              env, folder)
        report = spark["report"]
        results.update(model_type=report["model_type"], plan=report["plan"])
        results["spark"] = {
            "wall_seconds": spark["wall_seconds"], "rows_per_second": rows / spark["wall_seconds"],
            "scoring_seconds": report["scoring_seconds"], "scoring_rows_per_second": rows / report["scoring_seconds"],
            "peak_rss_mb": spark["peak_rss_mb"],
        }
        timings = in_process["report"]
        results["in_process"] = {
            "wall_seconds": in_process["wall_seconds"], "rows_per_second": rows / in_process["wall_seconds"],
            "predict_seconds": timings["predict_seconds"],
            "predict_rows_per_second": rows / timings["predict_seconds"], **timings,
            "peak_rss_mb": in_process["peak_rss_mb"],
        }
        results["spark_vs_in_process_wall"] = spark["wall_seconds"] / in_process["wall_seconds"]
        results["answers_equal"] = same_answers(spark_output, in_process_output, model.outputs.input_names())
        results["load_average_after"] = os.getloadavg()
        return results
    finally:
        if own_folder:
            shutil.rmtree(folder.parent, ignore_errors=True)


def markdown(results: dict) -> str:
    """The figures as a small table (benchmarks/report.py uses this when present)."""
    spark, local = results["spark"], results["in_process"]
    lines = [
        f"{results['rows']:,} rows, `{results['model_uri']}` ({results['model_type']}, plan `{results['plan']}`), "
        f"Spark master `{results['master']}`; answers equal row by row: {results['answers_equal']}.",
        "",
        "| side | wall s (whole job) | rows/s (whole job) | scoring s | rows/s (scoring) | peak RSS MB (tree) |",
        "|---|---:|---:|---:|---:|---:|",
        f"| Spark `batch_score` | {spark['wall_seconds']:.1f} | {spark['rows_per_second']:,.0f} | "
        f"{spark['scoring_seconds']:.1f} | {spark['scoring_rows_per_second']:,.0f} | {spark['peak_rss_mb']:,.0f} |",
        f"| in-process `predict` | {local['wall_seconds']:.1f} | {local['rows_per_second']:,.0f} | "
        f"{local['predict_seconds']:.1f} | {local['predict_rows_per_second']:,.0f} | {local['peak_rss_mb']:,.0f} |",
        "",
        "Spark's scoring time covers reading the CSV, the model on every row and writing Parquet; in-process "
        "`predict` is the model call alone (reading and writing are the rest of its whole-job time).",
    ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--model-uri", default=None, help="score with this model instead of training one")
    parser.add_argument("--model-type", default="category", choices=("category", "amount", "anomaly"))
    parser.add_argument("--train-rows", type=int, default=20_000)
    parser.add_argument("--master", default="local[*]")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--workdir", default=None, help="keep the ledger, model and outputs here")
    args = parser.parse_args(argv)
    results = run(args.rows, args.model_uri, args.model_type, args.train_rows, args.master, args.seed, args.workdir)
    print(json.dumps(results, indent=2, default=str))
    print(markdown(results))


if __name__ == "__main__":
    main()
