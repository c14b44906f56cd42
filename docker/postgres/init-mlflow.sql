-- Runs once, when the postgres service of docker/compose.yaml initialises its data volume:
-- MLflow's backend store lives next to Airflow's metadata database, owned by the same user.
CREATE DATABASE mlflow OWNER airflow;
