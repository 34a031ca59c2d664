"""MLproject and the entry points' own parsers say the same thing: every parameter reaches an option, and every
default in MLproject is the code's default (so `mlflow run` and `python -m entrypoints.<name>` train alike)."""

import importlib
import re

import pytest
import yaml

from tests.conftest import REPO

ENTRY_POINTS = yaml.safe_load((REPO / "MLproject").read_text())["entry_points"]


def _options(parser) -> dict:
    return {option: action for action in parser._actions for option in action.option_strings}


@pytest.mark.parametrize("name", sorted(ENTRY_POINTS))
def test_every_mlproject_parameter_reaches_an_option_with_the_same_default(name):
    entry = ENTRY_POINTS[name]
    module = re.search(r"python -m (entrypoints\.\w+)", entry["command"]).group(1)
    options = _options(importlib.import_module(module).build_parser())
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
