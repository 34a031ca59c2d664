"""Training scale: wall time and peak RSS of each `train_*` entry point on generated ledgers of growing size.

Each measurement is the real entry point in a fresh process (`python -m entrypoints.train <type> --data
<ledger>`), so it includes interpreter start, imports, ledger parsing, every candidate, the evaluation
evidence and logging the model, against the workspace's own sqlite store. What each candidate was
trained on is read back from its nested run (`rows_used`, `max_rows`): a candidate that cannot scale is
capped by the training code and the cap is logged there, and this report shows it.

Goals (issue 7): 10x the rows costs at most 12x the time (for other size steps the same exponent:
time ratio <= rows ratio ** log10(12)); `train_category` on 1M rows in under 10 minutes with peak RSS
under 6 GB.
"""

from __future__ import annotations

import math
import re

from benchmarks.common import PYTHON, Workspace, load_average, run_measured, say
from pyfunc_models.model_types import MODEL_TYPES

SCALING_EXPONENT = math.log10(12)  # 10x rows -> at most 12x time
CATEGORY_GOAL_ROWS = 1_000_000
CATEGORY_GOAL_SECONDS = 600
CATEGORY_GOAL_RSS_BYTES = 6 * 10 ** 9
_SPLIT_LINE = re.compile(r"^(?P<model>\w+): (?P<train>\d+) train / (?P<validation>\d+) validation / (?P<test>\d+) test")


def _training_rows_from_log(path: str) -> dict | None:
    """The skeleton prints how many rows each split got; candidates are fitted on the train split."""
    with open(path) as log:
        for line in log:
            match = _SPLIT_LINE.match(line.strip())
            if match:
                return {k: int(v) for k, v in match.groupdict().items() if k != "model"}
    return None


