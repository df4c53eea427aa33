"""Checks that the pieces of the docker-compose deployment fit together.

These tests read docker-compose.yaml, docker/Dockerfile and docker/minio-init.sh
as text and YAML; they need neither Docker nor a network.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yaml"
DOCKERFILE = REPO_ROOT / "docker" / "Dockerfile"

EXPECTED_SERVICES = {
    "postgres",
    "redis",
    "minio",
    "minio-init",
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker-1",
    "airflow-worker-2",
}
ONE_SHOT_SERVICES = {"airflow-init", "minio-init"}
AIRFLOW_VERSION = "3.3.2"

# ${VAR}, ${VAR:-default} or ${VAR-default}, but not the escaped $${VAR}.
INTERPOLATION = re.compile(r"(?<!\$)\$\{(?P<name>\w+)(?::?-(?P<default>[^}]*))?\}")
AWS_ACCESS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")


# --- helpers -----------------------------------------------------------------


def load_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def services() -> dict[str, dict[str, Any]]:
    return load_compose()["services"]


def interpolate(value: str) -> str:
    """Resolve compose variables as if none were set in the environment."""
    resolved = INTERPOLATION.sub(lambda m: m.group("default") or "", value)
    return resolved.replace("$$", "$")


def airflow_image() -> str:
    return load_compose()["x-airflow-common"]["image"]


def airflow_services() -> dict[str, dict[str, Any]]:
    image = airflow_image()
    return {name: svc for name, svc in services().items() if svc.get("image") == image}


def airflow_env(name: str) -> str:
    """A variable of the shared Airflow environment, interpolated."""
    return interpolate(str(load_compose()["x-airflow-common"]["environment"][name]))


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    """Map each dependency to its condition (the short list form means service_started)."""
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in deps.items()}


def container_ports(service: dict[str, Any]) -> set[int]:
    """Container-side ports that a service publishes or exposes."""
    ports: set[int] = set()
    for entry in service.get("ports", []) + service.get("expose", []):
        if isinstance(entry, dict):
            ports.add(int(entry["target"]))
        else:
            ports.add(int(str(entry).split("/")[0].rsplit(":", 1)[-1]))
    return ports


def has_healthcheck(service: dict[str, Any]) -> bool:
    healthcheck = service.get("healthcheck")
    return bool(healthcheck) and not healthcheck.get("disable", False)


def image_tag(image: str) -> str | None:
    """The tag of an image reference, or None if it has none (or only a digest)."""
    name = image.split("@", 1)[0]
    last_part = name.rsplit("/", 1)[-1]
    return last_part.split(":", 1)[1] if ":" in last_part else None


def dockerfile_instructions(keyword: str) -> list[str]:
    """Arguments of every instruction with this keyword, continuation lines joined."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    prefix = keyword.upper() + " "
    return [
        line.strip()[len(prefix) :] for line in text.splitlines() if line.strip().upper().startswith(prefix)
    ]


def host_path(volume: str) -> Path:
    source = interpolate(volume).split(":", 1)[0]
    return (COMPOSE_FILE.parent / source).resolve()


def mount_source(service: dict[str, Any], target: str) -> Path:
    for volume in service.get("volumes", []):
        if interpolate(volume).split(":")[1] == target:
            return host_path(volume)
    raise AssertionError(f"nothing is mounted at {target}")


def as_text(value: str | list[str] | None) -> str:
    """A compose command or entrypoint (string or list form) as one string."""
    return "\n".join(value) if isinstance(value, list) else value or ""


def minio_init_script() -> str:
    """What minio-init runs: its entrypoint and command plus the script mounted from the repo."""
    service = services()["minio-init"]
    parts = [as_text(service.get("entrypoint")), as_text(service.get("command"))]
    parts += [host_path(v).read_text() for v in service.get("volumes", []) if v.split(":")[0].endswith(".sh")]
    return "\n".join(parts)


