"""What a logged model carries: only what serving needs, and nothing of the customer's training ledger.

- Its code is what loading and predicting it import (model_code.import_closure): no plotting, no generator, no
  registry, no other model type; it loads and answers from that code alone, also after another of our models
  in the same process, and the server never imports matplotlib.
- Its requirements pin every package that code imports, and nothing for plotting.
- No file of it holds a training ledger's row: its input example is made up; the fitted predictor keeps what it
  learned (a vocabulary of 1-2 word terms, two-word merchant keys, statistics, trees, parameters), not the
  transactions it learned from.
"""

import ast
import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest

from pyfunc_models.cashflow import daily_net_flow
from pyfunc_models.features import clean_text
from pyfunc_models.ledger import fold_text, load_ledger

pytestmark = pytest.mark.slow  # reads the session's four champions

MODEL_TYPES = ("category", "amount", "anomaly", "cashflow")
TRAINING_ONLY = ("plots", "generator", "catalogue", "batch", "jobs", "registry", "tracking", "model_code", "model_types")
PLOTTING = ("matplotlib", "PIL", "pyparsing", "kiwisolver", "contourpy", "fontTools", "cycler")

# Each model as a server loads it, one after the other in one interpreter to save the start-up of four: before
# the next, our package and the code folder of the last are forgotten, so each loads from its own code alone.
# Then all four again without forgetting, as a Spark worker that scores job after job loads them.
LOAD = """
import importlib.util, json, sys
import mlflow.pyfunc
from mlflow.models import Model

assert importlib.util.find_spec("pyfunc_models") is None, f"this repository is importable: {sys.path}"
folders = json.loads(sys.argv[1])
report = {}
for model_type, folder in folders.items():
    model = mlflow.pyfunc.load_model(folder)
    answer = model.predict(Model.load(folder).load_input_example(folder))
    ours = {name: module.__file__ for name, module in sys.modules.items() if name.split(".")[0] == "pyfunc_models"}
    report[model_type] = {"answers": len(answer), "modules": ours}
    for name in ours:
        del sys.modules[name]
    sys.path[:] = [entry for entry in sys.path if not entry.startswith(folder)]
report["together"] = {model_type: len(mlflow.pyfunc.load_model(folder).predict(
    Model.load(folder).load_input_example(folder))) for model_type, folder in folders.items()}
report["loaded"] = sorted({name.split(".")[0] for name in sys.modules})
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def model_dirs(champions, tmp_path_factory) -> dict:
    """Each champion's model directory as `mlflow models serve` gets it: model type -> folder."""
    folder = tmp_path_factory.mktemp("downloaded")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", champions["uri"])
        return {model_type: Path(mlflow.artifacts.download_artifacts(trained["model_uri"],
                                                                     dst_path=str(folder / model_type)))
                for model_type, trained in champions["trained"].items()}


def test_each_model_loads_and_answers_from_its_own_code_alone_without_matplotlib(model_dirs, tmp_path):
    env = {name: value for name, value in os.environ.items()
           if name != "PYTHONPATH" and not name.startswith("MLFLOW_")}
    result = subprocess.run([sys.executable, "-c", LOAD, json.dumps({t: str(d) for t, d in model_dirs.items()})],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.splitlines()[-1])
    for model_type, folder in model_dirs.items():
        code = folder / "code" / "pyfunc_models"
        shipped = {path.relative_to(code).as_posix() for path in code.rglob("*.py")}
        loaded = report[model_type]["modules"]
        assert report[model_type]["answers"] == report["together"][model_type] > 0
        assert all(Path(path).is_relative_to(code) for path in loaded.values()), f"{model_type}: {loaded}"
        # Exactly what loading and predicting import is shipped: nothing missing, nothing unused.
        assert {Path(path).relative_to(code).as_posix() for path in loaded.values()} == shipped
        assert {"serving.py", "ledger.py", f"{model_type}.py"} <= shipped
        left_out = {*TRAINING_ONLY, *(set(MODEL_TYPES) - {model_type})}
        assert not {name.split("/")[0].removesuffix(".py") for name in shipped} & left_out, f"{model_type}: {shipped}"
    assert not set(report["loaded"]) & set(PLOTTING), f"loading and predicting imported {report['loaded']}"


def test_the_requirements_pin_every_package_the_shipped_code_imports(model_dirs):
    distributions = importlib.metadata.packages_distributions()
    for model_type, folder in model_dirs.items():
        imported = set()
        for path in (folder / "code").rglob("*.py"):  # every import, function-level ones too
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    imported.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0:
                    imported.add(node.module.split(".")[0])
        pinned = dict(line.split("==") for line in (folder / "requirements.txt").read_text().split())
        for package in imported - {"pyfunc_models", *sys.stdlib_module_names}:
            assert set(distributions[package]) & set(pinned), f"{model_type} imports {package}, not pinned"
        assert {"mlflow", "scikit-learn", "numpy", "pandas", "scipy", "joblib", "pyarrow"} <= set(pinned), model_type
        assert ("statsmodels" in pinned) == (model_type == "cashflow")
        assert not set(pinned) & {"matplotlib", "pillow", "cloudpickle", "pyspark", "psycopg"}, model_type
        assert pinned["mlflow"] == mlflow.__version__


