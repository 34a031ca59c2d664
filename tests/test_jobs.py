"""The shared training job: whatever the model, a bad ledger leaves a FAILED run, a clear error and no model."""

import re

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from pyfunc_models import config, jobs
from pyfunc_models.amount import AmountTask
from pyfunc_models.anomaly import AnomalyTask
from pyfunc_models.cashflow import CashflowTask
from pyfunc_models.category import CategoryTask
from pyfunc_models.ledger import LedgerError

BAD_LEDGERS = {
    "unparsable amount": ("Date,Description,Amount,Category\n2024-01-01,SHELL,-5,fuel\n2024-01-02,SHELL,abc,fuel\n",
                          r"row 1 \(line 3 of ledger.csv\), column 'amount': 'abc'"),
    "missing column": ("Date,Description,Category\n2024-01-01,SHELL,fuel\n", r"missing required column\(s\) 'amount'"),
    "empty file": ("", "ledger.csv is empty"),
    "header only": ("Date,Description,Amount\n", "has a header but no transactions"),
    "too little to learn from": ("Date,Description,Amount,Category\n2024-01-01,SHELL,-5,fuel\n", "needs? at least"),
}
EVERY_MODEL = ("unparsable amount", "too little to learn from")  # the file-level cases share one code path
CASES = [(task, case) for task in (CategoryTask(), AmountTask(), AnomalyTask(), CashflowTask())
         for case in BAD_LEDGERS if case in EVERY_MODEL or task.model_type == "category"]


@pytest.mark.parametrize("task, case", CASES, ids=[f"{t.model_type}-{c}" for t, c in CASES])
def test_bad_ledger_fails_the_run_and_logs_no_model(task, case, tmp_path):
    text, message = BAD_LEDGERS[case]
    ledger = tmp_path / "ledger.csv"
    ledger.write_text(text)
    with pytest.raises(LedgerError, match=message):
        jobs.train_model(task, str(ledger))
    client = MlflowClient()
    experiment = client.get_experiment_by_name(config.EXPERIMENT_NAME)
    runs = client.search_runs([experiment.experiment_id])
    assert [r.info.status for r in runs] == ["FAILED"]
    # The run says why, where a UI user looks: its error tag and its description.
    assert runs[0].data.tags["error"].startswith(str(runs[0].data.tags["mlflow.note.content"]).removeprefix("Failed: ")[:40])
    assert re.search(message, runs[0].data.tags["mlflow.note.content"])
    assert list(client.search_logged_models(experiment_ids=[experiment.experiment_id])) == []
    assert mlflow.active_run() is None


def test_a_model_trained_on_decimal_commas_reads_a_requests_ambiguous_amounts_as_its_ledger_did(tmp_path, capsys):
    """The German export writes -1.150,00: the trained model keeps that, so a request's '-1.150' (which says no
    decimal mark of its own) is eleven hundred and fifty, as in training; a request that writes 12.50 is read so."""
    from tests import real_ledgers

    trained = jobs.train_model(AmountTask(), str(real_ledgers.german_bank(tmp_path / "de.csv")))
    assert "amount: read with a decimal comma" in capsys.readouterr().out
    model = mlflow.pyfunc.load_model(trained.model_uri)
    assert model.unwrap_python_model().predictor.decimal_comma
    rows = [{"date": "2024-07-01", "description": "MIETE WOHNUNG, VERMIETUNG SCHMITZ", "amount": amount}
            for amount in ("-1.150,00", "-1.150", "-1150")]
    answers = model.predict(pd.DataFrame(rows))["deviation"].tolist()
    assert answers[0] == answers[1] == answers[2]
    pointed = model.predict(pd.DataFrame([{**rows[0], "amount": "-1150.00"}, {**rows[0], "amount": "-1.5"}]))
    assert pointed["deviation"].iloc[0] == answers[0]
