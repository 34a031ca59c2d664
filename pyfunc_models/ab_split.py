"""Online A/B test through `mlflow models serve` alone (`register -P action=ab_split`).

One new version of the registered model holds its champion and its challenger (ab_split_entry.SplitModel) and is
served under the alias `ab_test`: each row goes, by a stable hash of its key, to the challenger with the share asked
for, and every answer names the variant and the version that gave it. The two versions' model directories are its
artifacts, so it serves with no tracking server and `build-docker` packs it like any model. `compare -P versions=<the
split version>` then evaluates each variant on the rows it answered (pyfunc_models/comparison.py).

    register_split("amount", 0.1)   # champion and challenger by alias -> text saying how to serve it
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.models import Model, ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

from pyfunc_models import config, registry, tracking
from pyfunc_models.model_code import PACKAGE, PACKAGE_DIR, copy_modules, import_closure, pip_requirements
from pyfunc_models.model_types import MODEL_TYPES, task_class
from pyfunc_models.registry import RegistryError
from pyfunc_models.task import ROWS

ENTRY_FILE = PACKAGE_DIR / "ab_split_entry.py"
ENTRY_MODULE = f"{PACKAGE}.{ENTRY_FILE.stem}"
KEY_RULE = "reference, else its date, description and amount as sent"  # ab_split_entry.routing_keys


def register_split(model_type: str, challenger_share: float, experiment_name: str = config.EXPERIMENT_NAME,
                   versions: tuple | None = None) -> str:
    """Log and register the A/B split of the champion and the challenger (or `versions`: champion's, challenger's),
    point `ab_test` at it, and return what to tell the user: the versions, the share and how to serve it."""
    if not 0 < challenger_share < 1:
        raise RegistryError(f"challenger_share is {challenger_share:g}; expected the share of rows the challenger "
                            f"answers, between 0 and 1 (exclusive), e.g. -P challenger_share=0.1")
    name = registry.registered_name(model_type)
    variants = _variants(name, versions)
    per_row = task_class(model_type).batch_plan == ROWS
    routed = (f"each row by a stable hash (BLAKE2b) of its {KEY_RULE}" if per_row else
              f"each request as a whole by a stable hash (BLAKE2b) of every row's {KEY_RULE}: a {model_type} "
              f"model's answer for a row depends on the request's other rows")
    tags = {config.AB_SPLIT_TAG: "true", "ab_model_type": model_type,
            "ab_champion_version": variants[config.CHAMPION], "ab_challenger_version": variants[config.CHALLENGER],
            "ab_challenger_share": f"{challenger_share:g}"}
    what = (f"A/B split: champion version {variants[config.CHAMPION]} and challenger version "
            f"{variants[config.CHALLENGER]}, {challenger_share * 100:g}% to the challenger, {routed}")
    with tracking.training_run(experiment_name, f"ab_split_{model_type}", tags) as run:
        tracking.log_params_once({"model_type": model_type, "champion_version": variants[config.CHAMPION],
                                  "challenger_version": variants[config.CHALLENGER],
                                  "challenger_share": challenger_share, "routing": routed})
        info = _log_split(name, model_type, variants, challenger_share, per_row)
        version = str(mlflow.register_model(info.model_uri, name, tags={
            **tags, config.MODEL_TYPE_TAG: model_type, "source_run_id": run.info.run_id,
            "validation_status": "ab_split"}).version)
        MlflowClient().update_model_version(name, version, description=(
            f"{what}. Served under @{config.AB_ALIAS}; never a champion itself."))
        registry.set_alias(name, config.AB_ALIAS, version, action="ab_split", reason=what)
        mlflow.set_tag(tracking.NOTE_TAG, f"{what}; registered as {name} version {version} (@{config.AB_ALIAS}).")
    # The launcher run `mlflow run` made is this one, now finished: the next model type (model_type all) makes its own.
    os.environ.pop("MLFLOW_RUN_ID", None)
    return _report(name, model_type, version, variants, challenger_share, per_row, routed)


def _variants(name: str, versions: tuple | None) -> dict:
    """{'champion': version, 'challenger': version}: those given, else the versions the aliases point at."""
    client = MlflowClient()
    found = {}
    for variant, number in zip((config.CHAMPION, config.CHALLENGER), versions or (None, None)):
        try:
            found[variant] = (client.get_model_version(name, str(number)) if number is not None
                              else client.get_model_version_by_alias(name, variant))
        except MlflowException:
            which = f"no version {number}" if number is not None else f"no {variant}"
            raise RegistryError(f"{name} has {which}: an A/B split needs a champion and a challenger; register a "
                                f"candidate first (mlflow run . -e register -P model_type=...)") from None
        if found[variant].tags.get(config.AB_SPLIT_TAG) == "true":
            raise RegistryError(f"{name} version {found[variant].version} ({variant}) is itself an A/B split; "
                                f"split two trained versions")
    if found[config.CHAMPION].version == found[config.CHALLENGER].version:
        raise RegistryError(f"{name}: champion and challenger are both version {found[config.CHAMPION].version}; "
                            f"an A/B split needs two versions")
    return {variant: str(version.version) for variant, version in found.items()}


def _log_split(name: str, model_type: str, variants: dict, share: float, per_row: bool):
    """Log the split pyfunc: models-from-code (ab_split_entry.py), the two versions' model directories as its
    artifacts (MLflow downloads `models:/` URIs into the model and records them), the code serving imports and the
    requirements of both versions."""
    uris = {variant: f"models:/{name}/{version}" for variant, version in variants.items()}
    champion = Model.load(uris[config.CHAMPION])
    modules = import_closure(ENTRY_MODULE)
    shipped = [module for module in modules if module != ENTRY_MODULE]  # MLflow keeps the entry file beside MLmodel
    with tempfile.TemporaryDirectory() as folder:
        return mlflow.pyfunc.log_model(
            name=config.MODEL_ARTIFACT_NAME,
            python_model=str(ENTRY_FILE),
            artifacts=uris,
            model_config={"challenger_share": share, "per_row": per_row,
                          **{f"{variant}_version": version for variant, version in variants.items()}},
            code_paths=[str(copy_modules(shipped, Path(folder) / "code"))],
            signature=_signature(champion.signature),
            input_example=champion.load_input_example(uris[config.CHAMPION]),
            pip_requirements=_requirements(uris, variants, modules),
            tags={config.MODEL_TYPE_TAG: model_type, config.AB_SPLIT_TAG: "true"},
        )


def _signature(champion: ModelSignature) -> ModelSignature:
    """The champion's inputs; its outputs and the variant and version that answered; its params without defaults
    (a param the request leaves out reaches each version as None: ab_split_entry lets each use its own default)."""
    params = champion.params and ParamSchema([ParamSpec(spec.name, spec.dtype, None, spec.shape)
                                              for spec in champion.params.params])
    outputs = Schema([*champion.outputs.inputs, ColSpec("string", config.AB_VARIANT_COLUMN),
                      ColSpec("string", config.AB_VERSION_COLUMN)])
    return ModelSignature(inputs=champion.inputs, outputs=outputs, params=params)


def _requirements(uris: dict, variants: dict, modules) -> list:
    """Both versions' requirements as they were logged, and the entry code's own for a package neither names. One
    process serves both, so a package the two pin differently is refused."""
    pinned = {}
    for uri in uris.values():
        lines = Path(mlflow.artifacts.download_artifacts(f"{uri}/requirements.txt")).read_text().splitlines()
        for line in filter(None, (line.split("#")[0].strip() for line in lines)):
            package = _distribution(line)
            if pinned.setdefault(package, line) != line:
                raise RegistryError(
                    f"the champion (version {variants[config.CHAMPION]}) and the challenger (version "
                    f"{variants[config.CHALLENGER]}) need {pinned[package]} and {line}: one server cannot hold "
                    f"both; train one of them again with the packages installed now, or compare them offline "
                    f"(-P action=compare)")
    for line in pip_requirements(modules):
        pinned.setdefault(_distribution(line), line)
    return sorted(pinned.values())


def _distribution(requirement: str) -> str:
    """The distribution a requirement line names, as pip compares names: 'Scikit_Learn==1.9.1' -> 'scikit-learn'."""
    return re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9_.-]+", requirement).group()).lower()


def _report(name: str, model_type: str, version: str, variants: dict, share: float, per_row: bool,
            routed: str) -> str:
    port = config.FIRST_SERVE_PORT + MODEL_TYPES.index(model_type)  # the champion's port: its clients keep their URL
    # Offline, a ledger is one request: only a row-by-row split gives both variants rows of it to be judged on.
    judged = (f"-P versions={version}" if per_row else
              f"-P versions={variants[config.CHAMPION]},{variants[config.CHALLENGER]}")
    return "\n".join([
        (f"{name} version {version} -> {config.AB_ALIAS}: champion version {variants[config.CHAMPION]} answers "
         f"{(1 - share) * 100:g}%, challenger version {variants[config.CHALLENGER]} {share * 100:g}%"),
        f"  routing: {routed}",
        (f"  every answer carries '{config.AB_VARIANT_COLUMN}' ({config.CHAMPION} or {config.CHALLENGER}) and "
         f"'{config.AB_VERSION_COLUMN}' (the version that answered)"),
        f"  serve:   mlflow models serve -m models:/{name}@{config.AB_ALIAS} --env-manager local -p {port}",
        (f"  ask:     curl -s -X POST localhost:{port}/invocations -H 'Content-Type: application/json' "
         f"-d @examples/requests/{model_type}.json"),
        f"  judge:   mlflow run . -e register -P action=compare -P model_type={model_type} {judged}",
    ])
