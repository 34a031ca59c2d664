"""Entry point `main` (what `mlflow run .` runs): train every model on one ledger, register each
through the gate, and print a summary with the command that serves each champion. A model the ledger is too
small for is skipped with one line saying why in numbers; the others go on, and the run still succeeds.

    mlflow run . --env-manager local                    # generated sample ledger
    mlflow run . --env-manager local -P data=ledger.csv
"""

import argparse
import tempfile
from pathlib import Path

from entrypoints import add_date_order, add_option, whole_number
from pyfunc_models import access, config, jobs, registry, tracking
from pyfunc_models.encoder_build import EncoderUnavailable
from pyfunc_models.ledger import LedgerError, read_ledger, readable_columns
from pyfunc_models.model_types import TASKS, task_class
from pyfunc_models.task import PER_LEDGER
from pyfunc_models.training import NotEnoughData


# Options of a model type's definition that `main` passes on to it: word knowledge, so that `mlflow run .` can run
# offline (-P word_knowledge=0), as the encoder's download error says.
MAIN_OPTIONS = tuple(option for task in TASKS for option in task.options if option.name == "word_knowledge")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="", help="ledger CSV; empty = generate a sample ledger")
    parser.add_argument("--experiment-name", default=config.EXPERIMENT_NAME)
    parser.add_argument("--sample-rows", type=whole_number, default=jobs.DEFAULT_SAMPLE_ROWS)
    parser.add_argument("--seed", type=whole_number, default=42)
    parser.add_argument("--floors", default="", help="absolute gate floors, e.g. category.macro_f1=0.8,anomaly.recall=0.7")
    add_date_order(parser)
    for option in MAIN_OPTIONS:  # a model type's own option that main also takes, as its train entry point does
        add_option(parser, option)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        floors = registry.parse_floors(args.floors)
    except registry.RegistryError as error:
        parser.error(str(error))

    jobs.run_entry_point(train_and_register_all, args, floors)


def train_and_register_all(args, floors: dict) -> None:
    summary, skipped, failures = [], {}, {}  # skipped, failures: model type -> why
    options = {option.name: getattr(args, option.name) for option in MAIN_OPTIONS}
    with tempfile.TemporaryDirectory() as folder, tracking.training_run(args.experiment_name, "main", {}):
        tracking.log_params_once({"data": args.data or f"generated:{args.sample_rows}:{args.seed}",
                                  "sample_rows": args.sample_rows, "seed": args.seed, "floors": args.floors,
                                  "date_order": args.date_order, **options})
        # One ledger for every model, so their figures describe the same data; each trains in a nested run.
        data = str(jobs.obtain_ledger(args.data or None, args.sample_rows, args.seed, Path(folder)))
        header = read_ledger(data, header_only=True).columns
        present = readable_columns(header)
        tasks = [definition.from_options(**options) for definition in TASKS]
        lacking = {task.model_type: [column for column in task.training_columns if column not in present]
                   for task in tasks}
        for task in tasks:
            name = task.registered_name
            # A ledger without a column one model needs (descriptions: cash flow needs none) trains the others;
            # one that no model can train on fails each run with the contract's message.
            if lacking[task.model_type] and not all(lacking.values()):
                skipped[task.model_type] = (f"needs column(s) {', '.join(map(repr, lacking[task.model_type]))}; the "
                                            f"ledger has {', '.join(map(str, header))}")
                print(f"skipped: {name}: {skipped[task.model_type]}", flush=True)
                continue
            try:
                with access.needing(jobs.TRAINING_NEEDS):
                    trained = jobs.train_model(task, data, args.experiment_name, args.seed, date_order=args.date_order)
                    version, alias, decision = registry.register(task.model_type, trained.run_id, floors=floors)
            except NotEnoughData as error:  # this ledger cannot support this model: the others go on
                skipped[task.model_type] = str(error)
                print(f"skipped: {name}: {error}", flush=True)
                continue
            except (LedgerError, registry.RegistryError, access.AccessRefused, EncoderUnavailable) as error:
                failures[task.model_type] = str(error)
                print(f"error: {name}: {error}", flush=True)
                continue
            summary.append(jobs.summary_row(task, trained, version.version, alias, decision))
            print(f"\n{name} version {version.version} ({alias}), "
                  f"{trained.model_uri}\n{jobs.metrics_table(trained, task.report_metrics)}\n", flush=True)
        text = jobs.summary_text(summary, skipped, failures)
        jobs.log_summary(summary, skipped, failures, text)

    for row in summary:  # what a client sees, from each champion that answers one row per transaction
        if row["alias"] == config.CHAMPION and task_class(row["model_type"]).batch_plan != PER_LEDGER:
            print(f"\nsample prediction of the {row['model_type']} champion (loaded back from the registry):")
            print(jobs.champion_sample(row["model_type"]).to_string(index=False))
    print("\n" + text)
    if failures:
        raise SystemExit(2)


if __name__ == "__main__":
    main()
