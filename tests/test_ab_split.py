"""The online A/B split (register -P action=ab_split, pyfunc_models/ab_split.py and ab_split_entry.py): the routing
on its own (the share on 10,000 rows, the same row always the same variant, in any process; the reference key and
its fallback), the split's answers with stand-in versions (request order, whole-request routing, a refusal naming
the request's rows, one day/month order for the whole request), and end to end: two amount versions trained in a
store of the test's own, split through the entry point, every answer equal to the answer of the version that gave
it, and served by `mlflow models serve` from a copy with no tracking store behind it."""

import json
import os
import subprocess
import sys

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.tracking import MlflowClient

from pyfunc_models import ab_split, config, jobs, registry
from pyfunc_models.ab_split_entry import SplitModel, request_point, routing_keys, row_points
from pyfunc_models.generator import generate_ledger, write_ledger
from pyfunc_models.ledger import LedgerError, load_ledger, prepare_ledger, request_rows
from pyfunc_models.model_types import MODEL_NAMES
from tests.conftest import REPO, RidgeAndBaselines, invoke, python_module, tracking_env
from tools.servers import served_model

NAME = MODEL_NAMES["amount"]


@pytest.fixture(scope="module")
def requests_10k() -> pd.DataFrame:
    """10,000 transactions as a client sends them (canonical columns, ISO dates), every one with a reference."""
    return request_rows(prepare_ledger(generate_ledger(rows=10_000, seed=7))[0])


# --- routing --------------------------------------------------------------------------------------------------
@pytest.mark.slow  # 10,000 generated rows through the contract (seconds)
@pytest.mark.parametrize("share", [0.1, 0.3])
def test_share_is_within_two_points_on_10000_rows(requests_10k, share):
    by_reference = np.mean(row_points(requests_10k) < share)
    by_row = np.mean(row_points(requests_10k.assign(reference="")) < share)  # the fallback: date, description, amount
    assert abs(by_reference - share) <= 0.02 and abs(by_row - share) <= 0.02, (by_reference, by_row)


@pytest.mark.slow  # 10,000 generated rows, and a second interpreter
def test_the_same_row_gets_the_same_point_in_any_request_and_any_process(requests_10k):
    rows = requests_10k.head(200)
    points = row_points(rows)
    shuffled = rows.sample(frac=1, random_state=3)
    assert np.array_equal(row_points(shuffled), points[shuffled.index])
    assert np.array_equal(row_points(rows.iloc[50:60]), points[50:60])
    assert request_point(shuffled) == request_point(rows)  # a whole request: its rows in any order
    # Another interpreter, with another hash() salt: the same points (BLAKE2b, not Python's hash()).
    code = ("import json, sys, pandas as pd; from pyfunc_models.ab_split_entry import row_points; "
            "print(json.dumps(row_points(pd.read_json(sys.stdin, orient='records', dtype=False)).tolist()))")
    other = subprocess.run([sys.executable, "-c", code], input=rows.to_json(orient="records"), text=True,
                           capture_output=True, cwd=REPO, env={**os.environ, "PYTHONHASHSEED": "12345"}, check=True)
    assert json.loads(other.stdout) == points.tolist()


def test_the_key_is_the_reference_else_date_description_and_amount_as_sent():
    rows = pd.DataFrame({"date": ["2025-03-11", "2025-03-11", "2025-03-11", "11/03/2025", "2025-03-11"],
                         "description": ["ADOBE", "ADOBE *CC", "ADOBE", "ADOBE", " ADOBE "],
                         "amount": [-84.99, -1.0, -84.99, -84.99, -84.99],
                         "reference": ["4711", " 4711 ", "", None, np.nan]})
    keys = routing_keys(rows)
    assert keys[0] == keys[1]  # one reference, whatever else the rows say
    assert keys[2] == keys[4] != keys[0]  # no reference: date, description and amount, stripped
    assert keys[3] != keys[2]  # ...as the request wrote them: another spelling of the day is another key
    # The Titans export's header and a reference pandas read as numbers are the same key.
    titans = pd.DataFrame({"Date": ["2025-03-11"], "Description": ["ADOBE"], "Amount": [-84.99], "Reference": [4711.0]})
    assert routing_keys(titans)[0] == keys[0]


# --- the split's answers, with stand-in versions ---------------------------------------------------------------
class StandIn:
    """A version as the split sees it: reads the request through the ledger contract and answers each row with its
    description and the day it read; refuses as our models do (an MlflowException naming the row)."""

    def __init__(self):
        self.asked = []

    def predict(self, rows, params=None):
        self.asked.append(len(rows))
        try:
            ledger = prepare_ledger(rows, date_order=(params or {}).get("date_order", "auto"))[0]
        except LedgerError as error:
            raise MlflowException(str(error), error_code=INVALID_PARAMETER_VALUE) from None
        return pd.DataFrame({"description": ledger["description"], "day": ledger["date"].dt.strftime("%Y-%m-%d")})


