"""A real Prometheus for tests (Debian's `prometheus`): scraping the given services every second,
evaluating the given rule files, answering PromQL over its HTTP API. A missing binary fails the test."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
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
