"""What a tracking server with authentication (team mode) says when it refuses a request, in one line.

MLflow's client raises an MlflowException whose message carries the HTTP status ("failed with error code 403 != 200.
Response body: 'Permission denied'"). `refusal` turns a 401 or 403 into words a user can act on; anything else is
not ours to explain (None).
"""

from __future__ import annotations

import contextlib
import os
import re

from mlflow.exceptions import MlflowException

STATUS = re.compile(r"error code (\d{3}) != ")
SETUP = "python -m team_mode.users setup"


def http_status(error: MlflowException) -> int | None:
    match = STATUS.search(str(error.message))
    if match:
        return int(match.group(1))
    status = error.get_http_status_code()
    return status if status in (401, 403) else None


def refusal(error: Exception) -> str | None:
    """'user reader was refused (403 Permission denied)...' for a 401 or 403 from the server, else None."""
    if not isinstance(error, MlflowException):
        return None
    status, user = http_status(error), os.environ.get("MLFLOW_TRACKING_USERNAME")
    if status == 401:
        who = f"user {user!r}" if user else "no user (MLFLOW_TRACKING_USERNAME is not set)"
        return (f"the tracking server did not accept the credentials of {who} (401 Unauthorized): set "
                f"MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD to an account of this server")
    if status == 403:
        return lacking("403 Permission denied")
    return None


def lacking(why: str) -> str:
    return (f"user {os.environ.get('MLFLOW_TRACKING_USERNAME') or '(none)'!r} does not have that permission ({why}); "
            f"an admin grants it ({SETUP} gives the training account what training and registering need)")


class Withheld(Exception):
    """The server answered but left out what this account may not read: MLflow's auth app blanks a model version's
    source run for an account without access to runs, instead of refusing the request."""


class AccessRefused(PermissionError):
    """The tracking server refused the credentials (401) or the permission (403); the message says what is needed."""


@contextlib.contextmanager
def needing(what: str):
    """Inside, a 401 or 403 from the tracking server becomes AccessRefused('<what>: <why refused>'), e.g.
    what = "promote titans-finance-amount-prediction needs MANAGE on that registered model"."""
    try:
        yield
    except Withheld as withheld:
        raise AccessRefused(f"{what}: {lacking(str(withheld))}") from None
    except MlflowException as error:
        refused = refusal(error)
        if refused is None:
            raise
        raise AccessRefused(f"{what}: {refused}") from None
