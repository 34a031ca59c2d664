"""The MLflow edge: runs, inputs, candidates, artifacts and the logged pyfunc model.

Tracking goes wherever MLflow points: `MLFLOW_TRACKING_URI` if set, else
MLflow's own default (`sqlite:///mlflow.db` in the working directory).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from pathlib import Path

import joblib
import mlflow
import pandas as pd
from matplotlib.figure import Figure
from mlflow.models import ModelSignature, infer_signature
from mlflow.tracking import MlflowClient

from pyfunc_models import config
from pyfunc_models.model_code import (
    PYFUNC_FILE,
    PYFUNC_MODULE,
    copy_modules,
    import_closure,
    module_file,
    pickled_modules,
    pip_requirements,
)
from pyfunc_models.serving import PREDICTOR_ARTIFACT

# `mlflow run` without --experiment-name makes its run in the Default experiment; the work then goes to ours, and
# each run names the other: the work's run the launcher, the launcher where the results are.
LAUNCHER_TAG = "launcher_run_id"
RESULTS_RUN_TAG = "results_run_id"
RESULTS_EXPERIMENT_TAG = "results_experiment"
NOTE_TAG = "mlflow.note.content"  # a run's description in the MLflow UI


@contextlib.contextmanager
def training_run(experiment_name: str, run_name: str, tags: dict):
    """A run in `experiment_name`, whether launched by `mlflow run`, by another job, or as plain Python.

    `mlflow run` creates its run before our code starts, in the experiment given by --experiment-name (else
    Default). If that is not the experiment asked for, the work is logged in a new run there instead, and the
    launcher run says so where a UI user looks (`point_to_results`).
    """
    launcher = os.environ.get("MLFLOW_RUN_ID")
    if mlflow.active_run():
        with mlflow.start_run(run_name=run_name, tags=tags, nested=True) as run:
            yield run
        return
    if launcher:
        client = MlflowClient()
        launched_in = client.get_experiment(client.get_run(launcher).info.experiment_id).name
        if launched_in == experiment_name:
            # MLflow resumes MLFLOW_RUN_ID at the next start_run that names no run, nested or not: left set, the
            # first candidate's nested run would be this run again (its name, params and tags over the job's).
            os.environ.pop("MLFLOW_RUN_ID")
            with mlflow.start_run(run_id=launcher, tags=tags) as run:
                yield run
            return
        os.environ.pop("MLFLOW_RUN_ID")
        os.environ.pop("MLFLOW_EXPERIMENT_ID", None)
        tags = {**tags, LAUNCHER_TAG: launcher}
    mlflow.set_experiment(experiment_name)
    with mlflow.start_run(run_name=run_name, tags=tags) as run:
        if launcher:
            point_to_results(launcher, launched_in, run, experiment_name)
        yield run


def point_to_results(launcher: str, launched_in: str, run, experiment_name: str) -> None:
    """The launcher run `mlflow run` made in another experiment (Default) names where the work is: its run name,
    its description (with a link to the run) and the tags results_experiment and results_run_id."""
    client, run_id, name = MlflowClient(), run.info.run_id, run.info.run_name
    client.update_run(launcher, name=f"{name}: results in {experiment_name}")
    client.set_tag(launcher, RESULTS_EXPERIMENT_TAG, experiment_name)
    client.set_tag(launcher, RESULTS_RUN_TAG, run_id)
    client.set_tag(launcher, NOTE_TAG, (
        f"This run only launched the job. It is in experiment '{launched_in}', where `mlflow run` put it; the work "
        f"(training runs, metrics, models, summary) is logged in experiment "
        f"**{experiment_name}**, run **{name}** ([open it](#/experiments/{run.info.experiment_id}/runs/{run_id}), "
        f"id `{run_id}`).\n\nTo have one run, in the experiment where the results are: "
        f"`mlflow run . --experiment-name {experiment_name}`"))
    print(f"mlflow run put its own run in experiment '{launched_in}'; the work is "
          f"logged in experiment '{experiment_name}', run {name} ({run_id}). Pass --experiment-name "
          f"{experiment_name} to have one run.")


def log_params_once(params: dict) -> None:
    """Log the parameters the active run does not have yet. A run made by `mlflow run` already carries its entry
    point's parameters as the user spelled them ('20000', '' quoted as "''"); MLflow refuses to change a value."""
    logged = mlflow.get_run(mlflow.active_run().info.run_id).data.params
    missing = {name: value for name, value in params.items() if name not in logged}
    if missing:
        mlflow.log_params(missing)


