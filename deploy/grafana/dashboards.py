"""The Grafana dashboards, as code (grafana-foundation-sdk): `make dashboards` writes them to
deploy/grafana/dashboards/*.json, the provisioning files Grafana and the chart load. A test fails if
the JSON drifts from this file, and runs every panel's query against a real Prometheus.

- fleet: per van, faces scanned, alerts, outcomes, both false-alert rates, cameras up; the equity
  monitor (false alerts per perceived group against their reference shares);
- pipeline: throughput and latency per stage, consumer lag, drops, dead letters, inference, provider;
- deployment: one deployment's report as panels;
- transparency: the period's rollup (deployments, faces scanned, alerts, false alerts, both rates) and
  the equity monitor's fleet window, as the force publishes them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from grafana_foundation_sdk.builders import common, dashboard, prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import ScaleDistribution
from grafana_foundation_sdk.models.dashboard import DataSourceRef, DataTransformerConfig, VariableRefresh
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

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


def grid(title: str, *queries: prometheus.Dataquery, width: int = 24, description: str = ""):
    panel = table.Panel().title(title).datasource(DATASOURCE).span(width).height(8)
    if description:
        panel = panel.description(description)
    for i, q in enumerate(queries):
        panel = panel.with_target(q.ref_id(chr(ord("A") + i)))
    return panel


def joined(title: str, by: str, columns: dict[str, str], description: str = "", width: int = 24):
    """A table of instant queries, one column each (`columns`: name -> expr), joined on the labels `by`."""
    panel = grid(
        title,
        *(query(expr, name, instant=True).format(PromQueryFormat.TABLE) for name, expr in columns.items()),
        width=width,
        description=description,
    )
    organize = {
        "excludeByName": {"Time": True},
        "renameByName": {f"Value #{chr(ord('A') + i)}": n for i, n in enumerate(columns)},
    }
    return panel.with_transformation(DataTransformerConfig(id_val="merge", options={})).with_transformation(
        DataTransformerConfig(
            id_val="organize", options={**organize, "indexByName": {n: i for i, n in enumerate(by.split(", "))}}
        )
    )


# --- the equity monitor (alert: lfr_platform.equity) -------------------------------------------
EQUITY_DESCRIPTION = (
    "False alerts by the person's perceived group, as adjudicating officers recorded it (the policy's lists), "
    "against the group's reference share (the policy's, e.g. the area's census): the exact binomial test, "
    "one-sided. LfrFalseAlertDisparity fires below the policy's p-value once its minimum of false alerts is "
    "tested; it recommends a pause, and a person decides."
)


def equity_table(window: str = 'window="fleet"') -> table.Panel:
    by = "dimension, group"
    return joined(
        "False alerts per perceived group, the fleet's rolling window",
        by,
        {
            "false alerts": f"max by ({by}) (lfr_equity_false_alerts{{{window}}})",
            "reference share": f"max by ({by}) (lfr_equity_reference_share{{{window}}})",
            "p": f"max by ({by}) (lfr_equity_p_value{{{window}}})",
        },
        EQUITY_DESCRIPTION,
        width=12,
    )


def equity_p_values(scope: str) -> timeseries.Panel:
    selected = f'lfr_equity_p_value{{window="fleet"}} or lfr_equity_p_value{{window="deployment",{scope}}}'
    limit = f'lfr_equity_p_value_limit{{window="fleet"}} or lfr_equity_p_value_limit{{window="deployment",{scope}}}'
    return graph(
        "p-value per perceived group, against the policy's",
        "none",
        query(
            f"max by (window, deployment_id, dimension, group) ({selected})",
            "{{window}} {{deployment_id}} {{dimension}} {{group}}",
        ),
        query(f"min({limit})", "the policy's p-value"),
        description=EQUITY_DESCRIPTION,
    ).scale_distribution(common.ScaleDistributionConfig().type(ScaleDistribution.LOG).log(10))


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
                query(
                    f"max by (deployment_id) (lfr_false_alerts_per_face_scanned_limit{{{DEPLOYMENT}}})",
                    "budget {{deployment_id}}",
                ),
                description="The Met's measure, against each deployment's false-alert budget (the policy's "
                "false_alert_budget, which its threshold was derived from).",
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
        .with_row(dashboard.Row("Equity: whom false alerts fall on"))
        .with_panel(equity_table())
        .with_panel(equity_p_values(DEPLOYMENT))
        .with_panel(
            graph(
                "False alerts per perceived group, per hour",
                "short",
                query(
                    "sum by (dimension, group) "
                    f"(increase(lfr_false_alerts_by_group_total{{{DEPLOYMENT}}}[1h]))"
                    " - (sum by (dimension, group) "
                    f"(increase(lfr_false_alerts_by_group_withdrawn_total{{{DEPLOYMENT}}}[1h]))"
                    " or sum by (dimension, group) "
                    f"(increase(lfr_false_alerts_by_group_total{{{DEPLOYMENT}}}[1h])) * 0)",
                    "{{dimension}} {{group}}",
                ),
                description="Of the selected deployments, net of supervisors' corrections. " + EQUITY_DESCRIPTION,
                width=24,
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


def transparency() -> dashboard.Dashboard:
    """The period's rollup, as the force publishes it (`lfr transparency record`; the figures of
    reference are the reports, which outlive Prometheus's retention): the dashboard's time range is the period."""
    net_false = (
        'sum(increase(lfr_alerts_adjudicated_total{outcome="false"}[$__range]))'
        ' - (sum(increase(lfr_alert_adjudications_withdrawn_total{outcome="false"}[$__range]))'
        ' or sum(increase(lfr_alerts_adjudicated_total{outcome="false"}[$__range])) * 0)'
    )
    scanned = "sum(increase(lfr_faces_scanned_total[$__range]))"
    alerts = "sum(increase(lfr_alerts_total[$__range]))"
    per = "sum by (deployment_id) (increase({m}[$__range]))"
    return (
        base(
            "lfr-transparency",
            "LFR transparency",
            "The period's rollup (the time range): deployments, faces scanned, alerts, false alerts, both rates; "
            "and whom false alerts fall on. The published record is `lfr transparency record`.",
            [],
        )
        .time("now-30d", "now")
        .with_row(dashboard.Row("The period"))
        .with_panel(
            number(
                "Deployments",
                "count(count by (deployment_id) (max_over_time(lfr_faces_scanned_total[$__range])))",
                description="Deployments whose cameras were counted in the period",
            )
        )
        .with_panel(number("Faces scanned", scanned))
        .with_panel(number("Alerts", alerts))
        .with_panel(number("False alerts", net_false, description="Adjudicated false, net of corrections"))
        .with_panel(
            number("False alerts per face scanned", f"({net_false}) / {scanned}", "percentunit", "The Met's measure")
        )
        .with_panel(
            number("False alerts per alert", f"({net_false}) / {alerts}", "percentunit", "Its critics' measure")
        )
        .with_row(dashboard.Row("Per deployment"))
        .with_panel(
            joined(
                "Per deployment, over the period",
                "deployment_id",
                {
                    "faces scanned": per.format(m="lfr_faces_scanned_total"),
                    "alerts": per.format(m="lfr_alerts_total"),
                    "false alerts": per.format(m='lfr_alerts_adjudicated_total{outcome="false"}')
                    + " - ("
                    + per.format(m='lfr_alert_adjudications_withdrawn_total{outcome="false"}')
                    + " or "
                    + per.format(m='lfr_alerts_adjudicated_total{outcome="false"}')
                    + " * 0)",
                },
            )
        )
        .with_panel(
            graph(
                "False alerts per face scanned (1 day), per deployment",
                "percentunit",
                query("deployment:lfr_false_alerts_per_face_scanned:ratio1d", "{{deployment_id}}"),
            )
        )
        .with_panel(
            graph(
                "False alerts per alert (1 day), per deployment",
                "percentunit",
                query("deployment:lfr_false_alerts_per_alert:ratio1d", "{{deployment_id}}"),
            )
        )
        .with_row(dashboard.Row("Equity: whom false alerts fall on"))
        .with_panel(equity_table())
        .with_panel(equity_p_values('deployment_id=~".+"'))
        .build()
    )


DASHBOARDS = {"fleet": fleet, "pipeline": pipeline, "deployment": one_deployment, "transparency": transparency}


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
