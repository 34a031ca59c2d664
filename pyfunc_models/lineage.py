"""Where a champion comes from, read back from the tracking server: `register -P action=lineage`.

For the champion of each environment (pyfunc_models/environments.py): the version, its training run and the
parent `main` run; the training and evaluation datasets (`mlflow.log_input`: source, digest, rows, days); the
code commit and the package versions the model was logged with; the gate's evaluation with its rules and
thresholds; every alias move with its time, action and reason (registry.record_alias_move); the copies in
other environments; the latest comparison and monitoring. Nothing is kept on the side: every item is a run,
a version, a tag or an artifact of the registry and tracking server that hold the model.

    mlflow run . -e register -P action=lineage -P model_type=category                 # text
    mlflow run . -e register -P action=lineage -P model_type=category -P format=json  # the same, as JSON
"""

from __future__ import annotations

import json

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from pyfunc_models import config, environments, registry
from pyfunc_models.model_types import task_class

# The version tags that say how a version fared, in the order they are shown.
GATE_TAGS = ("validation_status", "decided_by", "gate_rules", "compared_with_champion", "forced_promotion",
             "rejection_reason")
MONITORING_TAGS = ("monitoring_status", "last_monitored", "monitoring_reasons", "monitoring_run_id")
PACKAGES_SHOWN = ("mlflow", "scikit-learn", "xgboost", "statsmodels", "pandas", "numpy", "scipy")


def _dataset(dataset_input) -> dict:
    """A logged input of a run: its name, context, source, digest, rows and days (tracking.log_ledger's tags)."""
    dataset, tags = dataset_input.dataset, {tag.key: tag.value for tag in dataset_input.tags}
    try:
        source = json.loads(dataset.source)
        source = source.get("uri") or source.get("path") or dataset.source
    except (TypeError, ValueError):
        source = dataset.source
    try:
        rows = int(tags.get("rows") or json.loads(dataset.profile or "{}").get("num_rows"))
    except (TypeError, ValueError):
        rows = None
    return {"name": dataset.name, "context": tags.get("mlflow.data.context", ""), "source": source,
            "digest": dataset.digest, "rows": rows, "first_day": tags.get("first_day"),
            "last_day": tags.get("last_day")}


def _packages(client: MlflowClient, model_id: str | None) -> dict:
    """The pinned requirements the version's model was logged with (its requirements.txt)."""
    if not model_id:
        return {}
    try:
        location = client.get_logged_model(model_id).artifact_location
        path = mlflow.artifacts.download_artifacts(artifact_uri=f"{location}/requirements.txt")
        lines = open(path).read().splitlines()
    except (MlflowException, OSError):
        return {}
    pins = {}
    for line in lines:
        name, _, pinned = line.partition("==")
        if pinned:
            pins[name.strip().lower()] = pinned.strip()
    return pins


def _run(client: MlflowClient, run_id: str | None) -> dict | None:
    if not run_id:
        return None
    try:
        run = client.get_run(run_id)
    except MlflowException:
        return {"run_id": run_id, "readable": False}
    tags = run.data.tags
    return {"run_id": run_id, "run_name": run.info.run_name, "status": run.info.status,
            "experiment_id": run.info.experiment_id, "parent_run_id": tags.get("mlflow.parentRunId"),
            "git_commit": tags.get("mlflow.source.git.commit"), "data": run.data.params.get("data"),
            "datasets": [_dataset(d) for d in run.inputs.dataset_inputs], "run": run}


def _champion(client: MlflowClient, model_type: str, name: str) -> dict | None:
    try:
        version = client.get_model_version_by_alias(name, config.CHAMPION)
    except MlflowException:
        return None
    tags = version.tags
    key = task_class(model_type).gate.key_metric
    run = _run(client, version.run_id)
    parent = _run(client, run.get("parent_run_id")) if run and run.get("parent_run_id") else None
    training = {}
    if run is not None and "run" in run:
        metrics = run.pop("run").data.metrics
        training = {metric: value for metric, value in metrics.items()  # the key metric, the model's and baselines'
                    if metric == f"test_{key}" or (metric.startswith("baseline_") and metric.endswith(f"_test_{key}"))}
    if parent is not None:
        parent.pop("run", None)
        parent.pop("datasets", None)
    model_id = registry.logged_model_id(version)
    packages = _packages(client, model_id)
    return {
        "version": str(version.version), "created": version.creation_timestamp, "model_id": model_id,
        "source": version.source,
        "training_run": run, "parent_run": parent, "training_metrics": training,
        "code": {"git_commit": tags.get("git_commit") or (run or {}).get("git_commit"),
                 "packages": {name: packages[name] for name in PACKAGES_SHOWN if name in packages},
                 "all_packages": packages},
        "gate": {"key_metric": key, f"eval_{key}": tags.get(f"eval_{key}"),
                 **{tag: tags.get(tag) for tag in GATE_TAGS if tags.get(tag)},
                 "rules": [rule.strip() for rule in tags.get("gate_rules", "").split(" | ") if rule.strip()],
                 "gate": registry.gate_description(model_type)},
        "copied_from": ({tag: tags[tag] for tag in environments.COPY_TAGS if tag in tags}
                        if "source_environment" in tags else {}),
        "copied_to": {tag.removeprefix(environments.PROMOTED_TO_PREFIX): value for tag, value in tags.items()
                      if tag.startswith(environments.PROMOTED_TO_PREFIX)},
        "compared": tags.get("last_compared"),
        "monitoring": {tag: tags[tag] for tag in MONITORING_TAGS if tag in tags},
    }


