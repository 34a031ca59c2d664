"""Real ledgers end to end (issue 12): exports this project did not generate train, register and are served.

The ledgers are in the shapes of real exports (tests/real_ledgers.py, tests/data/): the Titans Finance
export and its sample export, a bank's export, another tool's personal-finance history, a tiny ledger, a UK
current account that writes its amounts in `Paid out` and `Paid in`, a German bank's semicolon export.
`mlflow run . -P data=<ledger>` runs once per trained ledger, each in a tracking store of its own, from the
session's start (tests/early_runs.py). Every file is then read the way a user reads it, `pd.read_csv(file)` with
the header normalised to snake_case, and fed to the registered models in process and over REST. The assertions
are about behaviour only: exit codes, aliases, one answer per row, status codes, and messages that name the
column and the row.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from pyfunc_models import config
from pyfunc_models.ledger import canonical_column_names
from pyfunc_models.model_types import MODEL_NAMES
from tests import real_ledgers
from tests.conftest import REPO, invoke, tracking_env
from tests.early_runs import EarlyRun, starts_early
from tools.servers import MLFLOW_CLI, served_model

DATA = Path(__file__).resolve().parent / "data"
TITANS_ROWS = DATA / "titans_export_rows.csv"  # a dozen hand-written rows of the real export, one quirk each
MODEL_TYPES = tuple(MODEL_NAMES)
ROW_MODELS = ("category", "amount", "anomaly")
SMALL_LEDGERS = ("titans_export", "tiny")  # four months: too short, perhaps, for the cash-flow backtest
TRAINED_LEDGERS = ("titans_export", "bank_style", "tiny")
# A served model's signature names the canonical columns: a client of a bank export renames its own.
BANK_CLIENT_RENAMES = {"posted_date": "date", "transaction_type": "type", "memo": "description"}
RUN_TIMEOUT = 420
slow = pytest.mark.slow


def read_as_a_user(path, **read_csv) -> pd.DataFrame:
    """`pd.read_csv(file)`, header lower case with spaces as underscores (and a bank's names renamed)."""
    frame = pd.read_csv(path, **read_csv)
    frame.columns = [str(column).strip().lower().replace(" ", "_") for column in frame.columns]
    return frame.rename(columns=BANK_CLIENT_RENAMES)


def without(frame: pd.DataFrame, *columns) -> pd.DataFrame:
    return frame.drop(columns=[c for c in columns if c in frame.columns])


def json_ready(frame: pd.DataFrame) -> dict:
    """The `dataframe_split` a client builds from a read_csv frame: NaN becomes null."""
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="split")


def tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.splitlines()[-lines:])


# --- the fixtures are what they claim to be (fast) ---------------------------------------------------

@pytest.fixture(scope="module")
def ledgers(tmp_path_factory) -> dict:
    """Every real-shaped ledger, written once: name -> CSV path."""
    folder = tmp_path_factory.mktemp("real-ledgers")
    return {name: write(folder / f"{name}.csv") for name, write in real_ledgers.LEDGERS.items()}


def span_days(dates: pd.Series) -> int:
    parsed = pd.to_datetime(dates, format="mixed")
    return (parsed.max() - parsed.min()).days + 1


def test_ledgers_are_written_the_same_way_every_time(ledgers, tmp_path):
    for name, write in real_ledgers.LEDGERS.items():
        assert write(tmp_path / f"{name}.csv").read_bytes() == ledgers[name].read_bytes(), name


