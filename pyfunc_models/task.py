"""What a model type is: the protocol every one of them implements, in one place.

A model type is a `ModelTask` subclass (category.CategoryTask, amount.AmountTask, anomaly.AnomalyTask,
cashflow.CashflowTask) and `model_types.TASKS` lists them. The class says everything the rest of the project needs
to know about its type: its name and registered model, how it trains, the metrics it reports and the baselines it is
measured against, its registry gate, the params its served model takes, how batch scoring feeds it, and the options
of its `train_<type>` entry point. The registry, batch scoring, `main`, the entry points, MLproject (checked by
tests/test_mlproject.py) and the README's tables (tools/readme_tables.py) all read from there, so a fifth model
type is one new subclass and one line in `model_types.TASKS`.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, ClassVar

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # training imports this module (RowTask is a ModelTask)
    from pyfunc_models.training import TrainingOutcome

# How batch scoring feeds a model (pyfunc_models/batch): each row on its own; each day's rows together (a row's
# answer depends on the other rows of its day); or a whole ledger at once (the answer is not one row per row).
ROWS, SAME_DAY, PER_LEDGER = "rows", "same_day", "per_ledger"
BATCH_PLANS = (ROWS, SAME_DAY, PER_LEDGER)


@dataclass(frozen=True)
class Gate:
    """The registry gate of a model type. A candidate is scored on the evaluation data (by default its run's held-out
    test rows) and must:
    - `beat` each named naive baseline on the key metric, on the same rows;
    - be no worse than each `match` baseline, and than the current champion, beyond `tolerance` (absolute for scores
      in 0..1, `relative` for errors);
    - pass its absolute `floors` {metric: (default, greater_is_better)}; a default of None means no floor unless
      `register`/`main` set one (-P floors=category.macro_f1=0.8): the defaults are ones a real small ledger passes.
    A first model that beats its baselines becomes champion."""

    key_metric: str
    greater_is_better: bool
    tolerance: float
    relative: bool
    beat: tuple = ()
    match: tuple = ()
    floors: dict = field(default_factory=dict)

    @property
    def baselines(self) -> tuple:
        """The baselines the gate compares with, the strongest (matched) first."""
        return (*self.match, *self.beat)

    def tolerance_text(self) -> str:
        return f"{self.tolerance:.0%}" if self.relative else f"{self.tolerance:g}"


@dataclass(frozen=True)
class Purpose:
    """What the served model answers, in words: for the registered model's description and the README."""

    question: str  # "Which bookkeeping category is this expense?"
    answer: str  # what one answer holds, in a sentence or two
    outputs: str  # the output columns, short: "per row: `category`, `confidence`, `alternatives` (top-k)"
    evaluated_on: str  # the rows the gate scores it on, by default


@dataclass(frozen=True)
class Option:
    """A training option of one model type: `--<name>` of its train entry point, a parameter of its MLproject entry
    point (same default) and a keyword of the task's constructor."""

    name: str  # snake_case: the constructor keyword and the MLproject parameter
    default: int | float
    help: str
    whole: bool = False  # a whole number (MLproject has no int type: "30000.0" is read as 30000)


@dataclass(frozen=True)
class Watched:
    """A performance metric monitoring compares with the champion's held-out value (pyfunc_models/monitoring):
    a drop is a change for the worse, absolute for a score in 0..1, `relative` to the held-out value for an error.
    `decides`: False for a metric reported beside the others but never a reason, because its value on a period
    depends on more than the model (a macro average over the categories a period happens to have)."""

    metric: str
    greater_is_better: bool
    relative: bool = False
    decides: bool = True


@dataclass(frozen=True)
class Monitoring:
    """What monitoring watches of a model type. `inputs`: the ledger columns the model reads, whose drift is a
    reason (date: rows per day; amount: log |amount|; description: merchant shares and new merchants; an
    enumeration: its mix and unknown rate; any column: its missing rate). `labels`: columns whose truth arrives
    after the row (a bookkeeper's category): their drift is reported as the label's, and without them the
    performance is estimated or left out. `watched`: the performance metrics (Watched) of `ModelTask.watch`."""

    inputs: tuple
    labels: tuple = ()
    watched: tuple = ()


