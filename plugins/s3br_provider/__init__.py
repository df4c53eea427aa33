"""s3br: S3 backup and restore as an Apache Airflow provider."""

from __future__ import annotations

__version__ = "0.1.0"
