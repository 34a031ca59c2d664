"""The model registry lifecycle: register through a gate, promote, roll back, archive, list.

Aliases, not stages: `champion` serves, `challenger` is the newest candidate that was
registered but not promoted. Every decision is stored in the registry itself (version
tags, and the champion's history as a registered-model tag), so it survives any process.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import getpass
import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from pyfunc_models import access, config
from pyfunc_models.ledger import LedgerError, prepare_ledger, read_ledger
from pyfunc_models.model_types import MODEL_NAMES, MODEL_TYPES, task_class

HISTORY_TAG = "champion_history"  # JSON list of versions that were champion, oldest first
EVALUATION_ARTIFACT = "evaluation/test_ledger.csv"
# Every alias move is a registered-model tag of its own, `alias_move.<epoch µs>` = JSON {time, alias, version,
# previous, action, reason, by}: the lineage reads them back from the registry (alias_moves), nothing is kept aside.
ALIAS_MOVE_PREFIX = "alias_move."

# The registered-name suffix of the environment the registry functions act in ("" for dev, "-staging" when
# environments share one registry): see `in_registry` and pyfunc_models/environments.py.
_NAME_SUFFIX = contextvars.ContextVar("registered_name_suffix", default="")


class RegistryError(ValueError):
    """A registry action that cannot be done, with a message a user can act on."""


@dataclass
class GateDecision:
    passed: bool
    reasons: list = field(default_factory=list)  # the rules that failed
    candidate: dict = field(default_factory=dict)  # key metrics on the evaluation data
    champion: dict | None = None
    champion_version: str | None = None
    rules: list = field(default_factory=list)  # every rule checked, each "ok: ..." or "failed: ..."

    @property
    def decided_by(self) -> str:
        """The rule that decided: the first that failed, else that every rule passed."""
        if self.reasons:
            return self.reasons[0]
        first = "" if self.champion is not None else "first model that beats its baselines; "
        return f"{first}passed: " + "; ".join(rule.removeprefix("ok: ") for rule in self.rules)


def _client() -> MlflowClient:
    return MlflowClient()


def registered_name(model_type: str) -> str:
    """The registered model of a model type in the registry the functions here act in (`in_registry`)."""
    return MODEL_NAMES[model_type] + _NAME_SUFFIX.get()


@contextlib.contextmanager
def in_registry(tracking_uri: str | None = None, name_suffix: str = ""):
    """Act in another registry (a tracking server's URI, None for the current one) and/or on registered names with
    a suffix (an environment kept in the same registry): every function of this module, inside the block."""
    # mlflow.set_tracking_uri/set_registry_uri pin the URI for the rest of the process and export it as
    # MLFLOW_TRACKING_URI/MLFLOW_REGISTRY_URI: afterwards both are unpinned and the variables put back as they were.
    exported = {name: os.environ.get(name) for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    token = _NAME_SUFFIX.set(name_suffix)
    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(tracking_uri)
    try:
        yield
    finally:
        _NAME_SUFFIX.reset(token)
        if tracking_uri:
            mlflow.set_tracking_uri(None)
            mlflow.set_registry_uri(None)
            for name, value in exported.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def record_alias_move(name: str, alias: str, version, action: str, reason: str, previous=None) -> None:
    """One alias move, as a registered-model tag of its own (ALIAS_MOVE_PREFIX): when, which alias, from which
    version to which (None: removed), by which action and why, and who (the OS user or the tracking user)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    move = {"time": now.isoformat(timespec="seconds"), "alias": alias,
            "version": None if version is None else str(version),
            "previous": None if previous is None else str(previous), "action": action, "reason": reason[:2000],
            "by": _who()}
    key = f"{ALIAS_MOVE_PREFIX}{time.time_ns() // 1000:d}"  # microseconds: two moves of one call stay apart
    _client().set_registered_model_tag(name, key, json.dumps(move))


def _who() -> str:
    try:
        return os.environ.get("MLFLOW_TRACKING_USERNAME") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def alias_moves(name: str) -> list:
    """Every recorded alias move of a registered model, oldest first (record_alias_move)."""
    try:
        tags = _client().get_registered_model(name).tags
    except MlflowException:
        return []
    moves = []
    for key in sorted((k for k in tags if k.startswith(ALIAS_MOVE_PREFIX)), key=lambda k: int(k.split(".")[-1])):
        try:
            moves.append(json.loads(tags[key]))
        except ValueError:
            continue
    return moves


def parse_floors(text: str | None) -> dict:
    """'category.macro_f1=0.8,anomaly.recall=0.7' -> {'category': {'macro_f1': 0.8}, 'anomaly': {'recall': 0.7}}."""
    floors: dict = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        name, _, value = item.partition("=")
        model_type, _, metric = name.strip().partition(".")
        if model_type not in MODEL_TYPES or metric not in task_class(model_type).gate.floors:
            choices = ", ".join(f"{t}.{m}" for t in MODEL_TYPES for m in task_class(t).gate.floors)
            raise RegistryError(f"floor {name.strip()!r} is not one the gate knows; choose from {choices}")
        try:
            floors.setdefault(model_type, {})[metric] = float(value)
        except ValueError:
            raise RegistryError(f"floor {name.strip()!r} = {value!r} is not a number") from None
    return floors


def newest_training_run(model_type: str, experiment_name: str = config.EXPERIMENT_NAME):
    client = _client()
    experiment = client.get_experiment_by_name(experiment_name)
    runs = [] if experiment is None else client.search_runs(
        [experiment.experiment_id], f"tags.{config.MODEL_TYPE_TAG} = '{model_type}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        raise RegistryError(f"no FINISHED training run with {config.MODEL_TYPE_TAG}={model_type} in experiment "
                            f"'{experiment_name}'; train one first (mlflow run . -e train_{model_type})")
    return runs[0]


def logged_model_uri(run) -> str:
    models = _client().search_logged_models(experiment_ids=[run.info.experiment_id],
                                            filter_string=f"source_run_id = '{run.info.run_id}'")
    if not models:
        raise RegistryError(f"run {run.info.run_id} logged no model (did its training fail?)")
    return models[0].model_uri


def logged_model_id(version) -> str | None:
    """The logged model (m-...) a registered version holds. A SQL registry leaves ModelVersion.model_id empty and
    keeps it in the source URI (models:/m-<id>); a copy's source is the version it was copied from, whose model id
    promote_env keeps in the copy's `source_model_id` tag; else it is read from the model's MLmodel."""
    if getattr(version, "model_id", None):
        return version.model_id
    if (version.source or "").startswith("models:/m-"):
        return version.source.removeprefix("models:/")
    if version.tags.get("source_model_id"):
        return version.tags["source_model_id"]
    try:
        return mlflow.models.get_model_info(f"models:/{version.name}/{version.version}").model_id
    except (MlflowException, OSError):
        return None


def evaluation_ledger(run_id: str, eval_data: str | None) -> pd.DataFrame:
    """The data both candidate and champion are scored on: a CSV given, else the run's held-out test rows."""
    if eval_data:
        raw, source = read_ledger(eval_data), Path(eval_data).name
    else:
        path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=EVALUATION_ARTIFACT)
        raw, source = read_ledger(path), "the run's evaluation data"
    # As training reads a ledger: an implausible date drops its row rather than the whole evaluation.
    return prepare_ledger(raw, required=("date", "amount"), source=source, implausible_dates="drop")[0]


