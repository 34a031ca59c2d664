"""The model types of the project, and the lists every other module reads from them.

Each is a `task.ModelTask` subclass that defines itself; this module only lists them, in the order they are trained,
registered, summarised and served (ports 5001, 5002, ...). To add a model type, write its subclass and add it here.
"""

from __future__ import annotations

from pyfunc_models.amount import AmountTask
from pyfunc_models.anomaly import AnomalyTask
from pyfunc_models.cashflow import CashflowTask
from pyfunc_models.category import CategoryTask
from pyfunc_models.task import ModelTask

TASKS: tuple = (CategoryTask, AmountTask, AnomalyTask, CashflowTask)
BY_TYPE: dict = {task.model_type: task for task in TASKS}
MODEL_TYPES: tuple = tuple(BY_TYPE)
MODEL_NAMES: dict = {task.model_type: task.registered_name for task in TASKS}  # model type -> registered model


def task_class(model_type: str) -> type[ModelTask]:
    """The definition of a model type by its name; an unknown name is a ValueError listing the known ones."""
    try:
        return BY_TYPE[model_type]
    except KeyError:
        raise ValueError(f"unknown model type {model_type!r}; expected one of {', '.join(MODEL_TYPES)}") from None
