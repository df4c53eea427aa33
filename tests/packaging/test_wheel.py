"""The built wheel, installed alone into a fresh venv, is a complete Airflow provider.

The module fixture builds the sdist and, from it, the wheel (as ``make dist`` does), creates a
venv with ``uv venv`` and installs the wheel there with its dependencies (from PyPI through uv's
cache). Every check then runs in that venv with a clean environment: no repository on
``sys.path``, none of the test suite's Airflow settings, a throw-away ``AIRFLOW_HOME``.
"""

from __future__ import annotations

import email.parser
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
DIST_NAME = "airflow-provider-s3br"
PACKAGE = "s3br_provider"
SUBPACKAGES = ("operators", "sensors", "triggers", "hooks")
REQUIRED_CLASSIFIERS = ("Framework :: Apache Airflow", "Framework :: Apache Airflow :: Provider")
# What uv needs from the caller's environment to reach the package index and its own cache.
PASSED_TO_UV = ("SSL_CERT_FILE", "SSL_CERT_DIR", "http_proxy", "https_proxy", "no_proxy", "all_proxy")

# Runs inside the fresh venv: imports what the provider info lists, walks the installed package,
# and prints what it found as JSON.
INSPECT = r"""
import importlib, inspect, json, pkgutil, sys

from airflow.plugins_manager import AirflowPlugin
import s3br_provider
from s3br_provider.get_provider_info import get_provider_info

info = get_provider_info()
listed, failed = {}, {}
for kind, entries in info.items():
    if not isinstance(entries, list):
        continue
    for entry in entries if all(isinstance(e, dict) for e in entries) else []:
        names = list(entry.get("python-modules", []))
        for field in ("plugin-class", "hook-class-name", "notification-class-name"):
            if field in entry:
                names.append(entry[field].rpartition(".")[0])
        listed.setdefault(kind, []).extend(names)
for name in sorted({name for names in listed.values() for name in names}):
    try:
        importlib.import_module(name)
    except Exception as error:
        failed[name] = f"{type(error).__name__}: {error}"

found, plugins = {}, []
for module in pkgutil.walk_packages(s3br_provider.__path__, "s3br_provider."):
    parts = module.name.split(".")
    if module.ispkg or any(part.startswith("_") for part in parts):
        continue
    if len(parts) > 2:
        found.setdefault(parts[1], []).append(module.name)
    try:
        loaded = importlib.import_module(module.name)
    except Exception as error:
        failed[module.name] = f"{type(error).__name__}: {error}"
        continue
    for name, obj in vars(loaded).items():
        if inspect.isclass(obj) and obj.__module__ == module.name and issubclass(obj, AirflowPlugin):
            plugins.append(f"{module.name}.{name}")

print(json.dumps({
    "file": s3br_provider.__file__,
    "listed": listed,
    "plugin_classes": [e["plugin-class"] for e in info.get("plugins", [])],
    "failed": failed,
    "found": found,
    "plugins": plugins,
}))
"""


@dataclass(frozen=True)
class Installed:
    wheel: Path
    sdist: Path
    python: Path
    env: dict[str, str]


def _uv() -> str:
    uv = Path(sys.executable).with_name("uv")
    found = str(uv) if uv.exists() else shutil.which("uv")
    if not found:
        pytest.fail("uv is needed to build and install the wheel: `make setup` installs it into .venv")
    return found