def score(model_type: str, model_uri: str, ledger: pd.DataFrame, **options) -> dict:
    model = mlflow.pyfunc.load_model(model_uri)
    try:
        return task_class(model_type)().gate_metrics(model.predict, ledger, **options)
    except MlflowException as error:  # the model refused a row of the evaluation data: say so, as a ledger error
        raise LedgerError(f"{model_uri} could not score the evaluation data: {error.message}") from None


def _baseline_value(name: str, key: str, candidate: dict, run_metrics: dict):
    # Measured by the model's gate_metrics on the evaluation rows (from the baselines its predictor carries); for a
    # version logged before predictors carried them, the training run's baseline on its held-out test rows.
    return candidate.get(f"baseline_{name}_{key}", run_metrics.get(f"baseline_{name}_test_{key}"))


def gate(model_type: str, candidate: dict, run_metrics: dict, champion: dict | None, floors: dict | None = None,
         champion_version: str | None = None, chosen: str | None = None) -> list:
    """Every rule of the model type's gate (task.Gate), checked: a list of 'ok: ...' and 'failed: ...' lines.
    `chosen`: the candidate training chose; when it is a baseline the model must beat, it cannot beat itself (its
    figures equal the baseline's but for rounding, which must not decide)."""
    rules = task_class(model_type).gate
    key, sign = rules.key_metric, (1.0 if rules.greater_is_better else -1.0)
    value = candidate[key]
    tolerance = rules.tolerance_text()

    def no_worse_than(reference) -> bool:
        allowed = rules.tolerance * (abs(reference) if rules.relative else 1.0)
        return sign * (value - reference) >= -allowed

    checks = []
    for name in (*rules.beat, *rules.match):
        reference = _baseline_value(name, key, candidate, run_metrics)
        if reference is None:  # a rule that cannot be checked is not passed
            checks.append((False, f"the {name} baseline's {key} was not measured on the evaluation data"))
        elif name in rules.beat and name == chosen:
            checks.append((False, f"the chosen model is the {name} baseline itself (no trained candidate beat it on "
                                  f"validation), so it cannot beat it"))
        elif name in rules.beat:
            ok = sign * (value - reference) > 0
            checks.append((ok, f"{key} {value:.4g} {'beats' if ok else 'does not beat'} the {name} baseline "
                               f"({reference:.4g})"))
        else:
            ok = no_worse_than(reference)
            checks.append((ok, f"{key} {value:.4g} {'within' if ok else 'worse than'} {tolerance} of the {name} "
                               f"baseline ({reference:.4g})"))
    for metric, (default, greater) in rules.floors.items():
        floor = (floors or {}).get(model_type, {}).get(metric, default)
        if floor is not None and metric in candidate:
            ok = candidate[metric] >= floor if greater else candidate[metric] <= floor
            checks.append((ok, f"{metric} {candidate[metric]:.4g} {'' if ok else 'is not '}"
                               f"{'>=' if greater else '<='} the floor {floor:g}"))
    if champion is not None:
        ok = no_worse_than(champion[key])
        checks.append((ok, f"{key} {value:.4g} {'within' if ok else 'worse than'} {tolerance} of champion "
                           f"v{champion_version} ({champion[key]:.4g})"))
    return [("ok: " if ok else "failed: ") + text for ok, text in checks]


