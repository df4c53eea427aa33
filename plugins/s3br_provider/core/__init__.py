"""Pure logic of s3br: no Airflow and no boto3 imports, so it is fast to test."""