@dataclass
class Sample:
    """A metric as a function of per-unit arrays (a row, or a day for cash flow), so it can be bootstrapped:
    `statistic(columns)` is the metric, `statistic` of the columns resampled is one bootstrap replicate."""

    columns: dict
    statistic: Callable[[dict], float]

    @property
    def units(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def value(self) -> float:
        return float(self.statistic(self.columns))


@dataclass
class Watch:
    """What a model did on one period (`ModelTask.watch`): its outputs to profile (name -> numeric array, or
    object array for a categorical output), its metrics where the truth is there (name -> Sample), and for a
    classifier its confidences with whether each answer was right (None where the truth has not arrived)."""

    outputs: dict
    samples: dict
    confidence: np.ndarray | None = None
    correct: np.ndarray | None = None  # float: 1.0 right, 0.0 wrong, NaN not known yet


class ModelTask(abc.ABC):
    """One model type: what it is (class attributes) and how it trains (`train`) and is gated (`gate_metrics`)."""

    model_type: ClassVar[str]  # "category": the model_type tag, `-P model_type=`, the `train_<type>` entry point
    registered_name: ClassVar[str]  # "titans-finance-category-prediction"
    target_column: ClassVar[str | None] = None  # the ledger column it learns to predict, if any (mlflow.log_input)
    training_columns: ClassVar[tuple] = ("date", "description", "amount")  # a training ledger's required columns
    report_metrics: ClassVar[tuple]  # test metrics printed beside the baselines' after training
    gate: ClassVar[Gate]
    purpose: ClassVar[Purpose]
    batch_plan: ClassVar[str] = ROWS
    row_reference_columns: ClassVar[tuple] = ()  # output columns that name input rows ("duplicate of row 3")
    options: ClassVar[tuple] = ()  # Option, for the train entry point
    # The served params and their defaults. A class gives the defaults; an instance may set what it learned or was
    # trained with (the anomaly threshold, the cash-flow horizon) before its model is logged.
    serving_params: dict = {}

    @property
    def primary_metric(self) -> str:
        """The metric candidates are chosen by: the gate's key metric, so a model is chosen as it is judged."""
        return self.gate.key_metric

    @property
    def greater_is_better(self) -> bool:
        return self.gate.greater_is_better

    @classmethod
    def from_options(cls, **values) -> "ModelTask":
        """The task a train entry point asked for: one keyword per `options` entry (defaults for the rest)."""
        return cls(**{option.name: values.get(option.name, option.default) for option in cls.options})

    @abc.abstractmethod
    def train(self, ledger: pd.DataFrame, seed: int = 42, test_fraction: float = 0.2,
              on_candidate: Callable | None = None, log: Callable[[str], None] = print) -> "TrainingOutcome":
        """Learn from a canonical ledger (ledger.load_ledger) and return the predictor to serve with its evidence;
        raise training.NotEnoughData when the ledger is valid but too small for this model."""

    @abc.abstractmethod
    def gate_metrics(self, predict, ledger: pd.DataFrame, **options) -> dict:
        """The gate's metrics of a served model (`predict`: a loaded pyfunc's predict) on an evaluation ledger,
        with the baselines its predictor carries measured on the same rows as `baseline_<name>_<metric>`."""

    # --- monitoring (pyfunc_models/monitoring) ---------------------------------------------------------------
    monitoring: ClassVar[Monitoring]

    def monitored_rows(self, ledger: pd.DataFrame) -> pd.DataFrame:
        """The canonical rows of a ledger the served model answers (an expense for the category model): what its
        inputs are profiled on, at training and on a new period alike."""
        raise NotImplementedError(f"{type(self).__name__} does not say which rows it answers")

    def held_out(self, outcome: "TrainingOutcome") -> tuple:
        """(held-out rows, the history before them) of a training outcome: where the reference profile measures
        the model's outputs and metrics."""
        return outcome.test, outcome.train

    def held_out_of_evaluation(self, evaluation: pd.DataFrame, run_params: dict) -> tuple:
        """(reference, held-out rows, history) from a training run's logged evaluation ledger, for a champion
        trained before profiles were logged: by default the evaluation rows are the held-out rows and stand in for
        the reference too."""
        return evaluation, evaluation, evaluation.iloc[:0]

    def watch(self, predict, rows: pd.DataFrame, history: pd.DataFrame) -> Watch:
        """Ask the served model (`predict`: a pyfunc's predict) about a period's rows as a client would, and
        return its outputs and, where the truth is in the rows, its per-unit metrics (`Watch`). `history`: the
        canonical rows before the period (a forecaster forecasts the period from them)."""
        raise NotImplementedError(f"{type(self).__name__} cannot be monitored")
