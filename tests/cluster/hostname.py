"""``[core] hostname_callable`` for several Celery workers on one host.

``scripts/e2e-cluster`` starts two workers on the same machine; each gets its own
``S3BR_WORKER_NAME`` so task instances record which worker ran them.
"""

from __future__ import annotations

import os
import socket


def from_env() -> str:
    """Return ``$S3BR_WORKER_NAME``, or the host's FQDN when it is not set."""
    return os.environ.get("S3BR_WORKER_NAME") or socket.getfqdn()
