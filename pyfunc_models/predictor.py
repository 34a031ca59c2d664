"""What every served predictor shares: the columns it reads, and how a request becomes a canonical ledger.

A predictor is the fitted object inside a logged model (see serving.LedgerModel); each model module subclasses
this and adds `predict`. Training sets `date_order` to the order the training ledger's dates were read in, so
requests are read the same way unless they say otherwise (the `date_order` param), and `decimal_comma` to whether
its amounts were written with a decimal comma, so a request's '1.234' is read as its training ledger's was.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pyfunc_models import config
from pyfunc_models.ledger import PreparedColumns, prepare_columns


EXAMPLE_TRANSACTIONS = pd.DataFrame([
    {"date": "2025-03-11", "type": "expense", "description": "POS PURCHASE EXAMPLE COFFEE ROASTERS", "amount": -4.5,
     "category": "", "payment_method": "debit_card", "status": "completed", "reference": "", "receipt_url": ""},
    {"date": "2025-03-11", "type": "expense", "description": "EXAMPLE OFFICE SUPPLY CO", "amount": -42.0,
     "category": "", "payment_method": "credit_card", "status": "completed", "reference": "", "receipt_url": ""},
    {"date": "2025-03-12", "type": "expense", "description": "ACH DEBIT EXAMPLE UTILITY", "amount": -120.0,
     "category": "", "payment_method": "bank_transfer", "status": "pending", "reference": "4711", "receipt_url": ""},
    {"date": "2025-03-12", "type": "income", "description": "EXAMPLE CLIENT PAYMENT INVOICE 1042", "amount": 1250.0,
     "category": "", "payment_method": "bank_transfer", "status": "completed", "reference": "1042",
     "receipt_url": ""},
])


class LedgerPredictor:
    input_columns: tuple = config.COLUMNS
    required_columns: tuple = ("date", "description", "amount")
    nonempty_columns: tuple = ("description",)
    read_columns: tuple | None = None  # None: every column is checked; else only these are parsed
    only_read: bool = False  # the prepared request holds only `read_columns` (the model reads no other)
    reads_columns: bool = False  # `predict` takes the contract's columns (`PreparedColumns`) as well as their frame
    missing_amount_ok: bool = False
    date_order: str = "auto"  # 'dmy' or 'mdy' when the training ledger decided it
    decimal_comma: bool = False  # True when the training ledger wrote amounts with a decimal comma
    # Naive baselines fitted beside the model on the same past (name -> fitted, with predict): the gate scores them on
    # the rows it scores the model on. Empty for a predictor that carries none (one pickled before they existed).
    baselines_: dict = {}

    @classmethod
    def answerable(cls, ledger: pd.DataFrame, log=None) -> pd.DataFrame:
        """The canonical rows this model can answer: every `nonempty_columns` cell filled. Training and the gate
        use only these (the rest are counted on the terminal), so a model never learns from, nor is judged on, a
        row its served form would refuse."""
        keep = np.ones(len(ledger), dtype=bool)
        for column in cls.nonempty_columns:
            keep &= ledger[column].to_numpy(dtype=object) != ""
        if log is not None and not keep.all():
            log(f"  {int((~keep).sum())} row(s) without a {' or '.join(cls.nonempty_columns)} left out: this model "
                f"reads it, and its served form refuses such a row")
        return ledger if keep.all() else ledger[keep].reset_index(drop=True)

    def prepare(self, raw: pd.DataFrame, date_order: str | None = None) -> pd.DataFrame:
        return self.prepare_columns(raw, date_order).frame()

    def prepare_columns(self, raw: pd.DataFrame, date_order: str | None = None) -> PreparedColumns:
        """The contract applied to request rows, as this model reads them (`prepare` makes them a frame)."""
        columns = self.read_columns
        return prepare_columns(raw, required=self.required_columns, nonempty=self.nonempty_columns,
                               columns=columns, missing_amount_ok=self.missing_amount_ok,
                               date_order=date_order or self.date_order, only_read=self.only_read and bool(columns),
                               decimal_comma=self.decimal_comma)[0]

    def example(self) -> pd.DataFrame:
        """The logged input example: made-up transactions in this model's columns, never rows of the training
        ledger (a model's artifacts, and every image built from them, must not carry a customer's transactions).
        The income row shows, in the example and the output schema inferred from it, how income is answered."""
        return EXAMPLE_TRANSACTIONS[[c for c in self.input_columns if c in EXAMPLE_TRANSACTIONS]].copy()

    def warm(self) -> None:
        """Make now what a served model's first request would otherwise wait for (serving.LedgerModel calls it at
        load): whatever the predictor makes on first use (lean scorers, lookups, sessions; see kept_beside) and the
        first call of each code path, by answering the made-up example rows once."""
        self.serve(self.example())

    def serve(self, rows: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        """What the served model answers for request rows: the contract, then `predict` with the params (the
        pyfunc's predict without MLflow; `date_order` is the contract's, the others the model's)."""
        params = dict(params or {})
        prepared = self.prepare_columns(rows, params.pop("date_order", None))
        return self.predict(prepared if self.reads_columns else prepared.frame(), **params)


def predictor_behind(predict):
    """The LedgerPredictor that answers a predict function: a loaded pyfunc's (`model.predict`) or a predictor's
    own bound method; None for anything else (a plain function, another kind of model). The gate uses it to score
    the baselines fitted beside a model on the very rows the model is scored on."""
    owner = getattr(predict, "__self__", None)
    if isinstance(owner, LedgerPredictor):
        return owner
    try:
        predictor = owner.unwrap_python_model().predictor
    except Exception:  # not one of our pyfuncs
        return None
    return predictor if isinstance(predictor, LedgerPredictor) else None


def baseline_metrics(predict, rows: pd.DataFrame, metrics) -> dict:
    """`baseline_<name>_<metric>` of the baselines carried by the predictor behind `predict` (`baselines_`, fitted
    at training on the model's own past), on `rows`; `metrics(predictions)` -> {metric: value}."""
    predictor = predictor_behind(predict)
    baselines = predictor.baselines_ if predictor is not None else {}
    return {f"baseline_{name}_{metric}": value for name, baseline in baselines.items()
            for metric, value in metrics(baseline.predict(rows)).items()}


def learned_date_order(report) -> str:
    """The order a model keeps for its requests: the training ledger's, when its dates decided it (a guess made
    for an ambiguous column, or ISO dates, leave requests to decide for themselves)."""
    return report.date_order if report.date_order in ("dmy", "mdy") and not report.date_order_ambiguous else "auto"
