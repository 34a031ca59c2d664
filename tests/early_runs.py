"""Slow commands some tests wait for (`mlflow run` on a ledger), started when the session starts instead of when the
first such test asks, so that they train while other tests run: on a 2-core machine one core trains in the
background while the other runs the tests.

A test module (or conftest, for every module) registers what its fixture needs with `@starts_early("<fixture>")`
on a function that prepares the runs (a folder, a ledger, a store; in the main thread) and returns them, not
started, by key. When a collected test uses that fixture, conftest's `early_runs` calls the function at the
session's start and runs every such command, one at a time in the order registered, on a thread of its own; the
fixture finds its runs at `early_runs[<the function>]`, and a run's `result()` waits for the command and returns
what `subprocess.run` would have. Modules with a test that waits for an early run are run last, so the others run
while it trains. Nothing starts for a session that selects none of those tests (the fast tier), and a command still
running when the session ends is stopped by PID.
"""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

from tools.servers import stop_group

PLANS: dict = {}  # (module, fixture) -> prepare(tmp_path_factory) -> {key: EarlyRun}
CONFTEST = "tests.conftest"  # its fixtures serve every test module


def starts_early(fixture: str):
    """Register `prepare(tmp_path_factory) -> {key: EarlyRun}` as what `fixture` of the calling module needs."""
    def register(prepare):
        PLANS[(prepare.__module__, fixture)] = prepare
        return prepare
    return register


def plans_of(item) -> list:
    """The preparing functions of the early runs a collected test waits for, through the fixtures it uses."""
    module = getattr(item, "module", None)  # a test function's, or None
    places = (CONFTEST, module.__name__ if module else None)
    fixtures = getattr(item, "fixturenames", ())
    return [prepare for (planned_in, fixture), prepare in PLANS.items() if fixture in fixtures and planned_in in places]


class EarlyRun:
    """A command run later in the background, its output in files (a pipe nobody reads would block it). With several
    commands (e.g. `mlflow experiments create`, then `mlflow run`) they run in order until one fails, and the
    result is the last one run's."""

    def __init__(self, *commands: list, cwd: Path, env: dict, output_dir: Path, timeout: float = 900):
        self.commands = [[str(part) for part in command] for command in commands]
        self.cwd = cwd
        self.env = env
        self.output_dir = Path(output_dir)
        self.timeout = timeout
        self.process: subprocess.Popen | None = None
        self._last = None  # (command, its stdout file, its stderr file, its exit status)
        self._done = threading.Event()
        self._abandoned = False
        self._lock = threading.Lock()  # a command is either started or abandoned, never both

    def execute(self) -> None:
        """Run the commands to their end (or the first failure, or a timeout); on the background thread."""
        try:
            for number, command in enumerate(self.commands, 1):
                out, err = (self.output_dir / f"early-run-{number}.{kind}" for kind in ("out", "err"))
                with open(out, "w") as stdout, open(err, "w") as stderr:
                    with self._lock:
                        if self._abandoned:
                            return
                        self.process = subprocess.Popen(command, cwd=self.cwd, env=self.env, stdout=stdout,
                                                        stderr=stderr, start_new_session=True)
                    try:
                        status = self.process.wait(timeout=self.timeout)
                    except subprocess.TimeoutExpired:
                        stop_group(self.process)
                        stderr.write(f"\n(stopped after {self.timeout} s)\n")
                        status = self.process.returncode
                self._last = (command, out, err, status)
                if status != 0:
                    return
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
        """Wait for the commands; what `subprocess.run(..., capture_output=True, text=True)` returns for the last
        one run."""
        self._done.wait()
        if self._last is None or (self._last[3] == 0 and self._last[0] is not self.commands[-1]):
            raise AssertionError(f"{' '.join(self.commands[-1])} never ran: the session was stopped first")
        command, out, err, status = self._last
        result = subprocess.CompletedProcess(command, status, out.read_text(), err.read_text())
        if check and status != 0:
            raise AssertionError(f"{' '.join(command)} failed ({status}):\n{result.stdout}\n{result.stderr}")
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
