"""One contract for training and serving: a model never refuses, served, a row it would have trained on, and is
judged against its baselines on the very rows it is judged on."""

import numpy as np
import pandas as pd
import pytest

from pyfunc_models.amount import gate_metrics as amount_gate
from pyfunc_models.anomaly import AnomalyTask
from pyfunc_models.anomaly import gate_metrics as anomaly_gate
from pyfunc_models.category import CategoryTask
from pyfunc_models.category import gate_metrics as category_gate
from pyfunc_models.generator import generate_ledger
from pyfunc_models.ledger import LedgerError, prepare_ledger
from tests.conftest import RidgeAndBaselines

pytestmark = pytest.mark.slow  # three small trainings

# The cheapest candidates: the contract is about the rows, not about the choice of model.
TASKS = {"category": (CategoryTask(only=["text_logistic_regression"]), category_gate),
         "amount": (RidgeAndBaselines(), amount_gate),
         "anomaly": (AnomalyTask(), anomaly_gate)}


@pytest.fixture(scope="module")
def ledger_with_blank_descriptions():
    raw = generate_ledger(rows=1200, seed=12).drop(columns=["Anomaly Label"])
    blank = np.random.default_rng(0).choice(len(raw), size=12, replace=False)
    raw.loc[blank, "Description"] = ""
    raw.loc[len(raw) - 3:, "Description"] = ""  # in the test window too
    return prepare_ledger(raw)[0]


@pytest.fixture(scope="module")
def trained(ledger_with_blank_descriptions):
    """`trained(model_type)`: the task's outcome on that ledger, trained on first use and shared by the tests."""
    outcomes = {}

    def outcome(model_type: str):
        if model_type not in outcomes:
            task, _ = TASKS[model_type]
            outcomes[model_type] = task.train(ledger_with_blank_descriptions, log=lambda _: None)
        return outcomes[model_type]

    return outcome


@pytest.mark.parametrize("model_type", TASKS)
def test_rows_a_served_model_refuses_are_left_out_of_training_and_the_gate(model_type, ledger_with_blank_descriptions,
                                                                           trained):
    _, gate_metrics = TASKS[model_type]
    outcome = trained(model_type)
    predictor = outcome.predictor
    assert (outcome.train["description"] != "").all() and (outcome.test["description"] != "").all()

    scored = gate_metrics(predictor.serve, ledger_with_blank_descriptions)  # the blank rows are not sent
    assert scored  # and, served, such a row is refused with its row and column
    with pytest.raises(LedgerError, match=r"row 0, column 'description'"):
        predictor.prepare(pd.DataFrame({"date": ["2024-01-05"], "description": [""], "amount": [-5.0]}))


@pytest.mark.parametrize("model_type", ["category", "amount"])
def test_the_gate_scores_the_baselines_on_the_rows_it_scores_the_model_on(model_type, ledger_with_blank_descriptions,
                                                                          trained):
    _, gate_metrics = TASKS[model_type]
    outcome = trained(model_type)
    predictor = outcome.predictor
    later = ledger_with_blank_descriptions.iloc[-300:]
    scored = gate_metrics(predictor.serve, later)
    key = "macro_f1" if model_type == "category" else "mae"
    assert {f"baseline_{name}_{key}" for name in outcome.baseline_metrics} <= set(scored)
    # On the training run's own test rows they are the run's baseline figures.
    on_test = gate_metrics(predictor.serve, outcome.test)
    for name, metrics in outcome.baseline_metrics.items():
        assert on_test[f"baseline_{name}_{key}"] == pytest.approx(metrics[key])
