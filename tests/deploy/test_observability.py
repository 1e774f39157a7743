"""Prometheus rules and Grafana dashboards as shipped: the rules pass promtool's checks and their
unit tests (cases that fire and cases that don't), and the dashboards' JSON is what their code
builds. Every panel's query runs against a real Prometheus in tests/e2e/test_control_room.py."""

import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = ROOT / "deploy" / "prometheus" / "rules"


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool not found: apt-get install prometheus (`make install` does it)")
    return path


def test_the_rules_are_valid(promtool):
    rules = sorted(str(p) for p in RULES_DIR.glob("*.rules.yml"))
    assert len(rules) == 2
    checked = subprocess.run([promtool, "check", "rules", *rules], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_rules_pass_their_unit_tests(promtool):
    tests = sorted(p.name for p in RULES_DIR.glob("*.rules.test.yml"))
    assert tests == ["lfr-alerts.rules.test.yml", "lfr-rates.rules.test.yml"]
    run = subprocess.run([promtool, "test", "rules", *tests], capture_output=True, text=True, cwd=RULES_DIR)
    assert run.returncode == 0, run.stdout + run.stderr


def test_every_alerting_rule_has_a_case_that_fires(promtool):
    import yaml

    alerts = {
        r["alert"]
        for g in yaml.safe_load((RULES_DIR / "lfr-alerts.rules.yml").read_text())["groups"]
        for r in g["rules"]
    }
    cases = yaml.safe_load((RULES_DIR / "lfr-alerts.rules.test.yml").read_text())["tests"]
    fired = {c["alertname"] for t in cases for c in t.get("alert_rule_test", []) if c["exp_alerts"]}
    quiet = {c["alertname"] for t in cases for c in t.get("alert_rule_test", []) if not c["exp_alerts"]}
    assert alerts == fired == quiet


def test_a_broken_rule_test_fails(promtool, tmp_path):
    """The harness can fail: a case that expects an alert where none fires is reported."""
    (tmp_path / "rules.yml").write_text((RULES_DIR / "lfr-alerts.rules.yml").read_text())
    (tmp_path / "lfr-rates.rules.yml").write_text((RULES_DIR / "lfr-rates.rules.yml").read_text())
    broken = (RULES_DIR / "lfr-alerts.rules.test.yml").read_text().replace("lfr-alerts.rules.yml", "rules.yml")
    broken = broken.replace("      - eval_time: 30s\n        alertname: LfrCameraSilent\n        exp_alerts: []",
                            "      - eval_time: 30s\n        alertname: LfrCameraSilent\n        exp_alerts:\n"
                            "          - exp_labels: {severity: warning}")  # fmt: skip
    (tmp_path / "broken.test.yml").write_text(broken)
    run = subprocess.run([promtool, "test", "rules", "broken.test.yml"], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode != 0 and "LfrCameraSilent" in run.stdout + run.stderr


def test_the_dashboards_are_what_their_code_builds():
    spec = importlib.util.spec_from_file_location("lfr_dashboards", ROOT / "deploy" / "grafana" / "dashboards.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name in module.DASHBOARDS:
        path = ROOT / "deploy" / "grafana" / "dashboards" / f"lfr-{name}.json"
        assert path.read_text() == module.render(name), f"{path.name} drifted: run `make dashboards`"


def test_the_equity_rule_reads_the_policys_limits_and_recommends_a_pause():
    """LfrFalseAlertDisparity compares with the policy's p-value and minimum count, which alert exports
    from the deployment records (deploy/policy.yaml is their one source): no number is typed twice."""
    import yaml

    rules = {
        r["alert"]: r
        for g in yaml.safe_load((RULES_DIR / "lfr-alerts.rules.yml").read_text())["groups"]
        for r in g["rules"]
    }
    rule = rules["LfrFalseAlertDisparity"]
    assert "lfr_equity_p_value_limit" in rule["expr"] and "lfr_equity_min_false_alerts" in rule["expr"]
    policy = yaml.safe_load((ROOT / "deploy" / "policy.yaml").read_text())["equity"]
    assert str(policy["p_value"]) not in rule["expr"] and f" {policy['min_false_alerts']}" not in rule["expr"]
    assert "recommend a pause; a person decides" in rule["annotations"]["summary"]