def _version_of_alias(name: str, alias: str):
    try:
        return _client().get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def _champion_history(name: str) -> list:
    try:
        return [str(v) for v in json.loads(_client().get_registered_model(name).tags.get(HISTORY_TAG, "[]"))]
    except MlflowException:
        return []


def set_alias(name: str, alias: str, version, action: str, reason: str) -> None:
    """Point `alias` at `version` and record the move (record_alias_move), unless it already points there."""
    current = _version_of_alias(name, alias)
    previous = None if current is None else str(current.version)
    if previous == str(version):
        return
    _client().set_registered_model_alias(name, alias, str(version))
    record_alias_move(name, alias, version, action, reason, previous)


def remove_alias(name: str, alias: str, action: str, reason: str) -> None:
    current = _version_of_alias(name, alias)
    if current is None:
        return
    _client().delete_registered_model_alias(name, alias)
    record_alias_move(name, alias, None, action, reason, current.version)


def _make_champion(name: str, version, action: str = "promote", reason: str = "") -> None:
    client, version = _client(), str(version)
    history = [v for v in _champion_history(name) if v != version] + [version]
    set_alias(name, config.CHAMPION, version, action, reason)
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history))
    challenger = _version_of_alias(name, config.CHALLENGER)
    if challenger is not None and str(challenger.version) == version:
        remove_alias(name, config.CHALLENGER, action, f"version {version} became {config.CHAMPION}")


