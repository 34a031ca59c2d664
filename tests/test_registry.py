"""The registry lifecycle: the gate, promotion, rejection, rollback, archive and list. The state is read
back by fresh processes (`mlflow run . -e register`), so it lives in the registry, not in memory. The same
registry behind a tracking server (PostgreSQL, proxied artifacts, a restart) is tests/test_team_mode.py."""

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from pyfunc_models import config, jobs, registry
from pyfunc_models.category import CategoryTask
from pyfunc_models.generator import write_ledger
from pyfunc_models.model_types import MODEL_NAMES
from tests.conftest import mlflow_cli

pytestmark = pytest.mark.slow  # through the mlflow CLI, a served model or a tracking server

NAME = MODEL_NAMES["category"]


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A tracking URI for this test, used in process too."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


@pytest.fixture(scope="module")
def good_ledger(tmp_path_factory):
    """Smaller than the other tests' ledger: the registry, not the model, is under test here."""
    path = tmp_path_factory.mktemp("good") / "ledger.csv"
    write_ledger(path, rows=700, seed=8)
    return path


@pytest.fixture(scope="module")
def shuffled_ledger(good_ledger, tmp_path_factory):
    raw = pd.read_csv(good_ledger, dtype=str, keep_default_na=False)
    has_category = raw["Category"] != ""
    raw.loc[has_category, "Category"] = np.random.default_rng(0).permutation(raw.loc[has_category, "Category"].to_numpy())
    path = tmp_path_factory.mktemp("shuffled") / "shuffled.csv"
    raw.to_csv(path, index=False)
    return path


def register_cli(uri, *params, check=True):
    args = [arg for param in params for arg in ("-P", param)]
    return mlflow_cli("run", ".", "-e", "register", "--env-manager", "local", *args, uri=uri, check=check)


def train(ledger, seed=42):
    """Training is tested through `mlflow run` elsewhere; here it only feeds the registry (one candidate)."""
    return jobs.train_model(CategoryTask(only=["text_logistic_regression"], word_knowledge=0), str(ledger), seed=seed)


def aliases(client):
    versions = [str(v.version) for v in client.search_model_versions(f"name = '{NAME}'")]
    return {v: sorted(client.get_model_version(NAME, v).aliases) for v in versions}


def test_gate_promotion_rejection_rollback_archive_and_list(store, good_ledger, shuffled_ledger):
    client = MlflowClient(store)
    good = train(good_ledger)
    out = register_cli(store, "model_type=category").stdout
    assert "version 1 -> champion" in out
    version = client.get_model_version(NAME, "1")
    assert version.tags["validation_status"] == "passed" and version.tags["source_run_id"] == good.run_id
    assert "first model that beats its baselines" in version.tags["decided_by"]
    assert "beats the majority baseline" in version.tags["gate_rules"]
    assert {"model_type", "training_data_digest", "git_commit", "test_macro_f1"} <= set(version.tags)
    assert "category model from run" in version.description

    # Shuffled categories under an absolute floor: registered, not promoted, and the version says why.
    train(shuffled_ledger)
    _, alias, decision = registry.register("category", floors=registry.parse_floors("category.macro_f1=0.8"))
    assert alias == config.CHALLENGER and not decision.passed
    rejected = client.get_model_version(NAME, "2")
    assert rejected.tags["validation_status"] == "rejected"
    assert "macro_f1" in rejected.tags["rejection_reason"] and "floor 0.8" in rejected.tags["rejection_reason"]
    assert rejected.tags["decided_by"] == decision.reasons[0]
    with pytest.raises(registry.RegistryError, match="not one the gate knows"):
        registry.parse_floors("category.recall=0.5")
    assert aliases(client) == {"1": ["champion"], "2": ["challenger"]}

    # As good as the champion on the same evaluation data (within tolerance): promoted.
    _, alias, decision = registry.register("category", run_id=good.run_id)
    assert alias == config.CHAMPION and decision.champion_version == "1"
    assert aliases(client)["3"] == ["champion"] and aliases(client)["1"] == []

    # A forced promotion is recorded; rollbacks walk the champion history back, more than once.
    alias, _ = registry.promote("category", "2", force=True)
    assert alias == config.CHAMPION and client.get_model_version(NAME, "2").tags["forced_promotion"] == "true"
    assert registry.rollback("category") == "3"
    assert registry.rollback("category") == "1"
    with pytest.raises(registry.RegistryError, match="no earlier champion"):
        registry.rollback("category")

    registry.archive("category", "1")
    assert aliases(client)["1"] == [] and client.get_model_version(NAME, "1").tags["archived"] == "true"

    listing = register_cli(store, "action=list", "model_type=category").stdout
    rows = {row.split()[1]: row for row in listing.splitlines() if row.strip().startswith(NAME)}
    assert set(rows) == {"1", "2", "3"}
    # The forced promotion re-ran the gate (no floor this time): its reason is the comparison with champion v3.
    assert "archived" in rows["1"] and "forced" in rows["2"] and "of champion v3" in rows["2"]
    assert "passed" in rows["3"]

