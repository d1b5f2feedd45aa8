"""compose.yaml: it parses, runs only real `supportswarm` commands, configures only real settings, and wires
the topology the README describes (pgvector on a volume, Redis, 2 replicas, a worker, nginx with websockets)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from supportswarm.cli import build_parser
from supportswarm.settings import ENV_NAMES

ROOT = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
APP_SERVICES = {name: s for name, s in SERVICES.items() if "build" in s}  # the services running our image
VARIABLE = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)")


def _argv(command: str | list[str]) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def _depends(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on", {})
    return {name: "service_started" for name in deps} if isinstance(deps, list) else {
        name: spec.get("condition", "service_started") for name, spec in deps.items()}


def test_app_services_run_real_cli_commands() -> None:
    parser = build_parser()
    commands = {}
    for name, service in APP_SERVICES.items():
        argv = _argv(service["command"])
        assert argv[0] == "supportswarm", name
        commands[name] = parser.parse_args(argv[1:]).command  # exits (fails the test) on any unknown argument
    assert commands == {"migrate": "migrate", "app": "serve", "worker": "worker"}
    assert _argv(SERVICES["app"]["command"])[-4:] == ["--host", "0.0.0.0", "--port", "8000"]


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_app_services_are_configured_by_known_settings_only(name: str) -> None:
    env = APP_SERVICES[name]["environment"]
    assert set(env) <= set(ENV_NAMES.values()), set(env) - set(ENV_NAMES.values())
    assert {"DATABASE_URL", "REDIS_URL", "SECRET_KEY"} <= set(env)
    assert env["DATABASE_URL"].startswith("postgresql://") and "@postgres:5432/" in env["DATABASE_URL"]
    assert env["REDIS_URL"].startswith("redis://redis:6379/")


def test_interpolated_variables_are_settings_or_postgres_ones() -> None:
    text = (ROOT / "compose.yaml").read_text()
    used = set(VARIABLE.findall(text))
    assert used <= set(ENV_NAMES.values()) | {"POSTGRES_PASSWORD"}, used


def test_topology_postgres_with_pgvector_on_a_volume_redis_two_replicas_a_worker() -> None:
    assert SERVICES["postgres"]["image"].startswith("pgvector/pgvector:")
    volume = SERVICES["postgres"]["volumes"][0].split(":")
    assert volume[1] == "/var/lib/postgresql/data" and volume[0] in COMPOSE["volumes"]
    assert SERVICES["redis"]["image"].split(":")[0] == "redis"
    assert SERVICES["app"]["deploy"]["replicas"] == 2
    assert "worker" in SERVICES and "replicas" not in SERVICES["worker"].get("deploy", {})
    assert SERVICES["migrate"]["restart"] == "no"


def test_start_order_and_health_checks() -> None:
    for name in ("app", "worker"):
        assert _depends(SERVICES[name]) == {"migrate": "service_completed_successfully", "redis": "service_healthy"}
    assert _depends(SERVICES["migrate"]) == {"postgres": "service_healthy"}
    assert _depends(SERVICES["lb"]) == {"app": "service_healthy"}
    for name, service in SERVICES.items():
        if name != "migrate":
            assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
    assert "/readyz" in " ".join(SERVICES["app"]["healthcheck"]["test"])
    assert "/healthz" in " ".join(SERVICES["lb"]["healthcheck"]["test"])
    for name, service in SERVICES.items():
        assert set(_depends(service)) <= set(SERVICES), name


def test_load_balancer_passes_websocket_upgrades_to_every_replica() -> None:
    mount = next(v for v in SERVICES["lb"]["volumes"] if "nginx.conf" in v)
    conf = (ROOT / mount.split(":")[0].removeprefix("./")).read_text()
    assert "server app:8000" in conf  # the service name and the port `serve` listens on
    ws = conf[conf.index("location /ws/"):]
    ws = ws[:ws.index("}")]
    for line in ("proxy_set_header Upgrade $http_upgrade;", "proxy_set_header Connection $connection_upgrade;",
                 "proxy_read_timeout 1h;"):
        assert line in ws
    assert "proxy_http_version 1.1;" in conf and "proxy_set_header Host $http_host;" in conf


def test_dockerfile_installs_cpu_torch_and_the_project() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert dockerfile.startswith("#") and "FROM python:3.11-slim" in dockerfile
    assert "download.pytorch.org/whl/cpu" in dockerfile and "pip install ." in dockerfile
    for package in ("supportswarm", "workers", "embeddings", "web"):
        assert f"COPY {package} ./{package}" in dockerfile