def _run(cmd: list[str | Path], env: dict[str, str], cwd: Path, timeout: float = 300) -> str:
    done = subprocess.run(
        [str(part) for part in cmd], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    if done.returncode != 0:
        shown = " ".join(str(part) if len(str(part)) < 200 else "<script>" for part in cmd)
        pytest.fail(f"{shown} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def _uv_env(home: str) -> dict[str, str]:
    env = {"PATH": os.defpath, "HOME": home}
    for name, value in os.environ.items():
        if name.startswith("UV_") or name in PASSED_TO_UV or name.lower() in PASSED_TO_UV:
            env[name] = value
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    tmp = tmp_path_factory.mktemp("wheel")
    uv, uv_env = _uv(), _uv_env(os.environ.get("HOME", str(tmp)))
    _run([uv, "build", "--out-dir", tmp / "dist", REPO], uv_env, cwd=tmp)
    (wheel,) = (tmp / "dist").glob("*.whl")
    (sdist,) = (tmp / "dist").glob("*.tar.gz")

    # The versions this suite runs with, so the install reuses uv's cache instead of
    # downloading whatever was released since; constraints add no package of their own.
    freeze = _run([uv, "pip", "freeze", "--exclude-editable", "-p", sys.executable], uv_env, cwd=tmp)
    constraints = tmp / "constraints.txt"
    constraints.write_text(freeze)
    venv = tmp / "venv"
    _run([uv, "venv", "-q", "-p", sys.executable, venv], uv_env, cwd=tmp)
    python = venv / "bin" / "python"
    _run(
        [uv, "pip", "install", "-q", "--compile-bytecode", "-p", python, "-c", constraints, wheel],
        uv_env,
        cwd=tmp,
    )

    home = tmp / "home"
    (home / "airflow").mkdir(parents=True)
    env = {
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.defpath}",
        "HOME": str(home),
        "AIRFLOW_HOME": str(home / "airflow"),
        "LANG": "C.UTF-8",
    }
    return Installed(wheel=wheel, sdist=sdist, python=python, env=env)


@pytest.fixture(scope="module")
def inspected(installed: Installed) -> dict[str, Any]:
    out = _run([installed.python, "-c", INSPECT], installed.env, cwd=Path(installed.env["HOME"]))
    return json.loads(out.strip().splitlines()[-1])


def test_the_venv_imports_the_installed_wheel_not_the_repository(
    installed: Installed, inspected: dict[str, Any]
) -> None:
    assert Path(inspected["file"]).is_relative_to(installed.python.parents[1]), inspected["file"]


def test_every_module_of_the_provider_info_and_the_package_imports(inspected: dict[str, Any]) -> None:
    for kind in SUBPACKAGES:
        assert inspected["listed"].get(kind), f"the provider info lists no {kind}"
    assert inspected["failed"] == {}


@pytest.mark.parametrize("kind", SUBPACKAGES)
def test_every_module_is_listed_in_the_provider_info(inspected: dict[str, Any], kind: str) -> None:
    found = set(inspected["found"].get(kind, []))
    listed = set(inspected["listed"].get(kind, []))
    assert found, f"no modules found under {PACKAGE}.{kind}"
    assert sorted(found - listed) == [], f"add these to {kind} in get_provider_info.py"
    assert sorted(listed - found) == [], f"get_provider_info.py lists {kind} that do not exist"


def test_every_airflow_plugin_is_listed_in_the_provider_info(inspected: dict[str, Any]) -> None:
    assert sorted(inspected["plugins"]) == sorted(inspected["plugin_classes"]), (
        "list every AirflowPlugin under plugins in get_provider_info.py"
    )


def test_airflow_lists_the_provider(installed: Installed) -> None:
    out = _run(
        [installed.python, "-m", "airflow", "providers", "list", "-o", "json"],
        installed.env,
        cwd=Path(installed.env["HOME"]),
        timeout=120,
    )
    providers = {entry["package_name"]: entry for entry in json.loads(out[out.index("[") :])}
    assert DIST_NAME in providers, sorted(providers)
    assert providers[DIST_NAME]["version"] == _metadata(installed.wheel)["Version"]


def _metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return email.parser.Parser().parsestr(archive.read(name).decode())


def test_wheel_metadata(installed: Installed) -> None:
    metadata = _metadata(installed.wheel)
    assert metadata["Name"] == DIST_NAME
    assert metadata["License-Expression"] == "Apache-2.0"
    classifiers = metadata.get_all("Classifier") or []
    for classifier in REQUIRED_CLASSIFIERS:
        assert classifier in classifiers
    assert any(c.startswith("Programming Language :: Python :: 3") for c in classifiers)
    assert any(c.startswith("Operating System ::") for c in classifiers)
    with zipfile.ZipFile(installed.wheel) as archive:
        entry_points = next(n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt"))
        declared = archive.read(entry_points).decode()
        assert "s3br_provider.get_provider_info:get_provider_info" in declared
        assert "[airflow.policy]\ns3br_fork_preload = s3br_provider.fork_preload" in declared


def test_wheel_holds_the_package_and_nothing_else(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as archive:
        names = archive.namelist()
    outside = [n for n in names if n.split("/")[0] != PACKAGE and ".dist-info/" not in n]
    assert outside == [], "the wheel holds files outside s3br_provider/"
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    source = REPO / "plugins" / PACKAGE
    expected = {
        f"{PACKAGE}/{path.relative_to(source).as_posix()}"
        for path in source.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }
    assert sorted(expected - set(names)) == [], "files of plugins/s3br_provider/ missing from the wheel"


def test_sdist_holds_what_building_needs(installed: Installed) -> None:
    with tarfile.open(installed.sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    for needed in ("pyproject.toml", "README.md", f"plugins/{PACKAGE}/__init__.py"):
        assert needed in names
    for top in ("tests", "dags", "bench", "scripts", "docker"):
        assert not [n for n in names if n.split("/")[0] == top], f"{top}/ in the sdist"
