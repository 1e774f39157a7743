"""`lfr transparency notice|record`: what a force publishes before and after its deployments, built from
the DeploymentService's reports (no other source), validated against the versioned JSON Schemas in
docs/schemas/ before anything is written.

The notice (before a deployment): when, where, why there (the policy's `where`) and whom it seeks by
category. The record (after, for a period): per deployment and in total, the Met's annual-report
figures (deployments, faces scanned, alerts, false alerts, engagements, arrests), the threshold and
model, both false-alert rates with their intervals, and the false alerts predicted where known.

Neither holds personal or biometric data: no subject id, image or template, no officer's name and
no free-text purpose (a purpose can name a person); the deployment's name and location are the
operation's, as published today.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema

from lfr.v1 import deployments_pb2 as pb
from lfr_cli.deployments import err, plain
from lfr_platform.rates import wilson

SCHEMAS = Path(__file__).with_name("schemas")
NOTICE_SCHEMA = "transparency-notice.v1.schema.json"
RECORD_SCHEMA = "transparency-record.v1.schema.json"
# Deployments a record covers: those that ended (closed by a person, expired, or lost).
ENDED = {pb.DEPLOYMENT_STATE_CLOSED, pb.DEPLOYMENT_STATE_EXPIRED, pb.DEPLOYMENT_STATE_LOST}
# The figures summed per deployment, per month and in total (the shape of the Met's annual report).
TOTALS = ("deployments", "faces_scanned", "alerts", "true_alerts", "false_alerts", "engagements", "arrests")


class TransparencyError(ValueError):
    pass


def schema(name: str) -> dict:
    return json.loads((SCHEMAS / name).read_text())


def validated(document: dict, schema_name: str) -> dict:
    """The document, or TransparencyError naming what breaks the schema (nothing half written)."""
    try:
        jsonschema.validate(document, schema(schema_name), format_checker=jsonschema.FormatChecker())
    except jsonschema.ValidationError as exc:
        where = "/".join(map(str, exc.absolute_path)) or "the document"
        raise TransparencyError(f"{where}: {exc.message} (schema {schema_name})") from exc
    return document


def notice(deployment: pb.Deployment, report: pb.DeploymentReport, now: datetime) -> dict:
    data = plain(deployment)
    return validated(
        {
            "schema": NOTICE_SCHEMA,
            "published_at": _iso(now),
            "deployment_id": deployment.deployment_id,
            "operation": deployment.name,
            "location": deployment.location,
            "where": deployment.where,
            "start": data["planned_start"],
            "end": data["planned_end"],
            "authorisation": "urgent" if deployment.urgent else "written",
            "watchlist_categories": dict(sorted(report.watchlist_categories.items())),
            "watchlist_size": deployment.enrolled_images,
            "threshold": round(deployment.threshold, 4),
            "model_id": deployment.model_id,
            **_operating_point(deployment),
        },
        NOTICE_SCHEMA,
    )


def _operating_point(deployment: pb.Deployment) -> dict:
    """How the threshold was derived: the budget, the entries, the group that bound it (no person's data)."""
    if not deployment.HasField("operating_point"):
        return {}
    p = deployment.operating_point
    recall = p.predicted_recall if p.HasField("predicted_recall") else None
    return {
        "operating_point": {
            "entries": p.entries,
            "false_alert_budget": p.budget,
            "derived_threshold": round(p.derived_threshold, 4) if p.HasField("derived_threshold") else None,
            "threshold_source": p.threshold_source or "derived",
            "bound_by": p.bound_by,
            "group": p.group,
            "predicted_false_alerts_per_face_upper": p.predicted_fpir_upper,
            "curve_version": p.curve_version,
            "predicted_recall": (
                {"rate": recall.rate, "lower_95": recall.lower_95, "upper_95": recall.upper_95} if recall else None
            ),
        }
    }


def _rate(r: dict) -> dict:
    return {k: r.get(k, 0) for k in ("count", "total", "rate", "lower_95", "upper_95")}


def deployment_entry(report: pb.DeploymentReport) -> dict:
    r = plain(report)
    o = r["outcomes"]
    entry = {
        "deployment_id": r["deployment_id"],
        "operation": r["name"],
        "location": r["location"],
        "where": r["where"],
        "authorisation": r["authorisation"].split(" by ")[0],  # "urgent, ratified in writing", never a name
        "state": r["state"],
        "start": r["start"],
        "end": r["end"],
        "threshold": r["threshold"],
        "threshold_below_floor": bool(r["threshold_override_reason"]),
        "model_id": r["model_id"],
        "watchlist_size": r["watchlist_images"],
        "watchlist_subjects": r["watchlist_subjects"],
        "watchlist_categories": dict(sorted(report.watchlist_categories.items())),
        "faces_scanned": r["faces_scanned"],
        "alerts": o["alerts"],
        "true_alerts": o["true_alerts"],
        "false_alerts": o["false_alerts"],
        "undetermined": o["undetermined"],
        "unadjudicated": o["unadjudicated"],
        "engagements": o["engaged"],
        "arrests": o["arrests"],
        "false_alerts_per_face_scanned": _rate(r["false_alerts_per_face_scanned"]),
        "false_alerts_per_alert": _rate(r["false_alerts_per_alert"]),
        "predicted_false_alerts": None,
        "false_alerts_by_perceived_group": [
            {
                "dimension": g.dimension,
                "group": g.group,
                "true_alerts": g.true_alerts,
                "false_alerts": g.false_alerts,
                "reference_share": g.reference_share if g.HasField("reference_share") else None,
                "p_value": g.p_value if g.HasField("p_value") else None,
            }
            for g in report.equity.groups
        ],
    }
    p = r.get("predicted_false_alerts") or {}
    if p.get("watchlist_size"):
        entry["predicted_false_alerts"] = {
            "expected": p["expected"],
            "lower_95": p["expected_lower_95"],
            "upper_95": p["expected_upper_95"],
            "per_face": p["per_face"],
            "over_policy_limit": bool(p.get("override_reason")),
        }
    return entry


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime

    def holds(self, start_iso: str | None) -> bool:
        return bool(start_iso) and self.start <= datetime.fromisoformat(start_iso) < self.end


def record(reports: list[pb.DeploymentReport], period: Period, now: datetime, audit_roots: list | None = None) -> dict:
    """The after-deployment record of the deployments that started in the period and have ended."""
    entries = sorted(
        (deployment_entry(r) for r in reports if r.state in ENDED and period.holds(plain(r)["start"])),
        key=lambda e: (e["start"], e["deployment_id"]),
    )
    by_month: dict[str, list[dict]] = defaultdict(list)
    for e in entries:
        by_month[e["start"][:7]].append(e)
    return validated(
        {
            "schema": RECORD_SCHEMA,
            "published_at": _iso(now),
            "period": {"from": _iso(period.start), "to": _iso(period.end)},
            "deployments": entries,
            "totals": _rollup(entries),
            "months": [{"month": month, **_rollup(rows)} for month, rows in sorted(by_month.items())],
            "audit_roots": audit_roots or [],
        },
        RECORD_SCHEMA,
    )


def _rollup(entries: list[dict]) -> dict:
    sums = {name: sum(e[name] for e in entries) for name in TOTALS if name != "deployments"}
    per_face, per_alert = (
        wilson(sums["false_alerts"], sums["faces_scanned"]),
        wilson(sums["false_alerts"], sums["alerts"]),
    )
    return {
        "deployments": len(entries),
        **sums,
        "false_alerts_per_face_scanned": _wilson(per_face),
        "false_alerts_per_alert": _wilson(per_alert),
    }


def _wilson(rate) -> dict:
    return {"count": rate.k, "total": rate.n, "rate": rate.value or 0.0, "lower_95": rate.low, "upper_95": rate.high}


def _operating_text(p: dict | None) -> list[str]:
    if not p:
        return []
    recall = p.get("predicted_recall")
    found = (
        f" At it, about {recall['rate']:.0%} (95%: {recall['lower_95']:.0%}-{recall['upper_95']:.0%}) of listed "
        "people passing a camera are predicted to be found."
        if recall
        else ""
    )
    return [
        f"The threshold follows from the force's promise of at most 1 in {1 / p['false_alert_budget']:,.0f} faces "
        f"scanned falsely alerted, for a watchlist of {p['entries']:,} entries: up to "
        f"1 in {1 / max(p['predicted_false_alerts_per_face_upper'], 1e-12):,.0f} are predicted, for the group the "
        f"model errs on most ({p['group']}).{found}",
        "",
    ]


def markdown(document: dict) -> str:
    if document["schema"] == NOTICE_SCHEMA:
        d = document
        categories = ", ".join(f"{k} ({n})" for k, n in d["watchlist_categories"].items()) or "not enrolled yet"
        return "\n".join(
            [
                f"# Live facial recognition: {d['operation']}",
                "",
                f"Live facial recognition will be used at **{d['location']}** from {d['start']} to {d['end']} "
                f"({d['where'].replace('_', ' ')}; {d['authorisation']} authorisation).",
                "",
                f"The watchlist holds {d['watchlist_size']} images of people sought as: {categories}. "
                f"Faces that do not match it are deleted at once. Threshold {d['threshold']} ({d['model_id']}).",
                "",
                *_operating_text(d.get("operating_point")),
            ]
        )
    t = document["totals"]
    lines = [
        f"# Live facial recognition: record {document['period']['from'][:10]} to {document['period']['to'][:10]}",
        "",
        f"{t['deployments']} deployments, {t['faces_scanned']:,} faces scanned, {t['alerts']:,} alerts, "
        f"{t['false_alerts']} false alerts ({_per(t['false_alerts_per_face_scanned'])} faces scanned; "
        f"{_per(t['false_alerts_per_alert'])} alerts), {t['engagements']} engagements, {t['arrests']} arrests.",
        "",
        "| date | operation | location | where | faces scanned | alerts | false alerts | predicted | engaged "
        "| arrests |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in document["deployments"]:
        p = e["predicted_false_alerts"]
        predicted = f"{p['expected']:.2g} (95% up to {p['upper_95']:.2g})" if p else "-"
        lines.append(
            f"| {e['start'][:10]} | {e['operation']} | {e['location']} | {e['where'].replace('_', ' ')} | "
            f"{e['faces_scanned']:,} | {e['alerts']} | {e['false_alerts']} | {predicted} | {e['engagements']} | "
            f"{e['arrests']} |"
        )
    lines += [
        "",
        "| month | deployments | faces scanned | alerts | false alerts | arrests |",
        "|---|---|---|---|---|---|",
    ]
    for m in document["months"]:
        lines.append(
            f"| {m['month']} | {m['deployments']} | {m['faces_scanned']:,} | {m['alerts']} | {m['false_alerts']} | "
            f"{m['arrests']} |"
        )
    lines += ["", "Intervals: Wilson score, 95%. Schema: " + document["schema"], ""]
    return "\n".join(lines)


def _per(rate: dict) -> str:
    return f"1 in {rate['total'] / rate['count']:,.0f}" if rate["count"] else f"0 in {rate['total']:,}"


CSV_COLUMNS = (
    "deployment_id", "operation", "location", "where", "start", "end", "threshold", "model_id", "watchlist_size",
    "faces_scanned", "alerts", "true_alerts", "false_alerts", "engagements", "arrests", "predicted_false_alerts",
)  # fmt: skip


def csv_text(document: dict) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    rows = [document] if document["schema"] == NOTICE_SCHEMA else document["deployments"]
    for row in rows:
        p = row.get("predicted_false_alerts")
        writer.writerow({**row, "predicted_false_alerts": f"{p['expected']:.4f}" if p else ""})
    return out.getvalue()


def write(document: dict, out: Path | None, stem: str) -> list[Path]:
    """JSON on stdout, or `stem`.json, .md and .csv into `out`."""
    if out is None:
        print(json.dumps(document, indent=2))  # noqa: T201 - the document is the command's output
        return []
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{stem}.json", out / f"{stem}.md", out / f"{stem}.csv"]
    for path, text in zip(
        paths, (json.dumps(document, indent=2) + "\n", markdown(document), csv_text(document)), strict=True
    ):
        path.write_text(text)
    return paths


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def run_notice(client, args) -> int:
    document = notice(client.get(args.deployment_id), client.report(args.deployment_id), datetime.now(UTC))
    for path in write(document, args.out, f"notice-{args.deployment_id}"):
        err.print(f"wrote {path}")
    return 0


def run_record(client, args, stack_dir: Path) -> int:
    period = Period(_when(args.start, "--from"), _when(args.end, "--to"))
    if period.end <= period.start:
        raise TransparencyError("--to must be after --from")
    roots = _audit_roots(args, stack_dir, period)
    reports = [
        client.report(d.deployment_id)
        for d in client.list()
        if d.state in ENDED and period.holds(plain(d)["planned_start"])
    ]
    document = record(reports, period, datetime.now(UTC), roots)
    stem = f"record-{period.start.date()}-{period.end.date()}"
    for path in write(document, args.out, stem):
        err.print(f"wrote {path}")
    return 0


def _when(text: str, option: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise TransparencyError(f"{option} takes an ISO 8601 date or time, not {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _audit_roots(args, stack_dir: Path, period: Period) -> list[dict]:
    """The audit trail's signed daily roots of the period's days, read off the trail (docs/audit.md);
    none, with a warning, when no broker is known."""
    import asyncio

    from lfr_cli.audit import AuditCommandError, _where
    from lfr_contracts import AUDIT_RECORDED
    from lfr_platform.audit_broker import read_topic
    from lfr_platform.audit_trail import root_as_dict, roots_on_trail

    try:
        servers, prefix = _where(args, stack_dir)
    except AuditCommandError as exc:
        err.print(f"[yellow]warning:[/] the record holds no signed audit roots: {exc}")
        return []
    records, _ = asyncio.run(read_topic(servers, AUDIT_RECORDED.name(prefix), timeout_s=args.timeout))
    last = (period.end - timedelta(microseconds=1)).date().isoformat()
    return [root_as_dict(r) for r in roots_on_trail(records, period.start.date().isoformat(), last)]
