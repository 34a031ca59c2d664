"""Models-from-code entry of an online A/B split (ab_split.register_split): one pyfunc that holds a champion and a
challenger version and lets each answer the rows a stable hash routes to it; every answer says which variant and
which registered version gave it (config.AB_VARIANT_COLUMN, config.AB_VERSION_COLUMN).

A row's routing key is its `reference` when it has one, else its date, description and amount, each as the request
wrote it (text, stripped, as the ledger contract reads a cell): the same row sent the same way always gets the same
variant, in any process, but "2026-01-05" and "05/01/2026" are two keys. Row-level models (category, amount) are
split row by row; a model whose answer for a row depends on other rows (anomaly: the row's day; cash flow: the
whole ledger) gets the whole request, routed by the hash of all its rows' keys, so every answer stays that version's
own answer.
"""

from __future__ import annotations

import hashlib
import sys
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import set_model
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel

from pyfunc_models import config
from pyfunc_models.ledger import LedgerError, as_frame, as_text, canonical_column_names, decide_date_order

PACKAGE = config.__name__.partition(".")[0]
VARIANTS = (config.CHAMPION, config.CHALLENGER)
_FIELDS_JOINED_BY = "\x1f"  # ASCII unit separator: no field of a request row holds it
_KEYS_JOINED_BY = "\x1e"  # ASCII record separator


def routing_keys(rows: pd.DataFrame) -> np.ndarray:
    """Each row's key: 'reference' and its reference, else 'row' and its date, description and amount."""
    columns = {canonical: column for column, canonical in canonical_column_names(rows.columns).items() if canonical}

    def text(column):
        return as_text(rows[columns[column]]) if column in columns else np.full(len(rows), "", dtype=object)

    reference = text("reference")
    written = np.array([_FIELDS_JOINED_BY.join(fields) for fields in zip(text("date"), text("description"),
                                                                          text("amount"))], dtype=object)
    return np.where(reference != "", "reference" + _FIELDS_JOINED_BY + reference, "row" + _FIELDS_JOINED_BY + written)


def hash_point(key: str) -> float:
    """A key's place in [0, 1): the top 53 bits of its BLAKE2b digest, the same in every process and on every
    machine (Python's hash() is salted per process)."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return (int.from_bytes(digest, "big") >> 11) / 2.0**53


def row_points(rows: pd.DataFrame) -> np.ndarray:
    return np.array([hash_point(key) for key in routing_keys(rows)], dtype=float)


def request_point(rows: pd.DataFrame) -> float:
    """The whole request's place: the hash of its rows' keys, sorted (the same rows in any order go one way)."""
    return hash_point(_KEYS_JOINED_BY.join(sorted(routing_keys(rows))))


def load_version(path: str):
    """A version's pyfunc with the code it was logged with. Each logged model ships its own copy of our package,
    and Python keeps one module per name: while a version loads, the package's modules imported before (the split's
    own, the other version's) are set aside, then put back; the version's objects keep the modules they loaded."""

    def ours():
        return [name for name in sys.modules if name == PACKAGE or name.startswith(f"{PACKAGE}.")]

    before = {name: sys.modules.pop(name) for name in ours()}
    try:
        return mlflow.pyfunc.load_model(path)
    finally:
        for name in ours():
            del sys.modules[name]
        sys.modules.update(before)


class SplitModel(PythonModel):
    def load_context(self, context):
        settings = context.model_config
        self.share = float(settings["challenger_share"])
        self.per_row = bool(settings["per_row"])
        self.versions = {variant: str(settings[f"{variant}_version"]) for variant in VARIANTS}
        self.models = {variant: load_version(context.artifacts[variant]) for variant in VARIANTS}
        self.takes_date_order = all("date_order" in _param_names(model) for model in self.models.values())

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """Each version's answers to the rows routed to it, in the request's order, with the variant and version."""
        # The split declares the champion's params with no default: one the request left out is None here, and
        # each version then uses its own default.
        params = {name: value for name, value in (params or {}).items() if value is not None}
        try:  # the `inputs` format's records, as each version's LedgerModel would read them
            model_input = as_frame(model_input)
        except LedgerError as error:
            raise MlflowException(str(error), error_code=INVALID_PARAMETER_VALUE) from None
        if not self.per_row:
            to_challenger = len(model_input) > 0 and request_point(model_input) < self.share
            return self._answer(config.CHALLENGER if to_challenger else config.CHAMPION, model_input, params)
        to_challenger = row_points(model_input) < self.share
        if to_challenger.all() or not to_challenger.any():  # one variant answers it all (an empty request: champion)
            return self._answer(config.CHALLENGER if to_challenger.any() else config.CHAMPION, model_input, params)
        params = self._with_date_order(model_input, params)
        parts = []
        for variant, mine in ((config.CHAMPION, ~to_challenger), (config.CHALLENGER, to_challenger)):
            try:
                answers = self._answer(variant, model_input[mine].reset_index(drop=True), params)
            except MlflowException:
                self.models[variant].predict(model_input, params)  # its refusal of the whole request names its rows
                raise
            parts.append(answers.set_axis(np.flatnonzero(mine)))
        return pd.concat(parts).sort_index().reset_index(drop=True)

    def _answer(self, variant: str, rows: pd.DataFrame, params: dict) -> pd.DataFrame:
        answers = self.models[variant].predict(rows, params).reset_index(drop=True)
        return answers.assign(**{config.AB_VARIANT_COLUMN: variant, config.AB_VERSION_COLUMN: self.versions[variant]})

    def _with_date_order(self, rows: pd.DataFrame, params: dict) -> dict:
        """The params with the day/month order the whole request's dates decide (ledger.decide_date_order), so each
        variant reads its part of the request as it would read the whole (as batch scoring does)."""
        dates = [column for column, canonical in canonical_column_names(rows.columns).items() if canonical == "date"]
        if not self.takes_date_order or len(dates) != 1:
            return params
        try:
            order = decide_date_order(rows[dates[0]], params.get("date_order", "auto"))
        except LedgerError as error:
            raise MlflowException(str(error), error_code=INVALID_PARAMETER_VALUE) from None
        return {**params, "date_order": order} if order else params


def _param_names(model) -> set:
    schema = model.metadata.get_params_schema()
    return {spec.name for spec in schema.params} if schema is not None else set()


set_model(SplitModel())
