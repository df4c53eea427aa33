"""Provider metadata read by Airflow's ProvidersManager through the entry point."""

from __future__ import annotations

from typing import Any

from s3br_provider import __version__


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-s3br",
        "name": "s3br: S3 backup and restore",
        "description": "Back up S3 buckets into backup buckets and restore them into new buckets.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "s3br",
                "external-doc-url": "https://github.com/s3br/s3br",
                "tags": ["aws"],
            }
        ],
        "operators": [
            {
                "integration-name": "s3br",
                "python-modules": [
                    "s3br_provider.operators.base",
                    "s3br_provider.operators.validate",
                    "s3br_provider.operators.plan",
                    "s3br_provider.operators.diff",
                    "s3br_provider.operators.copy_batch",
                    "s3br_provider.operators.chunks",
                    "s3br_provider.operators.idle",
                    "s3br_provider.operators.tag_deleted",
                    "s3br_provider.operators.report",
                    "s3br_provider.operators.restore",
                    "s3br_provider.operators.restore_report",
                    "s3br_provider.operators.drill",
                    "s3br_provider.operators.events_setup",
                    "s3br_provider.operators.events_batch",
                ],
            }
        ],
        "sensors": [
            {"integration-name": "s3br", "python-modules": ["s3br_provider.sensors.glacier_restore"]}
        ],
        "triggers": [
            {
                "integration-name": "s3br",
                "python-modules": [
                    "s3br_provider.triggers.glacier_restore",
                    "s3br_provider.triggers.sqs_events",
                ],
            }
        ],
        "plugins": [{"name": "s3br", "plugin-class": "s3br_provider.ui.plugin.S3brPlugin"}],
        "config": {
            "s3br": {
                "description": "Tuning of the s3br backup and restore DAGs.",
                "options": {
                    "target_keys_per_partition": {
                        "description": "Keys per mapped key partition when planning a run.",
                        "version_added": "0.1.0",
                        "type": "integer",
                        "example": "5000",
                        "default": "5000",
                    },
                    "copy_chunk_keys": {
                        "description": "Most keys one copy task copies: a partition's diff with more to "
                        "copy writes its copy manifest in chunks of this many keys, copied by the mapped "
                        "copy_chunk task. Unset: twice target_keys_per_partition.",
                        "version_added": "0.1.0",
                        "type": "integer",
                        "example": "10000",
                        "default": None,
                    },
                    "preload_sdk": {
                        "description": "Import boto3 and s3br and parse S3's model in an Airflow "
                        "process just before it first forks (scheduler, Celery worker, dag-processor), "
                        "so the task and parse processes it forks start with them.",
                        "version_added": "0.1.0",
                        "type": "boolean",
                        "example": "False",
                        "default": "True",
                    },
                    "late_margin_minutes": {
                        "description": "The Backups view shows a pair as late when its last successful "
                        "backup is older than its DAG's schedule period plus this margin.",
                        "version_added": "0.1.0",
                        "type": "integer",
                        "example": "60",
                        "default": "60",
                    },
                },
            }
        },
        "hooks": [
            {
                "integration-name": "s3br",
                "python-modules": [
                    "s3br_provider.hooks.s3_bucket",
                    "s3br_provider.hooks.metrics",
                    "s3br_provider.hooks.direct_s3",
                    "s3br_provider.hooks.async_copies",
                    "s3br_provider.hooks.glacier_restore",
                    "s3br_provider.hooks.errors",
                    "s3br_provider.hooks.sdk_cache",
                    "s3br_provider.hooks.sqs_events",
                    "s3br_provider.hooks.s3_inventory",
                    "s3br_provider.hooks.deleted_index",
                    "s3br_provider.hooks.tag_probe",
                ],
            }
        ],
    }
