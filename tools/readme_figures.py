"""Regenerate the README's figures and example answers from one run of the quick start.

    python -m tools.readme_figures             # minutes: train, serve, ask, rewrite
    python -m tools.readme_figures --render    # a second: README.md from the stored results only
    python -m tools.readme_figures --keep      # and keep the workspace (its store holds the champions)

In a temporary workspace with its own sqlite tracking store (never ./mlflow.db), it

1. clones this repository's committed HEAD, so uncommitted edits never reach the figures and the commit the
   README names is the code that made them;
2. runs the README's quick start in the clone, timed (wall clock and peak memory):
   `mlflow run . --env-manager local --experiment-name titans-finance-ml-models` (20,000-row generated
   ledger, seed 42);
3. reads each champion's training-run metrics and params from the tracking store;
4. serves each champion from the registry (`mlflow models serve`, a free 127.0.0.1 port, stopped by its
   process group afterwards) and sends it `examples/requests/<model type>.json`, the requests the README and
   `examples/requests.sh` show, keeping the answer exactly as the server wrote it;
5. writes all of that to `examples/quickstart_results.json` and rewrites the README's blocks between
   `<!-- figures:<block>:start ... -->` and `<!-- figures:<block>:end -->` from it (`render_blocks`).

Training takes minutes, too long for the test suite, so the results file is the bridge:
tests/test_readme.py checks that the README's blocks are exactly what the stored results render to, and that
the test session's own (smaller) champions still accept every stored request and answer it with the same
columns and rows. Re-run this script after a change to the models: the README then names the new commit.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import re
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
RESULTS = REPO / "examples" / "quickstart_results.json"
REQUESTS = REPO / "examples" / "requests"
EXPERIMENT = "titans-finance-ml-models"
DEFAULT_ROWS, DEFAULT_SEED = 20_000, 42
CHAMPION = "champion"

# The README's examples, in order: model type (its request is examples/requests/<type>.json) and caption.
EXAMPLES = (
    ("category", "Category (a fuel purchase, the top 2 categories):"),
    ("amount", "Amount (one usual fill-up, one with a slipped digit, one without amount):"),
    ("anomaly", "Anomaly (a usual coffee, a 10x one, the same charge twice, a stranger):"),
    ("cashflow", "Cash flow (1,200 transactions over 120 days from a generated ledger, the next 7 days; the body is "
                 "too long to show, so it is sent from the file):"),
)
MLFLOW_LOG_LINE = re.compile(r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d [A-Z]+ ")
# Run params the README shows; the others (e.g. the temporary ledger's path) would only churn the results file.
SHOWN_PARAMS = ("evaluated_on", "test_window", "backtest_folds")
INLINE_LIMIT = 2_000  # a request body longer than this is sent with -d @file instead of inline


# --- running the quick start ---------------------------------------------------------------------------

def quickstart_command(rows: int, seed: int, experiment_name: str = "") -> list:
    """The README's quick-start command, with -P only where it differs from the defaults."""
    command = ["mlflow", "run", ".", "--env-manager", "local"]
    if experiment_name:
        command += ["--experiment-name", experiment_name]
    if rows != DEFAULT_ROWS:
        command += ["-P", f"sample_rows={rows}"]
    if seed != DEFAULT_SEED:
        command += ["-P", f"seed={seed}"]
    return command


def summary_of(output: str) -> str:
    """The summary `main` ends with: from the last header line of its table to the end of its output."""
    lines = output.rstrip().splitlines()
    headers = [i for i, line in enumerate(lines) if re.match(r"model\s+version\s+alias\b", line)]
    if not headers:
        raise RuntimeError("the quick start printed no summary table (no 'model  version  alias' line):\n"
                           + "\n".join(lines[-30:]))
    # MLflow's own log lines (stderr, e.g. "=== Run (ID ...) succeeded ===") are not the summary.
    return "\n".join(line.rstrip() for line in lines[headers[-1]:] if not MLFLOW_LOG_LINE.match(line))


def serve_ports(summary: str) -> dict:
    """Registered model name -> the port its `serve:` line in the summary gives it."""
    return {name: int(port) for name, port in
            re.findall(r"serve: mlflow models serve -m models:/([\w.-]+)@\w+ .*?-p (\d+)", summary)}


def git(*args, cwd=REPO) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


