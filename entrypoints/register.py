"""Entry point `register`: the registry lifecycle, one action at a time.

    mlflow run . -e register -P model_type=category                  # newest FINISHED run, through the gate
    mlflow run . -e register -P model_type=all
    mlflow run . -e register -P action=list
    mlflow run . -e register -P action=promote -P model_type=amount -P version=3 [-P force=true]
    mlflow run . -e register -P action=rollback -P model_type=amount
    mlflow run . -e register -P action=archive -P model_type=amount -P version=2
"""

import argparse
import sys

import pandas as pd

from pyfunc_models import access, config, registry
from pyfunc_models.ledger import LedgerError
from pyfunc_models.model_types import MODEL_NAMES, MODEL_TYPES, task_class

ACTIONS = ("register", "list", "promote", "rollback", "archive")
# What each action takes on a team server with authentication (team mode), in MLflow's permission names.
NEEDS = {
    "register": "EDIT on the experiment's runs and MANAGE on the registered model (a new version, its tags and aliases)",
    "promote": "MANAGE on the registered model (it moves the champion alias) and READ on the experiment's runs",
    "rollback": "MANAGE on the registered model (it moves the champion alias)",
    "archive": "MANAGE on the registered model (it removes the version's aliases)",
    "list": "READ on the registered models",
}


def describe(model_type, version, alias, decision) -> str:
    key = task_class(model_type).gate.key_metric
    line = f"{MODEL_NAMES[model_type]} version {version} -> {alias} ({key}={decision.candidate.get(key, float('nan')):.4f}"
    if decision.champion is not None:
        line += f"; champion v{decision.champion_version} {key}={decision.champion[key]:.4f}"
    line += ")"
    return line + "".join(f"\n  {rule}" for rule in decision.rules)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--action", default="register", choices=ACTIONS)
    parser.add_argument("--model-type", default="all", choices=(*MODEL_TYPES, "all"))
    parser.add_argument("--run-id", default="", help="register this run instead of the newest FINISHED one")
    parser.add_argument("--version", default="", help="model version for promote / archive")
    parser.add_argument("--force", default="false", choices=("true", "false"), help="promote without the gate")
    parser.add_argument("--eval-data", default="", help="CSV ledger to score candidate and champion on")
    parser.add_argument("--experiment-name", default=config.EXPERIMENT_NAME)
    parser.add_argument("--floors", default="", help="absolute gate floors, e.g. category.macro_f1=0.8,anomaly.recall=0.7")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    types = MODEL_TYPES if args.model_type == "all" else (args.model_type,)
    if args.action in ("promote", "archive") and (args.model_type == "all" or not args.version):
        parser.error(f"{args.action} needs one --model-type and a --version")
    if args.run_id and args.model_type == "all":
        parser.error("--run-id needs one --model-type")

    try:
        floors = registry.parse_floors(args.floors)
        if args.action == "list":
            with access.needing(f"list needs {NEEDS['list']}"), \
                    pd.option_context("display.width", 200, "display.max_colwidth", 90):
                print(registry.list_versions(types).to_string(index=False))
        for model_type in types if args.action != "list" else ():
            with access.needing(f"{args.action} {MODEL_NAMES[model_type]} needs {NEEDS[args.action]}"):
                act(args, model_type, floors)
    except (registry.RegistryError, LedgerError, access.AccessRefused) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


def act(args, model_type: str, floors: dict) -> None:
    """One registry action on one model type, and what it did on the terminal."""
    if args.action == "register":
        version, alias, decision = registry.register(model_type, args.run_id or None, args.eval_data or None,
                                                     args.experiment_name, floors)
        print(describe(model_type, version.version, alias, decision))
    elif args.action == "promote":
        alias, decision = registry.promote(model_type, args.version, args.force == "true",
                                           args.eval_data or None, floors)
        print(describe(model_type, args.version, alias, decision))
    elif args.action == "rollback":
        print(f"{MODEL_NAMES[model_type]}: champion is now version {registry.rollback(model_type)}")
    elif args.action == "archive":
        registry.archive(model_type, args.version)
        print(f"{MODEL_NAMES[model_type]} version {args.version} archived (aliases removed)")


if __name__ == "__main__":
    main()
