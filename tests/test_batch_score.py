"""batch_score on Spark `local[2]`: the Parquet it writes holds the ledger's columns and exactly what in-process
`pyfunc.predict` answers for the same rows, for each way rows reach a model (spark_udf row by row; anomaly by
day; cash flow per ledger); and what it cannot do, it refuses in one line.

Real models, trained or logged in a store of this module's own: the anomaly detector and a ridge-only amount
model by the shared training job, a cash-flow predictor (seasonal naive) logged as training logs it. The anomaly
detector is trained, registered and scored by `mlflow run . -e batch_score` from the session's start, in the
background (tests/early_runs.py): the store is that run's.

Spark runs on Java (pyspark 4 needs 17 or newer): where there is none, the tests that start Spark are skipped and
say so, as the team-mode test is without PostgreSQL. Only the absence of Java skips; with Java present, Spark
failing to start fails the test.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from pyfunc_models import batch, config, jobs, tracking
from pyfunc_models.amount import AmountTask
from pyfunc_models.batch import shipping
from pyfunc_models.batch.model import declared_inputs
from pyfunc_models.cashflow import CashflowPredictor, CashflowTask, SeasonalNaive
from pyfunc_models.category import CategoryTask
from pyfunc_models.generator import write_ledger
from pyfunc_models.ledger import LedgerError
from pyfunc_models.model_types import MODEL_NAMES
from tests.conftest import REPO, SMALL_LEDGER_ROWS, python_module, tracking_env
from tests.early_runs import EarlyRun, starts_early

pytestmark = pytest.mark.slow  # through the mlflow CLI, a served model or a tracking server

MLFLOW = str(Path(sys.executable).with_name("mlflow"))
SPARK_JAVA = 17  # the oldest Java pyspark 4 runs on
INSTALL_JAVA = "apt-get install openjdk-17-jre-headless"


def missing_java() -> str | None:
    """Why Spark cannot start here, or None. Finds `java` as Spark's launcher does ($JAVA_HOME/bin/java, else
    java on PATH). A Java whose version cannot be read is not a reason to skip: Spark is left to fail."""
    java_home = os.environ.get("JAVA_HOME")
    runner = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if java_home and not Path(runner).is_file():
        return f"JAVA_HOME={java_home} has no bin/java; Spark needs Java {SPARK_JAVA}+ ({INSTALL_JAVA})"
    if runner is None:
        return f"Java is not installed (no JAVA_HOME, no java on PATH); Spark needs Java {SPARK_JAVA}+: {INSTALL_JAVA}"
    version = subprocess.run([runner, "-version"], capture_output=True, text=True, timeout=60).stderr
    found = re.search(r'version "(\d+)(?:\.(\d+))?', version)
    if found:
        major = int(found[2] or 0) if found[1] == "1" else int(found[1])  # "1.8.0" is Java 8
        if major < SPARK_JAVA:
            return f"{runner} is Java {major}; Spark needs Java {SPARK_JAVA}+: {INSTALL_JAVA}"
    return None


MISSING_JAVA = missing_java()
# Checked before any fixture: a test that would start Spark is skipped before the models are trained for it.
needs_java = pytest.mark.skipif(MISSING_JAVA is not None, reason=MISSING_JAVA or "")


class RidgeOnlyAmount(AmountTask):
    """The amount task with its cheapest candidate: these tests are about scoring, not model choice."""

    def candidates(self, seed):
        return [c for c in super().candidates(seed) if c.name == "ridge"]


def log_cashflow_model() -> str:
    """A cash-flow predictor (weekly seasonal naive, fixed backtest errors) logged exactly as training logs one."""
    predictor = CashflowPredictor(SeasonalNaive(), errors=np.array([-900.0, -300.0, 0.0, 250.0, 800.0]))
    example = predictor.example()
    mlflow.set_experiment(config.EXPERIMENT_NAME)
    with mlflow.start_run(tags={config.MODEL_TYPE_TAG: "cashflow"}):
        return tracking.log_predictor(predictor, example, CashflowTask.serving_params, "cashflow").model_uri


ANOMALY_MODEL = f"models:/{MODEL_NAMES['anomaly']}/1"  # the first version registered in the module's store


@starts_early("store")
def scored_in_the_background(tmp_path_factory) -> dict:
    """In a store of the module's own (artifacts in its folder, not ./mlruns): the anomaly detector trained by the
    shared training job on the small ledger (the same rows as the `small_ledger` fixture's) and registered, then
    `mlflow run . -e batch_score` of it on local[2], the CSV read as several partitions; from the session's start."""
    folder = tmp_path_factory.mktemp("batch")
    ledger = folder / "ledger.csv"
    write_ledger(ledger, rows=SMALL_LEDGER_ROWS, seed=7)
    several_partitions = "--conf spark.sql.files.maxPartitionBytes=65536 pyspark-shell"
    env = tracking_env(f"sqlite:///{folder}/mlflow.db", PYSPARK_SUBMIT_ARGS=several_partitions)
    store = [MLFLOW, "experiments", "create", "-n", config.EXPERIMENT_NAME, "-l", (folder / "artifacts").as_uri()]
    train = [sys.executable, "-m", "entrypoints.train", "anomaly", "--data", ledger]
    register = [sys.executable, "-m", "entrypoints.register", "--model-type", "anomaly"]
    score = [MLFLOW, "run", ".", "-e", "batch_score", "--env-manager", "local", "--experiment-name",
             config.EXPERIMENT_NAME, "-P", f"model_uri={ANOMALY_MODEL}", "-P", f"data={ledger}",
             "-P", f"output={folder / 'anomalies.parquet'}", "-P", "master=local[2]"]
    commands = (store, train, register, score) if MISSING_JAVA is None else (store, train, register)
    return {"scored": EarlyRun(*commands, cwd=REPO, env=env, output_dir=folder, timeout=600)}


@pytest.fixture(scope="module")
def store(early_runs, small_ledger) -> dict:
    """The background run's store, with the other models trained or logged in it."""
    run = early_runs[scored_in_the_background]["scored"]
    done = run.result(check=False)
    if done.args != run.commands[-1]:
        raise AssertionError(f"{' '.join(done.args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    uri = run.env["MLFLOW_TRACKING_URI"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        uris = {"anomaly": ANOMALY_MODEL,
                "category": jobs.train_model(CategoryTask(only=["text_logistic_regression"], word_knowledge=0),
                                             str(small_ledger)).model_uri,
                "amount": jobs.train_model(RidgeOnlyAmount(), str(small_ledger)).model_uri,
                "cashflow": log_cashflow_model()}
    return {"uri": uri, "scored": done, "folder": run.output_dir, **uris}


@pytest.fixture
def in_store(store, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store["uri"])
    return store


def raw_ledger(path) -> pd.DataFrame:
    """The ledger as text, as a client would send it."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def predicted_in_process(model_uri: str, raw: pd.DataFrame, params=None) -> pd.DataFrame:
    model = mlflow.pyfunc.load_model(model_uri)
    return model.predict(batch.model_rows(raw, declared_inputs(model.metadata.metadata)), params=params)


def cells(values) -> list:
    """Values to compare: every missing marker (None, NaN, pandas' NA) is None."""
    return [None if not isinstance(v, (list, np.ndarray)) and pd.isna(v) else v for v in values]


def assert_same_answers(written: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert len(written) == len(expected)
    for column in expected.columns:
        assert cells(written[column]) == cells(expected[column]), column


def assert_ledger_kept(written: pd.DataFrame, raw: pd.DataFrame) -> None:
    """The input columns, in the input's order (Spark reads empty CSV cells as null)."""
    assert list(written.columns[:len(raw.columns)]) == list(raw.columns)
    assert written[list(raw.columns)].fillna("").astype(str).equals(raw.astype(str))


# --- through the real CLI ---------------------------------------------------------------------------

@needs_java
def test_mlflow_run_scores_anomalies_like_in_process_predict(in_store, small_ledger):
    """`mlflow run . -e batch_score` on local[2] (in the background, scored_in_the_background), the CSV read as
    several partitions: every answer equals in-process predict on the whole file, duplicates found across
    partitions and named by input row."""
    result = in_store["scored"]
    assert result.returncode == 0, result.stdout + result.stderr
    assert "each day's rows together" in result.stdout and "wrote 3000 rows" in result.stdout

    ledger = in_store["folder"] / "ledger.csv"
    assert ledger.read_bytes() == small_ledger.read_bytes()
    raw = raw_ledger(ledger)
    written = pd.read_parquet(in_store["folder"] / "anomalies.parquet")
    expected = predicted_in_process(in_store["anomaly"], raw)
    assert_ledger_kept(written, raw)
    assert_same_answers(written, expected)
    duplicates = expected["reason"].str.startswith("duplicate of row")
    assert duplicates.sum() >= 3  # the small ledger has injected duplicates to find


def test_cli_refuses_a_model_that_does_not_exist_in_one_line(store, small_ledger, tmp_path):
    result = python_module("entrypoints.batch_score", "--model-uri", "models:/no-such-model@champion",
                           "--data", str(small_ledger), "--output", str(tmp_path / "out.parquet"),
                           uri=store["uri"], check=False)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: model 'models:/no-such-model@champion' cannot be found")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "out.parquet").exists()


@pytest.mark.parametrize("change, error, message", [
    ({"data": "missing.csv"}, LedgerError, "ledger file '.*missing.csv' does not exist"),
    ({"data": "ledger.xlsx"}, LedgerError, "ledger.xlsx: unsupported file type '.xlsx'; expected a ledger ending in"),
    ({"group_by": "account"}, batch.BatchError, "group_by is for a model that forecasts a whole ledger"),
    ({"params": {"top_k": 3}}, batch.BatchError, "param\\(s\\) 'top_k' not taken by this model; it takes: threshold"),
    ({"env_manager": "virtualenv"}, batch.BatchError, "works through spark_udf, for row-by-row models"),
    ({"master": "spark:/typo"}, batch.BatchError, "master 'spark:/typo' is not a Spark master URL"),
], ids=["missing file", "unsupported extension", "group_by on a row model", "unknown param", "env_manager",
        "master"])
def test_refused_before_spark_starts(in_store, small_ledger, tmp_path, change, error, message):
    arguments = {"model_uri": in_store["anomaly"], "data": str(small_ledger), "output": str(tmp_path / "out.parquet"),
                 "master": "local[1]"}
    if "data" in change:
        (tmp_path / "ledger.xlsx").write_text("not a ledger")
        change = {"data": str(tmp_path / change["data"])}
    with pytest.raises(error, match=message):
        batch.batch_score(**{**arguments, **change})
    assert not (tmp_path / "out.parquet").exists()


def test_the_package_shipped_to_executors_imports_on_its_own(tmp_path):
    """An executor unpickles the plans' functions by importing pyfunc_models.batch; on a cluster it has only the zip
    shipped with the model (here, `local` workers would find the repository too), subpackages included."""
    archive = shipping.package_archive(tmp_path / "package.zip")
    code = "import pyfunc_models.batch.plans as plans; print(plans.__file__)"
    env = {**os.environ, "PYTHONPATH": str(archive)}
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(archive / "pyfunc_models" / "batch" / "plans.py")


# --- in one Spark session (starting one costs more than a job) ---------------------------------------

@pytest.fixture(scope="module")
def spark():
    with batch.spark_session("local[2]") as session:
        yield session
    from pyspark import SparkContext

    # The JVM pyspark started would otherwise live until pytest exits; it ends when its stdin closes.
    jvm = SparkContext._gateway.proc
    jvm.stdin.close()
    jvm.wait(timeout=60)
    SparkContext._gateway, SparkContext._jvm = None, None


@needs_java
def test_amount_through_spark_udf_keeps_missing_answers_missing(in_store, spark, small_ledger, tmp_path):
    """Rows without an amount: the model answers null deviation and null outside_interval; spark_udf alone
    would write NaN and False (or fail on pandas' NA)."""
    raw = raw_ledger(small_ledger)
    raw.loc[[5, 700, 2999], "Amount"] = ""
    data = tmp_path / "ledger.csv"
    raw.to_csv(data, index=False)
    output = tmp_path / "amounts.parquet"
    done = batch.batch_score(in_store["amount"], str(data), str(output), spark=spark)
    assert done["plan"] == batch.ROWS and done["rows_written"] == 3000

    written = pd.read_parquet(output)
    expected = predicted_in_process(in_store["amount"], raw)
    assert_ledger_kept(written, raw)
    assert_same_answers(written, expected)
    assert written.loc[[5, 700, 2999], "outside_interval"].isna().all()
    assert written["outside_interval"].notna().sum() == 2997


@needs_java
def test_a_european_export_with_semicolons_and_decimal_commas_scores_as_the_same_rows_written_with_commas(
        in_store, spark, small_ledger, tmp_path):
    raw = raw_ledger(small_ledger)
    european = raw.assign(Amount=raw["Amount"].str.replace(".", ",", regex=False))
    data = tmp_path / "ledger.csv"
    european.to_csv(data, sep=";", index=False)
    output = tmp_path / "amounts.parquet"
    batch.batch_score(in_store["amount"], str(data), str(output), spark=spark)
    written = pd.read_parquet(output)
    assert_ledger_kept(written, european)
    assert_same_answers(written, predicted_in_process(in_store["amount"], raw))


@needs_java
def test_category_of_an_income_row_is_written_null_like_in_process_predict(in_store, spark, small_ledger, tmp_path):
    """The model answers an income row with a null category; spark_udf alone would write the text 'None'."""
    raw = raw_ledger(small_ledger).head(400).drop(columns=["Category"])
    data = tmp_path / "ledger.csv"
    raw.to_csv(data, index=False)
    output = tmp_path / "categories.parquet"
    batch.batch_score(in_store["category"], str(data), str(output), spark=spark)
    written = pd.read_parquet(output)
    income = (raw["Type"] == "Income").to_numpy()
    assert income.any() and written.loc[income, "category"].isna().all()
    assert written.loc[~income, "category"].notna().all()
    expected = predicted_in_process(in_store["category"], raw)
    assert cells(written["category"]) == cells(expected["category"])


@needs_java
def test_cashflow_forecasts_each_ledger_like_in_process_predict(in_store, spark, small_ledger, tmp_path):
    raw = raw_ledger(small_ledger)
    ledgers = pd.concat([raw.assign(account="north"), raw[raw["Date"] >= "2023-01-20"].assign(account="south")])
    data = tmp_path / "ledgers.parquet"
    ledgers.to_parquet(data, index=False)
    output = tmp_path / "forecasts.parquet"
    batch.batch_score(in_store["cashflow"], str(data), str(output), params={"horizon": 10}, group_by="account",
                      spark=spark)

    written = pd.read_parquet(output)
    assert list(written.columns) == ["account", "date", "forecast", "lower", "upper"]
    for account, rows in ledgers.groupby("account"):
        expected = predicted_in_process(in_store["cashflow"], rows.drop(columns="account"), params={"horizon": 10})
        mine = written[written["account"] == account].drop(columns="account").reset_index(drop=True)
        assert len(mine) == 10
        assert_same_answers(mine, expected)


@needs_java
def test_cashflow_without_group_by_forecasts_the_whole_input(in_store, spark, small_ledger, tmp_path):
    output = tmp_path / "forecast.parquet"
    batch.batch_score(in_store["cashflow"], str(small_ledger), str(output), spark=spark)
    written = pd.read_parquet(output)
    assert list(written.columns) == ["date", "forecast", "lower", "upper"]
    assert_same_answers(written, predicted_in_process(in_store["cashflow"], raw_ledger(small_ledger)))


@needs_java
def test_a_ledger_too_short_to_forecast_is_refused_by_name(in_store, spark, small_ledger, tmp_path):
    raw = raw_ledger(small_ledger)
    ledgers = pd.concat([raw.assign(account="north"), raw[raw["Date"] >= "2023-04-10"].assign(account="tiny")])
    data = tmp_path / "ledgers.parquet"
    ledgers.to_parquet(data, index=False)
    with pytest.raises(batch.BatchError, match="ledger account='tiny': the history spans 21 day"):
        batch.batch_score(in_store["cashflow"], str(data), str(tmp_path / "out.parquet"), group_by="account",
                          spark=spark)


@needs_java
def test_a_row_the_model_refuses_fails_the_job_in_one_line(in_store, spark, small_ledger, tmp_path):
    """Through spark_udf, which scores Arrow batches: the message says its row numbers count within one."""
    raw = raw_ledger(small_ledger)
    raw.loc[1234, "Amount"] = "12,50"
    data = tmp_path / "ledger.csv"
    raw.to_csv(data, index=False)
    with pytest.raises(batch.BatchError) as refused:
        batch.batch_score(in_store["amount"], str(data), str(tmp_path / "out.parquet"), spark=spark)
    message = str(refused.value)
    assert message.startswith("row 1234, column 'amount': '12,50' is written with a decimal comma"), message
    assert message.endswith("(rows counted within one Spark batch of the input, not from the top of the file)")
    assert "\n" not in message


@needs_java
def test_a_malformed_csv_fails_the_job_in_one_line(in_store, spark, tmp_path):
    data = tmp_path / "ledger.csv"
    data.write_text("Date,Description,Amount\n2024-01-01,SHELL OIL,-5.00\n2024-01-02,SHELL OIL,-5.00,extra,fields\n")
    with pytest.raises(batch.BatchError, match=r"^\[MALFORMED_CSV_RECORD\] Malformed CSV record: 2024-01-02,SHELL"):
        batch.batch_score(in_store["anomaly"], str(data), str(tmp_path / "out.parquet"), spark=spark)


@needs_java
def test_excels_separator_line_is_refused_saying_what_to_do(in_store, spark, tmp_path):
    data = tmp_path / "ledger.csv"
    data.write_text("sep=;\nDate;Description;Amount\n2024-01-01;SHELL OIL;-5,00\n")
    with pytest.raises((batch.BatchError, LedgerError), match="starts with Excel's line 'sep=;'.*delete that line"):
        batch.batch_score(in_store["anomaly"], str(data), str(tmp_path / "out.parquet"), spark=spark)
