"""docker-compose.yaml, checked structurally (no Docker engine here): the services an Airflow 3.3 stack
needs, MinIO as the store, dags/ and plugins/ mounted, and settings that agree with each other."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW_SERVICES = {"airflow-apiserver": "api-server", "airflow-scheduler": "scheduler",
                    "airflow-dag-processor": "dag-processor", "airflow-triggerer": "triggerer"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yaml").read_text())


def _env(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def _default(value: str) -> str:
    """``${VAR:-default}`` → ``default`` (what compose uses when the variable is unset)."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def test_services(compose):
    services = compose["services"]
    assert set(AIRFLOW_SERVICES) | {"postgres", "minio", "minio-init", "airflow-init"} <= set(services)
    for name, command in AIRFLOW_SERVICES.items():
        assert services[name]["command"] == command, name
    for name, svc in services.items():
        for dep in svc.get("depends_on") or {}:
            assert dep in services, f"{name} depends on unknown service {dep}"


def test_airflow_version_matches_the_project_pin(compose):
    pins = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    airflow_pin = next(p for p in pins if p.startswith("apache-airflow=="))
    version = airflow_pin.split("==")[1]
    inline = compose["services"]["airflow-scheduler"]["build"]["dockerfile_inline"]
    assert f"FROM apache/airflow:{version}" in inline
    # everything the inline Dockerfile copies exists in the build context
    for line in inline.splitlines():
        if line.strip().startswith("COPY"):
            for src in line.split()[2:-1] if "--chown" in line else line.split()[1:-1]:
                assert (ROOT / src).exists(), src


def test_dags_and_plugins_mounted_everywhere_airflow_runs(compose):
    for name in [*AIRFLOW_SERVICES, "airflow-init"]:
        mounts = {m.split(":")[1]: m.split(":")[0] for m in compose["services"][name]["volumes"]}
        assert mounts["/opt/airflow/dags"] == "./dags", name
        assert mounts["/opt/airflow/plugins"] == "./plugins", name


def test_store_points_at_minio(compose):
    services = compose["services"]
    buckets_made = services["minio-init"]["command"][0]
    for name in AIRFLOW_SERVICES:
        env = _env(services[name])
        store = urlparse(env["AIRFLOW__PACH_AIRFLOW__STORE"])
        assert store.scheme == "s3"
        assert f"local/{store.netloc}" in buckets_made, "minio-init must create the store's bucket"
        assert env["PACH_AIRFLOW_STORE"] == env["AIRFLOW__PACH_AIRFLOW__STORE"]  # the CLI in the containers
        endpoint = urlparse(env["AWS_ENDPOINT_URL"])
        assert endpoint.hostname == "minio" and endpoint.port == 9000
        assert "server /data" in services["minio"]["command"]
        # the same credentials MinIO was started with
        minio_env = _env(services["minio"])
        assert _default(env["AWS_ACCESS_KEY_ID"]) == _default(minio_env["MINIO_ROOT_USER"])
        assert _default(env["AWS_SECRET_ACCESS_KEY"]) == _default(minio_env["MINIO_ROOT_PASSWORD"])


def test_airflow_services_share_database_executor_and_jwt_secret(compose):
    envs = [_env(compose["services"][n]) for n in AIRFLOW_SERVICES]
    for key in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__API_AUTH__JWT_SECRET",
                "AIRFLOW__CORE__EXECUTOR", "AIRFLOW__CORE__EXECUTION_API_SERVER_URL"):
        assert len({e[key] for e in envs}) == 1, key
    assert "@postgres/" in envs[0]["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert urlparse(envs[0]["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]).hostname == "airflow-apiserver"


def test_published_ports_only_on_loopback(compose):
    for name, svc in compose["services"].items():
        for port in svc.get("ports") or []:
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


def test_volumes_declared(compose):
    declared = set(compose.get("volumes") or {})
    for name, svc in compose["services"].items():
        for m in svc.get("volumes") or []:
            src = m.split(":")[0]
            if not src.startswith((".", "/")):
                assert src in declared, f"{name} uses undeclared volume {src}"
