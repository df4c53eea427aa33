"""Checks that run against a live Airflow cluster started by ``scripts/e2e-cluster``."""