def test_titans_export_has_the_real_exports_shape(ledgers):
    raw = pd.read_csv(ledgers["titans_export"])
    assert tuple(raw.columns) == real_ledgers.TITANS_HEADER
    frame = read_as_a_user(ledgers["titans_export"])
    income, expenses = frame[frame["type"] == "Income"], frame[frame["type"] == "Expense"]
    assert len(frame) == 127 and len(income) + len(expenses) == 127
    assert span_days(frame["date"]) == 123
    per_category = expenses["category"].value_counts()
    assert len(per_category) == 22 and (per_category == 1).sum() >= 4 and (per_category <= 2).sum() >= 8
    assert income["category"].isna().all() and income["payment_method"].isna().all()
    assert set(frame["status"]) == {"paid", "received", "written_off"}
    assert set(expenses["payment_method"]) == {"credit_card", "bank_transfer", "other", "credit_car"}
    assert frame["receipt_url"].isna().all() and frame["receipt_url"].dtype == "float64"
    assert pd.api.types.is_numeric_dtype(frame["reference"]) and frame["reference"].notna().any()
    assert (frame["amount"] > 0).all()
    assert frame["description"].str.contains("CAFÉ|ÉPICERIE MÜLLER").any()
    assert frame["description"].str.contains(r"[^\x00-\u024f]").any()  # another script than Latin


def test_other_ledgers_have_their_exports_shapes(ledgers):
    sample = read_as_a_user(ledgers["titans_sample_export"])
    assert tuple(pd.read_csv(ledgers["titans_sample_export"]).columns) == real_ledgers.TITANS_HEADER
    assert set(sample["type"]) == {"debit", "credit"} and set(sample["status"]) == {"completed"}
    assert {"direct_deposit", "atm", "cash", "debit_card"} <= set(sample["payment_method"])
    assert {"Food & Dining", "Income"} <= set(sample["category"])

    bank = read_as_a_user(ledgers["bank_style"])
    assert 600 <= len(bank) <= 800 and span_days(bank["date"]) >= 300
    assert set(bank["type"]) == {"DEBIT", "CREDIT"} and (bank["amount"] < 0).any() and (bank["amount"] > 0).any()
    assert "in review" in set(bank["status"]) and bank["description"].str.contains("SHELL OIL").any()
    assert (bank["category"].value_counts() <= 3).sum() >= 3

    personal = read_as_a_user(ledgers["personal_finance"])
    assert "type" not in personal and {"account", "balance", "notes"} <= set(personal.columns)
    assert (personal["amount"] < 0).any() and personal["category"].str.contains(" ").any()
    assert span_days(personal["date"]) >= 300

    uk = pd.read_csv(ledgers["uk_bank"])
    assert tuple(uk.columns) == real_ledgers.UK_BANK_HEADER and "Amount" not in uk and "Category" not in uk
    assert (uk["Paid out"].isna() ^ uk["Paid in"].isna()).all() and uk["Paid out"].dropna().str.startswith("£").all()
    assert uk["Date"].str.match(r"\d\d/\d\d/2024$").all() and (uk["Date"].str[:2].astype(int) > 12).any()

    german = pd.read_csv(ledgers["german_bank"], sep=real_ledgers.SEPARATORS["german_bank"])
    assert tuple(german.columns) == real_ledgers.GERMAN_BANK_HEADER and german["Betrag"].str.contains(",").all()
    assert german["Betrag"].str.match(r"-\d\.\d{3},\d\d$").any() and german["Buchungstag"].str[2].eq(".").all()
    assert pd.read_csv(ledgers["german_bank"], nrows=0).shape[1] == 1  # not comma-separated

    tiny = read_as_a_user(ledgers["tiny"])
    assert 120 <= len(tiny) <= 140 and span_days(tiny["date"]) >= 110
    assert tiny["payment_method"].isna().all() and (tiny["category"].value_counts() == 1).any()
    assert not set(tiny["status"]) <= {"cleared", "completed", "pending", "posted"}
    assert tiny["category"][tiny["type"] == "income"].isna().all()


# --- `mlflow run .` on a real ledger, once per ledger ---------------------------------------------------