@contextlib.contextmanager
def failure_recorded():
    """A run that fails on a bad ledger says why where a UI user looks: an `error` tag and the run description
    (mlflow.note.content). The error still propagates, so the run ends FAILED."""
    from pyfunc_models.encoder_build import EncoderUnavailable
    from pyfunc_models.ledger import LedgerError

    try:
        yield
    except (LedgerError, EncoderUnavailable) as error:
        mlflow.set_tags({"error": str(error)[:5000], NOTE_TAG: f"Failed: {error}"})
        raise
    except Exception as error:  # a bug, not the ledger: its traceback is on the terminal, its line on the run
        why = f"{type(error).__name__}: {error}".splitlines()[0] if str(error) else type(error).__name__
        mlflow.set_tags({"error": f"unexpected error (a bug, not your ledger): {why}"[:5000],
                         NOTE_TAG: f"Failed with an unexpected error: {why}"})
        raise


@contextlib.contextmanager
def candidate_run(name: str):
    with mlflow.start_run(run_name=name, nested=True) as run:
        yield run


def log_candidate(result) -> None:
    """One nested run per candidate: its parameters, validation metrics, fit time and scoring times
    (scoring_seconds_one_row, scoring_seconds_1000_rows: what training's choice weighs against accuracy)."""
    with candidate_run(result.name):
        mlflow.set_tag("candidate", result.name)
        mlflow.log_params({**result.params, "rows_used": result.rows_used})
        mlflow.log_metrics({f"validation_{k}": v for k, v in result.metrics.items()})
        mlflow.log_metrics({"fit_seconds": result.fit_seconds,
                            **{f"scoring_seconds_{k}": v for k, v in result.scoring_seconds.items()}})


def log_ledger(rows: pd.DataFrame, source: str, context: str, name: str, target: str | None = None) -> None:
    with warnings.catch_warnings():
        # A local path matches two equivalent registered sources; MLflow picks one and says so.
        warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
        dataset = mlflow.data.from_pandas(rows, source=source, name=name, targets=target)
    # The rows and the days they span ride on the input's tags: the lineage reads them from the run.
    tags = {"rows": str(len(rows))}
    if "date" in rows and len(rows):
        dates = pd.to_datetime(rows["date"])
        tags |= {"first_day": f"{dates.min():%Y-%m-%d}", "last_day": f"{dates.max():%Y-%m-%d}"}
    mlflow.log_input(dataset, context=context, tags=tags)


def log_artifacts(artifacts: dict, folder: str) -> None:
    """Figures, dicts and text by file name."""
    for name, content in artifacts.items():
        path = f"{folder}/{name}"
        if isinstance(content, Figure):
            mlflow.log_figure(content, path)
        elif isinstance(content, dict):
            mlflow.log_dict(content, path)
        else:
            mlflow.log_text(str(content), path)


def log_predictor(predictor, example: pd.DataFrame, params: dict, model_type: str):
    """Log the predictor as the pyfunc named `model` (models-from-code). Its code is only what loading and
    predicting it import: what the entry file (serving) and the predictor's module import at module level, and
    any module of ours its pickle names (`import_closure`); its requirements are the packages that code and the
    pickle import. Training-only modules (plots and matplotlib, the generator, the registry, the other model
    types, ...) stay out of the model and of the server."""
    output = predictor.predict(predictor.prepare(example))
    inferred = infer_signature(example, output, params=params or None)
    # No input schema: MLflow's check would match column names exactly and drop the others, so the Titans export's
    # own header (`Date`, `Payment Method`) or a bank's (`Posted Date`, `Memo`), read with pd.read_csv, would be
    # refused before our contract (ledger.prepare_ledger) maps it; and it would type-check every cell. The contract
    # reads any header spelling and pandas dtype, and names the row and column of what it cannot use (a 400). The
    # input example shows the columns; the MLmodel's metadata lists them for the registry's description.
    signature = ModelSignature(inputs=None, outputs=inferred.outputs, params=inferred.params)
    pickled = pickled_modules(predictor)
    modules = import_closure(PYFUNC_MODULE, type(predictor).__module__, *filter(module_file, pickled))
    shipped = [module for module in modules if module != PYFUNC_MODULE]  # MLflow keeps the entry file beside MLmodel
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "predictor.joblib"
        joblib.dump(predictor, path)
        return mlflow.pyfunc.log_model(
            name=config.MODEL_ARTIFACT_NAME,
            python_model=str(PYFUNC_FILE),
            artifacts={PREDICTOR_ARTIFACT: str(path)},
            code_paths=[str(copy_modules(shipped, Path(folder) / "code"))],
            signature=signature,
            input_example=example,
            pip_requirements=pip_requirements(modules, pickled),
            tags={config.MODEL_TYPE_TAG: model_type},
            metadata={"input_columns": list(predictor.input_columns),
                      "required_columns": [c for c in predictor.input_columns if c in predictor.required_columns]},
        )
