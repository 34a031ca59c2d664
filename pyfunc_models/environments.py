"""Environments (dev, staging, production) as registries, and promotion from one to the next:
`register -P action=promote_env -P model_type=all -P to=staging`, then `-P to=production`.

dev is where training and `register` write: the current tracking URI (MLFLOW_TRACKING_URI, else MLflow's default
sqlite:///mlflow.db), registered names as they are. Each later environment is configured by variables:

    MLFLOW_STAGING_TRACKING_URI=http://staging-mlflow:5000     # staging's own tracking server and registry
    MLFLOW_PRODUCTION_TRACKING_URI=http://prod-mlflow:5000
    MLFLOW_STAGING_EVAL_DATA=/data/staging_ledger.csv           # optional: the ledger staging's gate scores on

An environment with no URI of its own (unset, or the same URI as an earlier environment) lives in that registry
(dev's when unset) with its name in the registered name: `titans-finance-category-prediction-staging`. So the
default, with no variable set, is one local registry holding all three.

A promotion takes the source environment's `champion` (dev's for staging, staging's for production: production is
only ever written from staging's champion, never from training) and copies it into the target: in one registry with
`MlflowClient.copy_model_version`; across tracking servers, where MLflow has no single call, by downloading the
version's model and its run's artifacts (the held-out rows among them) and logging them in a run of the target's
PROMOTIONS_EXPERIMENT, whose model becomes the target's new version. The copy then goes through the target's gate on
the target's evaluation data (-P eval_data, else MLFLOW_<ENV>_EVAL_DATA, else the copied held-out rows) and becomes
the target's champion only if it passes, else its challenger. The copy's tags name its source (COPY_TAGS) and the
source version's `promoted_to_<env>` tag names the copy, so the lineage follows copies both ways. Promoting a
champion that the target's champion already is a copy of says so and copies nothing.

On servers with authentication, MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD go to every environment's
server alike (one account needs READ on the source and MANAGE on the target); a URI is printed and tagged without
any user:password in it.
"""

from __future__ import annotations

import datetime
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import mlflow
from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException
from mlflow.models import Model
from mlflow.tracking import MlflowClient

from pyfunc_models import access, config, registry
from pyfunc_models.ledger import LedgerError
from pyfunc_models.model_types import task_class
from pyfunc_models.tracking import NOTE_TAG

PROMOTIONS_EXPERIMENT = "titans-finance-ml-promotions"  # a cross-server copy's run, in the target's tracking server
COPY_TAGS = ("environment", "source_environment", "source_registry", "source_model", "source_version",
             "source_run_id", "source_model_id", "promoted_at")
PROMOTED_TO_PREFIX = "promoted_to_"  # on the source version: "<target registry> <name> v<k>"
# What a version is, whichever registry holds it (registry.register's tags); the rest of a version's tags (gate,
# monitoring, comparison) describe its life in its own registry and are not carried to a copy.
IDENTITY_TAGS = (config.MODEL_TYPE_TAG, "training_data_digest", "git_commit", "chosen_candidate")


@dataclass(frozen=True)
class Environment:
    name: str
    tracking_uri: str  # also its registry URI
    name_suffix: str  # "" with a registry of its own, else "-<name>" on every registered name
    eval_data: str | None  # MLFLOW_<ENV>_EVAL_DATA: the ledger its gate scores on
    own_registry: bool

    def describe(self) -> str:
        """The registry, for people and tags: no password, and how names end when the registry is shared."""
        shared = f", registered names end in {self.name_suffix}" if self.name_suffix else ""
        return f"{without_password(self.tracking_uri)}{shared}"


def without_password(uri: str) -> str:
    """The URI with any user:password@ removed (an http or postgresql URI may carry them)."""
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def all_environments() -> list:
    """dev, staging and production as configured now (the module docstring), in promotion order; dev is the
    current tracking URI, so call this outside any in_environment block."""
    dev_uri = mlflow.get_tracking_uri()
    found, seen = [], []
    for name in config.ENVIRONMENTS:
        own_uri = dev_uri if name == config.ENVIRONMENTS[0] else os.environ.get(f"MLFLOW_{name.upper()}_TRACKING_URI")
        uri = (own_uri or dev_uri).rstrip("/")
        own = uri not in seen
        seen.append(uri)
        found.append(Environment(name, uri, "" if own else f"-{name}",
                                 os.environ.get(f"MLFLOW_{name.upper()}_EVAL_DATA") or None, own))
    return found


