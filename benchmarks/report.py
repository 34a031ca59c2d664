"""Markdown pieces for RESULTS.md."""

from __future__ import annotations

from pathlib import Path

MEASURED_CHOICES = Path(__file__).resolve().parent / "measured_choices.md"


def met(ok) -> str:
    if ok is None:
        return "n/a"
    return "met" if ok else "**not met**"


def table(headers, rows) -> str:
    def cell(value) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(map(cell, headers)) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(map(cell, row)) + " |" for row in rows]
    return "\n".join(lines)


def milliseconds(seconds: float) -> str:
    return f"{seconds * 1000:.2f}" if seconds < 1 else f"{seconds * 1000:,.0f}"


def generic(result) -> str:
    """A section whose module has no renderer of its own (e.g. one written by someone else): its
    `markdown` entry if it has one, else its scalar figures as a table."""
    if isinstance(result, dict) and isinstance(result.get("markdown"), str):
        return result["markdown"]
    if isinstance(result, dict):
        rows = [[key, f"{value:,.3f}" if isinstance(value, float) else value]
                for key, value in result.items() if isinstance(value, (int, float, str, bool)) or value is None]
        return table(["figure", "value"], rows) if rows else "(no scalar figures; see results.json)"
    return f"```\n{result!r}\n```"


def _goals(sections: dict) -> list:
    """One line per goal of issues 7 and 18: what was measured and whether it was met."""
    rows = []
    training = sections.get("training") or {}
    for step in training.get("scaling", []):
        rows.append([f"train_{step['model_type']}: {step['from_rows']:,} -> {step['to_rows']:,} rows costs at most "
                     f"{step['allowed_time_ratio']:.2f}x the time", f"{step['time_ratio']:.2f}x", met(step["met"])])
    goal = training.get("category_goal") or {}
    if goal.get("measured"):
        rows.append(["train_category on 1,000,000 rows under 10 minutes", f"{goal['wall_seconds']:.0f} s",
                     met(goal["time_met"])])
        rows.append(["train_category on 1,000,000 rows under 6 GB peak RSS", f"{goal['peak_rss_bytes'] / 1e9:.2f} GB",
                     met(goal["memory_met"])])
    for model_type, batches in (sections.get("overhead") or {}).get("batches", {}).items():
        smallest = min(batches, key=int)
        for batch, entry in batches.items():
            limit = entry["goal"] if entry["goal"] is not None else (2.0 if batch == smallest else None)
            if limit is not None:
                rows.append([f"{model_type}: pyfunc / bare at {int(batch):,} row(s) at most {limit}",
                             f"{entry['ratio']:.2f}", met(entry["ratio"] <= limit)])
    rest = sections.get("rest") or {}
    for name, served in rest.get("served", {}).items():
        if "p50_ratio" in served:
            rows.append([f"{name}: served single-row p50 at most {served['goal']}x the floor (p99: "
                         f"{served['p99_ratio']:.2f}x)", f"{served['p50_ratio']:.2f}x", met(served["met"])])
    return rows


def markdown_document(results: dict, titles: dict) -> str:
    import importlib

    lines = ["# Benchmarks", ""]
    if results.get("quick"):
        lines += ["> **Quick smoke run, not the real figures**: small sizes and few repetitions, to check that the "
                  "benchmarks work. The real figures come from `python -m benchmarks.run_all` on a quiet machine.", ""]
    machine, versions = results["machine"], results["versions"]
    load = results.get("load_average", {})
    lines += [
        f"- date: {results['started']}" + (f" to {results['finished']}" if results.get("finished") else
                                           " (still running or interrupted)"),
        f"- command: `{results['command']}` (from the repository root)",
        f"- commit: {results['commit']}",
        f"- machine: {machine['cpu_count']} CPUs ({machine['cpu_model']}), {machine['ram_gb']} GB RAM, "
        f"{machine['os']}, kernel {machine['kernel']}",
        "- versions: " + ", ".join(f"{name} {version}" for name, version in versions.items() if version),
        f"- load average (1, 5, 15 min) at start {load.get('start')}; after each section "
        + ", ".join(f"{name} {value}" for name, value in load.items() if name != "start"),
        f"- settings: {results['settings']}",
    ]
    if results.get("total_seconds"):
        lines.append(f"- total time: {results['total_seconds'] / 60:.1f} min ("
                     + ", ".join(f"{k} {v / 60:.1f}" for k, v in results.get("section_seconds", {}).items()) + ")")
    models = results.get("models")
    if models:
        lines.append(f"- models for overhead and REST: trained and registered by `python -m entrypoints.main` on a "
                     f"{models['ledger_rows']:,}-row generated ledger ({models['main_wall_seconds']:.0f} s, peak RSS "
                     f"{models['main_peak_rss_bytes'] / 1e9:.2f} GB); requests are rows of another generated ledger "
                     f"(seed 7) the models never saw"
                     + (f"; notes: {'; '.join(models['notes'])}" if models["notes"] else ""))
    goals = _goals(results["sections"])
    if goals:
        carried = ", ".join(results.get("carried_over", {}))
        lines += ["", "## Goals", ""] + ([f"(The {carried} figures are carried over from an earlier run; see their "
                                          f"sections.)", ""] if carried else []) + [
            table(["goal", "measured", "result"], goals)]
    for number, (section, title) in enumerate(titles.items(), start=1):
        if section not in results["sections"]:
            continue
        result = results["sections"][section]
        lines += ["", f"## {number}. {title}", ""]
        carried = results.get("carried_over", {}).get(section)
        if carried:
            lines += [f"*Not rerun by this command: carried over from the run of {carried['started']} at commit "
                      f"{carried['commit']} (load average there: {carried['load_average']}).*", ""]
        if "error" in result and "traceback" in result:
            lines.append(f"This section failed: `{result['error']}`\n\n```\n{result['traceback'][-2000:]}```")
            continue
        if "skipped" in result:
            lines.append(f"Skipped: {result['skipped']}.")
            continue
        module_name = f"benchmarks.{section}_bench" if section != "batch" else "benchmarks.batch_score_bench"
        try:
            module = importlib.import_module(module_name)
            renderer = getattr(module, "markdown", None)
        except Exception:  # noqa: BLE001 - fall back to the generic table
            renderer = None
        try:
            lines.append(renderer(result) if renderer else generic(result))
        except Exception as error:  # noqa: BLE001 - a renderer bug must not lose the raw figures
            lines.append(f"(could not render this section: {error}; see results.json)")
    if MEASURED_CHOICES.exists():  # hand-written: the measurements behind settings in the code
        lines += ["", MEASURED_CHOICES.read_text().strip()]
    return "\n".join(lines) + "\n"
