"""The MLflow edge: runs, inputs, candidates, artifacts and the logged pyfunc model.

Tracking goes wherever MLflow points: `MLFLOW_TRACKING_URI` if set, else
MLflow's own default (`sqlite:///mlflow.db` in the working directory).
"""

from __future__ import annotations

import ast
import contextlib
import importlib.metadata
import os
import pickle
import re
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import joblib
import mlflow
import pandas as pd
from mlflow.models import ModelSignature, infer_signature
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, Schema
from mlflow.types.schema import AnyType

from pyfunc_models import config
from pyfunc_models.serving import PREDICTOR_ARTIFACT

PACKAGE = __name__.split(".")[0]
PACKAGE_DIR = Path(__file__).resolve().parent
PYFUNC_FILE = PACKAGE_DIR / "pyfunc_entry.py"
PYFUNC_MODULE = f"{PACKAGE}.{PYFUNC_FILE.stem}"
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
        f"This run only launched the job. It is in experiment '{launched_in}' because `mlflow run` was not given "
        f"an experiment; the work (training runs, metrics, models, summary) is logged in experiment "
        f"**{experiment_name}**, run **{name}** ([open it](#/experiments/{run.info.experiment_id}/runs/{run_id}), "
        f"id `{run_id}`).\n\nTo have one run, in the experiment where the results are: "
        f"`mlflow run . --experiment-name {experiment_name}`"))
    print(f"mlflow run put its own run in experiment '{launched_in}' (no --experiment-name given); the work is "
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
    from pyfunc_models.ledger import LedgerError

    try:
        yield
    except LedgerError as error:
        mlflow.set_tags({"error": str(error)[:5000], NOTE_TAG: f"Failed: {error}"})
        raise


@contextlib.contextmanager
def candidate_run(name: str):
    with mlflow.start_run(run_name=name, nested=True) as run:
        yield run


def log_candidate(result) -> None:
    """One nested run per candidate: its parameters, validation metrics and fit time."""
    with candidate_run(result.name):
        mlflow.set_tag("candidate", result.name)
        mlflow.log_params({**result.params, "rows_used": result.rows_used})
        mlflow.log_metrics({f"validation_{k}": v for k, v in result.metrics.items()})
        mlflow.log_metric("fit_seconds", result.fit_seconds)


def log_ledger(rows: pd.DataFrame, source: str, context: str, name: str, target: str | None = None) -> None:
    with warnings.catch_warnings():
        # A local path matches two equivalent registered sources; MLflow picks one and says so.
        warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
        dataset = mlflow.data.from_pandas(rows, source=source, name=name, targets=target)
    mlflow.log_input(dataset, context=context)


def log_artifacts(artifacts: dict, folder: str) -> None:
    """Figures, dicts and text by file name."""
    for name, content in artifacts.items():
        path = f"{folder}/{name}"
        if hasattr(content, "savefig"):
            mlflow.log_figure(content, path)
        elif isinstance(content, dict):
            mlflow.log_dict(content, path)
        else:
            mlflow.log_text(str(content), path)


def transaction_schema(columns, required) -> Schema:
    """Raw-transaction input schema: the columns by name, required or optional, every one typed Any.

    Whatever pandas makes of a user's export must reach our contract (`ledger.prepare_ledger`), which names the
    row and column of what it cannot use: an all-empty column read as float64 NaN, a reference of numbers read as
    int64, nullable or Arrow strings, a datetime64 date. A "string" column type would refuse those in MLflow's
    schema check before our code runs. MLflow still answers 400 for a missing required column.
    """
    return Schema([ColSpec(AnyType(), column, required=column in required) for column in columns])


def module_file(module: str) -> Path | None:
    """The source file of one of our modules ('pyfunc_models.ledger'); None for any other module."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    path = PACKAGE_DIR.joinpath(*parts[1:])
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    return path if path.is_file() else None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_run_on_import(statements):
    """The import statements that run when a module is imported (call with its body): its own, and those in its
    top-level blocks and class bodies; not those inside functions (run when called) nor under
    `if TYPE_CHECKING:` (never run)."""
    for node in statements:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from imports_run_on_import(node.orelse)
        elif not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            yield from imports_run_on_import(ast.iter_child_nodes(node))


def imported_modules(statement: ast.Import | ast.ImportFrom, importer: str) -> list:
    """Every module an import statement in module `importer` may load: each name and its parent packages, and
    for `from package import name`, `package.name` too (when `name` is a submodule)."""
    if isinstance(statement, ast.Import):
        names = [alias.name for alias in statement.names]
    else:
        base = statement.module or ""
        if statement.level:  # relative: from the importer's own package, `level` - 1 packages up
            package = importer if module_file(importer).name == "__init__.py" else importer.rpartition(".")[0]
            for _ in range(statement.level - 1):
                package = package.rpartition(".")[0]
            base = f"{package}.{base}" if base else package
        names = [base, *(f"{base}.{alias.name}" for alias in statement.names)]
    parts = [name.split(".") for name in names]
    return [".".join(name[:end]) for name in parts for end in range(1, len(name) + 1)]


def import_closure(*roots: str) -> list:
    """Our modules that importing `roots` loads: the roots and, transitively, what their module-level imports
    load. Read from the source (no import, no subprocess); function-level imports (plots, in training) are left
    out: a served model never calls those functions."""
    found, pending = set(), [PACKAGE, *roots]
    while pending:
        module = pending.pop()
        path = module_file(module)
        if module in found or path is None:
            continue
        found.add(module)
        for statement in imports_run_on_import(ast.parse(path.read_text(), filename=str(path)).body):
            pending.extend(imported_modules(statement, module))
    return sorted(found)


def pickled_modules(predictor) -> set:
    """Every module a pickle of `predictor` names (the classes and functions unpickling it imports)."""
    named = set()

    class Recorder(pickle.Pickler):
        def reducer_override(self, value):
            # A class's or function's own module; an instance's is its class's (also pickled, by name).
            named.add(getattr(value, "__module__", None))
            return NotImplemented

    class Nowhere:
        def write(self, data):  # bytes, or a large array's PickleBuffer
            return memoryview(data).nbytes

    Recorder(Nowhere(), protocol=pickle.HIGHEST_PROTOCOL).dump(predictor)
    return {module for module in named if isinstance(module, str)}


def _distribution_key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pip_requirements(modules, pickled=()) -> list:
    """The served model's pip requirements: mlflow, the distribution of every package that `modules` (ours)
    import, anywhere in their source, and of every installed package a pickled predictor names (`pickled`),
    pinned to the versions installed here. A package that several distributions install (mlflow: mlflow-skinny,
    mlflow-tracing) is pinned as the one of its own name."""
    imported = {"mlflow"}
    for module in modules:
        path = module_file(module)
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    imported -= {PACKAGE, *sys.stdlib_module_names}
    distributions = importlib.metadata.packages_distributions()
    missing = sorted(package for package in imported if not distributions.get(package))
    if missing:
        raise ModuleNotFoundError(f"the served model imports {', '.join(map(repr, missing))}, which no installed "
                                  f"distribution provides; install and pin it in requirements.txt", name=missing[0])
    # A pickle also names runtime-made modules no distribution installs (Cython's '_cython_3_2_9'): not needed.
    packages = imported | ({module.split(".")[0] for module in pickled} & set(distributions))
    pinned = set()
    for package in packages:
        own = [name for name in distributions[package] if _distribution_key(name) == _distribution_key(package)]
        pinned.update(own or distributions[package])
    return sorted(f"{name}=={importlib.metadata.version(name)}" for name in pinned)


# Appended to the shipped package's __init__.py. Python keeps the first copy of a package it imports.
EVERY_COPY = '''

# What tracking.log_predictor ships of pyfunc_models is only what serving this model imports. One process may meet
# other copies of the package: other logged models' code folders (a Spark worker loads model after model), batch
# scoring's archive, a checkout. Python keeps the first one it imports, so a module this copy leaves out is looked
# up in the others, wherever sys.path has them when it is imported.
import os as _os
import sys as _sys


class _EveryCopy(list):
    """This copy's folder first, then the package's folder under every sys.path entry, read at each import."""

    def __iter__(self):
        yield from list.__iter__(self)
        for entry in list(_sys.path):
            folder = _os.path.join(entry or _os.getcwd(), __name__) if isinstance(entry, str) else None
            if folder and folder not in self:
                yield folder


__path__ = _EveryCopy(__path__)
'''


def copy_modules(modules, folder: Path) -> Path:
    """`modules` (ours) copied as the package they belong to, in `folder`; returns the package's folder. Its
    __init__.py also finds the modules it leaves out in other copies of the package on sys.path (`EVERY_COPY`)."""
    for module in {PACKAGE, *modules}:
        source = module_file(module)
        target = folder / source.relative_to(PACKAGE_DIR.parent)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    package = folder / PACKAGE
    (package / "__init__.py").write_text((package / "__init__.py").read_text() + EVERY_COPY)
    return package


def log_predictor(predictor, example: pd.DataFrame, params: dict, model_type: str):
    """Log the predictor as the pyfunc named `model` (models-from-code). Its code is only what loading and
    predicting it import: what the entry file (serving) and the predictor's module import at module level, and
    any module of ours its pickle names (`import_closure`); its requirements are the packages that code and the
    pickle import. Training-only modules (plots and matplotlib, the generator, the registry, the other model
    types, ...) stay out of the model and of the server."""
    output = predictor.predict(predictor.prepare(example))
    inferred = infer_signature(example, output, params=params or None)
    signature = ModelSignature(
        inputs=transaction_schema(predictor.input_columns, predictor.required_columns),
        outputs=inferred.outputs,
        params=inferred.params,
    )
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
        )
