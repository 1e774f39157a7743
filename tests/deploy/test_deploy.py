"""The deployment files: the Helm chart with a genuine helm and Kubernetes schemas, the compose file
with the official Compose v2 binary. Nothing can run containers here; these check what can be checked."""

import json
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
        [helm, "lint", "--strict", str(ROOT / "helm" / "lfr"), *sum((["--set", v] for v in VALUES), [])],
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
    services = ("ingest", "detect", "embed", "match", "alert", "deployments", "console")
    assert set(deployments) == {f"lfr-{s}" for s in services}
    for name, deployment in deployments.items():
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["args"] == [f"lfr_{name.removeprefix('lfr-')}"]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
    embed = deployments["lfr-embed"]["spec"]["template"]["spec"]["containers"][0]
    assert embed["resources"]["limits"]["nvidia.com/gpu"] == 1

    def env_of(name):
        container = deployments[name]["spec"]["template"]["spec"]["containers"][0]
        return {e["name"]: e.get("value") for e in container["env"]}

    match_env, control_env = env_of("lfr-match"), env_of("lfr-deployments")
    # The key-encryption key: in every service that reads data keys, from its Secret, never in the console.
    for name, deployment in deployments.items():
        spec = deployment["spec"]["template"]["spec"]
        env = {e["name"] for e in spec["containers"][0]["env"]}
        secrets = {v["secret"]["secretName"] for v in spec["volumes"] if "secret" in v}
        assert ("lfr-kek" in secrets and "LFR_KEY_ENCRYPTION_KEY_FILE" in env) == (name != "lfr-console"), name
    # match replicas search the collections the deployments service writes: the same server and prefix,
    # from the one block of variables both read.
    assert match_env["LFR_WATCHLIST_QDRANT_URL"] == control_env["LFR_WATCHLIST_QDRANT_URL"] == "http://qdrant:6333"
    # the release's name: releases never share
    assert match_env["LFR_WATCHLIST_COLLECTION_PREFIX"] == control_env["LFR_WATCHLIST_COLLECTION_PREFIX"] == "lfr-"
    # a stage knows how many replicas it may run (it refuses fewer partitions), and its own name
    assert match_env["LFR_STAGE_REPLICAS"] == "2" and "LFR_REPLICA_NAME" in match_env
    assert "LFR_STAGE_REPLICAS" not in control_env and deployments["lfr-deployments"]["spec"]["replicas"] == 1
    console_env = env_of("lfr-console")
    assert console_env["LFR_CONSOLE_DEPLOYMENT_ADDRESS"] == "lfr-deployments:50051"


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


# What a platform team runs: GPUs, autoscaling on lag (KEDA) or CPU, Prometheus Operator, Grafana.
GPU = ["services.detect.gpu=true", "services.embed.gpu=true", "services.embed.nodeSelector.gpu=h200"]
AUTOSCALING = ["autoscaling.enabled=true", "topics.prefix=force-a."]
MONITORING = [
    "monitoring.serviceMonitor.enabled=true",
    "monitoring.prometheusRule.enabled=true",
    "monitoring.grafanaDashboards.enabled=true",
]
STAGES = {"detect": "frames.captured.v1", "embed": "faces.detected.v1", "match": "faces.embedded.v1"}
STAGES["alert"] = "matches.found.v1"


def _objects(rendered: subprocess.CompletedProcess) -> list[dict]:
    assert rendered.returncode == 0, rendered.stderr
    return [o for o in yaml.safe_load_all(rendered.stdout) if o]


