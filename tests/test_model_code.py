"""What a logged model ships as code and asks to be installed: only what loading and predicting import.

`model_code.import_closure` reads module-level imports from the source; these tests hold it to what Python really
imports, and `model_code.pip_requirements` to the packages that code names. The logged champions are checked end to
end in tests/test_artifacts.py (slow).
"""

import ast
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from pyfunc_models import model_code
from pyfunc_models.cashflow import CashflowPredictor, SeasonalNaive
from pyfunc_models.model_types import TASKS

MODEL_MODULES = {task.model_type: task.__module__ for task in TASKS}  # a task and its predictor share a module
TRAINING_ONLY = ("plots", "generator", "catalogue", "batch", "jobs", "registry", "tracking", "model_code", "model_types")
PLOTTING = ("matplotlib", "PIL", "pyparsing", "kiwisolver", "contourpy", "fontTools", "cycler")


def shipped(model_type: str) -> list:
    return model_code.import_closure(model_code.PYFUNC_MODULE, MODEL_MODULES[model_type])


@pytest.mark.parametrize("model_type", sorted(MODEL_MODULES))
def test_a_model_ships_its_entry_serving_and_its_own_module_but_nothing_for_training(model_type):
    names = {module.removeprefix("pyfunc_models.") for module in shipped(model_type)}
    assert {"pyfunc_models", "pyfunc_entry", "serving", "ledger", model_type} <= names
    assert not {name.split(".")[0] for name in names} & set(TRAINING_ONLY)  # batch's submodules too
    others = set(MODEL_MODULES) - {model_type}
    assert not names & others, f"{model_type} ships other model types' modules: {names & others}"
    assert all(model_code.module_file(f"pyfunc_models.{name}") for name in names - {"pyfunc_models"})


@pytest.mark.slow  # a fresh interpreter importing the four model types (seconds)
def test_the_modules_read_from_the_source_are_the_ones_python_imports():
    """In a fresh interpreter, importing the entry file and the four model types' modules loads exactly the union
    of their shipped modules, and nothing for plotting."""
    roots = [model_code.PYFUNC_MODULE, *MODEL_MODULES.values()]
    script = ("import importlib, json, sys\n"
              f"for name in {roots!r}:\n"
              "    importlib.import_module(name)\n"
              "print(json.dumps(sorted(sys.modules)))\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=model_code.PACKAGE_DIR.parent, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert {module for module in loaded if module.split(".")[0] == model_code.PACKAGE} == \
        set(model_code.import_closure(*roots))
    assert not {module.split(".")[0] for module in loaded} & set(PLOTTING)


def test_a_shipped_copy_finds_what_it_leaves_out_in_another_copy_on_the_path(tmp_path):
    """A process that imported the package from one model's code meets a second model's code (a Spark worker loads
    model after model): the second's modules come from its own folder, the first's stay, the rest stay missing."""
    first = model_code.copy_modules(["pyfunc_models.config"], tmp_path / "first")
    second = model_code.copy_modules(model_code.import_closure("pyfunc_models.ledger"), tmp_path / "second")
    assert sorted(path.name for path in first.iterdir()) == ["__init__.py", "config.py"]
    script = ("import sys\n"
              f"sys.path.insert(0, {str(first.parent)!r})\n"
              "import pyfunc_models.config\n"
              f"sys.path.insert(0, {str(second.parent)!r})\n"
              "import pyfunc_models.ledger\n"
              "print(pyfunc_models.config.__file__, pyfunc_models.ledger.__file__)\n"
              "import pyfunc_models.plots\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                            timeout=300,
                            env={name: value for name, value in os.environ.items() if name != "PYTHONPATH"})
    config_file, ledger_file = result.stdout.split()
    assert config_file == str(first / "config.py") and ledger_file == str(second / "ledger.py")
    assert "No module named 'pyfunc_models.plots'" in result.stderr


def test_only_module_level_imports_count():
    tree = ast.parse(
        "import a\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import never\nelse:\n    import b\n"
        "try:\n    import c\nexcept ImportError:\n    import d\n"
        "class Thing:\n    import e\n"
        "    def method(self):\n        import not_in_a_method\n"
        "def function():\n    import not_in_a_function\n"
        "lazy = lambda: __import__('not_a_statement')\n")
    found = [alias.name for node in model_code.imports_run_on_import(tree.body) for alias in node.names]
    assert found == ["a", "TYPE_CHECKING", "b", "c", "d", "e"]


def test_from_package_import_module_counts_the_module():
    statement = ast.parse("from pyfunc_models import config, ledger").body[0]
    loaded = set(model_code.imported_modules(statement, "pyfunc_models.serving"))
    assert {"pyfunc_models", "pyfunc_models.config", "pyfunc_models.ledger"} <= loaded
    relative = ast.parse("from .ledger import LedgerError").body[0]
    assert "pyfunc_models.ledger" in model_code.imported_modules(relative, "pyfunc_models.serving")


def test_a_pickled_predictor_names_the_modules_unpickling_imports():
    predictor = CashflowPredictor(SeasonalNaive(), errors=np.linspace(-1.0, 1.0, 100_000))  # a large array too
    named = model_code.pickled_modules(predictor)
    assert "pyfunc_models.cashflow" in named
    assert any(module.split(".")[0] == "numpy" for module in named)


@pytest.mark.parametrize("model_type", sorted(MODEL_MODULES))
def test_requirements_pin_every_package_the_shipped_code_imports_and_nothing_for_plotting(model_type):
    pinned = dict(line.split("==") for line in model_code.pip_requirements(shipped(model_type)))
    expected = {"mlflow", "pandas", "numpy", "scikit-learn", "scipy", "joblib", "pyarrow"}
    expected |= {"cashflow": {"statsmodels", "xgboost"}, "category": {"xgboost"}, "amount": {"xgboost"}}.get(
        model_type, set())
    assert expected <= set(pinned), f"{model_type} does not pin {expected - set(pinned)}"
    assert ("statsmodels" in pinned) == (model_type == "cashflow")
    assert not set(pinned) & {"matplotlib", "pillow", "mlflow-skinny", "cloudpickle", "pyspark", "psycopg"}
    assert pinned["mlflow"] == __import__("mlflow").__version__


def test_a_pickled_module_no_distribution_installs_is_not_a_requirement():
    requirements = model_code.pip_requirements(["pyfunc_models.serving"], pickled={"_cython_3_2_9", "numpy._core"})
    assert {line.split("==")[0] for line in requirements} >= {"numpy", "mlflow", "joblib", "pandas"}


def test_a_package_the_code_imports_but_nothing_installed_provides_is_an_error(monkeypatch):
    monkeypatch.setattr(model_code.importlib.metadata, "packages_distributions", lambda: {"mlflow": ["mlflow"]})
    with pytest.raises(ModuleNotFoundError, match="imports 'joblib', 'pandas', which no installed distribution"):
        model_code.pip_requirements(["pyfunc_models.serving"])