def airflow_init_variables() -> dict[str, str]:
    """Variables that airflow-init sets with `airflow variables set KEY VALUE`."""
    script = as_text(services()["airflow-init"]["command"])
    return dict(re.findall(r"airflow variables set (\S+) (\S+)", script))


# --- tests -------------------------------------------------------------------


def test_all_expected_services_exist() -> None:
    assert EXPECTED_SERVICES <= set(services())


def test_every_image_tag_is_pinned() -> None:
    for name, service in services().items():
        image = interpolate(service.get("image", ""))
        tag = image_tag(image)
        pinned_by_digest = "@sha256:" in image
        assert image, f"{name} has no image"
        assert pinned_by_digest or tag not in (None, "latest"), f"{name} image {image!r} is not pinned"


def test_airflow_services_share_the_project_image_built_from_the_dockerfile() -> None:
    common = load_compose()["x-airflow-common"]
    assert (
        COMPOSE_FILE.parent / common["build"]["context"] / common["build"]["dockerfile"]
    ).resolve() == DOCKERFILE
    assert set(airflow_services()) == EXPECTED_SERVICES - {
        "postgres",
        "redis",
        "minio",
        "minio-init",
    }


def test_executor_is_celery() -> None:
    for name, service in airflow_services().items():
        assert service["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name


def test_broker_url_points_at_the_redis_service() -> None:
    broker = urlsplit(airflow_env("AIRFLOW__CELERY__BROKER_URL"))
    redis = services()[broker.hostname]
    assert broker.scheme == "redis"
    assert interpolate(redis["image"]).startswith("redis:")
    assert (broker.port or 6379) in container_ports(redis)


@pytest.mark.parametrize(
    "variable",
    ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CELERY__RESULT_BACKEND"],
)
def test_database_urls_point_at_the_postgres_service(variable: str) -> None:
    url = urlsplit(airflow_env(variable))
    postgres = services()[url.hostname]
    postgres_env = postgres["environment"]
    assert interpolate(postgres["image"]).startswith("postgres:")
    assert url.username == postgres_env["POSTGRES_USER"]
    assert url.password == postgres_env["POSTGRES_PASSWORD"]
    assert url.path.lstrip("/") == postgres_env["POSTGRES_DB"]


def test_execution_api_url_points_at_the_api_server() -> None:
    url = urlsplit(airflow_env("AIRFLOW__CORE__EXECUTION_API_SERVER_URL"))
    api_server = services()[url.hostname]
    assert api_server["command"] == "api-server"
    assert url.port in container_ports(api_server)
    assert url.path == "/execution/"


def test_aws_connection_points_at_minio_s3_api() -> None:
    connection = json.loads(airflow_env("AIRFLOW_CONN_AWS_DEFAULT"))
    endpoint = urlsplit(connection["extra"]["endpoint_url"])
    minio = services()[endpoint.hostname]
    minio_command = interpolate(minio["command"])
    api_address = re.search(r'--address[ =]"?[\w.]*:(\d+)', minio_command)
    api_port = int(api_address.group(1)) if api_address else 9000  # MinIO's default S3 port
    assert connection["conn_type"] == "aws"
    assert interpolate(minio["image"]).startswith("minio/minio:")
    assert endpoint.port == api_port
    assert endpoint.port in container_ports(minio)
    assert connection["login"] == interpolate(minio["environment"]["MINIO_ROOT_USER"])
    assert connection["password"] == interpolate(minio["environment"]["MINIO_ROOT_PASSWORD"])


def test_depends_on_targets_exist_and_conditions_fit_the_target() -> None:
    all_services = services()
    for name, service in all_services.items():
        for target, condition in depends_on(service).items():
            assert target in all_services, f"{name} depends on unknown service {target}"
            if condition == "service_healthy":
                assert has_healthcheck(all_services[target]), f"{name} waits for {target} to be healthy"
            if condition == "service_completed_successfully":
                assert target in ONE_SHOT_SERVICES, f"{name} waits for long-running {target} to exit"
            if target in ONE_SHOT_SERVICES:
                assert condition == "service_completed_successfully", f"{name} -> {target}"


def test_one_shot_services_are_not_restarted() -> None:
    for name in ONE_SHOT_SERVICES:
        assert services()[name].get("restart", "no") == "no", name


def test_airflow_services_wait_for_init_and_minio() -> None:
    for name, service in airflow_services().items():
        deps = depends_on(service)
        assert deps.get("postgres") == "service_healthy", name
        assert deps.get("redis") == "service_healthy", name
        if name != "airflow-init":
            assert deps.get("airflow-init") == "service_completed_successfully", name
            assert deps.get("minio") == "service_healthy", name


def test_workers_have_distinct_hostnames_and_ping_their_own_celery_node() -> None:
    workers = {name: svc for name, svc in services().items() if svc.get("command") == "celery worker"}
    hostnames = [svc.get("hostname") for svc in workers.values()]
    assert set(workers) == {"airflow-worker-1", "airflow-worker-2"}
    assert None not in hostnames
    assert len(set(hostnames)) == len(hostnames)
    for name, worker in workers.items():
        assert 'inspect ping -d "celery@$${HOSTNAME}"' in " ".join(worker["healthcheck"]["test"]), name


@pytest.mark.parametrize("target", ["/opt/airflow/dags", "/opt/airflow/plugins", "/opt/airflow/config"])
def test_code_mounts_point_at_repo_directories(target: str) -> None:
    for name, service in airflow_services().items():
        source = mount_source(service, target)
        assert source.is_dir(), f"{name}: {source} is not a directory"
        assert REPO_ROOT in source.parents, f"{name}: {source} is outside the repository"


def test_dockerfile_base_image_is_pinned() -> None:
    (base,) = dockerfile_instructions("FROM")
    assert base == f"apache/airflow:{AIRFLOW_VERSION}-python3.11"


def test_dockerfile_installs_the_project_with_celery_below_5_7() -> None:
    copied = " ".join(dockerfile_instructions("COPY"))
    pip_installs = [run for run in dockerfile_instructions("RUN") if "pip install" in run]
    assert "pyproject.toml" in copied and "plugins/" in copied
    assert any("/opt/s3br" in run and '"celery<5.7"' in run for run in pip_installs)
    assert any(f'"apache-airflow=={AIRFLOW_VERSION}"' in run for run in pip_installs)


def test_minio_init_creates_the_buckets_named_by_airflow_variables() -> None:
    script = minio_init_script()
    created = set(re.findall(r"mc mb (?:--[\w-]+ )*\w+/([\w.-]+)", script))
    versioned = set(re.findall(r"mc version enable \w+/([\w.-]+)", script))
    variables = airflow_init_variables()
    assert variables["s3br_source_bucket"] in created
    assert variables["s3br_backup_bucket"] in created
    assert variables["s3br_backup_bucket"] in versioned
    assert re.search(rf"mc (?:pipe|cp)\b.*\w+/{variables['s3br_source_bucket']}/", script), "no demo objects"


def test_simple_auth_manager_does_not_make_everyone_admin() -> None:
    for name, service in airflow_services().items():
        assert "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS" not in service["environment"], name
        assert service["environment"]["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "admin:admin", name


def test_secrets_come_from_the_environment() -> None:
    raw_env = load_compose()["x-airflow-common"]["environment"]
    connection = raw_env["AIRFLOW_CONN_AWS_DEFAULT"]
    assert "${MINIO_ROOT_USER:-minioadmin}" in connection
    assert "${MINIO_ROOT_PASSWORD:-minioadmin}" in connection
    assert raw_env["AIRFLOW__API_AUTH__JWT_SECRET"].startswith("${AIRFLOW_JWT_SECRET:-change-me")
    assert raw_env["AIRFLOW__CORE__FERNET_KEY"].startswith("${")


def test_no_real_looking_aws_credentials() -> None:
    for path in (COMPOSE_FILE, DOCKERFILE, REPO_ROOT / "docker" / "minio-init.sh"):
        assert not AWS_ACCESS_KEY_ID.search(path.read_text()), path