def gate_description(model_type: str) -> str:
    """How a version of this model type becomes champion, in words, from its gate (task.Gate)."""
    task = task_class(model_type)
    rules = task.gate
    key, better = rules.key_metric, "higher" if rules.greater_is_better else "lower"
    tolerance = rules.tolerance_text()
    musts = [f"beat the {name} baseline" for name in rules.beat]
    musts += [f"be within {tolerance} of the {name} baseline" for name in rules.match]
    musts.append(f"be within {tolerance} of the current champion, if there is one, scored on the same rows")
    floors = rules.floors
    musts += [f"pass the floor {metric} {'>=' if greater else '<='} {default:g}"
              for metric, (default, greater) in floors.items() if default is not None]
    return (f"a new version is scored on {task.purpose.evaluated_on} (or on the ledger given with "
            f"-P eval_data=...) by {key} ({better} is better). "
            f"It becomes `champion` only if it does all of: {'; '.join(musts)}. Otherwise it is registered as "
            f"`challenger`, and its version tags (decided_by, rejection_reason, gate_rules) say why. Floors on "
            f"{', '.join(floors)} can be set or changed with -P floors={model_type}.{next(iter(floors))}=...")


def model_description(model_type: str, model_info=None) -> str:
    """The registered model's description: what it answers, its input (the columns the logged model's metadata
    lists) and output and params (its signature), when `model_info` is given, and how it is gated."""
    purpose = task_class(model_type).purpose
    lines = [f"**{purpose.question}**", "", f"Output: {purpose.answer}"]
    metadata = (model_info.metadata or {}) if model_info is not None else {}
    if metadata.get("input_columns"):
        required = list(metadata.get("required_columns", []))
        optional = [column for column in metadata["input_columns"] if column not in required]
        lines += ["", f"Input: raw transactions, one per row, in any MLflow scoring format (dataframe_records, "
                      f"dataframe_split, inputs), columns named in any case or spacing (the Titans export's header "
                      f"too): {', '.join(required)} required"
                      + (f"; {', '.join(optional)} optional" if optional else "") + "; other columns are ignored."]
    signature = model_info.signature if model_info is not None else None
    if signature is not None and signature.outputs is not None:
        lines.append(f"Output columns: {', '.join(signature.outputs.input_names())}.")
    if signature is not None and signature.params is not None:
        lines.append(f"Params (optional, per request): {', '.join(spec.name for spec in signature.params.params)}.")
    lines += ["", f"Gate: {gate_description(model_type)}"]
    return "\n".join(lines)


def describe_registered_model(model_type: str, model_uri: str | None = None) -> None:
    """Set the registered model's description (`model_description`), from the logged model at `model_uri`."""
    model_info = mlflow.models.get_model_info(model_uri) if model_uri else None
    _client().update_registered_model(registered_name(model_type),
                                      description=model_description(model_type, model_info))


def evaluate_against_champion(model_type: str, version: str, eval_data: str | None = None,
                              floors: dict | None = None) -> GateDecision:
    name, client = registered_name(model_type), _client()
    candidate_version = client.get_model_version(name, version)
    if not candidate_version.run_id:  # team mode: an account that may not read runs is not told the source run
        raise access.Withheld(f"the server withheld the source run of {name} version {version}")
    run = client.get_run(candidate_version.run_id)
    ledger = evaluation_ledger(run.info.run_id, eval_data)
    candidate = score(model_type, f"models:/{name}/{version}", ledger)
    champion_version = _version_of_alias(name, config.CHAMPION)
    champion = None
    if champion_version is not None and str(champion_version.version) != str(version):
        # Cash flow: the champion forecasts the candidate's window (its horizon), not one of its own length.
        same_rows = {"horizon": int(candidate["horizon"])} if "horizon" in candidate else {}
        champion = score(model_type, f"models:/{name}/{champion_version.version}", ledger, **same_rows)
    compared_with = str(champion_version.version) if champion is not None else None
    rules = gate(model_type, candidate, run.data.metrics, champion, floors, compared_with,
                 chosen=run.data.tags.get("chosen_candidate"))
    reasons = [rule.removeprefix("failed: ") for rule in rules if rule.startswith("failed: ")]
    return GateDecision(not reasons, reasons, candidate, champion, compared_with, rules)


