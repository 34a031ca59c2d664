"""The registry lifecycle through the real `mlflow run . -e register`: the gate, promotion, rollback,
archive, list; every step a fresh process, so all state lives in the registry."""

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from pyfunc_models import config, jobs
from pyfunc_models.category import CategoryTask
from tests.conftest import mlflow_cli, python_module

NAME = config.MODEL_NAMES["category"]


def register(uri, *params, check=True):
    """`mlflow run . -e register` for registering (what users run); the other actions as the same entry
    point in a plain fresh process, which is quicker and proves the state lives in the registry."""
    if params[0].startswith("model_type"):
        args = [arg for param in params for arg in ("-P", param)]
        return mlflow_cli("run", ".", "-e", "register", "--env-manager", "local", *args, uri=uri, check=check)
    args = [arg for param in params for arg in (f"--{param.split('=')[0].replace('_', '-')}", param.split("=", 1)[1])]
    return python_module("entrypoints.register", *args, uri=uri, check=check)


def train_category(uri, ledger, monkeypatch, seed=42):
    """Training itself is tested through `mlflow run` elsewhere; here it only feeds the registry."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return jobs.train_model(CategoryTask(only=["logistic_regression"]), str(ledger), seed=seed)


@pytest.fixture(scope="module")
def shuffled_ledger(small_ledger, tmp_path_factory):
    raw = pd.read_csv(small_ledger, dtype=str, keep_default_na=False)
    has_category = raw["Category"] != ""
    raw.loc[has_category, "Category"] = np.random.default_rng(0).permutation(raw.loc[has_category, "Category"].to_numpy())
    path = tmp_path_factory.mktemp("shuffled") / "shuffled.csv"
    raw.to_csv(path, index=False)
    return path


def aliases(client):
    versions = [str(v.version) for v in client.search_model_versions(f"name = '{NAME}'")]
    return {v: sorted(client.get_model_version(NAME, v).aliases) for v in versions}


def test_gate_promotion_rejection_rollback_archive_and_list(tmp_path, small_ledger, shuffled_ledger, monkeypatch):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)

    first = train_category(uri, small_ledger, monkeypatch)
    out = register(uri, "model_type=category").stdout
    assert "version 1 -> champion" in out
    version = client.get_model_version(NAME, "1")
    assert version.tags["validation_status"] == "passed" and version.tags["source_run_id"] == first.run_id
    assert {"model_type", "training_data_digest", "git_commit", "test_macro_f1"} <= set(version.tags)
    assert "category model from run" in version.description

    train_category(uri, shuffled_ledger, monkeypatch)
    out = register(uri, "model_type=category").stdout
    assert "version 2 -> challenger" in out
    rejected = client.get_model_version(NAME, "2")
    assert rejected.tags["validation_status"] == "rejected"
    assert "macro_f1" in rejected.tags["rejection_reason"] and "threshold = 0.8" in rejected.tags["rejection_reason"]
    assert aliases(client) == {"1": ["champion"], "2": ["challenger"]}

    train_category(uri, small_ledger, monkeypatch, seed=7)
    assert "version 3 -> champion" in register(uri, "model_type=category").stdout
    assert aliases(client)["3"] == ["champion"] and aliases(client)["1"] == []

    # A forced promotion of the rejected version is recorded; rollbacks walk the champion history back.
    assert "-> champion" in register(uri, "action=promote", "model_type=category", "version=2", "force=true").stdout
    assert client.get_model_version(NAME, "2").tags["forced_promotion"] == "true"
    assert "champion is now version 3" in register(uri, "action=rollback", "model_type=category").stdout
    assert "champion is now version 1" in register(uri, "action=rollback", "model_type=category").stdout
    refused = register(uri, "action=rollback", "model_type=category", check=False)
    assert refused.returncode != 0 and "no earlier champion" in refused.stderr

    register(uri, "action=archive", "model_type=category", "version=1")
    assert aliases(client)["1"] == [] and client.get_model_version(NAME, "1").tags["archived"] == "true"

    listing = register(uri, "action=list", "model_type=category").stdout
    for line in ("1", "2", "3"):
        assert any(row.split()[:2] == [NAME, line] for row in listing.splitlines())
    assert "archived" in listing and "forced" in listing and "threshold = 0.8" in listing


def test_a_failed_training_run_registers_nothing(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    bad = tmp_path / "bad.csv"
    bad.write_text("Date,Description,Amount,Category\n2024-01-01,SHELL,abc,fuel\n")
    assert mlflow_cli("run", ".", "-e", "train_category", "--env-manager", "local", "-P", f"data={bad}",
                      uri=uri, check=False).returncode != 0
    result = register(uri, "model_type=category", check=False)
    assert result.returncode != 0 and "no FINISHED training run" in result.stderr
    assert MlflowClient(uri).search_model_versions(f"name = '{NAME}'") == []
