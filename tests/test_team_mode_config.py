"""Team mode's launcher and error messages, without a server: it refuses to start unauthenticated, secrets never
reach the command line, every account but the admin starts with nothing, and a 401 or 403 is one line."""

import configparser
import os
import stat
import subprocess
import sys

import pytest
from mlflow.exceptions import MlflowException

from pyfunc_models import access
from team_mode import server
from tests.conftest import REPO

GOOD = {server.ADMIN_PASSWORD: "an-admin-password", server.SECRET_KEY: "k" * 64,
        server.BACKEND_STORE: "postgresql://mlflow:db-secret@127.0.0.1:5432/mlflow",
        server.AUTH_DATABASE: "postgresql://mlflow:db-secret@127.0.0.1:5432/mlflow_auth"}


@pytest.mark.parametrize("missing", [server.ADMIN_PASSWORD, server.SECRET_KEY, server.BACKEND_STORE,
                                     server.AUTH_DATABASE])
def test_the_server_refuses_to_start_without_each_setting_and_says_which(missing):
    environ = {name: value for name, value in GOOD.items() if name != missing}
    result = subprocess.run([sys.executable, "-m", "team_mode.server"], cwd=REPO, env={"PATH": "/usr/bin:/bin",
                            **environ}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and f"{missing} (or {missing}_FILE) is not set" in result.stderr
    assert "Traceback" not in result.stderr and "an-admin-password" not in result.stderr


def test_a_short_admin_password_or_secret_key_is_refused():
    with pytest.raises(server.StartError, match="MLFLOW_AUTH_ADMIN_PASSWORD has 5 characters.*SECRET_KEY has 3"):
        server.settings({**GOOD, server.ADMIN_PASSWORD: "short", server.SECRET_KEY: "abc"})


def test_secrets_come_from_files_docker_secrets_write(tmp_path):
    (tmp_path / "admin").write_text("from-a-secret-file\n")
    environ = {**GOOD, f"{server.ADMIN_PASSWORD}_FILE": str(tmp_path / "admin")}
    environ.pop(server.ADMIN_PASSWORD)
    assert server.settings(environ)[server.ADMIN_PASSWORD] == "from-a-secret-file"
    with pytest.raises(server.StartError, match="_FILE names .* which is not a file"):
        server.settings({**environ, f"{server.ADMIN_PASSWORD}_FILE": str(tmp_path / "absent")})


def test_secrets_travel_in_the_environment_and_a_private_config_never_on_the_command_line():
    args = server.build_parser().parse_args(["--port", "5999"])
    argv, environ = server.command(args, server.settings(GOOD))
    assert "basic-auth" in argv and not any(secret in " ".join(argv) for secret in ("db-secret", "an-admin", "kkkk"))
    assert environ[server.ADMIN_PASSWORD] == GOOD[server.ADMIN_PASSWORD]
    assert environ[server.BACKEND_STORE] == GOOD[server.BACKEND_STORE] and server.AUTH_DATABASE not in environ
    config_path = environ["MLFLOW_AUTH_CONFIG_PATH"]
    assert stat.S_IMODE(os.stat(config_path).st_mode) == 0o600
    parsed = configparser.ConfigParser()
    parsed.read(config_path)
    assert parsed["mlflow"]["default_permission"] == "NO_PERMISSIONS"
    assert parsed["mlflow"]["auth_cache_ttl_seconds"] == str(server.AUTH_CACHE_SECONDS)
    assert parsed["mlflow"]["database_uri"] == GOOD[server.AUTH_DATABASE]
    assert "admin_password" not in parsed["mlflow"]  # from the environment only


def _refused(status: int, body: str) -> MlflowException:
    return MlflowException(f"API request to endpoint /api/2.0/mlflow/registered-models/alias failed with error code "
                           f"{status} != 200. Response body: '{body}'")


def test_a_403_is_one_line_naming_the_user_and_the_permission_needed(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "reader")
    with pytest.raises(access.AccessRefused) as refused:
        with access.needing("promote m needs MANAGE on the registered model"):
            raise _refused(403, "Permission denied")
    message = str(refused.value)
    assert message.startswith("promote m needs MANAGE on the registered model: user 'reader' does not have")
    assert "403" in message and "\n" not in message


def test_a_401_says_to_set_the_credentials_and_other_errors_pass_through(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "trainer")
    assert "did not accept the credentials of user 'trainer' (401" in access.refusal(_refused(401, "not authenticated"))
    with pytest.raises(MlflowException, match="error code 500"):
        with access.needing("anything"):
            raise _refused(500, "boom")


def test_what_the_server_withholds_is_said_as_a_missing_permission(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "reader")
    with pytest.raises(access.AccessRefused, match=r"^promote m needs MANAGE: user 'reader' does not have that "
                                                   r"permission \(the server withheld the source run\)"):
        with access.needing("promote m needs MANAGE"):
            raise access.Withheld("the server withheld the source run")