def split_of_stand_ins(share=0.5, per_row=True) -> SplitModel:
    split = SplitModel()
    split.share, split.per_row, split.takes_date_order = share, per_row, True
    split.versions = {config.CHAMPION: "1", config.CHALLENGER: "2"}
    split.models = {config.CHAMPION: StandIn(), config.CHALLENGER: StandIn()}
    return split


def transactions(descriptions, dates=None, amounts=None) -> pd.DataFrame:
    return pd.DataFrame({"date": dates or ["2025-03-11"] * len(descriptions), "description": descriptions,
                         "amount": amounts or [-10.0] * len(descriptions)})


def test_each_row_answered_by_its_variant_in_the_request_order():
    rows = transactions([f"SHOP {i}" for i in range(40)])
    split = split_of_stand_ins()
    answers = split.predict(None, rows)
    to_challenger = row_points(rows) < 0.5
    assert answers["description"].tolist() == rows["description"].tolist()
    assert answers[config.AB_VARIANT_COLUMN].tolist() == [
        config.CHALLENGER if mine else config.CHAMPION for mine in to_challenger]
    assert answers[config.AB_VERSION_COLUMN].tolist() == ["2" if mine else "1" for mine in to_challenger]
    assert split.models[config.CHALLENGER].asked == [to_challenger.sum()]  # each version only its own rows
    assert split.models[config.CHAMPION].asked == [(~to_challenger).sum()]


def test_the_inputs_formats_records_are_split_as_the_same_rows_as_a_frame():
    """`{"inputs": [...]}` reaches a model without an input schema as records of 0-d arrays (ledger.as_frame)."""
    rows = transactions([f"SHOP {i}" for i in range(20)])
    records = [{column: np.array(value) for column, value in row.items()} for row in rows.to_dict("records")]
    as_records = split_of_stand_ins().predict(None, records)
    pd.testing.assert_frame_equal(as_records, split_of_stand_ins().predict(None, rows))


def test_a_whole_request_goes_to_one_variant_when_answers_depend_on_other_rows():
    split = split_of_stand_ins(per_row=False)
    for first in range(30):
        rows = transactions([f"SHOP {i}" for i in range(first, first + 5)])
        variant = config.CHALLENGER if request_point(rows) < 0.5 else config.CHAMPION
        answers = split.predict(None, rows)
        assert set(answers[config.AB_VARIANT_COLUMN]) == {variant}
    assert sum(split.models[config.CHALLENGER].asked) and sum(split.models[config.CHAMPION].asked)
    assert set(split.models[config.CHAMPION].asked + split.models[config.CHALLENGER].asked) == {5}


def test_a_refused_row_is_named_by_its_place_in_the_request():
    rows = transactions([f"SHOP {i}" for i in range(12)], amounts=[-10.0] * 11 + ["abc"])
    assert 0 < np.sum(row_points(rows) < 0.5) < len(rows)  # split: the refusing version saw only its part
    with pytest.raises(MlflowException, match=r"row 11, column 'amount': 'abc' is not"):
        split_of_stand_ins().predict(None, rows)


def test_the_whole_request_decides_the_day_month_order_of_each_part():
    """05/01/2025 alone reads either way; 13/01/2025 beside it says day first, in whichever variant it lands."""
    first_goes = row_points(transactions(["SHOP 0"], ["05/01/2025"]))[0] < 0.5
    descriptions = [f"SHOP {i}" for i in range(1, 40)]
    others_go = row_points(transactions(descriptions, ["13/01/2025"] * len(descriptions))) < 0.5
    other = next(description for description, goes in zip(descriptions, others_go) if goes != first_goes)
    rows = transactions(["SHOP 0", other], ["05/01/2025", "13/01/2025"])
    answers = split_of_stand_ins().predict(None, rows)
    assert answers[config.AB_VARIANT_COLUMN].nunique() == 2
    assert answers["day"].tolist() == ["2025-01-05", "2025-01-13"]


def test_register_split_refuses_a_share_outside_zero_to_one():
    for share in (0, 1, 1.5, -0.1):
        with pytest.raises(registry.RegistryError, match="between 0 and 1"):
            ab_split.register_split("amount", share)


# --- end to end -------------------------------------------------------------------------------------------------
class CategoryMedianOnly(RidgeAndBaselines):
    """The category-median baseline alone: it cannot beat itself, so the gate keeps it challenger."""

    def candidates(self, seed):
        return [candidate for candidate in super().candidates(seed) if candidate.name == "category_median"]