def _record(model_type: str, version: str, decision: GateDecision, forced: bool = False) -> None:
    client, name = _client(), registered_name(model_type)
    key = task_class(model_type).gate.key_metric
    tags = {
        "validation_status": "forced" if forced else ("passed" if decision.passed else "rejected"),
        f"eval_{key}": f"{decision.candidate.get(key, float('nan')):.6g}",
        "rejection_reason": " | ".join(decision.reasons) if decision.reasons else "",
        "gate_rules": " | ".join(decision.rules),
        "decided_by": decision.decided_by,
        "compared_with_champion": decision.champion_version or "none",
    }
    if forced:
        tags["forced_promotion"] = "true"
    for tag, value in tags.items():
        client.set_model_version_tag(name, version, tag, value)


def _decide(model_type: str, version: str, decision: GateDecision, force: bool = False,
            action: str = "register") -> str:
    name = registered_name(model_type)
    forced = force and not decision.passed
    _record(model_type, version, decision, forced=forced)
    if decision.passed or force:
        _make_champion(name, version, "forced promotion" if forced else action,
                       f"forced past the gate: {decision.decided_by}" if forced else decision.decided_by)
        return config.CHAMPION
    set_alias(name, config.CHALLENGER, version, action, decision.decided_by)
    return config.CHALLENGER


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                              cwd=Path(__file__).resolve().parent).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def register(model_type: str, run_id: str | None = None, eval_data: str | None = None,
             experiment_name: str = config.EXPERIMENT_NAME, floors: dict | None = None) -> tuple:
    """Register a training run's model and put it through the gate: (model version, alias, decision)."""
    client = _client()
    run = client.get_run(run_id) if run_id else newest_training_run(model_type, experiment_name)
    if run.info.status != "FINISHED":
        raise RegistryError(f"run {run.info.run_id} is {run.info.status}; only FINISHED training runs are registered")
    if run.data.tags.get(config.MODEL_TYPE_TAG) != model_type:
        raise RegistryError(f"run {run.info.run_id} trained a '{run.data.tags.get(config.MODEL_TYPE_TAG)}' model, "
                            f"not '{model_type}'")
    name = registered_name(model_type)
    training = [d for d in run.inputs.dataset_inputs if any(t.value == "training" for t in d.tags)]
    key = task_class(model_type).gate.key_metric
    tags = {
        config.MODEL_TYPE_TAG: model_type,
        "source_run_id": run.info.run_id,
        "training_data_digest": training[0].dataset.digest if training else "unknown",
        "git_commit": run.data.tags.get("mlflow.source.git.commit") or _git_commit(),
        f"test_{key}": f"{run.data.metrics.get(f'test_{key}', float('nan')):.6g}",
        "chosen_candidate": run.data.tags.get("chosen_candidate", ""),
    }
    model_uri = logged_model_uri(run)
    version = mlflow.register_model(model_uri, name, tags=tags)
    describe_registered_model(model_type, model_uri)
    client.update_model_version(name, version.version, description=(
        f"{model_type} model from run {run.info.run_id} ({tags['chosen_candidate'] or 'single model'}); "
        f"test {key} = {tags[f'test_{key}']}."))
    try:
        decision = evaluate_against_champion(model_type, version.version, eval_data, floors)
    except LedgerError as error:
        client.set_model_version_tag(name, version.version, "validation_status", "error")
        client.set_model_version_tag(name, version.version, "rejection_reason", f"could not evaluate: {error}")
        raise
    return version, _decide(model_type, version.version, decision), decision