def champions(tracking_uri: str) -> dict:
    """model type -> name, version, alias and the metrics and params of its training run (from the registry:
    each version carries a model_type tag). Every model must have a champion: the README serves all four."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    found = {}
    for model in client.search_registered_models():
        if CHAMPION not in model.aliases:
            raise RuntimeError(f"{model.name} has no champion; the README's examples need all four champions")
        version = client.get_model_version(model.name, model.aliases[CHAMPION])
        run = client.get_run(version.run_id)
        found[version.tags["model_type"]] = {
            "name": model.name, "version": int(version.version), "alias": CHAMPION,
            "metrics": dict(sorted(run.data.metrics.items())),
            "params": {name: run.data.params[name] for name in SHOWN_PARAMS if name in run.data.params},
        }
    return found


def ask_champions(models: dict, ports: dict, workspace) -> dict:
    """Serve each champion in turn and send it its example request; the answers as the server wrote them."""
    import requests

    from benchmarks.common import say

    answers = {}
    for model_type, _ in EXAMPLES:
        name = models[model_type]["name"]
        request = REQUESTS / f"{model_type}.json"
        say(f"serving {name}@{CHAMPION}, sending {request.relative_to(REPO)}")
        with workspace.serve(f"models:/{name}@{CHAMPION}", f"serve_{model_type}") as served:
            response = requests.post(f"{served.url}/invocations", data=request.read_bytes(),
                                     headers={"Content-Type": "application/json"}, timeout=120)
        if response.status_code != 200:
            raise RuntimeError(f"{name} answered {request.name} with {response.status_code}: {response.text[:1000]}")
        answers[model_type] = {"request": str(request.relative_to(REPO)), "port": ports[name],
                               "status": response.status_code, "response": response.text}
    return answers


def run_quickstart(rows: int, seed: int, experiment_name: str, keep: bool) -> dict:
    """Steps 1-4 of the module's docstring; returns the results to store."""
    from benchmarks.common import MLFLOW_CLI, Workspace, load_average, machine, run_measured, say

    class Clean(Workspace):
        """The benchmarks' workspace, minus their PYTHONPATH: children run the clone's code, not this tree's."""

        def env(self, **extra) -> dict:
            env = super().env(**extra)
            env.pop("PYTHONPATH", None)
            return env

    workspace = Clean(keep=keep)
    try:
        checkout = workspace.root / "checkout"
        subprocess.run(["git", "clone", "-q", str(REPO), str(checkout)], check=True)
        commit = git("rev-parse", "--short", "HEAD", cwd=checkout)
        with contextlib.chdir(workspace.root):  # MLflow puts the Default experiment's artifacts in ./mlruns
            workspace.prepare_store(EXPERIMENT)  # and the models' experiment's inside the workspace too
        command = quickstart_command(rows, seed, experiment_name)
        say(f"quick start at commit {commit} in {checkout}: {' '.join(command)}")
        load_before = load_average()  # the machine may be shared: the timing is only as good as this
        # `mlflow run <checkout>` from the workspace is `mlflow run .` in the checkout (MLflow runs the entry
        # point in the project's directory); MLFLOW_CLI is this environment's mlflow.
        measured = run_measured([MLFLOW_CLI, "run", str(checkout), *command[3:]], workspace, "quickstart")
        load_after = load_average()
        output = Path(measured.log).read_text()
        if measured.returncode != 0:
            raise RuntimeError(f"the quick start failed ({measured.returncode}):\n{measured.tail}")
        summary = summary_of(output)
        models = champions(workspace.tracking_uri)
        answers = ask_champions(models, serve_ports(summary), workspace)
        import mlflow

        return {
            "command": " ".join(command), "commit": commit, "rows": rows, "seed": seed,
            "date": datetime.date.today().isoformat(), "mlflow": mlflow.__version__,
            "cpu_count": machine()["cpu_count"], "wall_seconds": round(measured.wall_seconds, 1),
            "peak_rss_bytes": measured.peak_rss_bytes, "load_average_before_after": [load_before, load_after],
            "summary": summary, "models": models, "answers": answers,
        }
    finally:
        workspace.close()


# --- rendering -----------------------------------------------------------------------------------------

def number(value: float, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:,.{digits}f}"


def metric(results: dict, model_type: str, name: str):
    """A metric of a champion's training run; a name the run did not log fails the render, by name."""
    metrics = results["models"][model_type]["metrics"]
    if name not in metrics:
        raise KeyError(f"{model_type} run logged no metric {name!r}; it logged: {', '.join(metrics)}")
    return metrics[name]


