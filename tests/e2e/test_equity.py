"""The live equity monitor end to end (issue 19, part 3): the deployments service copies the shipped
policy's perceived-group lists and equity block into each deployment it creates; signed matches on
the real broker raise alerts in the alert service; officers adjudicate them over the AlertService
with perceived groups; a real Prometheus scrapes alert and evaluates the shipped rule files. A fair
sequence of false alerts does not fire LfrFalseAlertDisparity; a biased one fires it, for its
deployment and for the fleet's window, and the deployment report says the same. Every dashboard's
query then runs against that Prometheus (the transparency dashboard and the equity panels too).

The decisions are injected (matches signed with the deployment's key, as match publishes them): no
video is needed to test whom false alerts fall on, and the whole runs in well under a minute (13 s
on a 2-core machine)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc
import pytest
import redis.asyncio as aioredis

from lfr.v1 import alerts_pb2 as apb
from lfr.v1 import deployments_pb2 as pb
from lfr_contracts import MATCHES_FOUND
from lfr_contracts.clients import AlertClient, DeploymentClient
from lfr_platform.registry import DeploymentRegistry, RedisKeys
from lfr_platform.settings import PlatformSettings
from lfr_testing.deployments import provenance
from lfr_testing.kafka import produce
from lfr_testing.media import lfw
from lfr_testing.messages import match_record
from lfr_testing.prometheus import Prometheus, every_dashboard_query_runs, metric_names_pass_promtool
from lfr_testing.stack import eventually

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
RULES = sorted((ROOT / "deploy" / "prometheus" / "rules").glob("*.rules.yml"))
DASHBOARDS = sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))
RULE = "LfrFalseAlertDisparity"
SUBJECT = "Colin_Powell"
# One alert per camera: each injected match is a pass of its own.
CAMERAS = [f"cam-{i}" for i in range(1, 11)]
# Ten false alerts each (the shipped policy's min_false_alerts), perceived (sex, ethnicity). The fair
# sequence is near the shipped reference shares (IC1 83.4%, IC3 4.2%, IC4 8.9%; female 51%): every
# p-value is above 0.3. The biased one puts all ten on IC3: p = 0.042**10 for the deployment, and
# 11 of 20 for the fleet's window (p about 1e-12); its sexes are balanced, so only IC3 fires.
FAIR = [("female", "IC1")] * 4 + [("male", "IC1")] * 4 + [("female", "IC3"), ("male", "IC4")]
BIASED = [("female", "IC3")] * 5 + [("male", "IC3")] * 5


def test_the_equity_rule_fires_on_a_biased_sequence_and_stays_quiet_on_a_fair_one(stack, tmp_path, data_dir):
    state = stack.start(services=("deployments", "alert"))
    deployments = DeploymentClient(state.grpc_address, state.tokens["manager"], timeout_s=120)
    officer = AlertClient(state.alert_grpc_address, state.tokens["officer"])
    ports = {name: stack.http_port(name) for name in ("deployments", "alert")}
    prometheus = Prometheus(tmp_path / "prometheus", ports, RULES)
    try:
        fair = _deployment(stack, deployments, data_dir, "Op Fair")
        with pytest.raises(grpc.RpcError) as outside:  # bad input: refused with the list named
            officer.adjudicate(
                _alerts(stack, officer, fair, 10)[0].alert_id,
                apb.ADJUDICATION_OUTCOME_FALSE,
                "PC 1",
                perceived_ethnicity="IC7",
            )
        assert outside.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "IC1, IC2, IC3, IC4, IC5, IC6, IC9" in outside.value.details()
        _adjudicate(officer, _alerts(stack, officer, fair, 10), FAIR)

        # The fair sequence measured (10 false alerts tested, the minimum), then the rule evaluated on it.
        def measured(deployment_id: str, fleet: int):
            tested = 'max(lfr_equity_false_alerts_tested{{window="{w}",dimension="ethnicity"{d}}})'
            assert prometheus.value(tested.format(w="deployment", d=f',deployment_id="{deployment_id}"')) == 10
            assert prometheus.value(tested.format(w="fleet", d="")) == fleet

        eventually(lambda: measured(fair, fleet=10), timeout_s=30)
        seen = time.time()
        eventually(lambda: _evaluated_after(prometheus, seen), timeout_s=30)
        assert prometheus.alerts(RULE) == []
        p_ic3 = prometheus.value('max(lfr_equity_p_value{window="fleet",dimension="ethnicity",group="IC3"})')
        assert p_ic3 == pytest.approx(0.349, abs=0.001)  # 1 of 10 at 4.2%

        biased = _deployment(stack, deployments, data_dir, "Op Biased")
        _adjudicate(officer, _alerts(stack, officer, biased, 10), BIASED)
        expected = [
            {"window": "deployment", "deployment_id": biased, "dimension": "ethnicity", "group": "IC3"},
            {"window": "fleet", "dimension": "ethnicity", "group": "IC3"},
        ]

        def fired():
            alerts = [
                {k: v for k, v in a.items() if k not in ("alertname", "severity")} for a in prometheus.alerts(RULE)
            ]
            assert sorted(alerts, key=str) == sorted(expected, key=str), alerts

        eventually(fired, timeout_s=60)
        firing = prometheus.alerts(RULE)
        assert {a["severity"] for a in firing} == {"critical"}
        assert not [a for a in firing if a.get("deployment_id") == fair]  # the fair deployment: still quiet

        # The report says the same, from the deployments' own records.
        reports = {d: deployments.report(d).equity for d in (fair, biased)}
        assert [g.group for g in reports[biased].groups if g.disparity] == ["IC3"]
        assert not [g for g in reports[fair].groups if g.disparity]
        assert reports[biased].false_alerts_tested["ethnicity"] == 10
        assert next(g for g in reports[biased].groups if g.group == "IC3").p_value == pytest.approx(0.042**10)

        assert every_dashboard_query_runs(prometheus, RULES, DASHBOARDS, biased) >= 50
        metric_names_pass_promtool(ports)  # the new metrics' names and help too
    finally:
        prometheus.stop()


def _deployment(stack, client: DeploymentClient, data_dir: Path, name: str) -> str:
    """A deployment created by the deployments service (the shipped policy copied into its record),
    one photo enrolled and reviewed: its matches are admitted by alert."""
    request = pb.CreateDeploymentRequest(
        name=name, purpose="wanted persons", authorising_officer="Supt. Example", location="Station Road",
        where="crime_hotspot", cameras=[pb.CameraCoverage(van_id="van-1", camera_id=c) for c in CAMERAS],
    )  # fmt: skip
    request.planned_end.FromSeconds(int(time.time() + 3 * 3600))
    deployment = client.create(request)
    assert list(deployment.perceived_groups.ethnicity) == ["IC1", "IC2", "IC3", "IC4", "IC5", "IC6", "IC9"]
    image = pb.WatchlistImage(
        **provenance(), client_ref="1", subject_id=SUBJECT, category="wanted", source_reference=f"PNC/{SUBJECT}",
        approved_by="Insp. Approver", image=lfw(data_dir, SUBJECT).read_bytes(),
    )  # fmt: skip
    results = list(client.enrol(deployment.deployment_id, iter([image]), 1))
    assert [r.status for r in results] == [pb.ENROL_STATUS_ENROLLED]
    client.review(deployment.deployment_id, "Insp. Reviewer")
    _produce_matches(stack, deployment.deployment_id)
    return deployment.deployment_id


def _produce_matches(stack, deployment_id: str) -> None:
    """One match per camera, signed with the deployment's data key as match signs it."""
    state = stack.state
    platform = PlatformSettings(
        kafka_bootstrap_servers=state.kafka_bootstrap_servers,
        topic_prefix=state.topic_prefix,
        redis_url=state.redis_url,
        redis_prefix=state.redis_prefix,
        key_encryption_key_file=stack.root / "kek",
    )

    async def send() -> None:
        client = aioredis.from_url(state.redis_url)
        try:
            registry = DeploymentRegistry(client, RedisKeys(state.redis_prefix), platform.key_wrap())
            key = (await registry.lookup(deployment_id)).data_key
        finally:
            await client.aclose()
        matches = [match_record(deployment_id, c, SUBJECT, i, 0.9, key=key) for i, c in enumerate(CAMERAS)]
        await produce(platform, MATCHES_FOUND, matches)

    asyncio.run(send())


def _alerts(stack, officer: AlertClient, deployment_id: str, count: int) -> list[apb.AlertRaised]:
    def raised():
        alerts = officer.list(deployment_id)
        assert len(alerts) == count, f"{len(alerts)} of {count} alerts raised"
        return sorted(alerts, key=lambda a: a.camera.camera_id)

    return eventually(raised, timeout_s=60)


def _adjudicate(officer: AlertClient, alerts: list[apb.AlertRaised], perceived: list[tuple[str, str]]) -> None:
    for alert, (sex, ethnicity) in zip(alerts, perceived, strict=True):
        answer = officer.adjudicate(
            alert.alert_id,
            apb.ADJUDICATION_OUTCOME_FALSE,
            "PC 1234",
            perceived_sex=sex,
            perceived_ethnicity=ethnicity,
        )
        assert answer.changed and answer.alert.adjudication.perceived_ethnicity == ethnicity


def _evaluated_after(prometheus: Prometheus, t: float) -> None:
    assert prometheus.last_evaluation(RULE) > t, "the rule not evaluated since"
