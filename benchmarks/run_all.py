"""Run every benchmark and write benchmarks/RESULTS.md (tables, goals met or not, machine, versions, date)
and benchmarks/results.json (the raw figures).

    python -m benchmarks.run_all                      # the full run: 10k/100k/1M rows, takes hours
    python -m benchmarks.run_all --quick              # smoke run with small sizes -> benchmarks/out/
    python -m benchmarks.run_all --only overhead,rest --model-rows 20000
    python -m benchmarks.run_all --only overhead,rest --carry-over   # the other sections stay, marked as earlier

Everything runs in a temporary workspace with its own sqlite tracking store and generated ledgers
(deleted afterwards unless --keep-workspace); the repository's mlflow.db and mlruns/ are never touched.
Sections: generator, training, overhead, rest, batch (batch_score_bench.py, when it exists and pyspark is
installed). Run it on a quiet machine: every figure is wall-clock time.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import importlib.util
import inspect
import json
import os
import sys
import time
import traceback
from pathlib import Path

from benchmarks import common
from benchmarks.common import REPO, Workspace, say

SECTIONS = ("generator", "training", "overhead", "rest", "batch")  # run order: the 1M-row ledger is made once
TITLES = {  # report order: the issue's
    "training": "Training scale",
    "overhead": "Wrapper overhead (in-process pyfunc vs bare estimator)",
    "rest": "REST latency and throughput (`mlflow models serve`)",
    "generator": "Generator",
    "batch": "Batch scoring (Spark `spark_udf` vs in-process predict)",
}
FULL = {"sizes": (10_000, 100_000, 1_000_000), "model_rows": 20_000, "generator_rows": 1_000_000,
        "batch_rows": 1_000_000}
# Cash flow needs 300 days of history (8,000 rows at the generator's ~25 a day) to train at all.
QUICK = {"sizes": (8_000, 16_000), "model_rows": 8_000, "generator_rows": 20_000, "batch_rows": 20_000}
OUTPUT = REPO / "benchmarks"
QUICK_OUTPUT = REPO / "benchmarks" / "out"  # git-ignored: a smoke run never overwrites the real results


def _numbers(text: str) -> tuple:
    return tuple(int(float(part)) for part in text.split(",") if part.strip())


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="small sizes and fewer repetitions; writes to benchmarks/out/ unless --output-dir")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections of {','.join(SECTIONS)}")
    parser.add_argument("--sizes", type=_numbers, help="ledger rows for the training benchmark (default 10000,100000,"
                                                        "1000000; quick 8000,16000)")
    parser.add_argument("--models", default="category,amount,anomaly,cashflow",
                        help="train_* entry points for the training benchmark")
    parser.add_argument("--model-rows", type=int, help="ledger rows the champions for overhead/REST are trained on "
                                                        "(default 20000; quick 8000)")
    parser.add_argument("--generator-rows", type=int, help="rows for the generator benchmark (default 1000000)")
    parser.add_argument("--batch-rows", type=int, help="rows for the batch-scoring benchmark (default 1000000)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds before one training run is killed")
    parser.add_argument("--no-profile", action="store_true", help="skip cProfile of the wrapper")
    parser.add_argument("--no-workers", action="store_true", help="skip the --workers 2 experiment")
    parser.add_argument("--output-dir", type=Path, help="where RESULTS.md and results.json go")
    parser.add_argument("--carry-over", action="store_true",
                        help="keep the sections of the output directory's results.json that --only does not rerun, "
                             "each marked with the date, commit and load of the run that measured it")
    parser.add_argument("--keep-workspace", action="store_true", help="keep the temporary workspace (ledgers, "
                                                                      "store, logs) for inspection")
    parser.add_argument("--workspace-parent", help="directory for the temporary workspace (default: the system's)")
    args = parser.parse_args(argv)
    defaults = QUICK if args.quick else FULL
    args.sizes = args.sizes or defaults["sizes"]
    args.model_rows = args.model_rows or defaults["model_rows"]
    args.generator_rows = args.generator_rows or defaults["generator_rows"]
    args.batch_rows = args.batch_rows or defaults["batch_rows"]
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(args.only) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    args.output_dir = (args.output_dir or (QUICK_OUTPUT if args.quick else OUTPUT)).resolve()
    return args


class Run:
    """One benchmark run: the workspace, the models trained on demand, the results so far."""

    def __init__(self, args, argv):
        self.args = args
        self.workspace = Workspace(keep=args.keep_workspace, parent=args.workspace_parent)
        # In-process MLflow calls (loading models, logging the identity floor) go to the workspace store too.
        os.environ["MLFLOW_TRACKING_URI"] = self.workspace.tracking_uri
        for name in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
            os.environ.pop(name, None)
        self._champions = None
        self.results = {
            "quick": args.quick,
            "command": "python -m benchmarks.run_all " + " ".join(argv if argv is not None else sys.argv[1:]),
            "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "commit": common.git_commit(),
            "machine": common.machine(),
            "versions": common.versions(),
            "settings": {"sizes": list(args.sizes), "model_rows": args.model_rows,
                         "generator_rows": args.generator_rows, "batch_rows": args.batch_rows,
                         "training_timeout_seconds": args.timeout},
            "load_average": {"start": common.load_average()},
            "sections": {},
            "section_seconds": {},
        }
        if args.carry_over:
            self._carry_over(args.output_dir / "results.json")

    def _carry_over(self, path: Path) -> None:
        """The earlier run's sections that this one does not rerun, with where they came from."""
        if not path.exists():
            return
        earlier = json.loads(path.read_text())
        carried = earlier.get("carried_over", {})
        for section, result in earlier.get("sections", {}).items():
            if section in self.args.only:
                continue
            self.results["sections"][section] = result
            self.results["carried_over"] = {**self.results.get("carried_over", {}), section: carried.get(section) or {
                "started": earlier["started"], "commit": earlier["commit"],
                "load_average": earlier.get("load_average", {}).get(section)}}

    def champions(self) -> dict:
        if self._champions is None:
            from pyfunc_models import config

            from benchmarks import models

            self.workspace.prepare_store(config.EXPERIMENT_NAME)
            self._champions = models.champions(self.workspace, self.args.model_rows, timeout=self.args.timeout)
            self.results["models"] = self._champions
        return self._champions["uris"]

    # --- sections ------------------------------------------------------------------------------
    def generator(self):
        from benchmarks import generator_bench

        return generator_bench.run(self.workspace, self.args.generator_rows)

    def training(self):
        from pyfunc_models import config

        from benchmarks import training_bench

        self.workspace.prepare_store(config.EXPERIMENT_NAME)
        return training_bench.run(self.workspace, self.args.sizes, self.args.models, timeout=self.args.timeout)

    def overhead(self):
        from benchmarks import overhead_bench

        return overhead_bench.run(self.workspace, self.champions(), quick=self.args.quick,
                                  profile=not self.args.no_profile)

    def rest(self):
        from benchmarks import models, rest_bench

        uris = self.champions()
        return rest_bench.run(self.workspace, uris, models.identity_models(self.workspace), quick=self.args.quick,
                              workers=not self.args.no_workers)

    def batch(self):
        if importlib.util.find_spec("benchmarks.batch_score_bench") is None:
            return {"skipped": "benchmarks/batch_score_bench.py does not exist yet"}
        if importlib.util.find_spec("pyspark") is None:
            return {"skipped": "pyspark is not installed (pip install pyspark; needs Java 17)"}
        module = importlib.import_module("benchmarks.batch_score_bench")
        offered = {"rows": self.args.batch_rows, "quick": self.args.quick, "workspace": self.workspace,
                   "tracking_uri": self.workspace.tracking_uri, "workdir": self.workspace.root}
        parameters = inspect.signature(module.run).parameters
        if any(name in parameters for name in ("model_uri", "model_uris")):
            uris = self.champions()
            offered.update({"model_uri": uris.get("category"), "model_uris": uris})
        kwargs = {name: value for name, value in offered.items() if name in parameters}
        say(f"batch: batch_score_bench.run({', '.join(kwargs)})")
        return module.run(**kwargs)

    def run(self):
        started = time.perf_counter()
        for section in SECTIONS:
            if section not in self.args.only:
                continue
            say(f"=== {section} ===")
            begin = time.perf_counter()
            try:
                self.results["sections"][section] = getattr(self, section)()
            except Exception as error:  # noqa: BLE001 - one broken section does not lose the others
                say(f"{section} FAILED: {error}")
                self.results["sections"][section] = {"error": f"{type(error).__name__}: {error}",
                                                     "traceback": traceback.format_exc()}
            self.results["section_seconds"][section] = time.perf_counter() - begin
            self.results["load_average"][section] = common.load_average()
            self.write()  # after every section: a late failure keeps the earlier figures
        self.results["total_seconds"] = time.perf_counter() - started
        self.results["finished"] = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        self.write()

    # --- output --------------------------------------------------------------------------------
    def write(self):
        from benchmarks.report import markdown_document

        folder = self.args.output_dir
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "results.json").write_text(json.dumps(self.results, indent=2, default=str) + "\n")
        (folder / "RESULTS.md").write_text(markdown_document(self.results, TITLES))


def main(argv=None):
    args = parse_args(argv)
    benchmark = Run(args, argv)
    say(f"workspace {benchmark.workspace.root}; results go to {args.output_dir}")
    here = os.getcwd()
    os.chdir(benchmark.workspace.root)  # anything MLflow puts under a relative ./mlruns lands in the workspace
    try:
        benchmark.run()
    finally:
        os.chdir(here)
        benchmark.workspace.close()
    say(f"wrote {args.output_dir / 'RESULTS.md'} and {args.output_dir / 'results.json'} "
        f"in {benchmark.results.get('total_seconds', 0) / 60:.1f} min")


if __name__ == "__main__":
    main()
