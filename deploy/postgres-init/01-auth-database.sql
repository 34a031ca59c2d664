-- MLflow's basic-auth app keeps its users and permissions in a database of its own beside the tracking data.
-- PostgreSQL's image runs this once, when it initialises an empty data volume.
CREATE DATABASE mlflow_auth OWNER mlflow;