@dataclass
class Training:
    """One `mlflow run . -P data=<ledger>` in a tracking store of its own."""

    ledger: str
    uri: str
    output: str
    returncode: int
    loaded: dict = field(default_factory=dict)

    def alias(self, model_type: str) -> str | None:
        """The alias to load a registered model by: champion, else challenger, else None."""
        name = MODEL_NAMES[model_type]
        found = MlflowClient(self.uri).search_registered_models(filter_string=f"name = '{name}'")
        aliases = found[0].aliases if found else {}
        return next((a for a in (config.CHAMPION, config.CHALLENGER) if a in aliases), None)

    def model_uri(self, model_type: str) -> str:
        alias = self.alias(model_type)
        assert alias, (f"{MODEL_NAMES[model_type]} has no champion or challenger after `mlflow run` on "
                       f"the {self.ledger} ledger:\n{tail(self.output)}")
        return f"models:/{MODEL_NAMES[model_type]}@{alias}"

    def model(self, model_type: str):
        if model_type not in self.loaded:
            with tracking(self.uri):
                self.loaded[model_type] = mlflow.pyfunc.load_model(self.model_uri(model_type))
        return self.loaded[model_type]


@contextlib.contextmanager
def tracking(uri: str):
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(None)


@starts_early("trained")
def ledger_trainings(tmp_path_factory) -> dict:
    """`mlflow run . --env-manager local -P data=<ledger>` of every trained ledger, each in a store and working
    folder of its own (nothing lands in the checkout); they start with the session (tests/early_runs.py)."""
    runs = {}
    for name in TRAINED_LEDGERS:
        folder = tmp_path_factory.mktemp(f"mlflow-run-{name}")
        ledger = real_ledgers.LEDGERS[name](folder / f"{name}.csv")  # as `ledgers` writes it, byte for byte
        # The store and our experiment are made in the folder first (MLflow puts a new store's default artifacts
        # under ./mlruns), with the experiment's artifacts in the folder too.
        store = [MLFLOW_CLI, "experiments", "create", "-n", config.EXPERIMENT_NAME,
                 "-l", (folder / "artifacts").as_uri()]
        training = [MLFLOW_CLI, "run", REPO, "--env-manager", "local", "-P", f"data={ledger}"]
        runs[name] = EarlyRun(store, training, cwd=folder, env=tracking_env(f"sqlite:///{folder}/mlflow.db"),
                              output_dir=folder, timeout=RUN_TIMEOUT)
    return runs


@pytest.fixture(scope="module")
def trained(early_runs):
    """`trained(name)`: the Training of that ledger's `mlflow run`, waited for on first use."""
    runs, done = early_runs[ledger_trainings], {}

    def train(name: str) -> Training:
        if name not in done:
            run = runs[name]
            result = run.result(check=False)
            done[name] = Training(name, run.env["MLFLOW_TRACKING_URI"], f"{result.stdout}\n{result.stderr}",
                                  result.returncode)
        return done[name]

    return train


@slow
@pytest.mark.parametrize("ledger", TRAINED_LEDGERS)
def test_mlflow_run_on_a_real_ledger_exits_0(trained, ledger):
    training = trained(ledger)
    assert training.returncode == 0, f"exit {training.returncode}:\n{tail(training.output)}"


@slow
def test_a_year_of_a_bank_export_registers_all_four_models(trained):
    training = trained("bank_style")
    missing = [MODEL_NAMES[t] for t in MODEL_TYPES if training.alias(t) is None]
    assert not missing, f"no champion or challenger for {missing}:\n{tail(training.output)}"


CASH_FLOW = re.compile(r"cash[\s_-]?flow", re.IGNORECASE)
DAYS = re.compile(r"\b\d+\s*days?\b", re.IGNORECASE)


@slow
@pytest.mark.parametrize("ledger", SMALL_LEDGERS)
def test_a_small_ledger_registers_what_it_supports_and_says_why_it_skips_the_rest(trained, ledger):
    """Four months, many one-row categories: the row models are registered; the cash-flow model is
    registered too, or skipped with one line that names it and says how many days there are."""
    training = trained(ledger)
    missing = [MODEL_NAMES[t] for t in ROW_MODELS if training.alias(t) is None]
    assert not missing, f"no champion or challenger for {missing}:\n{tail(training.output)}"
    if training.alias("cashflow") is None:
        reasons = [line for line in training.output.splitlines() if CASH_FLOW.search(line) and DAYS.search(line)]
        assert reasons, f"cash flow was not registered and no line says why in days:\n{tail(training.output)}"
    assert training.returncode == 0, f"exit {training.returncode}:\n{tail(training.output)}"


