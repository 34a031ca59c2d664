"""Set up the team server's users, with MLflow's auth client; run as the admin.

    export MLFLOW_TRACKING_URI=http://127.0.0.1:5000
    export MLFLOW_TRACKING_USERNAME=admin MLFLOW_TRACKING_PASSWORD=...       # the admin's
    export TITANS_TRAINER_PASSWORD=... TITANS_READER_PASSWORD=...             # 12 characters or more each
    python -m team_mode.users setup
    python -m team_mode.users password --user reader                           # new one from TITANS_NEW_PASSWORD

`setup` makes, or brings up to date (it can be run again), the roles the work needs:

- `admin`, made by the server on its first start: everything, including users.
- a training account (`trainer`): creates runs in the project's experiment, registers versions of the four
  registered models and moves their aliases (`mlflow run .`, `register`).
- a read-only serving account (`reader`): loads `models:/<name>@champion` (`mlflow models serve`, `batch_score`)
  and nothing more: it cannot read a run, its metrics or its artifacts (the evaluation ledgers hold a company's
  transactions), nor move an alias.

The experiment and the registered models are made here, by the admin, so the grants have something to name. A
password is read from the environment or typed at a prompt, never taken from an argument (shell history, `ps`)
and never printed.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys

from mlflow.exceptions import MlflowException
from mlflow.server import get_app_client
from mlflow.tracking import MlflowClient

from pyfunc_models import config
from pyfunc_models.access import http_status, refusal
from pyfunc_models.model_types import MODEL_NAMES

TRAINER, READER = "trainer", "reader"
# What each account may do (MLflow's permissions: READ < USE < EDIT < MANAGE; DENY overrides what a parent grants).
# The trainer's MANAGE on a registered model is what moving its aliases takes (register, promote, rollback, archive).
TRAINER_GRANTS = {"experiment": "EDIT", "registered_model": "MANAGE"}
# The reader may read the experiment only so far as a registered version's logged model needs it (MLflow checks
# a logged model's experiment); every run and trace in it is denied.
READER_GRANTS = {"experiment": "READ", "registered_model": "READ"}
READER_DENIED = ("run", "trace")
PASSWORD_VARIABLES = {TRAINER: "TITANS_TRAINER_PASSWORD", READER: "TITANS_READER_PASSWORD"}
NEW_PASSWORD = "TITANS_NEW_PASSWORD"


class SetupError(ValueError):
    """What stops the setup, in one line a user can act on."""


def password_for(variable: str, who: str) -> str:
    value = os.environ.get(variable)
    if value:
        return value
    if not sys.stdin.isatty():
        raise SetupError(f"no password for {who}: set {variable} (12 characters or more)")
    return getpass.getpass(f"password for {who}: ")


def _grant(auth, username: str, resource_type: str, resource_id: str, permission: str) -> str:
    """Grant, or change an existing grant to, `permission`; returns what was done, for the log."""
    try:
        auth.grant_user_permission(username, resource_type, resource_id, permission)
        return "granted"
    except MlflowException as error:
        if "already exists" not in str(error):
            raise
        auth.revoke_user_permission(username, resource_type, resource_id)
        auth.grant_user_permission(username, resource_type, resource_id, permission)
        return "set"


def _user(auth, username: str, password: str) -> str:
    try:
        auth.get_user(username)
    except MlflowException as error:
        if refusal(error):  # the admin's own credentials were refused: not a missing user
            raise
        auth.create_user(username, password)
        return "created"
    return f"exists (password unchanged; to change it: python -m team_mode.users password --user {username})"


def setup(tracking_uri: str, experiment_name: str = config.EXPERIMENT_NAME, trainer: str = TRAINER,
          reader: str = READER, log=print) -> None:
    auth, client = get_app_client("basic-auth", tracking_uri=tracking_uri), MlflowClient(tracking_uri)
    passwords = {name: password_for(PASSWORD_VARIABLES[role], name) for role, name in ((TRAINER, trainer),
                                                                                          (READER, reader))}
    for name, password in passwords.items():
        log(f"user {name}: {_user(auth, name, password)}")
    experiment = client.get_experiment_by_name(experiment_name)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(experiment_name)
    for name in MODEL_NAMES.values():
        if not client.search_registered_models(f"name = '{name}'"):
            client.create_registered_model(name)
    for user, grants in ((trainer, TRAINER_GRANTS), (reader, READER_GRANTS)):
        done = _grant(auth, user, "experiment", experiment_id, grants["experiment"])
        log(f"{user}: {grants['experiment']} on experiment {experiment_name} ({done})")
        for name in MODEL_NAMES.values():
            done = _grant(auth, user, "registered_model", name, grants["registered_model"])
        log(f"{user}: {grants['registered_model']} on {', '.join(MODEL_NAMES.values())}")
    for resource_type in READER_DENIED:
        _grant(auth, reader, resource_type, "*", "DENY")
    log(f"{reader}: DENY on every {' and every '.join(READER_DENIED)}")


def rotate(tracking_uri: str, username: str, log=print) -> None:
    get_app_client("basic-auth", tracking_uri=tracking_uri).update_user_password(
        username, password_for(NEW_PASSWORD, f"{username} (new)"))
    log(f"password of {username} changed; clients using it need the new one in MLFLOW_TRACKING_PASSWORD")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", ""),
                        help="the team server (default: MLFLOW_TRACKING_URI)")
    actions = parser.add_subparsers(dest="action", required=True)
    made = actions.add_parser("setup", help="make the training and serving accounts and grant their permissions")
    made.add_argument("--experiment-name", default=config.EXPERIMENT_NAME)
    made.add_argument("--trainer", default=TRAINER, help="the training account's user name")
    made.add_argument("--reader", default=READER, help="the serving account's user name")
    changed = actions.add_parser("password", help="change a user's password (admin's included)")
    changed.add_argument("--user", required=True)
    return parser


def main(argv=None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.tracking_uri.startswith(("http://", "https://")):
        parser.error("the team server's URL is needed: --tracking-uri http://host:5000 or MLFLOW_TRACKING_URI")
    try:
        if args.action == "setup":
            setup(args.tracking_uri, args.experiment_name, args.trainer, args.reader)
        else:
            rotate(args.tracking_uri, args.user)
    except (SetupError, MlflowException) as error:
        message = refusal(error) or (error.message if isinstance(error, MlflowException) else str(error))
        if isinstance(error, MlflowException) and http_status(error) == 403:
            message = f"only the admin manages users and permissions (MLFLOW_TRACKING_USERNAME=admin); {message}"
        print(f"error: {args.action}: {message.splitlines()[0]}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
