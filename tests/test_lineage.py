"""Lineage: one category version followed from the `main` run that trained it to production, and back through a
rollback, read with `register -P action=lineage` (text and JSON) from the registry alone."""

import json
import shutil

import pytest
from mlflow.tracking import MlflowClient

from pyfunc_models import config, environments, jobs, registry
from pyfunc_models.category import CategoryTask
from tests.conftest import python_module

pytestmark = pytest.mark.slow


@pytest.fixture
def store(champions, tmp_path, monkeypatch):
    """A copy of the session's champion store (its sqlite file: artifacts stay where they are, read-only), so the
    test moves aliases without touching what other tests read; one registry for all environments."""
    shutil.copy(champions["uri"].removeprefix("sqlite:///"), tmp_path / "copy.db")
    uri = f"sqlite:///{tmp_path}/copy.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    for name in config.ENVIRONMENTS:
        monkeypatch.delenv(f"MLFLOW_{name.upper()}_TRACKING_URI", raising=False)
        monkeypatch.delenv(f"MLFLOW_{name.upper()}_EVAL_DATA", raising=False)
    return uri


def lineage_of(uri: str) -> dict:
    found = json.loads(python_module("entrypoints.register", "--action", "lineage", "--model-type", "category",
                                     "--format", "json", uri=uri).stdout)
    return {entry["environment"]: entry for entry in found["environments"]}


def test_a_version_is_followed_from_training_to_production_and_back_through_a_rollback(store, champions):
    client = MlflowClient(store)
    first = client.get_model_version_by_alias("titans-finance-category-prediction", config.CHAMPION)
    for target in ("staging", "production"):
        environments.promote_env("category", target)

    # A second dev version, through staging to production; then production rolls back to the first. Its one
    # candidate trains in 7 s where all six took 20: what it is made of, lineage does not read.
    trained = jobs.train_model(CategoryTask(only=["text_logistic_regression"], word_knowledge=0),
                               str(champions["ledger"]), experiment_name=config.EXPERIMENT_NAME)
    second, _, _ = registry.register("category", trained.run_id)
    registry.promote("category", second.version, force=True)
    for target in ("staging", "production"):
        environments.promote_env("category", target)
    production = "titans-finance-category-prediction-production"
    assert client.get_model_version_by_alias(production, config.CHAMPION).tags["source_version"] == "2"
    rolled = python_module("entrypoints.register", "--action", "rollback", "--model-type", "category",
                           "--environment", "production", uri=store)
    assert f"{production}: champion is now version 1" in rolled.stdout

    found = lineage_of(store)
    assert list(found) == list(config.ENVIRONMENTS)
    champion = found["production"]["champion"]
    assert champion["version"] == "1"
    # Where it came from: staging's copy of dev's first champion, trained in a nested run of `main`.
    assert champion["copied_from"]["source_environment"] == "staging"
    staging_source = client.get_model_version("titans-finance-category-prediction-staging",
                                              champion["copied_from"]["source_version"])
    assert staging_source.tags["source_version"] == str(first.version)
    run = champion["training_run"]
    assert run["run_id"] == first.run_id
    assert champion["parent_run"]["run_id"] == client.get_run(first.run_id).data.tags["mlflow.parentRunId"]
    datasets = {dataset["context"]: dataset for dataset in run["datasets"]}
    assert set(datasets) == {"training", "evaluation"}
    assert datasets["training"]["last_day"] < datasets["evaluation"]["first_day"]
    assert all(dataset["rows"] > 0 and dataset["digest"] for dataset in datasets.values())
    assert champion["code"]["git_commit"] and champion["code"]["packages"]["mlflow"] == "3.17.2"
    assert champion["gate"]["validation_status"] == "passed" and champion["gate"]["rules"]

    # Every alias move of production, in order, with its action and reason.
    moves = [(m["alias"], m["version"], m["action"]) for m in found["production"]["alias_moves"]]
    assert moves == [("champion", "1", "promote_env"), ("champion", "2", "promote_env"),
                     ("champion", "1", "rollback")]
    assert found["production"]["alias_moves"][-1]["reason"] == "rolled back from version 2"
    # dev's champion is the second version, and says where its copies went.
    assert found["dev"]["champion"]["version"] == str(second.version)
    assert set(found["dev"]["champion"]["copied_to"]) == {"staging"}

    text = python_module("entrypoints.register", "--action", "lineage", "--model-type", "category",
                         uri=store).stdout
    assert "== production: titans-finance-category-prediction-production" in text
    assert "champion -> v1 (was v2) by rollback" in text
    assert f"copied from staging: titans-finance-category-prediction-staging v{staging_source.version}" in text
