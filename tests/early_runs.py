"""Slow commands some tests wait for (`mlflow run` on a ledger), started when the session starts instead of when the
first such test asks, so that they train while other tests run: on a 2-core machine one core trains in the
background while the other runs the tests.

A test module registers what its fixture needs with `@starts_early("<fixture>")` on a function that prepares
the runs (a folder, a ledger, a store; in the main thread) and returns them, not started, by key. When a collected
test of that module uses that fixture, conftest's `early_runs` calls the function at the session's start and runs
every such command, one at a time, on a thread of its own; the fixture finds its runs at
`early_runs[<the function>]`, and a run's `result()` waits for the command and returns what `subprocess.run` would
have. Nothing starts for a session that selects none of those tests (the fast tier), and a command still running
when the session ends is stopped by PID.
"""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

from tools.servers import stop_group

PLANS: dict = {}  # (module, fixture) -> prepare(tmp_path_factory) -> {key: EarlyRun}


def starts_early(fixture: str):
    """Register `prepare(tmp_path_factory) -> {key: EarlyRun}` as what `fixture` of the calling module needs."""
    def register(prepare):
        PLANS[(prepare.__module__, fixture)] = prepare
        return prepare
    return register


class EarlyRun:
    """One command, run later in the background with its output in files (a pipe nobody reads would block it)."""

    def __init__(self, command: list, *, cwd: Path, env: dict, output_dir: Path, timeout: float = 900):
        self.command = [str(part) for part in command]
        self.cwd = cwd
        self.env = env
        self.output_dir = Path(output_dir)
        self.timeout = timeout
        self.process: subprocess.Popen | None = None
        self._stdout, self._stderr = self.output_dir / "early-run.out", self.output_dir / "early-run.err"
        self._returncode = None
        self._done = threading.Event()
        self._abandoned = False
        self._lock = threading.Lock()  # a command is either started or abandoned, never both

    def execute(self) -> None:
        """Run the command to its end (or its timeout); on the background thread."""
        try:
            with open(self._stdout, "w") as stdout, open(self._stderr, "w") as stderr:
                with self._lock:
                    if self._abandoned:
                        return
                    self.process = subprocess.Popen(self.command, cwd=self.cwd, env=self.env, stdout=stdout,
                                                    stderr=stderr, start_new_session=True)
                try:
                    self._returncode = self.process.wait(timeout=self.timeout)
                except subprocess.TimeoutExpired:
                    stop_group(self.process)
                    stderr.write(f"\n(stopped after {self.timeout} s)\n")
                    self._returncode = self.process.returncode
        finally:
            self._done.set()

    def abandon(self) -> None:
        """The session is over: stop the command if it runs, and let nobody wait for one that never will."""
        with self._lock:
            self._abandoned = True
        if self.process is not None and self.process.poll() is None:
            stop_group(self.process)
        self._done.set()

    def result(self, check: bool = True) -> subprocess.CompletedProcess:
        """Wait for the command; what `subprocess.run(..., capture_output=True, text=True)` returns."""
        self._done.wait()
        if self._returncode is None:
            raise AssertionError(f"{' '.join(self.command)} never ran: the session was stopped first")
        result = subprocess.CompletedProcess(self.command, self._returncode, self._stdout.read_text(),
                                             self._stderr.read_text())
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(self.command)} failed ({result.returncode}):\n{result.stdout}\n"
                                 f"{result.stderr}")
        return result


class Background:
    """Early runs, one after the other on a daemon thread, in the order given."""

    def __init__(self, runs: list):
        self.runs = runs
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._work, name="early-runs", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        for run in self.runs:
            if self._stopping.is_set():
                break
            run.execute()

    def stop(self) -> None:
        self._stopping.set()
        for run in self.runs:
            run.abandon()
        self._thread.join(timeout=60)
