"""What every benchmark shares: a throw-away workspace with its own tracking store, measured child
processes (wall time and peak RSS), served models, timing statistics and a description of the machine.

Nothing here touches the repository's `mlflow.db` or `mlruns/`: every child process runs in the
workspace directory with `MLFLOW_TRACKING_URI` pointing at the workspace's sqlite store, and the
experiment is created up front with its artifact location inside the workspace.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib.metadata
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from tools.servers import MLFLOW_CLI, served_model  # noqa: F401 - MLFLOW_CLI: the benchmarks run this mlflow too

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
VERSIONED_PACKAGES = ("mlflow", "scikit-learn", "pandas", "numpy", "xgboost", "statsmodels", "scipy",
                      "uvicorn", "fastapi", "requests", "pyspark")


def say(message: str) -> None:
    """Progress line, flushed at once (a full run takes a long time)."""
    print(f"[{datetime.datetime.now():%H:%M:%S}] {message}", flush=True)


# --- the machine -------------------------------------------------------------------------------

def _first_line_starting(path: str, prefix: str) -> str | None:
    with contextlib.suppress(OSError):
        for line in Path(path).read_text().splitlines():
            if line.startswith(prefix):
                return line.split(":", 1)[1].strip()
    return None


def machine() -> dict:
    memory_kb = _first_line_starting("/proc/meminfo", "MemTotal")
    os_name = None
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip('"')
    return {
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": _first_line_starting("/proc/cpuinfo", "model name") or platform.processor() or "unknown",
        "ram_gb": round(int(memory_kb.split()[0]) / 1024 ** 2, 1) if memory_kb else None,
        "os": os_name or platform.platform(),
        "kernel": platform.release(),
        "hostname": platform.node(),
    }


def versions() -> dict:
    found = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def git_commit() -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True).stdout.strip()
        return commit + (" (working tree has uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def load_average() -> list:
    return [round(x, 2) for x in os.getloadavg()]


# --- statistics --------------------------------------------------------------------------------

def percentile(values, share: float) -> float:
    """Nearest-rank percentile (share in 0..1) of a non-empty sample."""
    ordered = sorted(values)
    rank = max(1, int(round(share * len(ordered) + 0.5 - 1e-9)))
    return ordered[min(rank, len(ordered)) - 1]


def summary(samples) -> dict:
    return {"n": len(samples), "median": statistics.median(samples), "p99": percentile(samples, 0.99),
            "min": min(samples), "mean": statistics.fmean(samples)}


# --- the workspace -----------------------------------------------------------------------------

class Workspace:
    """A temporary directory with its own tracking store, generated ledgers and logs."""

    def __init__(self, keep: bool = False, parent: str | None = None):
        self.root = Path(tempfile.mkdtemp(prefix="titans-bench-", dir=parent))
        self.keep = keep
        self.tracking_uri = f"sqlite:///{self.root}/mlflow.db"
        self.logs = self.root / "logs"
        self.ledgers = self.root / "ledgers"
        self.artifacts = self.root / "artifacts"
        for folder in (self.logs, self.ledgers, self.artifacts):
            folder.mkdir()
        self._ledger_paths: dict = {}
        self._champions: dict | None = None

    def env(self, **extra) -> dict:
        """Environment of a child: this interpreter first on PATH, the repo importable, the workspace store."""
        path = f"{Path(PYTHON).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        pythonpath = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "MLFLOW_TRACKING_URI": self.tracking_uri, "PATH": path, "PYTHONPATH": pythonpath,
               "PYTHONUNBUFFERED": "1", **extra}
        for name in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
            env.pop(name, None)
        return env

    def prepare_store(self, experiment_name: str) -> None:
        """Create the experiment with its artifacts inside the workspace (a sqlite store would otherwise
        put them under ./mlruns of whatever directory the first run started in)."""
        from mlflow.tracking import MlflowClient

        client = MlflowClient(self.tracking_uri)
        if client.get_experiment_by_name(experiment_name) is None:
            client.create_experiment(experiment_name, artifact_location=self.artifacts.as_uri())

    def ledger(self, rows: int, seed: int = 42) -> Path:
        """A generated ledger of `rows` rows (made once per size, by the real entry point)."""
        key = (rows, seed)
        if key not in self._ledger_paths:
            path = self.ledgers / f"ledger_{rows}_{seed}.csv"
            result = run_measured([PYTHON, "-m", "entrypoints.generate_data", "--rows", str(rows), "--seed",
                                   str(seed), "--output", str(path)], self, f"generate_{rows}", echo=False)
            if result.returncode != 0:
                raise RuntimeError(f"generate_data --rows {rows} failed:\n{result.tail}")
            self._ledger_paths[key] = path
        return self._ledger_paths[key]

    def serve(self, model_uri: str, name: str, workers: int = 1, env: dict | None = None):
        """`mlflow models serve` of `model_uri` in the workspace (tools/servers.py), its log in logs/: a context
        yielding the Server (`.url`, `.process`). A server that exits before answering is started once more."""
        return served_model(model_uri, cwd=self.root, env=env or self.env(), workers=workers, log_dir=self.logs,
                            name=name, attempts=2)

    def adopt_ledger(self, rows: int, path: Path, seed: int = 42) -> None:
        """A ledger written by a benchmark (the generator's) is reused by the others."""
        self._ledger_paths[(rows, seed)] = path

    def close(self) -> None:
        if self.keep:
            say(f"workspace kept at {self.root}")
        else:
            shutil.rmtree(self.root, ignore_errors=True)


# --- measured child processes ------------------------------------------------------------------

@dataclass
class Measured:
    command: list
    returncode: int
    wall_seconds: float
    peak_rss_bytes: int  # max RSS of the child (and of any child of it that it waited for), from wait4
    timed_out: bool
    log: str
    tail: str

    def as_dict(self) -> dict:
        return asdict(self)


def run_measured(command: list, workspace: Workspace, name: str, timeout: float | None = None,
                 echo: bool = True, env: dict | None = None) -> Measured:
    """Run a command in the workspace, streaming its output to a log (and, with `echo`, to the console),
    and measure wall time and peak RSS with wait4 (the kernel's own accounting for that child)."""
    log_path = workspace.logs / f"{name}.log"
    lines: list = []
    with open(log_path, "w") as log:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=workspace.root, env=env or workspace.env(), stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, start_new_session=True)
        timed_out = threading.Event()

        def kill():
            timed_out.set()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, kill) if timeout else None
        if timer:
            timer.start()
        try:
            for line in process.stdout:
                log.write(line)
                lines.append(line)
                del lines[:-40]
                if echo and line.strip():
                    print(f"    | {line.rstrip()}", flush=True)
            _, status, usage = os.wait4(process.pid, 0)
            wall = time.perf_counter() - started
        finally:
            if timer:
                timer.cancel()
        process.returncode = os.waitstatus_to_exitcode(status)
    return Measured(command=[str(c) for c in command], returncode=process.returncode, wall_seconds=wall,
                    peak_rss_bytes=usage.ru_maxrss * 1024, timed_out=timed_out.is_set(), log=str(log_path),
                    tail="".join(lines[-15:]))


@contextlib.contextmanager
def without_mlflow_advice(*phrases):
    """Hide MLflow's advice warnings containing any of `phrases` (e.g. to add type hints: our input contract
    is the signature plus the ledger contract). A filter cannot do it: MLflow's load and log functions put a
    'once' filter for UserWarning in front of every other, so the display is what gets filtered."""
    import warnings

    with warnings.catch_warnings():  # restores showwarning afterwards
        shown = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            if not any(phrase in str(message) for phrase in phrases):
                shown(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        yield


def load_pyfunc(uri: str):
    import mlflow

    with without_mlflow_advice("Add type hints to the `predict` method"):
        return mlflow.pyfunc.load_model(uri)
