"""The model on the executors, for the plans that do not go through `spark_udf`: downloaded once on the driver and
handed to Spark with this project's package, then loaded once per Python worker.

An executor unpickles the plans' functions by importing the modules they use (pyfunc_models.batch.shipping,
.errors, ...), so the whole pyfunc_models package, subpackages included, travels with the model.
"""

from __future__ import annotations

import uuid
import zipfile
from pathlib import Path

import mlflow

import pyfunc_models

PACKAGE = Path(pyfunc_models.__file__).resolve().parent

_LOADED = {}  # per Python worker: model file name -> loaded pyfunc


def ship_model(spark, model_uri: str, folder: Path) -> str:
    """Download the model once and hand it, and this package, to the executors; returns its SparkFiles name
    (unique: a session may score several models, and Spark keeps every file it was given)."""
    name = f"titans-model-{uuid.uuid4().hex}"
    downloaded = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(folder / "download"))
    local = Path(downloaded).rename(folder / name)
    spark.sparkContext.addFile(str(local), recursive=True)
    spark.sparkContext.addPyFile(str(package_archive(folder / f"{name}-{PACKAGE.name}.zip")))
    return name


def package_archive(archive: Path) -> Path:
    """This project's package as a zip an executor can import it from: every module, subpackages included."""
    with zipfile.ZipFile(archive, "w") as bundle:
        for source in sorted(PACKAGE.rglob("*.py")):
            bundle.write(source, source.relative_to(PACKAGE.parent).as_posix())
    return archive


def loaded(model_file: str):
    """The shipped model, loaded on first use in this Python worker."""
    from pyspark import SparkFiles

    if model_file not in _LOADED:
        _LOADED[model_file] = mlflow.pyfunc.load_model(SparkFiles.get(model_file))
    return _LOADED[model_file]
