"""requirements.txt pins what our code imports, and nothing it does not."""

import ast
import functools
import importlib.metadata
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUNTIME = ("pyfunc_models", "entrypoints", "team_mode")  # what `mlflow run`, a served model and team mode run
EVERYTHING = (*RUNTIME, "tools", "benchmarks", "tests")


def imported_packages(*folders) -> set:
    """The top-level names every module under `folders` imports, anywhere in it (function-level imports too)."""
    found = set()
    for folder in folders:
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.Import):
                    found.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names)


def pinned_distributions() -> dict:
    """requirements.txt's pins: distribution name (lower case, extras dropped) -> version."""
    pins = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[[^]]*\])?==(\S+)", line).groups()
            pins[name.lower()] = version
    return pins


@functools.cache
def installed() -> dict:
    return importlib.metadata.packages_distributions()  # import name -> distributions; slow to read


def distributions_of(packages) -> set:
    return {name.lower() for package in packages for name in installed().get(package, ())}


def test_every_pin_is_a_package_our_code_imports():
    unused = set(pinned_distributions()) - distributions_of(imported_packages(*EVERYTHING))
    assert not unused, f"requirements.txt pins {sorted(unused)}, which nothing in {', '.join(EVERYTHING)} imports"


def test_every_package_the_runtime_imports_is_pinned():
    ours = {path.name for path in REPO.iterdir() if (path / "__init__.py").is_file()}
    for package in sorted(imported_packages(*RUNTIME) - ours):
        assert distributions_of([package]) & set(pinned_distributions()), \
            f"{', '.join(RUNTIME)} import {package!r}; pin its distribution in requirements.txt"


def test_the_pins_are_what_is_installed():
    for name, version in pinned_distributions().items():
        assert importlib.metadata.version(name) == version, name
