"""The Grafana dashboards, as code (grafana-foundation-sdk): `make dashboards` writes them to
deploy/grafana/dashboards/*.json, the provisioning files Grafana and the chart load. A test fails if
the JSON drifts from this file, and runs every panel's query against a real Prometheus.

- fleet: per van, faces scanned, alerts, outcomes, both false-alert rates, cameras up;
- pipeline: throughput and latency per stage, consumer lag, drops, dead letters, inference, provider;
- deployment: one deployment's report as panels.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from grafana_foundation_sdk.builders import dashboard, prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef, VariableRefresh

OUT = Path(__file__).with_name("dashboards")
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
DEPLOYMENT = 'deployment_id=~"$deployment"'
VAN = 'van_id=~"$van"'
SCOPE = f"{DEPLOYMENT},{VAN}"


def query(expr: str, legend: str = "", instant: bool = False) -> prometheus.Dataquery:
    q = prometheus.Dataquery().expr(expr).legend_format(legend or "__auto")
    return q.instant() if instant else q


def graph(title: str, unit: str, *queries: prometheus.Dataquery, description: str = "", width: int = 12):
    panel = timeseries.Panel().title(title).unit(unit).datasource(DATASOURCE).span(width).height(8)
    if description:
        panel = panel.description(description)
    for i, q in enumerate(queries):
        panel = panel.with_target(q.ref_id(chr(ord("A") + i)))
    return panel


def number(title: str, expr: str, unit: str = "short", description: str = "", width: int = 4):
    panel = stat.Panel().title(title).unit(unit).datasource(DATASOURCE).span(width).height(4)
    if description:
        panel = panel.description(description)
    return panel.with_target(query(expr, instant=True).ref_id("A"))


def grid(title: str, *queries: prometheus.Dataquery, width: int = 24):
    panel = table.Panel().title(title).datasource(DATASOURCE).span(width).height(8)
    for i, q in enumerate(queries):
        panel = panel.with_target(q.ref_id(chr(ord("A") + i)))
    return panel


def base(uid: str, title: str, description: str, variables: list) -> dashboard.Dashboard:
    board = (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["lfr"])
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("browser")
        .with_variable(dashboard.DatasourceVariable("datasource").label("Prometheus").type("prometheus"))
    )
    for variable in variables:
        board = board.with_variable(variable)
    return board


def label_variable(name: str, label: str, expr: str, multi: bool = True) -> dashboard.QueryVariable:
    variable = (
        dashboard.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(f"label_values({expr}, {name if name != 'deployment' else 'deployment_id'})")
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .multi(multi)
    )
    return variable.include_all(True) if multi else variable


def fleet() -> dashboard.Dashboard:
    deployment = label_variable("deployment", "Deployment", "lfr_faces_scanned_total")
    van = (
        dashboard.QueryVariable("van")
        .label("Van")
        .datasource(DATASOURCE)
        .query(f"label_values(lfr_faces_scanned_total{{{DEPLOYMENT}}}, van_id)")
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .multi(True)
        .include_all(True)
    )
    by_van = "sum by (van_id)"
    return (
        base(
            "lfr-fleet",
            "LFR fleet",
            "Every van: what it scanned, what it raised, what officers decided.",
            [deployment, van],
        )
        .with_row(dashboard.Row("Over the time range"))
        .with_panel(number("Faces scanned", f"sum(increase(lfr_faces_scanned_total{{{SCOPE}}}[$__range]))"))
        .with_panel(number("Alerts", f"sum(increase(lfr_alerts_total{{{SCOPE}}}[$__range]))"))
        .with_panel(
            number(
                "False alerts",
                f'sum(increase(lfr_alerts_adjudicated_total{{{SCOPE},outcome="false"}}[$__range]))'
                f' - sum(increase(lfr_alert_adjudications_withdrawn_total{{{SCOPE},outcome="false"}}[$__range]))',
                description="Alerts officers adjudicated false, net of supervisors' corrections",
            )
        )
        .with_panel(
            number(
                "Waiting for a decision",
                f"sum(max by (deployment_id, van_id) (lfr_alerts_unadjudicated{{{SCOPE}}}))",
                description="Alerts of open deployments nobody has adjudicated yet",
            )
        )
        .with_panel(number("Cameras up", f"sum(lfr_camera_up{{{SCOPE}}})"))
        .with_panel(number("Cameras", f"count(lfr_camera_up{{{SCOPE}}})"))
        .with_row(dashboard.Row("Per van"))
        .with_panel(
            graph(
                "Faces scanned per second",
                "short",
                query(f"{by_van} (rate(lfr_faces_scanned_total{{{SCOPE}}}[$__rate_interval]))", "{{van_id}}"),
            )
        )
        .with_panel(
            graph(
                "Alerts per hour",
                "short",
                query(f"{by_van} (increase(lfr_alerts_total{{{SCOPE}}}[1h]))", "{{van_id}}"),
            )
        )
        .with_panel(
            graph(
                "Adjudications per hour, by outcome",
                "short",
                query(
                    f"sum by (van_id, outcome) (increase(lfr_alerts_adjudicated_total{{{SCOPE}}}[1h]))",
                    "{{van_id}} {{outcome}}",
                ),
            )
        )
        .with_panel(
            graph(
                "Engagements and final outcomes per hour",
                "short",
                query(
                    f"sum by (van_id, engaged) (increase(lfr_alert_engagements_total{{{SCOPE}}}[1h]))",
                    "{{van_id}} engaged={{engaged}}",
                ),
                query(
                    f"sum by (van_id, outcome) (increase(lfr_alert_final_outcomes_total{{{SCOPE}}}[1h]))",
                    "{{van_id}} {{outcome}}",
                ),
            )
        )
        .with_panel(
            graph(
                "False alerts per face scanned (1 day)",
                "percentunit",
                query(f"deployment_van:lfr_false_alerts_per_face_scanned:ratio1d{{{SCOPE}}}", "{{van_id}}"),
                query("max(lfr_false_alerts_per_face_scanned_limit)", "limit"),
                description="The Met's measure. The limit is LFR_ALERT_FALSE_ALERT_LIMIT_ONE_IN.",
            )
        )
        .with_panel(
            graph(
                "False alerts per alert (1 day)",
                "percentunit",
                query(f"deployment_van:lfr_false_alerts_per_alert:ratio1d{{{SCOPE}}}", "{{van_id}}"),
                description="Its critics' measure.",
            )
        )
        .with_panel(
            graph(
                "Cameras up",
                "short",
                query(f"{by_van} (lfr_camera_up{{{SCOPE}}})", "{{van_id}}"),
            )
        )
        .with_panel(
            graph(
                "Oldest alert waiting for a decision",
                "s",
                query(f"max by (van_id) (lfr_alert_oldest_unadjudicated_seconds{{{SCOPE}}})", "{{van_id}}"),
            )
        )
        .build()
    )


def pipeline() -> dashboard.Dashboard:
    quantile = "histogram_quantile({q}, sum by ({by}, le) (rate({metric}_bucket[$__rate_interval])))"
    return (
        base("lfr-pipeline", "LFR pipeline health", "Throughput, latency and losses of every stage.", [])
        .with_row(dashboard.Row("Throughput and latency"))
        .with_panel(
            graph(
                "Records consumed per second, per stage",
                "short",
                query("sum by (job) (rate(lfr_messages_consumed_total[$__rate_interval]))", "{{job}}"),
            )
        )
        .with_panel(
            graph(
                "Handling time per record, p95",
                "s",
                query(quantile.format(q=0.95, by="job", metric="lfr_message_processing_seconds"), "{{job}}"),
            )
        )
        .with_panel(
            graph(
                "Capture to match and to alert",
                "s",
                *(
                    query(quantile.format(q=q, by="job", metric=m), f"{name} p{int(q * 100)}")
                    for name, m in (
                        ("match", "lfr_capture_to_match_seconds"),
                        ("alert", "lfr_capture_to_alert_seconds"),
                    )
                    for q in (0.5, 0.95, 0.99)
                ),
            )
        )
        .with_panel(
            graph(
                "Consumer lag per stage and partition",
                "short",
                query("sum by (job, topic, partition) (lfr_consumer_lag_records)", "{{job}} {{topic}}[{{partition}}]"),
            )
        )
        .with_row(dashboard.Row("Losses"))
        .with_panel(
            graph(
                "Frames dropped per second, by reason",
                "short",
                query("sum by (reason) (rate(lfr_frames_dropped_total[$__rate_interval]))", "{{reason}}"),
            )
        )
        .with_panel(
            graph(
                "Faces not identifiable per second, by reason",
                "short",
                query("sum by (reason) (rate(lfr_faces_rejected_total[$__rate_interval]))", "{{reason}}"),
            )
        )
        .with_panel(
            graph(
                "Dead letters, by stage and reason",
                "short",
                query(
                    "sum by (job, reason) (increase(lfr_messages_dead_lettered_total[$__rate_interval]))",
                    "{{job}} {{reason}}",
                ),
            )
        )
        .with_panel(
            graph(
                "Batches retried (broker or Redis unavailable)",
                "short",
                query("sum by (job) (increase(lfr_batch_retries_total[$__rate_interval]))", "{{job}}"),
            )
        )
        .with_row(dashboard.Row("Models"))
        .with_panel(
            graph(
                "Inference time per call, p95",
                "s",
                query(quantile.format(q=0.95, by="model", metric="lfr_inference_seconds"), "{{model}}"),
            )
        )
        .with_panel(
            graph(
                "Watchlist search, p99",
                "s",
                query(quantile.format(q=0.99, by="job", metric="lfr_watchlist_search_seconds"), "{{job}}"),
            )
        )
        .with_panel(
            grid(
                "Models and the onnxruntime provider in use",
                query("max by (job, role, model, provider) (lfr_model_info)", instant=True),
            )
        )
        .build()
    )


def one_deployment() -> dashboard.Dashboard:
    deployment = label_variable("deployment", "Deployment", "lfr_faces_scanned_total", multi=False)
    d = 'deployment_id="$deployment"'
    adjudicated = 'sum(increase(lfr_alerts_adjudicated_total{{{d},outcome="{o}"}}[$__range]))'
    withdrawn = 'sum(increase(lfr_alert_adjudications_withdrawn_total{{{d},outcome="{o}"}}[$__range]))'
    net = {
        o: f"({adjudicated.format(d=d, o=o)} - {withdrawn.format(d=d, o=o)})" for o in ("true", "false", "undetermined")
    }
    scanned = f"sum(increase(lfr_faces_scanned_total{{{d}}}[$__range]))"
    alerts = f"sum(increase(lfr_alerts_total{{{d}}}[$__range]))"
    return (
        base(
            "lfr-deployment",
            "LFR deployment",
            "One deployment's report as panels (the record of reference is `lfr deployment report`).",
            [deployment],
        )
        .with_row(dashboard.Row("Report"))
        .with_panel(number("Watchlist entries", f"max(lfr_watchlist_entries{{{d}}})"))
        .with_panel(number("Faces scanned", scanned))
        .with_panel(number("Alerts", alerts))
        .with_panel(number("True", net["true"]))
        .with_panel(number("False", net["false"]))
        .with_panel(number("Undetermined", net["undetermined"]))
        .with_panel(
            number("Waiting for a decision", f"sum(max by (deployment_id, van_id) (lfr_alerts_unadjudicated{{{d}}}))")
        )
        .with_panel(number("Engaged", f'sum(increase(lfr_alert_engagements_total{{{d},engaged="true"}}[$__range]))'))
        .with_panel(
            number("Arrests", f'sum(increase(lfr_alert_final_outcomes_total{{{d},outcome="arrest"}}[$__range]))')
        )
        .with_panel(
            number(
                "False alerts per face scanned",
                f"{net['false']} / {scanned}",
                "percentunit",
                "The Met's measure; the report gives its 95% interval",
                width=6,
            )
        )
        .with_panel(
            number(
                "False alerts per alert",
                f"{net['false']} / {alerts}",
                "percentunit",
                "Its critics' measure; the report gives its 95% interval",
                width=6,
            )
        )
        .with_panel(
            number(
                "Time to adjudicate, median",
                f"histogram_quantile(0.5, sum by (le) (increase(lfr_alert_decision_seconds_bucket{{{d}}}[$__range])))",
                "s",
                width=6,
            )
        )
        .with_row(dashboard.Row("Over time"))
        .with_panel(
            graph(
                "Faces scanned per second, per van",
                "short",
                query(f"sum by (van_id) (rate(lfr_faces_scanned_total{{{d}}}[$__rate_interval]))", "{{van_id}}"),
            )
        )
        .with_panel(
            graph(
                "Alerts and adjudications per hour",
                "short",
                query(f"sum(increase(lfr_alerts_total{{{d}}}[1h]))", "alerts"),
                query(f"sum by (outcome) (increase(lfr_alerts_adjudicated_total{{{d}}}[1h]))", "{{outcome}}"),
            )
        )
        .build()
    )


DASHBOARDS = {"fleet": fleet, "pipeline": pipeline, "deployment": one_deployment}


def render(name: str) -> str:
    return json.dumps(DASHBOARDS[name](), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def main() -> int:
    OUT.mkdir(exist_ok=True)
    for name in DASHBOARDS:
        (OUT / f"lfr-{name}.json").write_text(render(name))
    print(f"wrote {len(DASHBOARDS)} dashboards to {OUT}", file=sys.stderr)  # noqa: T201 - a build step
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
