"""Environments as registries (pyfunc_models/environments.py): the configuration read from MLFLOW_<ENV>_TRACKING_URI,
promotion dev -> staging -> production in the default single registry (names with suffixes), and across two real
`mlflow server`s on loopback through `register -P action=promote_env`: the copy is a working model with its
source on its tags, a copy that fails the target's gate is not champion, and production is written only from
staging's champion."""

import os
import shutil

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from entrypoints import register as register_entry
from pyfunc_models import config, environments, jobs, registry
from pyfunc_models.generator import write_ledger
from pyfunc_models.model_types import MODEL_NAMES
from tests.conftest import RidgeAndBaselines, python_module
from tools.servers import MLFLOW_CLI, Server, free_port, running

NAME = MODEL_NAMES["amount"]
ROW = {"date": "2024-01-05", "type": "expense", "description": "POS PURCHASE SHELL OIL #4410 SAN JOSE CA",
       "amount": -52.3, "category": "Transportation", "payment_method": "credit_card"}


@pytest.fixture(autouse=True)
def following_the_environment(_temporary_tracking, monkeypatch):
    """registry.in_registry restores the URIs it switched with mlflow.set_tracking_uri/set_registry_uri, which pin
    them for the rest of the process and export MLFLOW_REGISTRY_URI: each test here starts and ends reading them
    from MLFLOW_TRACKING_URI again, as a fresh process does, so no other test's store leaks in or out."""
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    for name in ("MLFLOW_STAGING_TRACKING_URI", "MLFLOW_PRODUCTION_TRACKING_URI", "MLFLOW_STAGING_EVAL_DATA",
                 "MLFLOW_PRODUCTION_EVAL_DATA"):
        monkeypatch.delenv(name, raising=False)

    def unpin():
        uri = os.environ["MLFLOW_TRACKING_URI"]
        mlflow.set_tracking_uri(None)  # also unsets MLFLOW_TRACKING_URI
        mlflow.set_registry_uri(None)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)

    unpin()
    yield
    unpin()


@pytest.fixture(scope="module")
def ledger(tmp_path_factory):
    path = tmp_path_factory.mktemp("environments") / "ledger.csv"
    write_ledger(path, rows=800, seed=8)
    return path


def train_and_register(ledger) -> str:
    """The cheapest amount model (ridge and its baselines), registered in dev through the gate: its run id."""
    trained = jobs.train_model(RidgeAndBaselines(), str(ledger))
    _, alias, _ = registry.register("amount", trained.run_id)
    assert alias == config.CHAMPION
    return trained.run_id


def test_default_is_one_registry_with_the_environment_in_the_name():
    uri = os.environ["MLFLOW_TRACKING_URI"]
    found = {env.name: env for env in environments.all_environments()}
    assert list(found) == list(config.ENVIRONMENTS)
    assert {env.tracking_uri for env in found.values()} == {uri}
    assert [(env.name_suffix, env.own_registry) for env in found.values()] == [
        ("", True), ("-staging", False), ("-production", False)]
    with environments.in_environment("staging"):
        assert registry.registered_name("amount") == f"{NAME}-staging"
    assert registry.registered_name("amount") == NAME


