"""Team mode: one authenticated MLflow tracking server and registry for everyone.

`server` starts `mlflow server` with MLflow's basic-auth app (users, and per-experiment and per-registered-model
permissions) and refuses to start without an admin password and a secret key; `users` sets up the three roles the
work needs (admin, a training account, a read-only serving account) with MLflow's auth client, and rotates
passwords. `docker-compose.yml` runs the server; README.md, "Team mode", says how.
"""