# --- the registered models answer what pandas makes of an export ----------------------------------------

def assert_answers_every_row(model, model_type: str, rows: pd.DataFrame, params: dict | None = None) -> None:
    """One answer per input row; for cash flow one row per future day, as many as the default horizon."""
    answer = model.predict(rows, params=params)
    if model_type != "cashflow":
        assert len(answer) == len(rows), f"{len(answer)} answers for {len(rows)} rows"
        return
    horizon = next(p.default for p in model.metadata.signature.params.params if p.name == "horizon")
    forecast = pd.DataFrame(answer)
    days = pd.to_datetime(forecast["date"])
    names = {column: name for column, name in canonical_column_names(rows.columns).items() if name}
    dates = rows.rename(columns=names)["date"]  # whatever the header calls it
    last = pd.to_datetime(dates, format="mixed", dayfirst=(params or {}).get("date_order") == "dmy").max()
    assert len(forecast) == horizon, f"{len(forecast)} forecast days; the default horizon is {horizon}"
    assert (days.diff().dropna() == pd.Timedelta(days=1)).all(), forecast["date"].tolist()
    # It forecasts past the history it was given, starting no later than the day after it.
    assert days.iloc[0] <= last + pd.Timedelta(days=1) and days.iloc[-1] > last, (last, forecast["date"].tolist())


def as_a_client_sends(model_type: str, frame: pd.DataFrame) -> list:
    """The request frames a client sends a model: without the label it asks for (category), and, for the
    amount model, both with the actual amount (how far off is it?) and without (what is normal?)."""
    if model_type == "category":
        return [without(frame, "category")]
    if model_type == "amount":
        return [frame, without(frame, "amount", "paid_out", "paid_in")]
    return [frame]


@slow
@pytest.mark.parametrize("model_type", MODEL_TYPES)
@pytest.mark.parametrize("ledger", TRAINED_LEDGERS)
def test_each_registered_model_answers_its_own_ledger_as_read_by_pandas(trained, ledgers, ledger, model_type):
    training = trained(ledger)
    if ledger in SMALL_LEDGERS and model_type == "cashflow" and training.alias(model_type) is None:
        pytest.skip(f"cash flow not registered on the {ledger} ledger (its reason is checked above)")
    model = training.model(model_type)
    inputs = [read_as_a_user(ledgers[ledger])]
    if ledger == "titans_export" and model_type != "cashflow":  # a dozen rows is no history to forecast from
        inputs.append(read_as_a_user(TITANS_ROWS))
    for frame in inputs:
        for rows in as_a_client_sends(model_type, frame):
            assert_answers_every_row(model, model_type, rows)


@slow
@pytest.mark.parametrize("model_type", MODEL_TYPES)
@pytest.mark.parametrize("export", ("titans_export", "titans_sample_export", "personal_finance", "tiny",
                                    "titans_export_rows", "uk_bank", "german_bank"))
def test_models_trained_on_a_bank_export_answer_every_other_export(trained, ledgers, export, model_type):
    """Other exports' vocabularies (paid, written_off, debit/credit, direct_deposit, unknown statuses,
    lower-case categories, columns nobody declared, amounts in Paid out and Paid in, a German export's header and
    decimal commas) flow through a model that never saw them."""
    if export == "titans_export_rows" and model_type == "cashflow":
        pytest.skip("a dozen rows over a week is no history to forecast from")
    model = trained("bank_style").model(model_type)
    frame = read_as_a_user(TITANS_ROWS if export == "titans_export_rows" else ledgers[export],
                           sep=real_ledgers.SEPARATORS.get(export, ","))
    # The bank writes month-first dates, and its models read 03/04 so unless told: a day-first export says so.
    params = {"date_order": "dmy"} if export in ("uk_bank", "german_bank") else None
    for rows in as_a_client_sends(model_type, frame):
        assert_answers_every_row(model, model_type, rows, params)