def promote(model_type: str, version: str, force: bool = False, eval_data: str | None = None,
            floors: dict | None = None) -> tuple:
    name = registered_name(model_type)
    split = _client().get_model_version(name, version)
    if split.tags.get(config.AB_SPLIT_TAG) == "true":  # even with force: it is a router, not a model
        raise RegistryError(f"{name} version {version} is an A/B split of versions "
                            f"{split.tags.get('ab_champion_version')} and {split.tags.get('ab_challenger_version')}, "
                            f"served under @{config.AB_ALIAS}; it never becomes {config.CHAMPION}: promote the variant "
                            f"that won (-P version={split.tags.get('ab_challenger_version')})")
    decision = evaluate_against_champion(model_type, version, eval_data, floors)
    return _decide(model_type, version, decision, force=force, action="promote"), decision


def rollback(model_type: str) -> str:
    """Champion goes back to the version that was champion before it; returns that version."""
    name, client = registered_name(model_type), _client()
    history = _champion_history(name)
    current = _version_of_alias(name, config.CHAMPION)
    if current is not None and history and history[-1] == str(current.version):
        history = history[:-1]
    archived = {str(v.version) for v in client.search_model_versions(f"name = '{name}'") if v.tags.get("archived") == "true"}
    history = [v for v in history if v not in archived]
    if not history:
        raise RegistryError(f"{name} has no earlier champion to roll back to")
    previous = history[-1]
    set_alias(name, config.CHAMPION, previous, "rollback",
              f"rolled back from version {current.version}" if current is not None else "rolled back")
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history))
    if current is not None:
        client.set_model_version_tag(name, current.version, "rolled_back", "true")
    return previous


def archive(model_type: str, version: str) -> None:
    name, client = registered_name(model_type), _client()
    for alias in client.get_model_version(name, version).aliases:
        remove_alias(name, alias, "archive", f"version {version} archived")
    client.set_model_version_tag(name, version, "archived", "true")
    history = [v for v in _champion_history(name) if v != str(version)]
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history))


def list_versions(model_types=MODEL_TYPES) -> pd.DataFrame:
    client, rows = _client(), []
    for model_type in model_types:
        name = registered_name(model_type)
        key = task_class(model_type).gate.key_metric
        try:
            by_version = {}
            for alias, number in client.get_registered_model(name).aliases.items():
                by_version.setdefault(str(number), []).append(alias)
        except MlflowException:
            continue  # never registered
        for version in client.search_model_versions(f"name = '{name}'"):
            rows.append({
                "model": name, "version": int(version.version),
                "aliases": ",".join(sorted(by_version.get(str(version.version), []))) or "-",
                "key metric": f"{key}={version.tags.get(f'eval_{key}', version.tags.get(f'test_{key}', '?'))}",
                "status": "archived" if version.tags.get("archived") == "true"
                else version.tags.get("validation_status", "unvalidated"),
                "reason": version.tags.get("rejection_reason", ""),
            })
    return pd.DataFrame(rows).sort_values(["model", "version"]) if rows else pd.DataFrame(
        columns=["model", "version", "aliases", "key metric", "status", "reason"])


def tag_version(model_type: str, version: str, tags: dict) -> None:
    """Set tags on a registered version (monitoring's `monitoring_status`, `last_monitored`, ...)."""
    client, name = _client(), registered_name(model_type)
    for tag, value in tags.items():
        client.set_model_version_tag(name, str(version), tag, str(value))


def serve_command(model_type: str) -> str:
    """Each model on its own port (5001-5004, as in the README and examples/requests.sh), so all four can run."""
    return (f"mlflow models serve -m models:/{registered_name(model_type)}@{config.CHAMPION} "
            f"--env-manager local -p {config.FIRST_SERVE_PORT + MODEL_TYPES.index(model_type)}")
