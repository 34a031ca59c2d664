"""MLproject, the entry points' own parsers and the model-type definitions say the same thing: every parameter
reaches an option, every default in MLproject is the code's default (so `mlflow run` and `python -m entrypoints.<name>`
train alike), and each model type (model_types.TASKS) has exactly its train entry point, with its own options."""

import importlib
import re

import pytest
import yaml

from pyfunc_models.model_types import MODEL_TYPES, TASKS
from tests.conftest import REPO

ENTRY_POINTS = yaml.safe_load((REPO / "MLproject").read_text())["entry_points"]
COMMON_TRAINING_PARAMETERS = {"data", "experiment_name", "sample_rows", "seed", "date_order"}


def _options(parser) -> dict:
    return {option: action for action in parser._actions for option in action.option_strings}


def _parser(command: str):
    """The parser the command runs: `python -m entrypoints.<module> [<model type>] ...`."""
    module, model_type = re.search(r"python -m (entrypoints\.\w+)(?: (\w+)(?= --))?", command).groups()
    build_parser = importlib.import_module(module).build_parser
    return module, build_parser(model_type) if model_type else build_parser()


@pytest.mark.parametrize("name", sorted(ENTRY_POINTS))
def test_every_mlproject_parameter_reaches_an_option_with_the_same_default(name):
    entry = ENTRY_POINTS[name]
    module, parser = _parser(entry["command"])
    options = _options(parser)
    for parameter, spec in entry["parameters"].items():
        option = f"--{parameter.replace('_', '-')}"
        assert f"{option} {{{parameter}}}" in " ".join(entry["command"].split()), f"{name}: {parameter} not passed"
        assert option in options, f"{name}: {module} has no {option}"
        if "default" not in spec:
            assert options[option].required, f"{name}: {parameter} has no default in MLproject but one in the code"
            continue
        code_default = options[option].default
        if spec["type"] == "float":
            assert float(spec["default"]) == float(code_default), f"{name}.{parameter}: {spec['default']} vs {code_default}"
        else:
            assert str(spec["default"]) == str(code_default), f"{name}.{parameter}: {spec['default']!r} vs {code_default!r}"


def test_the_train_entry_points_are_the_model_types():
    assert sorted(name for name in ENTRY_POINTS if name.startswith("train_")) == sorted(f"train_{t}" for t in MODEL_TYPES)


@pytest.mark.parametrize("task", TASKS, ids=lambda task: task.model_type)
def test_a_model_types_train_entry_point_takes_its_options_and_trains_that_type(task):
    entry = ENTRY_POINTS[f"train_{task.model_type}"]
    assert re.search(rf"python -m entrypoints\.train {task.model_type} --", entry["command"])
    own = {option.name: option for option in task.options}
    assert set(entry["parameters"]) == COMMON_TRAINING_PARAMETERS | set(own), "parameters other than the definition's"
    for name, option in own.items():
        assert float(entry["parameters"][name]["default"]) == float(option.default), f"{task.model_type}.{name}"


@pytest.mark.parametrize("entry_point", ["main", "register"])
def test_floors_and_model_type_choices_come_from_the_definitions(entry_point):
    from pyfunc_models import registry

    floors = ",".join(f"{task.model_type}.{metric}=0.5" for task in TASKS for metric in task.gate.floors)
    assert set(registry.parse_floors(floors)) == set(MODEL_TYPES)
    if entry_point == "register":
        _, parser = _parser(ENTRY_POINTS["register"]["command"])
        assert set(_options(parser)["--model-type"].choices) == {*MODEL_TYPES, "all"}


def test_every_model_type_defines_what_the_rest_of_the_project_reads():
    from pyfunc_models.task import BATCH_PLANS, ModelTask

    names = [task.registered_name for task in TASKS]
    assert len(set(names)) == len(names) == len(set(MODEL_TYPES)) == len(TASKS)
    for task in TASKS:
        assert issubclass(task, ModelTask) and not getattr(task, "__abstractmethods__", None), task
        assert task.batch_plan in BATCH_PLANS
        assert task.gate.key_metric in task.report_metrics, f"{task.model_type}: its key metric is not reported"
        for option in task.options:  # each option is a keyword of the constructor
            assert task.from_options(**{option.name: option.default}) is not None
