"""docker-compose.yml, checked without Docker (there is no engine here): every command of our
image points at an entry point that exists, every variable our services get is a setting, every
dependency waited on has a health check, no host port is published twice, images are pinned."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from registration.devtools.certificates import main as write_certificates
from registration.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
OURS = {name: s for name, s in SERVICES.items() if s.get("build") is not None}
SETTINGS = {name.upper() for name in Settings.model_fields}
# What registration.devtools.certificates writes beside ca.pem, each a .pem and a .key.
CERTIFICATES = ("temporal", "registration", "ui", "server", "web", "probe")


def entry_point_exists(command: list[str]) -> bool:
    """`python -m MODULE ...` or `python FILE ...` with a module or file of this project."""
    if command[:2] == ["python", "-m"]:
        return importlib.util.find_spec(command[2]) is not None
    return command[0] == "python" and (ROOT / command[1]).is_file()


def test_the_stack_has_every_part() -> None:
    parts = {"postgres", "temporal", "temporal-ui", "mailpit", "migrate", "server", "worker", "web"}
    assert parts <= set(SERVICES)
    assert SERVICES["worker"]["deploy"]["replicas"] > 1
    assert set(OURS) == {"migrate", "codec", "server", "worker", "web"}


@pytest.mark.parametrize("name", sorted(OURS))
def test_our_commands_and_health_checks_point_at_entry_points(name: str) -> None:
    service = OURS[name]
    assert entry_point_exists(service["command"]), service["command"]
    if "healthcheck" in service:
        test = service["healthcheck"]["test"]
        assert test[0] == "CMD" and entry_point_exists(test[1:]), test


@pytest.mark.parametrize("name", sorted(OURS))
def test_our_services_are_configured_only_through_known_settings(name: str) -> None:
    environment = OURS[name]["environment"]
    assert isinstance(environment, dict)
    unknown = set(environment) - SETTINGS
    assert not unknown, f"{name} sets variables no setting reads: {sorted(unknown)}"
    assert environment["ENVIRONMENT"] == "production"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_dependency_waited_on_can_be_waited_on(name: str) -> None:
    for dependency, spec in SERVICES[name].get("depends_on", {}).items():
        assert dependency in SERVICES
        condition = spec["condition"]
        if condition == "service_healthy":
            assert "healthcheck" in SERVICES[dependency], f"{dependency} has no health check"
        else:
            assert condition == "service_completed_successfully"
            assert SERVICES[dependency].get("restart") == "no", f"{dependency} is not one-shot"


def test_no_host_port_is_published_twice() -> None:
    # HOST_IP:HOST_PORT:CONTAINER_PORT or HOST_PORT:CONTAINER_PORT: the host port.
    published = [
        str(port).rsplit(":", 2)[-2] if str(port).count(":") == 2 else str(port).split(":")[0]
        for service in SERVICES.values()
        for port in service.get("ports", [])
    ]
    assert len(published) == len(set(published)), published
    # A service with several replicas cannot publish a fixed host port.
    for name, service in SERVICES.items():
        if service.get("deploy", {}).get("replicas", 1) > 1:
            assert "ports" not in service, name


def test_every_image_is_pinned() -> None:
    for name, service in SERVICES.items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and tag and tag != "latest", f"{name}: {image}"
    base = re.search(r"^FROM (\S+)", (ROOT / "Dockerfile").read_text(), flags=re.MULTILINE)
    assert base is not None and re.search(r":\d+\.\d+\.\d+", base.group(1)), base


def test_secrets_are_required_from_the_environment_and_documented() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    required = set(re.findall(r"\$\{([A-Z_]+):\?", text))
    assert required == {"POSTGRES_PASSWORD", "SECRET_KEY", "PAYLOAD_KEYS", "CODEC_ACCESS_TOKEN"}
    example = (ROOT / ".env.example").read_text()
    for name in required:
        assert re.search(rf"^{name}=$", example, flags=re.MULTILINE), name
    # No secret has a default value in the file.
    assert not re.search(r"\$\{[A-Z_]+:-", text)


def test_temporal_demands_mutual_tls_and_every_client_brings_its_certificate() -> None:
    temporal = SERVICES["temporal"]["environment"]
    assert temporal["TEMPORAL_TLS_REQUIRE_CLIENT_AUTH"] == "true"
    assert temporal["TEMPORAL_TLS_CLIENT1_CA_CERT"] == "/certs/ca.pem"
    assert temporal["TEMPORAL_TLS_FRONTEND_CERT"] == "/certs/temporal.pem"
    assert "--tls_cert_path" in SERVICES["temporal"]["healthcheck"]["test"]
    ui = SERVICES["temporal-ui"]["environment"]
    assert (ui["TEMPORAL_TLS_CERT"], ui["TEMPORAL_TLS_KEY"]) == ("/certs/ui.pem", "/certs/ui.key")
    for name, service in OURS.items():
        environment = service["environment"]
        assert environment["TEMPORAL_TLS_CA_FILE"] == "/certs/ca.pem", name
        assert environment["TEMPORAL_TLS_CERT_FILE"] == "/certs/registration.pem", name
        assert environment["TEMPORAL_TLS_SERVER_NAME"] == "temporal", name
    # Every party reads the folder the certificate tool writes, and every file it names.
    written = {f"{name}.{kind}" for name in CERTIFICATES for kind in ("pem", "key")} | {"ca.pem"}
    text = (ROOT / "docker-compose.yml").read_text()
    assert set(re.findall(r"/certs/([a-z]+\.(?:pem|key))", text)) <= written
    for name in ("temporal", "temporal-ui", *OURS):
        assert "./certs:/certs:ro" in SERVICES[name]["volumes"], name


def test_the_certificate_tool_writes_what_the_stack_reads(tmp_path: Path) -> None:
    write_certificates([str(tmp_path / "certs")])
    names = {p.name for p in (tmp_path / "certs").iterdir()}
    assert {f"{name}.{kind}" for name in CERTIFICATES for kind in ("pem", "key")} <= names
    assert all((tmp_path / "certs" / n).stat().st_mode & 0o077 == 0 for n in names if ".key" in n)


def test_only_the_web_pages_are_published_beyond_the_machine() -> None:
    for name, service in SERVICES.items():
        for port in service.get("ports", []):
            if name == "web":
                assert port == "8000:8000"
            else:
                assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port}"


def test_the_grpc_server_demands_mutual_tls_and_lists_its_callers() -> None:
    server = SERVICES["server"]["environment"]
    assert server["GRPC_TLS_CLIENT_CA_FILE"] == "/certs/ca.pem"
    clients = Settings(_env_file=None, grpc_clients=json.loads(server["GRPC_CLIENTS"])).grpc_clients
    web = SERVICES["web"]["environment"]
    assert [c.certificate for c in clients] == ["web"]
    # It passes each browser's address on: the abuse limits count per browser.
    assert [c.forwards_addresses for c in clients] == [True]
    assert (
        web["GRPC_CLIENT_CERT_FILE"] == "/certs/web.pem" and web["GRPC_CA_FILE"] == "/certs/ca.pem"
    )
    # The probe needs the handshake only: its certificate is no caller's.
    assert server["GRPC_CLIENT_CERT_FILE"] == "/certs/probe.pem"
