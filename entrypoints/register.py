"""Entry point `register`: the registry lifecycle, one action at a time.

    mlflow run . -e register -P model_type=category                  # newest FINISHED run, through the gate
    mlflow run . -e register -P model_type=all
    mlflow run . -e register -P action=list
    mlflow run . -e register -P action=promote -P model_type=amount -P version=3 [-P force=true]
    mlflow run . -e register -P action=rollback -P model_type=amount
    mlflow run . -e register -P action=archive -P model_type=amount -P version=2

From a candidate to production (README, "From a candidate to production"):
    mlflow run . -e register -P action=compare -P model_type=category [-P versions=3,5] [-P eval_data=new.csv]
    mlflow run . -e register -P action=promote -P model_type=category -P version=5 -P require_significance=true
    mlflow run . -e register -P action=ab_split -P model_type=amount -P challenger_share=0.1
    mlflow run . -e register -P action=promote_env -P model_type=all -P to=staging      # then -P to=production
    mlflow run . -e register -P action=lineage -P model_type=category [-P format=json]
"""

import argparse
import contextlib
import sys

import pandas as pd

from pyfunc_models import access, config, registry
from pyfunc_models.ledger import LedgerError
from pyfunc_models.model_types import MODEL_TYPES, task_class

ACTIONS = ("register", "list", "promote", "rollback", "archive", "compare", "ab_split", "promote_env", "lineage")
# What each action takes on a team server with authentication (team mode), in MLflow's permission names.
NEEDS = {
    "register": "EDIT on the experiment's runs and MANAGE on the registered model (a new version, its tags and aliases)",
    "promote": "MANAGE on the registered model (it moves the champion alias) and READ on the experiment's runs",
    "rollback": "MANAGE on the registered model (it moves the champion alias)",
    "archive": "MANAGE on the registered model (it removes the version's aliases)",
    "list": "READ on the registered models",
    "compare": "READ on the registered model and on its versions' runs, and EDIT on the experiment the evaluation "
               "run is logged to",
    "ab_split": "READ on the registered model's versions, EDIT on the experiment and MANAGE on the registered model "
                "(a new version and its alias)",
    "promote_env": "READ on the source environment's registered model and MANAGE on the target's",
    "lineage": "READ on the registered model, its versions' runs and the monitoring experiment",
}


def describe(model_type, version, alias, decision) -> str:
    key = task_class(model_type).gate.key_metric
    line = f"{registry.registered_name(model_type)} version {version} -> {alias} ({key}={decision.candidate.get(key, float('nan')):.4f}"
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
    parser.add_argument("--versions", default="", help="compare, ab_split: two versions, e.g. 3,5 (default: champion, "
                                                       "challenger; ab_split: champion's first)")
    parser.add_argument("--require-significance", default="false", choices=("true", "false"),
                        help="promote only if compare says the version is significantly better than the champion")
    parser.add_argument("--challenger-share", type=float, default=0.1,
                        help="ab_split: the share of rows the challenger answers")
    parser.add_argument("--to", default="staging", help="promote_env: the environment to promote into")
    parser.add_argument("--format", default="text", choices=("text", "json"), help="lineage: text or json")
    parser.add_argument("--environment", default=config.ENVIRONMENTS[0], choices=config.ENVIRONMENTS,
                        help="the environment's registry to act in (list, promote, rollback, archive, compare, "
                             "ab_split); training registers in dev only")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    types = MODEL_TYPES if args.model_type == "all" else (args.model_type,)
    if args.action in ("promote", "archive") and (args.model_type == "all" or not args.version):
        parser.error(f"{args.action} needs one --model-type and a --version")
    if args.run_id and args.model_type == "all":
        parser.error("--run-id needs one --model-type")
    if args.versions and args.model_type == "all":
        parser.error("--versions needs one --model-type")
    if args.environment != config.ENVIRONMENTS[0] and args.action in ("register", "promote_env", "lineage"):
        parser.error(f"{args.action} takes no --environment: training registers in {config.ENVIRONMENTS[0]} only, "
                     f"promote_env moves a champion on (--to), lineage shows every environment")

    try:
        with acting_in(args.environment):
            run_action(args, types)
    except (registry.RegistryError, LedgerError, access.AccessRefused) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


def acting_in(environment: str):
    """The registry of the environment asked for (pyfunc_models/environments.py); dev is the current one."""
    if environment == config.ENVIRONMENTS[0]:
        return contextlib.nullcontext()
    from pyfunc_models import environments

    return environments.in_environment(environment)


def run_action(args, types) -> None:
    floors = registry.parse_floors(args.floors)
    if args.action == "list":
        with access.needing(f"list needs {NEEDS['list']}"), \
                pd.option_context("display.width", 200, "display.max_colwidth", 90):
            print(registry.list_versions(types).to_string(index=False))
    failed = []
    for model_type in types if args.action != "list" else ():
        try:
            with access.needing(f"{args.action} {registry.registered_name(model_type)} needs {NEEDS[args.action]}"):
                act(args, model_type, floors)
        except (registry.RegistryError, LedgerError) as error:
            if len(types) == 1:
                raise
            print(f"error: {error}", file=sys.stderr)  # with model_type=all, each type on its own
            failed.append(model_type)
    if failed:
        raise registry.RegistryError(f"{args.action} did not complete for {', '.join(failed)} (above)")


def act(args, model_type: str, floors: dict) -> None:
    """One registry action on one model type, and what it did on the terminal."""
    if args.action == "register":
        version, alias, decision = registry.register(model_type, args.run_id or None, args.eval_data or None,
                                                     args.experiment_name, floors)
        print(describe(model_type, version.version, alias, decision))
    elif args.action == "promote":
        if args.require_significance == "true":  # the evidence first: a paired comparison with the champion
            from pyfunc_models import comparison

            print(comparison.require_evidence(model_type, args.version, args.eval_data or None,
                                              args.experiment_name).report())
        alias, decision = registry.promote(model_type, args.version, args.force == "true",
                                           args.eval_data or None, floors)
        print(describe(model_type, args.version, alias, decision))
    elif args.action == "rollback":
        print(f"{registry.registered_name(model_type)}: champion is now version {registry.rollback(model_type)}")
    elif args.action == "archive":
        registry.archive(model_type, args.version)
        print(f"{registry.registered_name(model_type)} version {args.version} archived (aliases removed)")
    elif args.action == "compare":
        from pyfunc_models import comparison

        versions = tuple(v.strip() for v in args.versions.split(",") if v.strip()) or None
        print(comparison.compare(model_type, versions, args.eval_data or None, args.experiment_name).report())
    elif args.action == "ab_split":
        from pyfunc_models import ab_split

        versions = tuple(v.strip() for v in args.versions.split(",") if v.strip()) or None
        print(ab_split.register_split(model_type, args.challenger_share, args.experiment_name, versions))
    elif args.action == "promote_env":
        from pyfunc_models import environments

        print(environments.promote_env(model_type, args.to, args.eval_data or None, floors))
    elif args.action == "lineage":
        from pyfunc_models import lineage

        found = lineage.lineage(model_type)
        print(lineage.as_json(found) if args.format == "json" else lineage.as_text(found))


if __name__ == "__main__":
    main()
