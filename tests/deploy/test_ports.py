"""One port, one value: each service's ports are declared in its settings class, and Prometheus's
scrape targets (deploy/prometheus/prometheus.yml), the compose file and docs/configuration.md must
say the same. Files only: nothing is started, so this runs with the unit tests."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import yaml
from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
COMPOSE = ROOT / "docker-compose.yml"
CONFIGURATION = ROOT / "docs" / "configuration.md"
SERVICES = sorted(p.parent.parent.name for p in ROOT.glob("services/*/lfr_*/settings.py"))
# What a service serves, as docs/configuration.md names it, and its port's setting.
SERVES = {"HTTP": "http_port", "gRPC": "grpc_port", "web": "web_port"}


def settings_class(service: str) -> type[BaseSettings]:
    """The service's own settings (those read from LFR_<SERVICE>_*)."""
    module = importlib.import_module(f"lfr_{service}.settings")
    prefix = f"LFR_{service.upper()}_"
    found = [
        value
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, BaseSettings)
        and value.model_config.get("env_prefix") == prefix
    ]
    assert len(found) == 1, f"lfr_{service}.settings: {len(found)} settings classes read {prefix}*"
    return found[0]


def default_ports() -> dict[str, dict[str, int]]:
    """Each service's port settings (http_port, grpc_port, web_port) and their defaults."""
    ports = {}
    for service in SERVICES:
        fields = settings_class(service).model_fields
        ports[service] = {name: int(fields[name].default) for name in SERVES.values() if name in fields}
    return ports


def _compose_services(compose_text: str) -> dict[str, dict]:
    return yaml.safe_load(compose_text)["services"]  # merge keys (<<) resolved


def listening_ports(defaults: dict[str, dict[str, int]], compose_text: str) -> dict[str, dict[str, int]]:
    """The ports each service listens on in the compose file: its defaults unless the file sets them."""
    compose = _compose_services(compose_text)
    ports = {}
    for service, settings in defaults.items():
        environment = compose.get(service, {}).get("environment") or {}
        ports[service] = {
            name: int(environment.get(f"LFR_{service.upper()}_{name.upper()}", default))
            for name, default in settings.items()
        }
    return ports


def scrape_targets(prometheus_text: str) -> dict[str, set[tuple[str, int]]]:
    """Each scrape job's (host, port) targets, static or by DNS."""
    jobs: dict[str, set[tuple[str, int]]] = {}
    for job in yaml.safe_load(prometheus_text)["scrape_configs"]:
        targets = jobs.setdefault(job["job_name"], set())
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host, _, port = target.rpartition(":")
                targets.add((host, int(port)))
        for dns in job.get("dns_sd_configs", []):
            targets.update((name, int(dns["port"])) for name in dns["names"])
    return jobs


def documented_ports(configuration_text: str) -> dict[str, dict[str, int]]:
    """The ports in docs/configuration.md's table of services ("gRPC :50052, HTTP :9105")."""
    documented = {}
    for line in configuration_text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0] in SERVICES:
            found = re.findall(r"\b(HTTP|gRPC|web) :(\d+)", line)
            documented[cells[0]] = {SERVES[kind]: int(port) for kind, port in found}
    return documented


def port_disagreements(
    defaults: dict[str, dict[str, int]], prometheus_text: str, compose_text: str, configuration_text: str
) -> list[str]:
    """Every place where a port differs from its settings' default (or the compose file's value)."""
    wrong = []
    listening = listening_ports(defaults, compose_text)
    jobs = scrape_targets(prometheus_text)
    for job in sorted(set(jobs) - set(defaults)):
        wrong.append(f"prometheus.yml scrapes {job!r}, which is no service")
    for service, ports in listening.items():
        expected = {(service, ports["http_port"])}
        if jobs.get(service) != expected:
            wrong.append(f"prometheus.yml: job {service!r} scrapes {sorted(jobs.get(service, []))}, not {expected}")
    documented = documented_ports(configuration_text)
    for service, ports in defaults.items():
        if documented.get(service) != ports:
            wrong.append(f"docs/configuration.md: {service} serves {documented.get(service)}, its settings {ports}")
    compose = _compose_services(compose_text)
    for service, ports in listening.items():
        for published in compose.get(service, {}).get("ports", []):
            inside = int(str(published).rpartition(":")[2])
            if inside not in ports.values():
                wrong.append(f"docker-compose.yml publishes {service}'s port {inside}; it listens on {ports}")
    return wrong


def _read() -> tuple[str, str, str]:
    return PROMETHEUS.read_text(), COMPOSE.read_text(), CONFIGURATION.read_text()


def test_every_service_has_its_http_port_in_its_settings():
    ports = default_ports()
    assert {"ingest", "detect", "embed", "match", "alert", "deployments", "console"} <= set(ports)
    assert all("http_port" in p for p in ports.values()), ports
    every = [port for p in ports.values() for port in p.values()]
    assert len(every) == len(set(every)), f"two services share a default port: {ports}"


def test_prometheus_the_compose_file_and_the_docs_give_the_ports_of_the_settings():
    assert port_disagreements(default_ports(), *_read()) == []


def test_the_console_calls_the_grpc_services_on_the_ports_they_listen_on():
    ports = default_ports()
    console = settings_class("console").model_fields
    environment = _compose_services(COMPOSE.read_text())["console"]["environment"]
    for service, setting in (("alert", "alert_address"), ("deployments", "deployment_address")):
        grpc_port = ports[service]["grpc_port"]
        assert console[setting].default.rpartition(":")[2] == str(grpc_port), setting
        assert environment[f"LFR_CONSOLE_{setting.upper()}"] == f"{service}:{grpc_port}", setting


def test_a_port_changed_in_one_place_only_is_found():
    prometheus, compose, configuration = _read()
    defaults = default_ports()
    scraped = prometheus.replace("port: 9104", "port: 9114")  # match scraped on another port
    assert any("job 'match'" in w for w in port_disagreements(defaults, scraped, compose, configuration))
    assert any(
        "configuration.md: detect" in w
        for w in port_disagreements(defaults, prometheus, compose, configuration.replace("HTTP :9102", "HTTP :9112"))
    )
    moved = {**defaults, "embed": {**defaults["embed"], "http_port": 9113}}  # the settings alone changed
    found = port_disagreements(moved, prometheus, compose, configuration)
    assert any("job 'embed'" in w for w in found) and any("configuration.md: embed" in w for w in found)
    published = compose.replace('"50052:50052"', '"50052:50053"')
    assert any(
        "publishes alert's port 50053" in w for w in port_disagreements(defaults, prometheus, published, configuration)
    )
    overridden = compose.replace(
        "LFR_DETECT_HTTP_HOST: 0.0.0.0", "LFR_DETECT_HTTP_HOST: 0.0.0.0, LFR_DETECT_HTTP_PORT: 9200"
    )
    assert any("job 'detect'" in w for w in port_disagreements(defaults, prometheus, overridden, configuration))
