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

from pyfunc_models import config, registry
from pyfunc_models.ledger import LedgerError
from pyfunc_models.model_types import MODEL_NAMES, MODEL_TYPES, task_class

ACTIONS = ("register", "list", "promote", "rollback", "archive")


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
            with pd.option_context("display.width", 200, "display.max_colwidth", 90):
                print(registry.list_versions(types).to_string(index=False))
        for model_type in types if args.action != "list" else ():
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
    except (registry.RegistryError, LedgerError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