def _crd_schemas() -> dict[tuple[str, str], dict]:
    """(apiVersion, kind) -> the served version's openAPIV3Schema of the vendored CRDs, strict: an
    unknown field is an error, as kubectl's strict field validation makes it (tests/deploy/crds)."""

    def strict(node):
        if isinstance(node, dict):
            if (
                "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for value in node.values():
                strict(value)
        elif isinstance(node, list):
            for value in node:
                strict(value)
        return node

    schemas = {}
    for path in (ROOT / "tests" / "deploy" / "crds").glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        for version in crd["spec"]["versions"]:
            if version.get("served"):
                schema = strict(version["schema"]["openAPIV3Schema"])
                schema["properties"]["metadata"] = {"type": "object"}  # ObjectMeta is validated by the API server
                schemas[(f"{crd['spec']['group']}/{version['name']}", crd["spec"]["names"]["kind"])] = schema
    return schemas


def _validate(objects: list[dict], tmp_path: Path) -> None:
    """Every rendered object against its schema: built-in kinds with kubernetes-validate, custom
    resources with their CRD's schema; a kind with neither fails."""
    import jsonschema

    custom = _crd_schemas()
    builtin = [o for o in objects if (o["apiVersion"], o["kind"]) not in custom]
    for o in objects:
        if (o["apiVersion"], o["kind"]) in custom:
            # Not checked against the metaschema: the CRDs' patterns are Go regular expressions.
            jsonschema.Draft7Validator(custom[(o["apiVersion"], o["kind"])]).validate(o)
    path = tmp_path / "builtin.yaml"
    path.write_text(yaml.safe_dump_all(builtin))
    validator = str(Path(sys.executable).parent / "kubernetes-validate")
    validate = subprocess.run([validator, "--strict", "-k", "1.30.0", str(path)], capture_output=True, text=True)
    assert validate.returncode == 0 and "Couldn't find schema" not in validate.stdout + validate.stderr, (
        validate.stdout + validate.stderr
    )


@pytest.mark.parametrize(
    "extra",
    [[], GPU, [*AUTOSCALING, *MONITORING], [*AUTOSCALING, "autoscaling.keda=false", *GPU]],
    ids=["default", "gpu", "keda+monitoring", "hpa+gpu"],
)
def test_every_rendered_object_is_valid_for_its_schema(helm, tmp_path, extra):
    lint = subprocess.run(
        [helm, "lint", "--strict", str(ROOT / "helm" / "lfr"), *sum((["--set", v] for v in [*VALUES, *extra]), [])],
        capture_output=True,
        text=True,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    _validate(_objects(_render(helm, *VALUES, *extra)), tmp_path)


def test_a_crd_schema_refuses_a_misspelt_field(tmp_path):
    import jsonschema

    scaled = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "x"},
        "spec": {"scaleTargetRef": {"name": "x"}, "maxReplicas": 3, "triggers": [{"type": "kafka", "metadata": {}}]},
    }
    with pytest.raises(jsonschema.ValidationError, match="maxReplicas"):
        _validate([scaled], tmp_path)


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("services.detect.replica=2", "replica"),  # a typo of replicas
        ("services.detect.replicas=-1", "/services/detect/replicas"),
        ("podDisruptionBudget.maxUnavailable=none", "/podDisruptionBudget/maxUnavailable"),
        ("services.embed.env.EMBED_BATCH=8", "EMBED_BATCH"),  # settings are LFR_*
        ("monitoring.serviceMonitor.interval=often", "/monitoring/serviceMonitor/interval"),
        ("services.detect.replicas=8", "services.detect.replicas (8) is over topics.partitions (6)"),
        ("autoscaling.enabled=true,autoscaling.maxReplicas=12", "autoscaling.maxReplicas (12) is over"),
        ("services.deployments.replicas=2", "/services/deployments/replicas"),  # one control plane
        ("services.match.grpcPort=50051", "grpcPort"),  # the DeploymentService moved to `deployments`
    ],
)
def test_a_values_file_with_a_mistake_is_refused_with_the_key_named(helm, value, named):
    rendered = _render(helm, *VALUES, value)
    assert rendered.returncode != 0 and named in rendered.stderr, rendered.stderr


def test_gpus_are_requested_and_their_nodes_tolerated_for_detect_and_embed(helm):
    objects = _objects(_render(helm, *VALUES, *GPU))
    deployments = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Deployment"}
    for name in ("lfr-detect", "lfr-embed"):
        pod = deployments[name]["spec"]["template"]["spec"]
        assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert deployments["lfr-embed"]["spec"]["template"]["spec"]["nodeSelector"] == {"gpu": "h200"}
    for name in ("lfr-ingest", "lfr-match", "lfr-alert", "lfr-console"):
        pod = deployments[name]["spec"]["template"]["spec"]
        assert "nvidia.com/gpu" not in pod["containers"][0]["resources"]["limits"] and "tolerations" not in pod