def _logged_run(workspace: Workspace, model_type: str) -> dict:
    """The newest training run of `model_type` in the workspace store, with its candidates' row counts."""
    from mlflow.tracking import MlflowClient

    from pyfunc_models import config

    client = MlflowClient(workspace.tracking_uri)
    experiment = client.get_experiment_by_name(config.EXPERIMENT_NAME)
    if experiment is None:
        return {}
    runs = client.search_runs([experiment.experiment_id],
                              f"tags.{config.MODEL_TYPE_TAG} = '{model_type}'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        return {}
    run = runs[0]
    candidates = []
    for child in client.search_runs([experiment.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'"):
        params = child.data.params
        candidates.append({
            "name": child.data.tags.get("candidate", child.info.run_name),
            "rows_used": int(params["rows_used"]) if "rows_used" in params else None,
            "max_rows": params.get("max_rows"),
            "fit_seconds": child.data.metrics.get("fit_seconds"),
        })
    return {
        "run_id": run.info.run_id,
        "status": run.info.status,
        "train_seconds": run.data.metrics.get("train_seconds"),
        "chosen": run.data.tags.get("chosen_candidate"),
        # Row caps the task chose and logged on the run (e.g. max_search_rows, refit_rows), whatever their names.
        "row_params": {k: v for k, v in sorted(run.data.params.items()) if "rows" in k and k != "sample_rows"},
        "test_metrics": {k: v for k, v in run.data.metrics.items() if k.startswith("test_") and "fold" not in k},
        "candidates": sorted(candidates, key=lambda c: c["name"]),
    }


def run(workspace: Workspace, sizes, model_types=MODEL_TYPES, timeout: float | None = 3600) -> dict:
    measurements = []
    for rows in sizes:
        say(f"training: generating a ledger of {rows:,} rows")
        ledger = workspace.ledger(rows)
        for model_type in model_types:
            say(f"training: train_{model_type} on {rows:,} rows (load average {load_average()})")
            measured = run_measured([PYTHON, "-m", "entrypoints.train", model_type, "--data", str(ledger)], workspace,
                                    f"train_{model_type}_{rows}", timeout=timeout)
            logged = _logged_run(workspace, model_type) if measured.returncode == 0 else {}
            split = _training_rows_from_log(measured.log)
            for candidate in logged.get("candidates", []):
                # Capped: trained on fewer rows than the train split (the cap is the logged max_rows).
                candidate["capped"] = bool(split and candidate["rows_used"] is not None
                                           and candidate["rows_used"] < split["train"])
            measurements.append({
                "model_type": model_type, "rows": rows, "wall_seconds": measured.wall_seconds,
                "peak_rss_bytes": measured.peak_rss_bytes, "returncode": measured.returncode,
                "timed_out": measured.timed_out, "split": split, "logged": logged,
                "error": None if measured.returncode == 0 else measured.tail,
            })
            status = "ok" if measured.returncode == 0 else ("timed out" if measured.timed_out else "FAILED")
            say(f"training: train_{model_type} on {rows:,} rows: {status}, {measured.wall_seconds:.1f}s wall, "
                f"peak RSS {measured.peak_rss_bytes / 1e9:.2f} GB")
    return {"sizes": list(sizes), "model_types": list(model_types), "timeout_seconds": timeout,
            "measurements": measurements, "scaling": _scaling(measurements, sizes, model_types),
            "category_goal": _category_goal(measurements)}


def _scaling(measurements, sizes, model_types) -> list:
    by_key = {(m["model_type"], m["rows"]): m for m in measurements if m["returncode"] == 0}
    steps = []
    ordered = sorted(sizes)
    for model_type in model_types:
        for small, large in zip(ordered, ordered[1:]):
            if (model_type, small) not in by_key or (model_type, large) not in by_key:
                continue
            rows_ratio = large / small
            time_ratio = by_key[(model_type, large)]["wall_seconds"] / by_key[(model_type, small)]["wall_seconds"]
            allowed = rows_ratio ** SCALING_EXPONENT
            steps.append({"model_type": model_type, "from_rows": small, "to_rows": large, "rows_ratio": rows_ratio,
                          "time_ratio": time_ratio, "allowed_time_ratio": allowed, "met": time_ratio <= allowed})
    return steps


def _category_goal(measurements) -> dict:
    found = [m for m in measurements if m["model_type"] == "category" and m["rows"] == CATEGORY_GOAL_ROWS]
    if not found:
        return {"measured": False}
    m = found[0]
    ok = m["returncode"] == 0
    return {"measured": True, "wall_seconds": m["wall_seconds"], "peak_rss_bytes": m["peak_rss_bytes"],
            "time_met": ok and m["wall_seconds"] < CATEGORY_GOAL_SECONDS,
            "memory_met": ok and m["peak_rss_bytes"] < CATEGORY_GOAL_RSS_BYTES}


def _candidates_text(measurement) -> str:
    parts = []
    for c in measurement["logged"].get("candidates", []):
        text = f"{c['name']} {c['rows_used']:,}" if c["rows_used"] is not None else c["name"]
        if c.get("capped"):
            text += f" (capped: max_rows={c['max_rows']})" if c.get("max_rows") not in (None, "None") else " (capped)"
        parts.append(text)
    row_params = measurement["logged"].get("row_params") or {}
    if row_params:
        parts.append("run: " + ", ".join(f"{k}={v}" for k, v in row_params.items()))
    return "; ".join(parts) or "-"


def markdown(result: dict) -> str:
    from benchmarks.report import met, table

    lines = ["Each cell is one fresh `python -m entrypoints.train <type> --data <ledger>` process against a "
             "temporary sqlite store: interpreter start, imports, parsing, every candidate, evaluation "
             "evidence and logging the model. Peak RSS is the kernel's maximum resident set of that process "
             "(wait4). *Candidates* are the rows each candidate was fitted on, read back from its nested run; "
             "a cap is the training code's `max_rows`, logged as a parameter; *run:* lists the row caps the training "
             "run itself logged (any parameter with `rows` in its name).", ""]
    rows = []
    for m in result["measurements"]:
        split = m["split"] or {}
        status = "ok" if m["returncode"] == 0 else ("timed out" if m["timed_out"] else f"failed ({m['returncode']})")
        rows.append([f"train_{m['model_type']}", f"{m['rows']:,}", f"{m['wall_seconds']:.1f}",
                     f"{m['peak_rss_bytes'] / 1e9:.2f}",
                     f"{split['train']:,}" if split else "-", m["logged"].get("chosen") or "-",
                     _candidates_text(m), status])
    lines.append(table(["entry point", "ledger rows", "wall s", "peak RSS GB", "train split rows", "chosen",
                        "candidates (rows fitted)", "status"], rows))
    failures = [m for m in result["measurements"] if m["error"]]
    for m in failures:
        lines += ["", f"`train_{m['model_type']}` on {m['rows']:,} rows ended with: ```{m['error'].strip()[-600:]}```"]

    lines += ["", f"**Scaling** (goal: 10x the rows costs at most 12x the time; for a step of r x rows the "
                  f"allowed time ratio is r^log10(12) = r^{SCALING_EXPONENT:.3f}):", ""]
    lines.append(table(["entry point", "rows", "time ratio", "allowed", "goal"],
                       [[f"train_{s['model_type']}", f"{s['from_rows']:,} -> {s['to_rows']:,}",
                         f"{s['time_ratio']:.2f}x", f"{s['allowed_time_ratio']:.2f}x", met(s["met"])]
                        for s in result["scaling"]]) if result["scaling"] else "(fewer than two sizes measured)")
    goal = result["category_goal"]
    lines += ["", f"**`train_category` on {CATEGORY_GOAL_ROWS:,} rows** (goal: under {CATEGORY_GOAL_SECONDS // 60} "
                  f"minutes and peak RSS under {CATEGORY_GOAL_RSS_BYTES / 1e9:.0f} GB): "]
    if goal["measured"]:
        lines[-1] += (f"{goal['wall_seconds']:.0f} s ({met(goal['time_met'])}), peak RSS "
                      f"{goal['peak_rss_bytes'] / 1e9:.2f} GB ({met(goal['memory_met'])}).")
    else:
        lines[-1] += "not measured in this run (1,000,000 was not among the sizes)."
    return "\n".join(lines)
