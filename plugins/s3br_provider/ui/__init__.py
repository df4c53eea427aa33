"""The Backups view: an Airflow plugin with a FastAPI app on the api-server at ``/s3br/``."""