def test_stages_scale_on_the_lag_of_the_consumer_group_they_really_use(helm):
    from lfr_contracts import topics
    from lfr_platform.settings import PlatformSettings
    from lfr_platform.stage import StageRunner

    objects = _objects(_render(helm, *VALUES, *AUTOSCALING))
    scaled = {o["spec"]["scaleTargetRef"]["name"]: o for o in objects if o["kind"] == "ScaledObject"}
    assert set(scaled) == {f"lfr-{s}" for s in STAGES}
    platform = PlatformSettings(topic_prefix="force-a.")
    by_name = {t.base_name: t for t in vars(topics).values() if isinstance(t, topics.Topic)}
    for stage, topic in STAGES.items():
        [trigger] = scaled[f"lfr-{stage}"]["spec"]["triggers"]
        assert trigger["type"] == "kafka"
        assert trigger["metadata"]["consumerGroup"] == StageRunner(stage, None, platform, None).consumer_group
        assert trigger["metadata"]["topic"] == by_name[topic].name(platform.topic_prefix)
        assert scaled[f"lfr-{stage}"]["spec"]["maxReplicaCount"] <= 6  # the partitions
    deployments = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Deployment"}
    assert "replicas" not in deployments["lfr-detect"]["spec"]  # KEDA owns it
    assert deployments["lfr-ingest"]["spec"]["replicas"] == 1  # not a consumer: not scaled
    budgets = {o["metadata"]["name"] for o in objects if o["kind"] == "PodDisruptionBudget"}
    assert budgets == {f"lfr-{s}" for s in STAGES}
    hpa = _objects(_render(helm, *VALUES, *AUTOSCALING, "autoscaling.keda=false"))
    assert {o["metadata"]["name"] for o in hpa if o["kind"] == "HorizontalPodAutoscaler"} == set(scaled)


def test_network_policies_admit_only_the_flows_that_must_exist(helm):
    control_room = "networkPolicy.apiFrom[0].namespaceSelector.matchLabels.team=control-room"
    objects = _objects(_render(helm, *VALUES, control_room))
    policies = {o["metadata"]["name"].removeprefix("lfr-"): o["spec"] for o in objects if o["kind"] == "NetworkPolicy"}
    assert set(policies) == {"ingest", "detect", "embed", "match", "alert", "deployments", "console"}

    def ports(spec):
        return sorted(p["port"] for rule in spec["ingress"] for p in rule["ports"])

    for name in ("ingest", "detect", "embed", "match"):  # nothing calls them: metrics only
        assert ports(policies[name]) == ["http"] and policies[name]["policyTypes"] == ["Ingress"]
    for name in ("deployments", "alert"):
        [grpc_rule] = [r for r in policies[name]["ingress"] if r["ports"] == [{"port": "grpc"}]]
        peers = grpc_rule["from"]
        assert peers[0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "console"
        assert peers[1] == {"namespaceSelector": {"matchLabels": {"team": "control-room"}}}
    assert ports(policies["console"]) == ["http", "web"]
    for spec in policies.values():
        assert all(rule.get("from") for rule in spec["ingress"])  # a rule without peers would admit everyone
    restricted = _objects(_render(helm, *VALUES, "networkPolicy.egress[0].to[0].ipBlock.cidr=10.0.0.0/16"))
    match = next(o["spec"] for o in restricted if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "lfr-match")
    assert (
        match["policyTypes"] == ["Ingress", "Egress"]
        and {"to": [{"ipBlock": {"cidr": "10.0.0.0/16"}}]} in match["egress"]
    )


def test_rules_and_dashboards_in_the_chart_are_those_of_deploy(helm):
    objects = _objects(_render(helm, *VALUES, *MONITORING))
    [rule] = [o for o in objects if o["kind"] == "PrometheusRule"]
    groups = [
        g
        for path in sorted((ROOT / "deploy" / "prometheus" / "rules").glob("*.rules.yml"))
        for g in yaml.safe_load(path.read_text())["groups"]
    ]
    assert rule["spec"]["groups"] == groups
    [monitor] = [o for o in objects if o["kind"] == "ServiceMonitor"]
    assert monitor["spec"]["jobLabel"] == "app.kubernetes.io/name"  # job="detect", as the rules expect
    dashboards = {
        name: json.loads(text)
        for o in objects
        if o["kind"] == "ConfigMap" and o["metadata"]["labels"].get("grafana_dashboard") == "1"
        for name, text in o["data"].items()
    }
    assert dashboards == {
        p.name: json.loads(p.read_text()) for p in (ROOT / "deploy" / "grafana" / "dashboards").glob("*.json")
    }