def occurring(needles, data: bytes) -> set:
    """The needles (bytes) found in `data`. `data` is read as 8-byte words at each of the 8 offsets (no copy), and
    every word is looked up among the needles' first 8 bytes at once (a sorted search), so only candidates are
    compared in full: thousands of needles over a 64 MB model file in a few seconds."""
    short = {needle for needle in needles if len(needle) < 8}
    found = {needle for needle in short if needle in data}
    by_head = {}
    for needle in set(needles) - short:
        by_head.setdefault(needle[:8], []).append(needle)
    if len(data) < 8 or not by_head:
        return found
    heads = np.sort(np.frombuffer(b"".join(by_head), dtype="<u8"))
    for offset in range(8):
        words = np.frombuffer(data, dtype="<u8", count=(len(data) - offset) // 8, offset=offset)
        nearest = heads[np.minimum(np.searchsorted(heads, words), len(heads) - 1)]
        for index in np.flatnonzero(nearest == words):
            position = offset + 8 * int(index)
            found.update(n for n in by_head[data[position:position + 8]] if data.startswith(n, position))
    return found


def training_values(champions) -> dict:
    """What must not be in a model, as bytes -> what it is: each training description that says more than a
    vocabulary term could (three words or more once cleaned: the model may keep 1-2 word terms and two-word
    merchant keys), as written, case-folded and cleaned (the text the vectorisers read), in UTF-8 and in UTF-32
    (numpy's text arrays); each reference and receipt URL; and the training ledger's daily net flow, four days
    at a time, as float64 (what a state-space results object holds)."""
    past = champions["past"]
    values = {}
    for description in set(past["Description"]):
        if len(clean_text(description).split()) >= 3:
            for form in {description, fold_text(description), clean_text(description)}:
                for encoding in ("utf-8", "utf-32-le"):
                    values[form.encode(encoding)] = f"description {description!r}"
    for column in ("Reference", "Receipt URL"):
        for value in set(past[column].dropna().astype(str)) - {""}:
            values[value.encode()] = f"{column.lower()} {value!r}"
    flow = daily_net_flow(load_ledger(champions["ledger"])[0]).to_numpy()
    for start in range(len(flow) - 3):
        if np.all(flow[start:start + 4] != 0):
            values[flow[start:start + 4].astype("<f8").tobytes()] = f"daily net flow from day {start}"
    return values


def test_no_file_of_a_model_holds_a_row_of_the_training_ledger(model_dirs, champions):
    values = training_values(champions)
    assert sum(v.startswith("description") for v in values.values()) > 1000  # the check has something to find
    for model_type, folder in model_dirs.items():
        predictor = (folder / "artifacts" / "predictor.joblib").read_bytes()
        assert predictor[:1] == b"\x80", f"{model_type}: the predictor is compressed; its bytes would hide text"
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            leaked = sorted(values[found] for found in occurring(values, path.read_bytes()))
            assert not leaked, f"{model_type}: {path.relative_to(folder)} holds {len(leaked)}: {leaked[:3]}"


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_the_input_example_holds_no_row_of_the_training_ledger(model_type, model_dirs, champions):
    folder = model_dirs[model_type]
    examples = {name: (folder / name).read_text() for name in ("input_example.json", "serving_input_example.json")
                if (folder / name).exists()}
    assert "input_example.json" in examples, f"no input example in {folder}"
    descriptions = set(champions["past"]["Description"]) - {""}
    for name, text in examples.items():
        written = json.dumps(json.loads(text))
        leaked = [d for d in descriptions if json.dumps(d)[1:-1] in written]
        assert not leaked, f"{name} carries training descriptions: {leaked[:3]}"
        assert "EXAMPLE" in written


def test_the_leak_scan_finds_a_value_at_any_offset_and_nothing_else():
    rng = np.random.default_rng(0)
    needles = {rng.bytes(n): f"value {i}" for i, n in enumerate((5, 8, 9, 30, 30))}
    planted = list(needles)[:4]
    data = b"".join([rng.bytes(1001), planted[0], rng.bytes(3), planted[1], rng.bytes(7), planted[2], planted[3],
                     rng.bytes(13)])
    assert occurring(needles, data) == set(planted)
    assert occurring(needles, rng.bytes(4096)) == set()
