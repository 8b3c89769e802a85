"""Docker cannot run here, so compose.yaml is checked for what can drift: every
service runs a real `jetpost` command and every JETPOST_ variable is a setting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from services.cli.main import parser
from services.cli.processes import RUNNABLE
from shared.paths import ROOT
from shared.settings import Settings, parse_nats_servers

COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())


def known_variables() -> set[str]:
    names = set()
    for name, field in Settings.model_fields.items():
        names.add(field.alias or f"JETPOST_{name.upper()}")
    return names


def jetpost_services() -> dict[str, dict[str, Any]]:
    return {
        name: spec
        for name, spec in COMPOSE["services"].items()
        if spec.get("command", [""])[0] == "jetpost"
    }


def test_every_service_has_a_container() -> None:
    commands = [spec["command"] for spec in jetpost_services().values()]
    for service in (*RUNNABLE, "api"):
        if service != "public":  # the API serves the public routes too
            assert ["jetpost", "run", service] in commands


def test_every_command_parses() -> None:
    for name, spec in jetpost_services().items():
        assert parser().parse_args(spec["command"][1:]).command, name


def test_every_variable_is_a_setting() -> None:
    known = known_variables()
    for name, spec in jetpost_services().items():
        for variable in spec.get("environment", {}):
            assert variable in known, f"{name}: {variable} is not a jetpost setting"


def test_infrastructure_is_there() -> None:
    services = COMPOSE["services"]
    assert "--jetstream" in services["nats"]["command"]
    assert "postgres" in services["postgres"]["image"]
    for name, spec in jetpost_services().items():
        env = spec["environment"]
        assert env["JETPOST_NATS_URL"] == "${JETPOST_NATS_URL:-nats://nats:4222}", name
        assert env["JETPOST_NATS_REPLICAS"] == "${JETPOST_NATS_REPLICAS:-1}", name
        assert env["JETPOST_DATABASE_URL"].endswith("@postgres:5432/jetpost"), name


def test_image_builds_from_the_repo() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for folder in ("services", "shared", "projections", "nats", "migrations", "templates"):
        assert f"COPY {folder} {folder}" in dockerfile
        assert Path(ROOT / folder).is_dir()


def _flag(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_cluster_profile_is_three_routed_jetstream_nodes() -> None:
    services = COMPOSE["services"]
    nodes = {n: s for n, s in services.items() if "cluster" in s.get("profiles", [])}
    assert sorted(nodes) == ["nats-1", "nats-2", "nats-3"]
    routes = {f"nats://{name}:6222" for name in nodes}
    volumes = set()
    for name, spec in nodes.items():
        command = spec["command"]
        assert "--jetstream" in command and _flag(command, "--server_name") == name
        assert _flag(command, "--cluster_name") == "jetpost"
        assert _flag(command, "--cluster").endswith(":6222")
        assert set(_flag(command, "--routes").split(",")) == routes
        volumes.update(spec["volumes"])
        assert "healthcheck" in spec
    assert len(volumes) == 3 and all(v.split(":")[0] in COMPOSE["volumes"] for v in volumes)


def test_services_wait_for_either_nats() -> None:
    for name, spec in jetpost_services().items():
        depends = spec.get("depends_on", {})
        if "nats" in depends:
            assert depends["nats-1"] == {"condition": "service_healthy", "required": False}, name


def test_documented_cluster_url_names_the_nodes() -> None:
    comment = (ROOT / "compose.yaml").read_text().split("services:")[0]
    url = next(w for w in comment.split() if w.startswith("JETPOST_NATS_URL="))
    servers = parse_nats_servers(url.split("=", 1)[1])
    assert {s.split("//")[1].split(":")[0] for s in servers} == {"nats-1", "nats-2", "nats-3"}
