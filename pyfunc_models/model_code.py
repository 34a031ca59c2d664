"""What a logged model carries as code and requirements: only what loading and predicting it import.

Read from the source with `ast` (no import, no subprocess): the modules of ours that importing the pyfunc entry
file and the predictor's module loads at module level (`import_closure`; function-level imports such as plots in
training are left out), copied as a package of their own (`copy_modules`); and the pinned distributions of every
package those modules and the pickled predictor import (`pip_requirements`). tracking.log_predictor uses them.
"""

from __future__ import annotations

import ast
import importlib.metadata
import pickle
import re
import shutil
import sys
from pathlib import Path

PACKAGE = __name__.split(".")[0]
PACKAGE_DIR = Path(__file__).resolve().parent
PYFUNC_FILE = PACKAGE_DIR / "pyfunc_entry.py"
PYFUNC_MODULE = f"{PACKAGE}.{PYFUNC_FILE.stem}"


def module_file(module: str) -> Path | None:
    """The source file of one of our modules ('pyfunc_models.ledger'); None for any other module."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    path = PACKAGE_DIR.joinpath(*parts[1:])
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    return path if path.is_file() else None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_run_on_import(statements):
    """The import statements that run when a module is imported (call with its body): its own, and those in its
    top-level blocks and class bodies; not those inside functions (run when called) nor under
    `if TYPE_CHECKING:` (never run)."""
    for node in statements:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from imports_run_on_import(node.orelse)
        elif not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            yield from imports_run_on_import(ast.iter_child_nodes(node))


def imported_modules(statement: ast.Import | ast.ImportFrom, importer: str) -> list:
    """Every module an import statement in module `importer` may load: each name and its parent packages, and
    for `from package import name`, `package.name` too (when `name` is a submodule)."""
    if isinstance(statement, ast.Import):
        names = [alias.name for alias in statement.names]
    else:
        base = statement.module or ""
        if statement.level:  # relative: from the importer's own package, `level` - 1 packages up
            package = importer if module_file(importer).name == "__init__.py" else importer.rpartition(".")[0]
            for _ in range(statement.level - 1):
                package = package.rpartition(".")[0]
            base = f"{package}.{base}" if base else package
        names = [base, *(f"{base}.{alias.name}" for alias in statement.names)]
    parts = [name.split(".") for name in names]
    return [".".join(name[:end]) for name in parts for end in range(1, len(name) + 1)]


def import_closure(*roots: str) -> list:
    """Our modules that importing `roots` loads: the roots and, transitively, what their module-level imports
    load. Read from the source (no import, no subprocess); function-level imports (plots, in training) are left
    out: a served model never calls those functions."""
    found, pending = set(), [PACKAGE, *roots]
    while pending:
        module = pending.pop()
        path = module_file(module)
        if module in found or path is None:
            continue
        found.add(module)
        for statement in imports_run_on_import(ast.parse(path.read_text(), filename=str(path)).body):
            pending.extend(imported_modules(statement, module))
    return sorted(found)


def pickled_modules(predictor) -> set:
    """Every module a pickle of `predictor` names (the classes and functions unpickling it imports)."""
    named = set()

    class Recorder(pickle.Pickler):
        def reducer_override(self, value):
            # A class's or function's own module; an instance's is its class's (also pickled, by name).
            named.add(getattr(value, "__module__", None))
            return NotImplemented

    class Nowhere:
        def write(self, data):  # bytes, or a large array's PickleBuffer
            return memoryview(data).nbytes

    Recorder(Nowhere(), protocol=pickle.HIGHEST_PROTOCOL).dump(predictor)
    return {module for module in named if isinstance(module, str)}


def _distribution_key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pip_requirements(modules, pickled=()) -> list:
    """The served model's pip requirements: mlflow, the distribution of every package that `modules` (ours)
    import, anywhere in their source, and of every installed package a pickled predictor names (`pickled`),
    pinned to the versions installed here. A package that several distributions install (mlflow: mlflow-skinny,
    mlflow-tracing) is pinned as the one of its own name."""
    imported = {"mlflow"}
    for module in modules:
        path = module_file(module)
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    imported -= {PACKAGE, *sys.stdlib_module_names}
    distributions = importlib.metadata.packages_distributions()
    missing = sorted(package for package in imported if not distributions.get(package))
    if missing:
        raise ModuleNotFoundError(f"the served model imports {', '.join(map(repr, missing))}, which no installed "
                                  f"distribution provides; install and pin it in requirements.txt", name=missing[0])
    # A pickle also names runtime-made modules no distribution installs (Cython's '_cython_3_2_9'): not needed.
    packages = imported | ({module.split(".")[0] for module in pickled} & set(distributions))
    pinned = set()
    for package in packages:
        own = [name for name in distributions[package] if _distribution_key(name) == _distribution_key(package)]
        pinned.update(own or distributions[package])
    return sorted(f"{name}=={importlib.metadata.version(name)}" for name in pinned)


# Appended to the shipped package's __init__.py. Python keeps the first copy of a package it imports.
EVERY_COPY = '''

# What tracking.log_predictor ships of pyfunc_models is only what serving this model imports. One process may meet
# other copies of the package: other logged models' code folders (a Spark worker loads model after model), batch
# scoring's archive, a checkout. Python keeps the first one it imports, so a module this copy leaves out is looked
# up in the others, wherever sys.path has them when it is imported.
import os as _os
import sys as _sys


class _EveryCopy(list):
    """This copy's folder first, then the package's folder under every sys.path entry, read at each import."""

    def __iter__(self):
        yield from list.__iter__(self)
        for entry in list(_sys.path):
            folder = _os.path.join(entry or _os.getcwd(), __name__) if isinstance(entry, str) else None
            if folder and folder not in self:
                yield folder


__path__ = _EveryCopy(__path__)
'''


def copy_modules(modules, folder: Path) -> Path:
    """`modules` (ours) copied as the package they belong to, in `folder`; returns the package's folder. Its
    __init__.py also finds the modules it leaves out in other copies of the package on sys.path (`EVERY_COPY`)."""
    for module in {PACKAGE, *modules}:
        source = module_file(module)
        target = folder / source.relative_to(PACKAGE_DIR.parent)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    package = folder / PACKAGE
    (package / "__init__.py").write_text((package / "__init__.py").read_text() + EVERY_COPY)
    return package
