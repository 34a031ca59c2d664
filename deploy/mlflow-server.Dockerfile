# The team's tracking server: MLflow with the PostgreSQL driver SQLAlchemy 2.1 loads for postgresql:// URIs.
FROM python:3.11.7-slim
RUN pip install --no-cache-dir mlflow==3.17.2 "psycopg[binary]==3.3.9"
EXPOSE 5000
