"""The Spark side of a batch job: a session of its own on a master URL, and the ledger read as a DataFrame."""

from __future__ import annotations

import contextlib
import os
import re
import sys
from pathlib import Path

from pyfunc_models.batch.errors import BatchError
from pyfunc_models.ledger import LedgerError, csv_layout

DEFAULT_MASTER = "local[*]"
MASTER_URL = re.compile(r"^(local(\[(\*|\d+)(,\d+)?\])?|local-cluster\[\d+,\d+,\d+\]|spark://\S+|yarn|k8s://\S+)$")
FORMATS = {".csv": "csv", ".parquet": "parquet"}
SPARK_CONF = {
    "spark.ui.enabled": "false",  # no web UI: nothing listens but what the job needs
    "spark.sql.session.timeZone": "UTC",  # a Parquet timestamp becomes the same text on every machine
}
SPARK_LOG_LEVEL = "OFF"  # failures reach the user as one line (BatchError), not as executor logs


@contextlib.contextmanager
def spark_session(master: str = DEFAULT_MASTER, app_name: str = "titans-batch-score"):
    """A Spark session for one job, stopped afterwards. On `local[...]` nothing listens beyond loopback
    and the executors run this interpreter (so they import what the driver imports)."""
    from pyspark.sql import SparkSession

    if not MASTER_URL.match(master):  # else spark-submit fails with a Java stack trace
        raise BatchError(f"master {master!r} is not a Spark master URL; expected local[*], local[2], "
                         f"spark://host:7077, yarn or k8s://https://host:port")
    builder = SparkSession.builder.master(master).appName(app_name)
    launch = {}  # read once, when the JVM and the context start
    if master.startswith("local"):
        launch = {"SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable}
        builder = builder.config("spark.driver.bindAddress", "127.0.0.1").config("spark.driver.host", "127.0.0.1")
    for key, value in SPARK_CONF.items():
        builder = builder.config(key, value)
    # Spark's stage progress bar for someone watching a terminal; a log file gets only our lines.
    builder = builder.config("spark.ui.showConsoleProgress", str(sys.stderr.isatty()).lower())
    with _environment({name: os.environ.get(name, value) for name, value in launch.items()}):
        spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(SPARK_LOG_LEVEL)
    try:
        yield spark
    finally:
        spark.stop()


@contextlib.contextmanager
def _environment(values: dict):
    """Environment variables set for a moment, then as they were."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def ledger_format(path: str) -> str:
    """'csv' or 'parquet', from the file's extension."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise LedgerError(f"{Path(path).name}: unsupported file type {suffix or '(none)'!r}; "
                          f"expected a ledger ending in {' or '.join(FORMATS)}")
    return FORMATS[suffix]


def read_frame(spark, data: str):
    """The ledger as a Spark DataFrame: a CSV's columns all as text (the contract parses dates and
    amounts, as it does for a request), doubled quotes as pandas and spreadsheets write them."""
    if ledger_format(data) == "csv":
        separator, excel_line = csv_layout(Path(data)) if Path(data).is_file() else (",", 0)  # a European export's ;
        if excel_line:
            raise LedgerError(f"{Path(data).name} starts with Excel's line 'sep={separator}', which Spark would read "
                              f"as the header; delete that line and score again")
        return spark.read.options(header=True, inferSchema=False, escape='"', mode="FAILFAST", sep=separator).csv(data)
    return spark.read.parquet(data)
