"""A real Prometheus for tests (Debian's `prometheus`): scraping the given services every second,
evaluating the given rule files, answering PromQL over its HTTP API. A missing binary fails the test."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime
from pathlib import Path

import yaml

from lfr_stack.processes import free_port, stop_process, wait_for_port


class PrometheusError(AssertionError):
    pass


class Prometheus:
    def __init__(self, root: Path, targets: dict[str, int], rule_files: list[Path]) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            raise PrometheusError("prometheus is not installed (apt-get install prometheus; `make install` does it)")
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.rule_files = rule_files
        self.targets = dict(targets)
        self._write_config()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={root / 'prometheus.yml'}",
                f"--storage.tsdb.path={root / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=open(root / "prometheus.log", "ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for_port(self.port, 30, self.process)

    def _write_config(self) -> None:
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(p) for p in self.rule_files],
            # The job is the service, as in deploy/prometheus/prometheus.yml: metrics carry no service label.
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
                for job, port in self.targets.items()
            ],
        }
        (self.root / "prometheus.yml").write_text(yaml.safe_dump(config))

    def scrape(self, job: str, port: int) -> None:
        """Scrape one more service from now on (the configuration is reloaded, as on SIGHUP)."""
        self.targets[job] = port
        self._write_config()
        self.process.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        stop_process(self.process.pid)

    def _get(self, path: str, **params) -> dict:
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body = json.load(response)
        except urllib.error.HTTPError as exc:
            try:
                body = json.load(exc)
            except ValueError:  # not ready yet (it answers 503 in plain text while it starts)
                raise PrometheusError(f"{path}: HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise PrometheusError(f"{path}: {exc}") from None
        if body.get("status") != "success":
            raise PrometheusError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        """An instant query; raises PrometheusError on a query error."""
        return self._get("/api/v1/query", query=expr, time=str(time.time()))["result"]

    def value(self, expr: str) -> float | None:
        """The value of a query that gives one series (None when it gives none)."""
        result = self.query(expr)
        if len(result) > 1:
            raise PrometheusError(f"{expr} gave {len(result)} series, one expected")
        return float(result[0]["value"][1]) if result else None

    def metric_names(self) -> set[str]:
        """Every metric a scraped target declared (HELP/TYPE, even with no sample yet), and every series name."""
        declared = {m["metric"] for m in self._get("/api/v1/targets/metadata")}
        return declared | set(self._get("/api/v1/label/__name__/values"))

    def targets_up(self) -> dict[str, bool]:
        active = self._get("/api/v1/targets")["activeTargets"]
        return {t["labels"]["job"]: t["health"] == "up" for t in active}

    def alerts(self, name: str) -> list[dict[str, str]]:
        """The labels of every alert of rule `name` pending or firing now."""
        return [a["labels"] for a in self._get("/api/v1/alerts")["alerts"] if a["labels"].get("alertname") == name]

    def last_evaluation(self, rule_name: str) -> float:
        """When the group holding the rule `rule_name` (alert or record) was last evaluated (epoch seconds)."""
        for group in self._get("/api/v1/rules")["groups"]:
            if any(r["name"] == rule_name for r in group["rules"]):
                # RFC 3339 with nanoseconds: Python reads microseconds at most.
                stamp = re.sub(r"(\.\d{6})\d+", r"\1", group["lastEvaluation"]).replace("Z", "+00:00")
                return datetime.fromisoformat(stamp).timestamp()
        raise PrometheusError(f"no rule {rule_name}")


_VARIABLES = {"$__rate_interval": "1m", "$__range": "10m", "$__interval": "15s"}
# lfr_ metric names, recording rules (level:metric:operation) and histogram series of both.
_NAMES = re.compile(r"\b((?:[a-z_]+:)?lfr_[a-z0-9_]+(?::[a-z0-9_]+)?)\b")


def every_dashboard_query_runs(
    prometheus: Prometheus, rule_files: list[Path], dashboards: list[Path], deployment_id: str, van_id: str = "van-1"
) -> int:
    """Run every panel's query and every variable's of the dashboards against `prometheus` (its
    variables set to the deployment and van given), as Grafana would: a query error, or a metric that
    no scraped service declares and no rule records, fails. Returns how many queries ran."""
    recorded = {
        rule["record"]
        for path in rule_files
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "record" in rule
    }
    known = prometheus.metric_names() | recorded
    checked = 0
    for path in dashboards:
        board = json.loads(path.read_text())
        exprs = [t["expr"] for p in board["panels"] for t in p.get("targets") or []]
        exprs += [v["query"] for v in board["templating"]["list"] if v["type"] == "query"]
        for expr in exprs:
            names = {re.sub(r"_(bucket|sum|count)$", "", n) for n in _NAMES.findall(expr)}
            unknown = {n for n in names if n not in known and f"{n}_total" not in known}
            if unknown:
                raise PrometheusError(f"{path.name}: unknown metric(s) {unknown} in {expr}")
            query = expr.replace("$deployment", deployment_id).replace("$van", van_id)
            for variable, value in _VARIABLES.items():
                query = query.replace(variable, value)
            if query.startswith("label_values("):
                metric = query.removeprefix("label_values(").split(",")[0].split("{")[0]
                query = f"count({metric})"
            prometheus.query(query)  # raises on a query error
            checked += 1
    return checked


def metric_names_pass_promtool(ports: dict[str, int]) -> None:
    """Each service's /metrics passes `promtool check metrics` (names, units, help) without a word."""
    promtool = shutil.which("promtool")
    if promtool is None:
        raise PrometheusError("promtool not found: apt-get install prometheus (`make install` does it)")
    for name, port in ports.items():
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            scrape = response.read()
        checked = subprocess.run([promtool, "check", "metrics"], input=scrape, capture_output=True)
        problems = (checked.stdout + checked.stderr).decode()
        if checked.returncode != 0 or problems.strip():
            raise PrometheusError(f"{name}: {problems}")