def figures_rows(results: dict) -> list:
    """The figures table: (model, what, the model's figures, the baselines' on the same rows)."""

    def of(model_type, names, digits=4):
        return " / ".join(number(metric(results, model_type, name), digits) for name in names)

    def baseline(model_type, label, name, names, digits=4):
        return f"{label} " + of(model_type, [f"baseline_{name}_test_{n}" for n in names], digits)

    anomaly = results["models"]["anomaly"]
    planted = anomaly["params"].get("evaluated_on", "planted") == "planted"  # else the ledger's own labels
    recall_prefix = "test_recall_planted_" if planted else "test_recall_"
    normal = "untouched" if planted else "normal (unlabelled)"
    kinds = sorted(n.removeprefix(recall_prefix) for n in anomaly["metrics"] if n.startswith(recall_prefix))
    cashflow = results["models"]["cashflow"]
    window = cashflow["params"].get("test_window", "the last 30 days")
    folds = cashflow["params"].get("backtest_folds", "")
    amount_level = metric(results, "amount", "test_interval_level")
    cash_level = metric(results, "cashflow", "test_interval_level")
    return [
        ("category", "time-ordered test accuracy / macro-F1", of("category", ["test_accuracy", "test_macro_f1"]),
         "; ".join([baseline("category", "majority", "majority", ["accuracy", "macro_f1"]),
                    baseline("category", "merchant lookup", "merchant_lookup", ["accuracy", "macro_f1"])])),
        ("category", "merchant-held-out accuracy / macro-F1 "
                     f"({number(metric(results, 'category', 'test_merchant_holdout_rows'), 0)} rows)",
         of("category", ["test_merchant_holdout_accuracy", "test_merchant_holdout_macro_f1"]),
         baseline("category", "merchant lookup", "merchant_lookup",
                  ["merchant_holdout_accuracy", "merchant_holdout_macro_f1"])
         + "; the classifier without word knowledge "
         + of("category", ["test_merchant_holdout_classifier_accuracy"]) + " / –"),
        ("category", "merchant-held-out confidence vs accuracy: calibration error (ECE) / worst of 10 bins",
         of("category", ["test_merchant_holdout_calibration_error", "test_merchant_holdout_calibration_max_gap"], 3),
         "worst bin that chance gives a calibrated model on these merchants (95th percentile) "
         + of("category", ["test_merchant_holdout_calibration_chance_gap"], 3)),
        ("amount", "test MAE / R²", of("amount", ["test_mae"], 2) + " / " + of("amount", ["test_r2"], 2),
         "; ".join([baseline("amount", "category median", "category_median", ["mae"], 2) + " / "
                    + of("amount", ["baseline_category_median_test_r2"], 2),
                    baseline("amount", "merchant median", "merchant_median", ["mae"], 2)])),
        ("amount", f"{amount_level:.0%} interval coverage", of("amount", ["test_interval_coverage"], 3), ""),
        ("anomaly", f"precision / recall / F1 / PR-AUC ({'planted' if planted else 'labelled'} anomalies)",
         of("anomaly", ["test_precision", "test_recall", "test_f1", "test_pr_auc"], 3),
         baseline("anomaly", "category z-score", "category_zscore", ["precision", "recall", "f1", "pr_auc"], 3)),
        ("anomaly", "recall " + " / ".join(k.replace("_", " ") for k in kinds),
         of("anomaly", [recall_prefix + k for k in kinds], 3), ""),
        ("anomaly", f"share of the {normal} test rows flagged", of("anomaly", ["test_flag_rate_untouched"], 3), ""),
        ("cash flow", f"test-window MASE / MAE ({window}, out of sample)",
         of("cashflow", ["test_mase"]) + " / " + of("cashflow", ["test_mae"], 0),
         baseline("cashflow", "seasonal naive", "seasonal_naive_weekly", ["mase"]) + " / "
         + of("cashflow", ["baseline_seasonal_naive_weekly_test_mae"], 0)),
        ("cash flow", f"backtest mean MASE / MAE ({folds} folds before the window)",
         of("cashflow", ["backtest_mase"]) + " / " + of("cashflow", ["backtest_mae"], 0), ""),
        ("cash flow", f"{cash_level:.0%} interval coverage, test window / backtest",
         of("cashflow", ["test_interval_coverage", "backtest_interval_coverage"], 3), ""),
    ]


def prose(text: str) -> str:
    """A paragraph wrapped as the README's are (inline code may span lines in Markdown)."""
    return textwrap.fill(text, 79, break_long_words=False, break_on_hyphens=False)


def duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"


def curl(port: int, request: Path) -> str:
    body = request.read_text()
    if len(body) > INLINE_LIMIT:
        data = f"@{request.relative_to(REPO)}"
    else:
        data = "'" + json.dumps(json.loads(body)).replace("'", "'\\''") + "'"
    return f"curl -s -X POST localhost:{port}/invocations -H 'Content-Type: application/json' -d {data}"


def render_blocks(results: dict) -> dict:
    """Block name -> the README text between its markers, from the stored results and examples/requests/."""
    commit = f"commit `{results['commit']}`"
    ledger = f"{results['rows']:,}-row generated ledger, seed {results['seed']}"
    summary = prose(f"`{results['command']}` ends with this table ({ledger}; {duration(results['wall_seconds'])} "
                    f"and {results['peak_rss_bytes'] / 1e9:.2f} GB peak memory on a {results['cpu_count']}-core "
                    f"machine, {commit}, MLflow {results['mlflow']}):") + f"\n\n```\n{results['summary']}\n```"
    rows = "\n".join(f"| {' | '.join(row)} |" for row in figures_rows(results))
    figures = (f"### Figures ({results['rows']:,}-row sample ledger, seed {results['seed']})\n\n"
               + prose(f"From the quick start above ({commit}). Every number is a metric of the champion's training "
                       f"run in the experiment `{EXPERIMENT}` (`test_*` for the model, `baseline_<name>_test_*` "
                       f"for a baseline on the same rows, `backtest_*` for the cash-flow folds), on data the model "
                       f"never saw.")
               + f"\n\n| model | metric | model | baseline |\n|---|---|---|---|\n{rows}")
    examples = []
    for model_type, caption in EXAMPLES:
        answer = results["answers"][model_type]
        examples.append(f"{prose(caption)}\n\n```bash\n{curl(answer['port'], REPO / answer['request'])}\n"
                        f"{answer['response'].rstrip()}\n```")
    answers = (prose(f"These are the exact answers of the quick start's champions ({commit}), each served on its "
                     f"own port as the summary's `serve:` lines say. The request bodies are the files in "
                     f"[`examples/requests/`](examples/requests/); `bash examples/requests.sh` sends all four.")
               + "\n\n" + "\n\n".join(examples))
    return {"summary": summary, "figures": figures, "answers": answers}


BLOCK = re.compile(r"(<!-- figures:(\w+):start[^>]*-->\n)(.*?)(<!-- figures:\2:end -->)", re.S)


def readme_blocks(text: str) -> dict:
    """Block name -> its current text in the README (between the markers, without them)."""
    return {match[2]: match[3].rstrip("\n") for match in BLOCK.finditer(text)}


def rewrite(text: str, blocks: dict) -> str:
    present = readme_blocks(text)
    missing = sorted(set(blocks) - set(present))
    if missing:
        raise RuntimeError(f"README.md has no block(s) {', '.join(missing)}: add the markers "
                           + ", ".join(f"<!-- figures:{name}:start --> ... <!-- figures:{name}:end -->"
                                       for name in missing))
    # A blank line before the end marker, so that no Markdown table or paragraph runs into it.
    return BLOCK.sub(lambda m: f"{m[1]}{blocks[m[2]]}\n\n{m[4]}" if m[2] in blocks else m[0], text)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--render", action="store_true", help="only rewrite the README from the stored results")
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="sample ledger rows (default: 20000)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="sample ledger seed (default: 42)")
    parser.add_argument("--experiment-name", default=EXPERIMENT,
                        help="mlflow run's --experiment-name (default: %(default)s; '' leaves it out, and mlflow run "
                             "then puts its own run in Default)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the results file (default: %(default)s)")
    parser.add_argument("--readme", type=Path, default=README, help="the README to rewrite (default: %(default)s)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the workspace (clone, tracking store with the champions, logs) and say where")
    args = parser.parse_args(argv)
    if not args.render:
        results = run_quickstart(args.rows, args.seed, args.experiment_name, args.keep)
        args.results.write_text(json.dumps(results, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
        print(f"wrote {args.results}")
    results = json.loads(args.results.read_text())
    args.readme.write_text(rewrite(args.readme.read_text(), render_blocks(results)))
    print(f"rewrote the figures blocks of {args.readme} from {args.results} (commit {results['commit']})")


if __name__ == "__main__":
    sys.exit(main())
