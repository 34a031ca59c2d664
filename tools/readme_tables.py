"""Write the README's tables that list the model types, from their definitions (pyfunc_models/model_types.py).

    python -m tools.readme_tables           # rewrite README.md's blocks
    python -m tools.readme_tables --check   # exit 1 if README.md differs from what the definitions say

Each table sits between `<!-- tables:<name>:start -->` and `<!-- tables:<name>:end -->`:

- `models`: each registered model, the question it answers and what it answers with (ModelTask.purpose);
- `entry_points`: MLproject's entry points with their parameters and defaults, read from MLproject itself; a
  train_<type> entry point's own options are described by the definition's `options`;
- `gates`: each model type's gate (ModelTask.gate).

tests/test_readme_tables.py fails when a block is not what this script writes, so adding a model type, an option
or a floor shows up in the README or in a failing test.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml

from pyfunc_models.model_types import MODEL_TYPES, TASKS, task_class

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
MLPROJECT = REPO / "MLproject"
BLOCK = re.compile(r"(<!-- tables:(\w+):start -->\n)(.*?)(<!-- tables:\2:end -->)", re.S)

# What the entry points that are not a model type's do, in a few words.
OTHER_ENTRY_POINTS = {
    "main": "one ledger, every model type trained (nested runs), each registered through its gate, a summary; a "
            "model the ledger is too small for is skipped with its reason",
    "generate_data": "deterministic sample ledger in the Titans CSV format",
    "register": "registry lifecycle: register / list / promote / rollback / archive, for one model type or all; "
                "compare / ab_split / promote_env / lineage ([From a candidate to production]"
                "(#from-a-candidate-to-production))",
    "batch_score": "score a CSV/Parquet ledger with any model on Spark, write Parquet "
                   "([Batch scoring](#batch-scoring))",
    "monitor": "each champion on a new period of the ledger: OK / WARN / RETRAIN with reasons in numbers, a monitoring "
               "run per model, tags on the version, retraining through the gate when asked "
               "([Keeping models healthy](#keeping-models-healthy))",
}

# What a parameter's default means, where the value alone does not say.
PARAMETER_NOTES = {
    "data": "empty: generate a sample ledger",
    "floors": "empty: the gates' defaults",
    "days": "0: about 25 rows a day",
    "params": "model params as JSON",
    "group_by": "cash flow: one forecast per value of this column",
    "date_order": "dmy or mdy to say how 03/04/2024 reads",
    "model_type": "category, amount, ..., or all",
    "retrain": "true, auto (when the decision is RETRAIN) or false",
    "versions": "compare, ab_split: empty = champion and challenger",
    "to": "promote_env: staging or production",
    "environment": "the registry acted in: dev, staging or production",
}


def models_table() -> str:
    lines = ["| registered model | question it answers | served output per request |", "|---|---|---|"]
    lines += [f"| `{task.registered_name}` | {task.purpose.question} | {task.purpose.outputs} |" for task in TASKS]
    return "\n".join(lines)


def _default(spec: dict) -> str:
    if "default" not in spec:
        return "required"
    value = spec["default"]
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return '""' if value == "" else str(value)


def _noted(parameter: str, spec: dict, notes: dict) -> bool:
    """A note saying what an empty value means goes only where the parameter has that default."""
    return parameter in notes and not (notes[parameter].startswith("empty") and spec.get("default") != "")


def entry_points_table() -> str:
    entry_points = yaml.safe_load(MLPROJECT.read_text())["entry_points"]
    lines = ["| entry point | what it does | parameters (default) |", "|---|---|---|"]
    for name, entry in entry_points.items():
        model_type = name.removeprefix("train_") if name.startswith("train_") else None
        if model_type in MODEL_TYPES:
            task = task_class(model_type)
            what = f"train the {model_type} model: {task.purpose.question[0].lower()}{task.purpose.question[1:]}"
            helps = {option.name: option.help for option in task.options}
        else:
            what, helps = OTHER_ENTRY_POINTS[name], {}
        notes = {**PARAMETER_NOTES, **helps}
        parameters = [f"`{parameter}` ({_default(spec)}"
                      f"{'; ' + notes[parameter] if _noted(parameter, spec, notes) else ''})"
                      for parameter, spec in entry["parameters"].items()]
        lines.append(f"| `{name}` | {what} | {', '.join(parameters)} |")
    return "\n".join(lines)


def gates_table() -> str:
    lines = ["| model | key metric | must beat | must be within the tolerance of | tolerance | floors (default) |",
             "|---|---|---|---|---|---|"]
    for task in TASKS:
        gate = task.gate
        floors = ", ".join(f"{metric} {'≥' if greater else '≤'} {'unset' if default is None else f'{default:g}'}"
                           for metric, (default, greater) in gate.floors.items())
        lines.append(f"| {task.model_type} | {gate.key_metric} ({'higher' if gate.greater_is_better else 'lower'} "
                     f"is better) | {', '.join(gate.beat) or '-'} | {', '.join((*gate.match, 'the champion'))} | "
                     f"{gate.tolerance_text()}{' (relative)' if gate.relative else ''} | {floors} |")
    return "\n".join(lines)


TABLES = {"models": models_table, "entry_points": entry_points_table, "gates": gates_table}


def render(text: str) -> str:
    """The README with every tables block written from the definitions; a missing block is an error."""
    missing = set(TABLES) - {match.group(2) for match in BLOCK.finditer(text)}
    if missing:
        markers = ", ".join(f"<!-- tables:{name}:start --> ... <!-- tables:{name}:end -->" for name in missing)
        raise SystemExit(f"README.md has no block for: {', '.join(sorted(missing))}; add {markers}")
    return BLOCK.sub(lambda match: f"{match.group(1)}{TABLES[match.group(2)]()}\n{match.group(4)}", text)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only say whether README.md is up to date")
    args = parser.parse_args(argv)
    text = README.read_text()
    written = render(text)
    if args.check:
        if written != text:
            print("README.md's tables differ from the model-type definitions; run: python -m tools.readme_tables")
            sys.exit(1)
        print("README.md's tables match the definitions")
    elif written != text:
        README.write_text(written)
        print("README.md: tables rewritten")


if __name__ == "__main__":
    main()