@slow
@pytest.mark.parametrize("model_type", MODEL_TYPES)
@pytest.mark.parametrize("export", ("titans_export", "bank_style"))
def test_an_export_read_with_pd_read_csv_as_it_is_is_answered(trained, ledgers, export, model_type):
    """`pd.read_csv(file)`, then `predict`, with nothing renamed: the Titans export's own header (`Date`, `Payment
    Method`, `Receipt URL`) and a bank's (`Posted Date`, `Transaction Type`, `Memo`) reach the contract, which maps
    them; MLflow's schema check would match names exactly and refuse them (the models log no input schema)."""
    model = trained("bank_style").model(model_type)
    frame = pd.read_csv(ledgers[export])
    assert "date" not in frame.columns
    if model_type == "category":
        frame = frame.drop(columns="Category")
    assert_answers_every_row(model, model_type, frame)


@slow
@pytest.mark.parametrize("model_type", MODEL_TYPES)
@pytest.mark.parametrize("dtype_backend", ("numpy_nullable", "pyarrow"))
def test_nullable_and_arrow_dtypes_of_the_titans_export_are_accepted(trained, ledgers, dtype_backend, model_type):
    """`pd.read_csv(file, dtype_backend=...)`: string, Int64/Float64 and Arrow columns, and an all-empty
    Receipt URL that pandas types as Int64 or Arrow null."""
    model = trained("bank_style").model(model_type)
    frame = read_as_a_user(ledgers["titans_export"], dtype_backend=dtype_backend)
    for rows in as_a_client_sends(model_type, frame):
        assert_answers_every_row(model, model_type, rows)


@slow
@pytest.mark.parametrize("trained_on, rows_of", [("titans_export", "titans_export"), ("tiny", "tiny"),
                                                ("bank_style", "titans_export"), ("titans_export", "titans_rows")])
def test_the_category_model_never_refuses_an_income_row_without_a_category(trained, ledgers, trained_on, rows_of):
    """A client that sends its income rows as they are, with the category column present and empty."""
    model = trained(trained_on).model("category")
    frame = read_as_a_user(TITANS_ROWS if rows_of == "titans_rows" else ledgers[rows_of])
    income = frame[frame["type"].str.lower() == "income"]
    assert len(income) and income["category"].isna().all()
    assert len(model.predict(income)) == len(income)


# --- the same rows over REST ------------------------------------------------------------------------------

@slow
def test_the_titans_exports_rows_over_rest(trained, ledgers, tmp_path):
    """The category model of the Titans export, served from the registry: the export's own rows as a
    client posts them (read_csv, NaN as null) get one prediction each; a null description is a 4xx naming
    the column and the row; the next good request gets 200."""
    training = trained("titans_export")
    export = without(read_as_a_user(ledgers["titans_export"]), "category")
    rows = without(read_as_a_user(TITANS_ROWS), "category")
    as_it_is = without(pd.read_csv(ledgers["titans_export"]), "Category")  # the export's own header
    with served_model(training.model_uri("category"), cwd=tmp_path, env=tracking_env(training.uri)) as server:
        for frame in (export, rows, as_it_is):
            response = invoke(server.url, {"dataframe_split": json_ready(frame)})
            assert response.status_code == 200, response.text[:2000]
            assert len(response.json()["predictions"]) == len(frame)

        bad = rows.copy()
        bad["description"] = bad["description"].astype(object)
        bad.loc[3, "description"] = None
        response = invoke(server.url, {"dataframe_split": json_ready(bad)})
        assert 400 <= response.status_code < 500, (response.status_code, response.text[:2000])
        message = response.json().get("message", response.text)
        assert "description" in message and re.search(r"\brow 3\b", message), message[-1500:]

        response = invoke(server.url, {"dataframe_split": json_ready(rows)})
        assert response.status_code == 200, response.text[:2000]
        assert len(response.json()["predictions"]) == len(rows)
