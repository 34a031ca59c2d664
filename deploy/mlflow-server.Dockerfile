# The team's tracking server: MLflow with its basic-auth app (mlflow[auth]: Flask-WTF) and the PostgreSQL driver
# SQLAlchemy 2.1 loads for postgresql:// URIs, started by team_mode/server.py (standard library only), which refuses
# to start without an admin password and a secret key. Built from the repository root (docker-compose.yml).
FROM python:3.11.7-slim
RUN pip install --no-cache-dir "mlflow[auth]==3.17.2" "Flask-WTF==1.3.0" "psycopg[binary]==3.3.9"
WORKDIR /srv
COPY team_mode/__init__.py team_mode/server.py team_mode/
RUN useradd --system --no-create-home mlflow && mkdir /mlartifacts && chown mlflow /mlartifacts
USER mlflow
EXPOSE 5000