def test_environment_variables_give_an_environment_its_own_registry(monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_STAGING_TRACKING_URI", "http://trainer:s3cret@127.0.0.1:5555/")
    monkeypatch.setenv("MLFLOW_PRODUCTION_TRACKING_URI", "http://trainer:s3cret@127.0.0.1:5555")  # staging's server
    monkeypatch.setenv("MLFLOW_STAGING_EVAL_DATA", str(tmp_path / "staging.csv"))
    staging, production = environments.environment("staging"), environments.environment("production")
    assert (staging.own_registry, staging.name_suffix, staging.eval_data) == (True, "", str(tmp_path / "staging.csv"))
    assert (production.own_registry, production.name_suffix) == (False, "-production")
    assert production.tracking_uri == staging.tracking_uri
    assert staging.describe() == "http://127.0.0.1:5555"
    assert "s3cret" not in production.describe() and production.describe().endswith("-production")
    with pytest.raises(registry.RegistryError, match="choose from dev, staging, production"):
        environments.environment("qa")


def test_promotion_refuses_dev_and_unknown_names_and_training_registers_in_dev_only():
    for to in ("dev", "qa"):
        with pytest.raises(registry.RegistryError, match="choose from staging, production"):
            environments.promote_env("amount", to)
    # Training registers in dev only: the register action takes no other environment.
    with pytest.raises(SystemExit) as refused:
        register_entry.main(["--action", "register", "--model-type", "amount", "--environment", "production"])
    assert refused.value.code == 2


@pytest.mark.slow  # trains a model
def test_dev_to_staging_to_production_in_one_registry(ledger, monkeypatch):
    client, uri = MlflowClient(), os.environ["MLFLOW_TRACKING_URI"]
    with pytest.raises(registry.RegistryError, match=f"{NAME} has no champion in dev .*promote in dev first"):
        environments.promote_env("amount", "staging")
    run_id = train_and_register(ledger)
    with pytest.raises(registry.RegistryError, match="promote in staging first"):
        environments.promote_env("amount", "production")

    out = environments.promote_env("amount", "staging")
    assert f"dev {NAME} v1 -> staging {NAME}-staging v1" in out and "staging champion -> v1" in out
    copy = client.get_model_version_by_alias(f"{NAME}-staging", config.CHAMPION)
    assert str(copy.version) == "1" and copy.run_id == run_id
    assert {tag: copy.tags[tag] for tag in ("environment", "source_environment", "source_registry", "source_model",
                                            "source_version", "source_run_id", "validation_status")} == {
        "environment": "staging", "source_environment": "dev", "source_registry": uri, "source_model": NAME,
        "source_version": "1", "source_run_id": run_id, "validation_status": "passed"}
    assert copy.tags["source_model_id"].startswith("m-") and copy.tags["promoted_at"]
    assert client.get_model_version(NAME, "1").tags["promoted_to_staging"] == f"{uri} {NAME}-staging v1"
    move = registry.alias_moves(f"{NAME}-staging")[-1]
    assert (move["alias"], move["version"], move["action"]) == (config.CHAMPION, "1", "promote_env")
    assert not client.search_registered_models(f"name = '{NAME}-production'")  # never written from training
    assert "already a copy of dev" in environments.promote_env("amount", "staging")
    assert len(client.search_model_versions(f"name = '{NAME}-staging'")) == 1

    registry.register("amount", run_id)  # dev moves on to v2: production still comes from staging's champion
    assert str(client.get_model_version_by_alias(NAME, config.CHAMPION).version) == "2"
    monkeypatch.setenv("MLFLOW_PRODUCTION_EVAL_DATA", str(ledger))  # production's gate scores on its own ledger
    out = environments.promote_env("amount", "production")
    assert f"staging {NAME}-staging v1 -> production {NAME}-production v1" in out
    assert f"production's gate on {ledger}" in out and "production champion -> v1" in out
    production = client.get_model_version_by_alias(f"{NAME}-production", config.CHAMPION)
    assert (production.tags["source_environment"], production.tags["source_model"],
            production.tags["source_version"]) == ("staging", f"{NAME}-staging", "1")
    answer = mlflow.pyfunc.load_model(f"models:/{NAME}-production@{config.CHAMPION}").predict(pd.DataFrame([ROW]))
    assert answer["predicted_amount"].notna().all()


def tracking_server(folder, store):
    """A plain `mlflow server` on a free loopback port: a copy of the sqlite `store` as its backend, artifacts
    proxied into `folder`."""
    folder.mkdir()
    shutil.copy(store, folder / "mlflow.db")
    port = free_port()
    command = [MLFLOW_CLI, "server", "--backend-store-uri", f"sqlite:///{folder}/mlflow.db", "--artifacts-destination",
               folder / "artifacts", "--serve-artifacts", "--host", "127.0.0.1", "--port", port, "--workers", "1"]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    return Server(command, port, cwd=folder, env=env, log_path=folder / f"server-{port}.log", ready_path="/health")


@pytest.mark.slow  # two tracking servers, training and the register entry point
def test_promotion_across_two_tracking_servers(ledger, tmp_path, monkeypatch):
    store = tmp_path / "empty.db"  # made once, here: two servers creating their tables side by side take longer
    MlflowClient(f"sqlite:///{store}").search_experiments()
    dev, staging = tracking_server(tmp_path / "dev", store), tracking_server(tmp_path / "staging", store)
    monkeypatch.chdir(tmp_path)  # nothing may be written here: artifacts go through the servers
    with running(dev, staging):
        monkeypatch.setenv("MLFLOW_TRACKING_URI", dev.url)
        monkeypatch.setenv("MLFLOW_STAGING_TRACKING_URI", staging.url)
        run_id = train_and_register(ledger)

        out = python_module("entrypoints.register", "--action", "promote_env", "--model-type", "amount", "--to",
                            "staging", uri=dev.url).stdout
        assert f"dev {NAME} v1 -> staging {NAME} v1 ({staging.url})" in out and "staging champion -> v1" in out
        assert f"MLFLOW_TRACKING_URI={staging.url} mlflow models serve -m models:/{NAME}@champion" in out
        at_staging, at_dev = MlflowClient(staging.url), MlflowClient(dev.url)
        copy = at_staging.get_model_version_by_alias(NAME, config.CHAMPION)
        assert (copy.tags["source_registry"], copy.tags["source_run_id"], copy.tags["source_version"],
                copy.tags["environment"]) == (dev.url, run_id, "1", "staging")
        assert at_dev.get_model_version(NAME, "1").tags["promoted_to_staging"] == f"{staging.url} {NAME} v1"
        promotion = at_staging.get_run(copy.run_id)  # the copy's run, in staging, with the held-out rows
        assert promotion.info.run_name == "promote_amount_to_staging" and promotion.data.metrics["test_mae"] > 0
        assert registry.EVALUATION_ARTIFACT in [a.path for a in at_staging.list_artifacts(copy.run_id, "evaluation")]
        with environments.in_environment("staging"):  # loaded from the staging server alone
            model = mlflow.pyfunc.load_model(f"models:/{NAME}@{config.CHAMPION}")
        assert model.predict(pd.DataFrame([ROW]))["predicted_amount"].notna().all()

        # A version staging's gate refuses is copied, and stays challenger (in process: the CLI's part is above).
        registry.register("amount", run_id)
        out = environments.promote_env("amount", "staging", floors=registry.parse_floors("amount.mae=1"))
        assert "not promoted: staging champion stays v1; v2 is challenger" in out and "floor 1" in out
        assert at_staging.get_model_version_by_alias(NAME, config.CHAMPION).version == "1"
        refused = at_staging.get_model_version(NAME, "2")
        assert refused.aliases == [config.CHALLENGER] and refused.tags["validation_status"] == "rejected"

        # Production (no URI of its own: dev's registry, "-production" names) was never written.
        for client in (at_dev, at_staging):
            assert not client.search_registered_models(f"name = '{NAME}-production'")
    assert not (tmp_path / "mlruns").exists() and any((tmp_path / "staging" / "artifacts").rglob("MLmodel"))
