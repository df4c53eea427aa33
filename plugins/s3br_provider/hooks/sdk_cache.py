"""One botocore data loader per process, and a way to fill it before Airflow forks tasks.

Each boto3 session starts with an empty loader, so each client re-reads and re-parses the
service model, endpoint rules and partitions from JSON: 0.1 to 0.4 s per client, paid by every
hook of every task. The loader only caches read-only model data (no credentials, no sockets), so
one loader can serve every session of the process, and a loader filled in a parent process serves
the tasks it forks.
"""

from __future__ import annotations

import sys
import threading
from types import FrameType
from typing import Any

_lock = threading.Lock()
_loader: Any = None

#: Dummy credentials for a client that never sends a request: real ones would be resolved
#: through the credential chain (environment, files, instance metadata) for nothing.
_UNUSED = "preload-only"


def share_loader(session: Any) -> Any:
    """Give a ``boto3.session.Session`` the process-wide data loader; return the session."""
    global _loader
    core = session._session  # boto3 keeps its botocore session here; boto3 has no public accessor
    with _lock:
        if _loader is None:
            _loader = core.get_component("data_loader")
        else:
            core.register_component("data_loader", _loader)
    return session


class FastClientSetupMixin:
    """For ``AwsBaseHook`` subclasses: a client in 15-30 ms instead of 0.15-0.4 s.

    Sessions share the process-wide loader, and the caller named in the User-Agent is found by
    walking frames, not by ``inspect.stack()``, which reads the source file of every frame.
    ``client_session`` keeps the session the latest client was built on, so its credentials
    can be reused without resolving them again (for a role: one more AssumeRole call).
    """

    client_session: Any = None

    def get_session(self, region_name: str | None = None, deferrable: bool = False) -> Any:
        session = super().get_session(region_name=region_name, deferrable=deferrable)  # type: ignore[misc]
        if deferrable:
            return session
        self.client_session = share_loader(session)
        return session

    def _get_caller(self, target_function_name: str = "execute") -> str:
        return calling_class_name(sys._getframe(1), target_function_name) or "Unknown"


def calling_class_name(frame: FrameType | None, function_name: str) -> str | None:
    """Class of ``self`` in the nearest frame running a method called ``function_name``."""
    while frame is not None:
        if frame.f_code.co_name == function_name and "self" in frame.f_locals:
            return type(frame.f_locals["self"]).__name__
        frame = frame.f_back
    return None


PRELOADED_MODULES = (
    "s3br_provider.hooks.metrics",
    "s3br_provider.hooks.s3_bucket",
    # What the shipped DAG files import: the dag-processor parses each file in a process it
    # forks, and Airflow pre-imports only the ``airflow.*`` modules a file names
    # (``[dag_processor] parsing_pre_import_modules``), so without these every parse, and every
    # task's parse of its DAG file, imports s3br's operators anew: 11 of 144 sampled CPU s of a
    # 30,000-object backup (bench/results/profile.md).
    "s3br_provider.params",
    "s3br_provider.task_groups",
    "s3br_provider.operators.events_batch",
    "s3br_provider.triggers.sqs_events",
)


def preload(services: tuple[str, ...] = ("s3", "cloudwatch")) -> None:
    """Import the AWS SDK, the hooks and the modules the DAG files use, and load the models of
    ``services``, opening no connection: safe in a scheduler, dag-processor or worker process
    before it forks tasks or parse processes.

    ``s3br_provider.fork_preload`` calls it before an Airflow process first forks, so
    LocalExecutor and Celery task processes, and the dag-processor's parse processes, start
    with boto3 and s3br imported and S3's model parsed.
    """
    import importlib

    import boto3

    for module in PRELOADED_MODULES:
        importlib.import_module(module)

    session = share_loader(boto3.session.Session())
    for service in services:
        session.client(
            service,
            region_name="us-east-1",
            aws_access_key_id=_UNUSED,
            aws_secret_access_key=_UNUSED,
        )