def answers_by_code(split) -> dict:
    """variant -> the file its version's predictor code was loaded from."""
    return {variant: type(model.unwrap_python_model().predictor).predict.__code__.co_filename
            for variant, model in split.unwrap_python_model().models.items()}


@pytest.mark.slow
def test_split_of_two_amount_versions_answers_as_each_and_is_served_alone(tmp_path):
    uri = os.environ["MLFLOW_TRACKING_URI"]
    ledger = tmp_path / "ledger.csv"
    write_ledger(ledger, rows=800, seed=8)
    champion = jobs.train_model(RidgeAndBaselines(), str(ledger))
    challenger = jobs.train_model(CategoryMedianOnly(), str(ledger))
    assert registry.register("amount", champion.run_id)[1] == config.CHAMPION
    with pytest.raises(registry.RegistryError, match=f"{NAME} has no challenger: .* needs a champion and a challenger"):
        ab_split.register_split("amount", 0.3)
    assert registry.register("amount", challenger.run_id)[1] == config.CHALLENGER

    printed = python_module("entrypoints.register", "--action", "ab_split", "--model-type", "amount",
                            "--challenger-share", "0.3", uri=uri).stdout
    assert f"{NAME} version 3 -> {config.AB_ALIAS}: champion version 1 answers 70%, challenger version 2 30%" in printed
    assert f"mlflow models serve -m models:/{NAME}@{config.AB_ALIAS} " in printed
    client = MlflowClient()
    split_version = client.get_model_version_by_alias(NAME, config.AB_ALIAS)
    assert str(split_version.version) == "3"
    assert {key: split_version.tags.get(key) for key in (config.AB_SPLIT_TAG, "ab_champion_version",
            "ab_challenger_version", "ab_challenger_share", "validation_status")} == {
        config.AB_SPLIT_TAG: "true", "ab_champion_version": "1", "ab_challenger_version": "2",
        "ab_challenger_share": "0.3", "validation_status": "ab_split"}
    aliases = {alias: str(version) for alias, version in client.get_registered_model(NAME).aliases.items()}
    assert aliases == {config.CHAMPION: "1", config.CHALLENGER: "2", config.AB_ALIAS: "3"}
    assert registry.alias_moves(NAME)[-1]["action"] == "ab_split"
    run = client.get_run(split_version.run_id)
    assert run.info.run_name == "ab_split_amount" and run.data.params["challenger_share"] == "0.3"
    assert registry.newest_training_run("amount").info.run_id == challenger.run_id  # never taken for a training run

    rows = request_rows(load_ledger(ledger)[0])
    split = mlflow.pyfunc.load_model(f"models:/{NAME}@{config.AB_ALIAS}")
    answers = split.predict(rows)
    assert set(answers[config.AB_VARIANT_COLUMN]) == {config.CHAMPION, config.CHALLENGER}
    for version in ("1", "2"):
        own = mlflow.pyfunc.load_model(f"models:/{NAME}/{version}").predict(rows)
        mine = (answers[config.AB_VERSION_COLUMN] == version).to_numpy()
        pd.testing.assert_frame_equal(answers[mine][list(own.columns)].reset_index(drop=True),
                                      own[mine].reset_index(drop=True))
    code = answers_by_code(split)  # each version runs the code it was logged with, its own copy
    assert code[config.CHAMPION] != code[config.CHALLENGER]
    assert all(os.path.join("code", "pyfunc_models", "amount.py") in path for path in code.values())

    # Served from a copy of the model, with a tracking URI where nothing is: it needs no registry to serve.
    copy = mlflow.artifacts.download_artifacts(f"models:/{NAME}@{config.AB_ALIAS}", dst_path=str(tmp_path / "copy"))
    (tmp_path / "elsewhere").mkdir()
    env = tracking_env(f"sqlite:///{tmp_path}/elsewhere/nothing.db")
    records = rows.head(20).to_dict(orient="records")
    with served_model(copy, cwd=tmp_path / "elsewhere", env=env) as server:
        served = invoke(server.url, {"dataframe_records": records, "params": {"level": 0.8}})
        assert served.status_code == 200, served.text
        served = pd.DataFrame(served.json()["predictions"])
        expected = split.predict(rows.head(20), params={"level": 0.8})
        assert served[config.AB_VARIANT_COLUMN].tolist() == expected[config.AB_VARIANT_COLUMN].tolist()
        assert served[config.AB_VERSION_COLUMN].tolist() == expected[config.AB_VERSION_COLUMN].tolist()
        assert np.allclose(served["upper"], expected["upper"])
        bad = invoke(server.url, {"dataframe_records": [*records[:5], {**records[5], "amount": "abc"}]})
        assert bad.status_code == 400 and "row 5, column 'amount': 'abc'" in bad.json()["message"], bad.text
        assert invoke(server.url, {"dataframe_records": records[:3]}).status_code == 200
