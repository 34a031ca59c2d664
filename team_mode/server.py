"""Start the team's tracking server: `mlflow server` with MLflow's basic-auth app, its users and permissions kept in
PostgreSQL beside the tracking data.

    export MLFLOW_AUTH_ADMIN_PASSWORD=...          # or MLFLOW_AUTH_ADMIN_PASSWORD_FILE=/run/secrets/...
    export MLFLOW_FLASK_SERVER_SECRET_KEY=...      # or MLFLOW_FLASK_SERVER_SECRET_KEY_FILE=...
    export MLFLOW_BACKEND_STORE_URI=postgresql://mlflow:...@127.0.0.1:5432/mlflow
    export MLFLOW_AUTH_DATABASE_URI=postgresql://mlflow:...@127.0.0.1:5432/mlflow_auth
    python -m team_mode.server --artifacts-destination ./mlartifacts --host 127.0.0.1 --port 5000

It refuses to start, with one line saying what is missing, without an admin password, a secret key, a backend
store or an auth database: nothing secret has a default, and none is ever read from the repository. The first
start against an empty auth database creates the `admin` user with the admin password; after that the password
is changed with `python -m team_mode.users password --user admin` (the variable is then ignored).

Every user but the admin starts with no permission at all (`default_permission = NO_PERMISSIONS`): what each may do
is granted by `python -m team_mode.users setup`. Basic auth sends the password with every request: on any network
but loopback, put the server behind a reverse proxy that terminates TLS (README.md, "Team mode").

This module imports nothing but the standard library, so it runs in the server's own small image
(deploy/mlflow-server.Dockerfile).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

ADMIN_PASSWORD = "MLFLOW_AUTH_ADMIN_PASSWORD"
SECRET_KEY = "MLFLOW_FLASK_SERVER_SECRET_KEY"
BACKEND_STORE = "MLFLOW_BACKEND_STORE_URI"
AUTH_DATABASE = "MLFLOW_AUTH_DATABASE_URI"
JOB_EXECUTION = "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"
MIN_PASSWORD_LENGTH = 12  # MLflow's own rule for a user's password
MIN_SECRET_KEY_LENGTH = 32  # the Flask session/CSRF key: long and random (python -c "import secrets; print(secrets.token_hex())")
# Users get only what is granted to them; see team_mode/users.py for the roles.
AUTH_CONFIG = """[mlflow]
default_permission = NO_PERMISSIONS
database_uri = {database_uri}
admin_username = admin
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
auth_cache_ttl_seconds = {auth_cache_seconds}
"""
# Without it every request re-derives the password hash (about 0.09 s here): one `mlflow run` of the main job makes
# some 900 requests. With it a password change or a deleted user reaches the other server workers only after this
# many seconds (MLflow's documented trade-off).
AUTH_CACHE_SECONDS = 60


class StartError(ValueError):
    """The server cannot start as configured; the message says what to set."""


def secret(name: str, environ=os.environ) -> str | None:
    """A secret from the environment (`NAME`) or from a file it names (`NAME_FILE`, e.g. a Docker secret)."""
    if environ.get(f"{name}_FILE"):
        path = Path(environ[f"{name}_FILE"])
        if not path.is_file():
            raise StartError(f"{name}_FILE names {path}, which is not a file")
        return path.read_text().strip() or None
    return environ.get(name) or None


def settings(environ=os.environ) -> dict:
    """What the server needs from its environment, checked: StartError naming each thing missing."""
    found = {name: secret(name, environ) for name in (ADMIN_PASSWORD, SECRET_KEY, BACKEND_STORE, AUTH_DATABASE)}
    problems = [f"{name} (or {name}_FILE) is not set" for name, value in found.items() if value is None]
    if found[ADMIN_PASSWORD] is not None and len(found[ADMIN_PASSWORD]) < MIN_PASSWORD_LENGTH:
        problems.append(f"{ADMIN_PASSWORD} has {len(found[ADMIN_PASSWORD])} characters; MLflow needs at least "
                        f"{MIN_PASSWORD_LENGTH}")
    if found[SECRET_KEY] is not None and len(found[SECRET_KEY]) < MIN_SECRET_KEY_LENGTH:
        problems.append(f"{SECRET_KEY} has {len(found[SECRET_KEY])} characters; use at least {MIN_SECRET_KEY_LENGTH} "
                        f"random ones: python -c 'import secrets; print(secrets.token_hex())'")
    if problems:
        raise StartError("the team server will not start without authentication: " + "; ".join(problems))
    return found


def command(args, found: dict) -> tuple[list, dict]:
    """The `mlflow server` command and its environment: secrets travel in the environment, never on the
    command line (where `ps` shows them)."""
    folder = Path(tempfile.mkdtemp(prefix="titans-auth-"))  # 0700: only this user reads the auth database's URI
    config = folder / "basic_auth.ini"
    config.write_text(AUTH_CONFIG.format(database_uri=found[AUTH_DATABASE].replace("%", "%%"),
                                         auth_cache_seconds=AUTH_CACHE_SECONDS))
    config.chmod(0o600)
    mlflow = shutil.which("mlflow") or str(Path(sys.executable).with_name("mlflow"))
    argv = [mlflow, "server", "--app-name", "basic-auth",
            "--artifacts-destination", args.artifacts_destination, "--serve-artifacts",
            "--host", args.host, "--port", str(args.port), "--workers", str(args.workers)]
    # MLflow's server-side job runner (GenAI scorers, prompt optimisation: five huey worker processes) does nothing
    # for this project; off unless asked for, it saves their memory and start-up.
    environ = {JOB_EXECUTION: "false", **os.environ, "MLFLOW_AUTH_CONFIG_PATH": str(config),
               ADMIN_PASSWORD: found[ADMIN_PASSWORD], SECRET_KEY: found[SECRET_KEY], BACKEND_STORE: found[BACKEND_STORE]}
    for name in (ADMIN_PASSWORD, SECRET_KEY, BACKEND_STORE, AUTH_DATABASE):
        environ.pop(f"{name}_FILE", None)
    environ.pop(AUTH_DATABASE, None)  # it is in the config file; MLflow does not read this variable
    return argv, environ


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifacts-destination", default="./mlartifacts",
                        help="where the server keeps artifacts it proxies (models, plots)")
    parser.add_argument("--host", default="127.0.0.1", help="127.0.0.1 unless a TLS proxy on this host fronts it")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=2)
    return parser


def main(argv=None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        found = settings()
    except StartError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    program, environ = command(args, found)
    print(f"team server: basic auth on http://{args.host}:{args.port}, users and permissions in the auth database",
          flush=True)
    os.execve(program[0], program, environ)  # the server takes this process's PID: stop it by that PID


if __name__ == "__main__":
    main()
