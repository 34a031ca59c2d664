"""Servers for the tests and the benchmarks: `mlflow models serve`, `mlflow server` or any command that listens on
127.0.0.1, started in a session of its own on a free port, ready when a URL of it answers 200, its output in a
log file (whose tail is what a start-up failure says), and its whole process group stopped by PID afterwards,
whatever the caller did in between.

    with served_model("models:/name@champion", cwd=folder, env=env) as server:
        requests.post(f"{server.url}/invocations", ...)

    with running(*(model_server(uri, cwd=folder, env=env) for uri in uris)) as servers:  # started side by side
        ...
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

MLFLOW_CLI = str(Path(sys.executable).with_name("mlflow"))
HOST = "127.0.0.1"
STARTUP_TIMEOUT = 300
LOG_TAIL_CHARS = 3000


class ServerError(RuntimeError):
    """A server that did not start: it exited, or did not answer in time. The message ends with its log's tail."""


class ServerExited(ServerError):
    """The server's process ended before it answered."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def stop_group(process: subprocess.Popen, first_signal=signal.SIGTERM, timeout: float = 20) -> None:
    """Stop a process started in its own session, and its group: `first_signal`, then SIGKILL after `timeout`."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, first_signal)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


class Server:
    """One server command listening on `port` of 127.0.0.1; `url` is its base URL, ready when `ready_path` answers."""

    def __init__(self, command: list, port: int, *, cwd, env: dict, log_path: Path, ready_path: str = "/ping"):
        self.command = [str(part) for part in command]
        self.port = port
        self.cwd = cwd
        self.env = env
        self.log_path = Path(log_path)
        self.url = f"http://{HOST}:{port}"
        self.ready_url = f"{self.url}{ready_path}"
        self.process: subprocess.Popen | None = None
        self._log = None

    def start(self) -> None:
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(self.command, cwd=self.cwd, env=self.env, stdout=self._log,
                                        stderr=subprocess.STDOUT, start_new_session=True)

    def ready(self) -> bool:
        """Whether it answers now; a ServerExited if it never will."""
        if self.process.poll() is not None:
            raise ServerExited(self._failure(f"exited before answering (exit status {self.process.returncode})"))
        with contextlib.suppress(requests.ConnectionError, requests.Timeout):  # not up yet, or busy starting
            return requests.get(self.ready_url, timeout=2).status_code == 200
        return False

    def stop(self) -> None:
        if self.process is not None:
            stop_group(self.process)
            # Workers of a multi-process server may outlive their parent for a moment: make sure the group is gone.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        if self._log is not None:
            self._log.close()

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-LOG_TAIL_CHARS:]
        return ""

    def _failure(self, what: str) -> str:
        return f"{' '.join(self.command[:5])} ... {what}; the end of {self.log_path}:\n{self.log_tail()}"


@contextlib.contextmanager
def running(*servers: Server, startup_timeout: float = STARTUP_TIMEOUT):
    """Start the servers side by side, wait until every one answers, and stop them all afterwards. Yields them."""
    try:
        for server in servers:
            server.start()
        deadline = time.monotonic() + startup_timeout
        waiting = list(servers)
        while waiting:
            waiting = [server for server in waiting if not server.ready()]
            if waiting and time.monotonic() > deadline:
                raise ServerError(waiting[0]._failure(f"did not answer {waiting[0].ready_url} in {startup_timeout} s"))
            if waiting:
                time.sleep(0.2)
        yield servers
    finally:
        for server in servers:
            server.stop()


def model_server(model_uri: str, *, cwd, env: dict, workers: int = 1, log_dir=None, name: str = "serve") -> Server:
    """`mlflow models serve --env-manager local` of `model_uri` on a free port (not started); its log is
    `<log_dir, else cwd>/<name>-<port>.log`."""
    port = free_port()
    command = [MLFLOW_CLI, "models", "serve", "-m", model_uri, "-h", HOST, "-p", port, "--env-manager", "local",
               "--workers", workers]
    return Server(command, port, cwd=cwd, env=env, log_path=Path(log_dir or cwd) / f"{name}-{port}.log")


@contextlib.contextmanager
def served_model(model_uri: str, *, cwd, env: dict, workers: int = 1, log_dir=None, name: str = "serve",
                 attempts: int = 1, startup_timeout: float = STARTUP_TIMEOUT):
    """A model served on a free port until the block ends; yields its Server (`.url`, `.process`). With
    `attempts` > 1 a server that exits before answering is started again, on another port, and that is said."""
    for attempt in range(1, attempts + 1):
        server = model_server(model_uri, cwd=cwd, env=env, workers=workers, log_dir=log_dir, name=name)
        answered = False
        try:
            with running(server, startup_timeout=startup_timeout):
                answered = True
                yield server
            return
        except ServerExited:
            if answered or attempt == attempts:
                raise
            print(f"{name}: the server exited before answering (its log: {server.log_path}); starting it once more",
                  flush=True)
