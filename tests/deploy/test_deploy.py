"""The deployment files: the Helm chart with a genuine helm and Kubernetes schemas, the compose file
with the official Compose v2 binary. Nothing can run containers here; these check what can be checked."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
VALUES = [
    "kafka.bootstrapServers=kafka:9092",
    "redis.url=redis://redis:6379/0",
    "qdrant.url=http://qdrant:6333",
    "auth.existingSecret=lfr-tokens",
    "keyEncryptionKey.existingSecret=lfr-kek",
]


@pytest.fixture(scope="module")
def helm() -> str:
    path = Path(os.environ.get("LFR_TEST_HELM", ROOT / ".cache" / "tools" / "layer" / "helm" / "helm"))
    if not path.is_file():
        pytest.fail(f"helm not found at {path}: run `make tools`")
    return str(path)


def _render(helm: str, *values: str) -> subprocess.CompletedProcess:
    args = [helm, "template", "lfr", str(ROOT / "helm" / "lfr")]
    for value in values:
        args += ["--set", value]
    return subprocess.run(args, capture_output=True, text=True)


def test_the_chart_lints_and_renders_valid_kubernetes_objects(helm, tmp_path):
    lint = subprocess.run(
        [helm, "lint", str(ROOT / "helm" / "lfr"), *sum((["--set", v] for v in VALUES), [])],
        capture_output=True,
        text=True,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    rendered = _render(helm, *VALUES, "services.embed.gpu=true")
    assert rendered.returncode == 0, rendered.stderr
    (tmp_path / "lfr.yaml").write_text(rendered.stdout)
    validator = str(Path(sys.executable).parent / "kubernetes-validate")  # installed beside this Python
    validate = subprocess.run(
        [validator, "--strict", "-k", "1.30.0", str(tmp_path / "lfr.yaml")], capture_output=True, text=True
    )
    assert validate.returncode == 0, validate.stdout + validate.stderr
    objects = [o for o in yaml.safe_load_all(rendered.stdout) if o]
    deployments = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Deployment"}
    assert set(deployments) == {f"lfr-{s}" for s in ("ingest", "detect", "embed", "match", "alert", "console")}
    for name, deployment in deployments.items():
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["args"] == [f"lfr_{name.removeprefix('lfr-')}"]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
    embed = deployments["lfr-embed"]["spec"]["template"]["spec"]["containers"][0]
    assert embed["resources"]["limits"]["nvidia.com/gpu"] == 1
    match_env = {
        e["name"]: e["value"] for e in deployments["lfr-match"]["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    # The key-encryption key: in every service that reads data keys, from its Secret, never in the console.
    for name, deployment in deployments.items():
        spec = deployment["spec"]["template"]["spec"]
        env = {e["name"] for e in spec["containers"][0]["env"]}
        secrets = {v["secret"]["secretName"] for v in spec["volumes"] if "secret" in v}
        assert ("lfr-kek" in secrets and "LFR_KEY_ENCRYPTION_KEY_FILE" in env) == (name != "lfr-console"), name
    assert match_env["LFR_MATCH_QDRANT_URL"] == "http://qdrant:6333"
    assert match_env["LFR_MATCH_COLLECTION_PREFIX"] == "lfr-"  # the release's name: releases never share


@pytest.mark.parametrize(
    "missing", ["kafka.bootstrapServers", "redis.url", "qdrant.url", "auth.existingSecret", "keyEncryptionKey"]
)
def test_the_chart_refuses_to_render_without_what_it_needs(helm, missing):
    rendered = _render(helm, *[v for v in VALUES if not v.startswith(missing)])
    assert rendered.returncode != 0 and missing.split(".")[0] in rendered.stderr


def test_the_compose_file_is_valid_and_needs_a_token():
    import compose

    binary = Path(compose.__file__).parent / "docker-compose"
    env = {
        **os.environ,
        "LFR_MANAGER_TOKEN": "a-token-for-the-check",
        "LFR_OFFICER_TOKEN": "another-token-1234",
        "LFR_REDIS_PASSWORD": "a-redis-password",
    }
    ok = subprocess.run(
        [str(binary), "-f", str(ROOT / "docker-compose.yml"), "config", "-q"], capture_output=True, text=True, env=env
    )
    assert ok.returncode == 0, ok.stderr
    no_token = {k: v for k, v in env.items() if k != "LFR_MANAGER_TOKEN"}
    refused = subprocess.run(
        [str(binary), "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        env=no_token,
    )
    assert refused.returncode != 0 and "LFR_MANAGER_TOKEN" in refused.stderr


def test_the_console_gets_an_ingress_on_request_and_replicas_need_a_shared_session_key(helm, tmp_path):
    rendered = _render(
        helm,
        *VALUES,
        "services.console.ingress.enabled=true",
        "services.console.ingress.host=control-room.force.example",
        "services.console.ingress.tlsSecret=console-tls",
        "services.console.replicas=2",
        "services.console.sessionKey.existingSecret=console-session-key",
    )
    assert rendered.returncode == 0, rendered.stderr
    objects = [o for o in yaml.safe_load_all(rendered.stdout) if o]
    [ingress] = [o for o in objects if o["kind"] == "Ingress"]
    assert ingress["spec"]["tls"][0]["secretName"] == "console-tls"
    console = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "lfr-console")
    env = {e["name"]: e["value"] for e in console["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["LFR_CONSOLE_BEHIND_TLS_PROXY"] == "true" and env["LFR_CONSOLE_ALERT_ADDRESS"] == "lfr-alert:50052"
    assert env["LFR_CONSOLE_SESSION_KEY_FILE"] == "/etc/lfr/console/session.key"
    (tmp_path / "lfr.yaml").write_text(rendered.stdout)
    validator = str(Path(sys.executable).parent / "kubernetes-validate")
    validate = subprocess.run([validator, "--strict", "-k", "1.30.0", str(tmp_path / "lfr.yaml")], capture_output=True)
    assert validate.returncode == 0, validate.stdout + validate.stderr
    refused = _render(helm, *VALUES, "services.console.replicas=2")
    assert refused.returncode != 0 and "sessionKey.existingSecret" in refused.stderr


def test_the_redis_url_with_its_password_can_come_from_a_secret(helm):
    rendered = _render(helm, *[v for v in VALUES if not v.startswith("redis.url")], "redis.existingSecret=lfr-redis")
    assert rendered.returncode == 0, rendered.stderr
    objects = [o for o in yaml.safe_load_all(rendered.stdout) if o]
    [config] = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "lfr-platform"]
    assert "LFR_REDIS_URL" not in config["data"]
    for deployment in (o for o in objects if o["kind"] == "Deployment"):
        [url] = [
            e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"] if e["name"] == "LFR_REDIS_URL"
        ]
        assert url["valueFrom"]["secretKeyRef"] == {"name": "lfr-redis", "key": "url"}