def environment(name: str) -> Environment:
    for env in all_environments():
        if env.name == name:
            return env
    raise registry.RegistryError(f"unknown environment {name!r}; choose from {', '.join(config.ENVIRONMENTS)}")


def in_environment(name: str):
    """Every registry.* function acts in the environment's registry, on its registered names, inside the block."""
    return _inside(environment(name))


def _inside(env: Environment):
    return registry.in_registry(env.tracking_uri, env.name_suffix)


def promote_env(model_type: str, to: str, eval_data: str | None = None, floors: dict | None = None) -> str:
    """Copy the previous environment's champion into `to` and put the copy through `to`'s gate: what happened,
    in a few lines (source -> target, the gate's rules, the alias outcome, how to serve it)."""
    envs = all_environments()
    names = [env.name for env in envs]
    if to not in names[1:]:
        raise registry.RegistryError(f"cannot promote into {to!r}: choose from {', '.join(names[1:])} "
                                     f"({names[0]} is where training registers)")
    source, target = envs[names.index(to) - 1], envs[names.index(to)]
    champion = _source_champion(model_type, source)
    with _inside(target):
        dst_name = registry.registered_name(model_type)
        current = _champion(dst_name)
    origin = f"{source.name} {champion.name} v{champion.version}"
    if current is not None and _copied_from(current, source, champion):
        return f"{model_type}: {to} {dst_name} v{current.version} ({target.describe()}) is already a copy of {origin}"

    with _inside(source):
        source_model_id = registry.logged_model_id(champion) or ""
    copy_tags = {"environment": target.name, "source_environment": source.name,
                 "source_registry": without_password(source.tracking_uri), "source_model": champion.name,
                 "source_version": str(champion.version), "source_run_id": champion.run_id,
                 "source_model_id": source_model_id,
                 "promoted_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    if target.tracking_uri == source.tracking_uri:
        version, how = _copy_in_registry(champion, dst_name, copy_tags), "copy_model_version (one registry)"
    else:
        version, run_id = _copy_across(model_type, source, target, champion, dst_name, copy_tags)
        how = f"the model and its run, into run promote_{model_type}_to_{to} {run_id} of {PROMOTIONS_EXPERIMENT}"
    with _inside(source):
        MlflowClient().set_model_version_tag(champion.name, champion.version, f"{PROMOTED_TO_PREFIX}{to}",
                                             f"{without_password(target.tracking_uri)} {dst_name} v{version}")

    evaluation = eval_data or target.eval_data
    with _inside(target):
        registry.describe_registered_model(model_type, f"models:/{dst_name}/{version}")
        try:
            decision = registry.evaluate_against_champion(model_type, version, evaluation, floors)
        except LedgerError as error:
            registry.tag_version(model_type, version, {"validation_status": "error",
                                                       "rejection_reason": f"could not evaluate: {error}"})
            raise
        alias = registry._decide(model_type, version, decision, action="promote_env")
        serve = f"MLFLOW_TRACKING_URI={without_password(target.tracking_uri)} {registry.serve_command(model_type)}"

    key = task_class(model_type).gate.key_metric
    scored_on = evaluation or f"the copied held-out rows ({registry.EVALUATION_ARTIFACT})"
    lines = [f"{model_type}: {origin} -> {to} {dst_name} v{version} ({target.describe()})",
             f"  copied: {how}",
             f"  {to}'s gate on {scored_on}: {key}={decision.candidate.get(key, float('nan')):.4f}",
             *(f"    {rule}" for rule in decision.rules)]
    if alias == config.CHAMPION:
        was = f"was v{current.version}" if current is not None else "the first"
        lines += [f"  {to} {config.CHAMPION} -> v{version} ({was}); serve it with:", f"    {serve}"]
    else:
        kept = f"stays v{current.version}" if current is not None else "none yet"
        lines.append(f"  not promoted: {to} {config.CHAMPION} {kept}; v{version} is {alias}: {decision.decided_by}")
    return "\n".join(lines)


def _champion(name: str):
    """The registered model's champion version in the current registry, None without one."""
    try:
        return MlflowClient().get_model_version_by_alias(name, config.CHAMPION)
    except MlflowException:
        return None


def _source_champion(model_type: str, source: Environment):
    with _inside(source):
        name = registry.registered_name(model_type)
        champion = _champion(name)
    if champion is None:
        raise registry.RegistryError(f"{name} has no {config.CHAMPION} in {source.name} ({source.describe()}): "
                                     f"promote in {source.name} first")
    if not champion.run_id:  # team mode: an account that may not read runs is not told the source run
        raise access.Withheld(f"the server withheld the source run of {name} version {champion.version}")
    return champion


def _copied_from(version, source: Environment, champion) -> bool:
    """Whether `version` is a copy of the source's champion: promoting it again would only copy it again."""
    return (version.tags.get("source_registry"), version.tags.get("source_model"),
            version.tags.get("source_version")) == (without_password(source.tracking_uri), champion.name,
                                                    str(champion.version))


def _identity(tags: dict) -> dict:
    """The tags that say what a version is (IDENTITY_TAGS, and its test metric: registry.register's test_<key>)."""
    return {tag: value for tag, value in tags.items() if tag in IDENTITY_TAGS or tag.startswith("test_")}


def _copy_in_registry(champion, dst_name: str, copy_tags: dict) -> str:
    """copy_model_version, with the copy keeping only the version's identity and gaining the copy's tags:
    copy_model_version carries every tag, and the source's gate and monitoring verdicts are not the target's."""
    client = MlflowClient()
    copy = client.copy_model_version(f"models:/{champion.name}/{champion.version}", dst_name)
    for tag in set(copy.tags) - set(_identity(champion.tags)):
        client.delete_model_version_tag(dst_name, copy.version, tag)
    for tag, value in copy_tags.items():
        client.set_model_version_tag(dst_name, copy.version, tag, value)
    return str(copy.version)


def _copy_across(model_type: str, source: Environment, target: Environment, champion, dst_name: str,
                 copy_tags: dict) -> tuple:
    """The champion's model and its run (params, metrics, inputs and artifacts: the held-out rows the gate scores
    on, monitoring's reference profile) downloaded from the source's server and logged in a run of the target's
    PROMOTIONS_EXPERIMENT, whose logged model is registered as dst_name's new version: (version, run id)."""
    with tempfile.TemporaryDirectory() as folder, _inside(source):
        model_dir = mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{champion.name}/{champion.version}",
                                                        dst_path=str(Path(folder, "model")))
        run = MlflowClient().get_run(champion.run_id)
        run_dir = mlflow.artifacts.download_artifacts(run_id=champion.run_id, dst_path=str(Path(folder, "run")))
        with _inside(target):
            client = MlflowClient()
            experiment = client.get_experiment_by_name(PROMOTIONS_EXPERIMENT)
            experiment_id = experiment.experiment_id if experiment else client.create_experiment(PROMOTIONS_EXPERIMENT)
            tags = {**_identity(champion.tags), **copy_tags}
            note = (f"A copy of {champion.name} v{champion.version} and its run {champion.run_id} from "
                    f"{source.name} ({source.describe()}), made by register -P action=promote_env.")
            run_id = client.create_run(experiment_id, run_name=f"promote_{model_type}_to_{target.name}",
                                       tags={**tags, config.MODEL_TYPE_TAG: model_type, NOTE_TAG: note}).info.run_id
            params = [Param(key, value) for key, value in run.data.params.items()]
            now = int(time.time() * 1000)
            metrics = [Metric(key, value, now, 0) for key, value in run.data.metrics.items()]
            for start in range(0, max(len(params), len(metrics)), 100):  # MLflow's limit: 100 params a batch
                client.log_batch(run_id, metrics=metrics[start:start + 100], params=params[start:start + 100])
            if run.inputs.dataset_inputs:
                client.log_inputs(run_id, datasets=run.inputs.dataset_inputs)
            client.log_artifacts(run_id, run_dir)
            model = client.create_logged_model(experiment_id, name=config.MODEL_ARTIFACT_NAME, source_run_id=run_id,
                                               tags=copy_tags)
            _make_own(model_dir, model.model_id, run_id)
            client.log_model_artifacts(model.model_id, model_dir)
            client.finalize_logged_model(model.model_id, "READY")
            client.set_terminated(run_id)
            version = mlflow.register_model(f"models:/{model.model_id}", dst_name, tags=tags)
            client.update_model_version(dst_name, version.version, description=champion.description or "")
    return str(version.version), run_id


def _make_own(model_dir: str, model_id: str, run_id: str) -> None:
    """The downloaded model made the target's own: its MLmodel names the source's logged model and run, which the
    target's server does not know (reading the model's info looks its logged model up there), and the download
    added the source version's registered_model_meta."""
    mlmodel = Model.load(model_dir)
    mlmodel.model_id = mlmodel.model_uuid = model_id
    mlmodel.run_id = run_id
    mlmodel.save(str(Path(model_dir, "MLmodel")))
    Path(model_dir, "registered_model_meta").unlink(missing_ok=True)