def lineage(model_type: str) -> dict:
    """Everything the registries and tracking servers of all environments know of the model type's champions."""
    found = {"model_type": model_type, "environments": []}
    for env in environments.all_environments():
        with environments.in_environment(env.name):
            client, name = MlflowClient(), registry.registered_name(model_type)
            entry = {"environment": env.name, "registry": env.describe(), "registered_model": name}
            try:
                client.get_registered_model(name)
            except MlflowException:
                entry["champion"] = None
                entry["note"] = "no such registered model here yet"
                found["environments"].append(entry)
                continue
            entry["champion"] = _champion(client, model_type, name)
            entry["alias_moves"] = registry.alias_moves(name)
            found["environments"].append(entry)
    return found


def as_json(found: dict) -> str:
    return json.dumps(found, indent=2, default=str)


def _day_range(dataset: dict) -> str:
    days = f", {dataset['first_day']} to {dataset['last_day']}" if dataset.get("first_day") else ""
    rows = f"{dataset['rows']} rows" if dataset.get("rows") is not None else "rows unknown"
    return f"{rows}{days}"


def as_text(found: dict) -> str:
    """The lineage for a person: one block per environment."""
    lines = []
    for entry in found["environments"]:
        lines.append(f"== {entry['environment']}: {entry['registered_model']} ({entry['registry']})")
        champion = entry.get("champion")
        if champion is None:
            lines.append(f"   no champion{': ' + entry['note'] if entry.get('note') else ''}")
            lines += [f"   {_move(move)}" for move in entry.get("alias_moves", [])]
            continue
        run, parent = champion["training_run"] or {}, champion["parent_run"]
        lines.append(f"   champion: version {champion['version']} (logged model {champion['model_id']})")
        lines.append(f"   training run: {run.get('run_name', '?')} {run.get('run_id', '?')} ({run.get('status', '?')})"
                     + (f", in main run {parent.get('run_name')} {parent['run_id']}" if parent else ""))
        for dataset in run.get("datasets", []):
            lines.append(f"   {dataset['context'] or 'input'} data: {dataset['name']} from {dataset['source']} "
                         f"(digest {dataset['digest']}, {_day_range(dataset)})")
        code = champion["code"]
        lines.append(f"   code: commit {code['git_commit'] or 'unknown'}; "
                     + (", ".join(f"{n}=={v}" for n, v in code["packages"].items()) or "packages unknown"))
        gate = champion["gate"]
        key = gate["key_metric"]
        lines.append(f"   gate: {gate.get('validation_status', 'not gated')}, {key} {gate.get(f'eval_{key}') or '?'} "
                     f"on its evaluation data (compared with champion {gate.get('compared_with_champion', '-')})")
        lines += [f"     {rule}" for rule in gate["rules"]]
        if champion["copied_from"]:
            source = champion["copied_from"]
            lines.append(f"   copied from {source.get('source_environment')}: {source.get('source_model')} "
                         f"v{source.get('source_version')} in {source.get('source_registry')} "
                         f"(run {source.get('source_run_id')}) at {source.get('promoted_at')}")
        for target, where in champion["copied_to"].items():
            lines.append(f"   copied to {target}: {where}")
        if champion["compared"]:
            lines.append(f"   last compared: {champion['compared']}")
        monitoring = champion["monitoring"]
        lines.append(f"   monitoring: {monitoring.get('monitoring_status', 'never monitored')}"
                     + (f", {monitoring['last_monitored']}" if monitoring.get("last_monitored") else "")
                     + (f" ({monitoring['monitoring_reasons']})" if monitoring.get("monitoring_reasons", "none")
                        != "none" and monitoring.get("monitoring_reasons") else ""))
        lines.append("   alias moves:")
        lines += [f"     {_move(move)}" for move in entry.get("alias_moves", [])] or ["     none recorded"]
    return "\n".join(lines)


def _move(move: dict) -> str:
    target = f"v{move['version']}" if move.get("version") else "removed"
    previous = f" (was v{move['previous']})" if move.get("previous") else ""
    return (f"{move.get('time')} {move.get('alias')} -> {target}{previous} by {move.get('action')} "
            f"({move.get('by')}): {move.get('reason')}")
