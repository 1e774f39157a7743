"""`lfr deployment ...` and `lfr watchlist enrol`: the DeploymentService from the command line."""

from __future__ import annotations

import json
import re
import sys
from datetime import UTC, datetime, timedelta

from google.protobuf.json_format import MessageToDict
from google.protobuf.timestamp_pb2 import Timestamp
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from lfr.v1 import deployments_pb2 as pb
from lfr_cli.watchlist import iter_messages, scan
from lfr_contracts.clients import DeploymentClient

err = Console(stderr=True, soft_wrap=True)


def _timestamp(when: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(when.astimezone(UTC))
    return ts


def parse_time(text: str) -> datetime:
    when = datetime.fromisoformat(text)
    return when if when.tzinfo else when.astimezone()


def as_dict(deployment: pb.Deployment) -> dict:
    data = MessageToDict(deployment, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
    data["state"] = pb.DeploymentState.Name(deployment.state).removeprefix("DEPLOYMENT_STATE_").lower()
    return data


def print_deployment(deployment: pb.Deployment, as_json: bool) -> None:
    if as_json:
        print(json.dumps(as_dict(deployment)))  # noqa: T201 - machine output goes to stdout
        return
    data = as_dict(deployment)
    table = Table(show_header=False, box=None)
    for key in (
        "deployment_id",
        "name",
        "state",
        "purpose",
        "authorising_officer",
        "location",
        "planned_start",
        "planned_end",
        "where",
        "urgent",
        "ratify_by",
        "ratified_by",
        "ratified_at",
        "threshold",
        "threshold_floor",
        "threshold_override_reason",
        "model_id",
        "enrolled_images",
        "enrolled_subjects",
        "rejected_images",
        "watchlist_size_limit",
        "created_by",
        "closed_at",
        "closed_by",
        "close_reason",
        "reviewed_by",
        "reviewed_at",
        "reviewed_images",
    ):
        if data.get(key) not in (None, "", 0) or key in ("enrolled_images", "state"):
            table.add_row(key, str(data.get(key)))
    if deployment.HasField("predicted_false_alerts"):
        table.add_row("predicted", predicted_line(deployment.predicted_false_alerts).removeprefix("predicted "))
    if deployment.HasField("operating_point"):
        table.add_row("operating point", operating_point_line(deployment.operating_point, deployment.threshold))
    if data.get("cameras"):
        table.add_row("cameras", ", ".join(f"{c['van_id']}/{c['camera_id']}" for c in data["cameras"]))
    groups = deployment.perceived_groups
    for dimension in ("sex", "ethnicity"):
        if getattr(groups, dimension):
            table.add_row(f"perceived {dimension}", ", ".join(getattr(groups, dimension)))
    if deployment.HasField("deletion"):
        d = deployment.deletion
        table.add_row(
            "deleted",
            f"{d.watchlist_points_deleted} watchlist entries, {d.redis_keys_deleted} keys, "
            f"data key destroyed: {d.data_key_destroyed}",
        )
        if d.replica_copies_deleted or d.replica_copies_pending:
            table.add_row(
                "replica copies",
                ", ".join(f"{c.replica}: {max(c.entries, 0)} deleted" for c in d.replica_copies_deleted)
                + "".join(f", {r}: not reported" for r in d.replica_copies_pending),
            )
    Console().print(table)


def create(client: DeploymentClient, args) -> int:
    start = parse_time(args.start) if args.start else datetime.now(UTC)
    end = parse_time(args.end) if args.end else start + timedelta(hours=args.hours)
    cameras = []
    for spec in args.camera or []:
        van, _, camera = spec.partition("/")
        if not van or not camera:
            err.print(f"[red]error:[/] --camera takes VAN/CAMERA, not {spec!r}")
            return 2
        cameras.append(pb.CameraCoverage(van_id=van, camera_id=camera))
    request = pb.CreateDeploymentRequest(
        name=args.name,
        purpose=args.purpose,
        authorising_officer=args.officer,
        location=args.location,
        where=args.where,
        urgent=args.urgent,
        planned_start=_timestamp(start),
        planned_end=_timestamp(end),
        cameras=cameras,
        threshold_override_reason=args.override_reason or "",
        watchlist_size_limit=args.size_limit or 0,
        expected_faces=args.expected_faces,
        false_alert_override_reason=args.false_alert_override_reason or "",
    )
    if args.threshold is not None:
        request.threshold = args.threshold
    deployment = client.create(request)
    if args.json:
        print_deployment(deployment, True)
    else:
        print(deployment.deployment_id)  # noqa: T201 - the id is the command's output
        if deployment.HasField("predicted_false_alerts"):
            err.print(predicted_line(deployment.predicted_false_alerts))
        if deployment.HasField("operating_point"):
            print_tradeoff(deployment.operating_point, deployment.threshold)
    return 0


def _one_in(rate: float) -> str:
    return "none" if rate <= 0 else f"1 in {1 / rate:,.0f}"


def _recall_text(rate: pb.RateEstimate | None) -> str:
    if rate is None or not rate.total:
        return "-"
    return f"{rate.rate:.0%} [{rate.lower_95:.0%}, {rate.upper_95:.0%}] ({rate.count}/{rate.total} passes)"


def operating_point_line(point: pb.OperatingPoint, threshold: float) -> str:
    """Where the threshold came from, in one line (create, review, plan, the demo's summary)."""
    derived = f"{point.derived_threshold:.3f}" if point.HasField("derived_threshold") else "none"
    source = {
        "chosen": f"threshold {threshold:.3f}, chosen above the derived {derived}",
        "overridden": f"threshold {threshold:.3f}, OVERRIDDEN below the derived {derived} (audited)",
    }.get(point.threshold_source, f"threshold {threshold:.3f} derived")
    return (
        f"{source} for {point.entries:,} entries under a budget of {_one_in(point.budget)} faces "
        f"(set by the {point.bound_by.replace('_', ' ')}; predicted up to {_one_in(point.predicted_fpir_upper)}, "
        f"{point.group}; per-pass ratio up to {point.per_pass_ratio_upper:.2f}; equitability floor "
        f"{point.equitability_floor:.3f}; model {point.model_min:.3f}-{point.model_max:.3f}; curves "
        f"{point.curve_version}; largest list that fits {point.largest_list:,})"
    )


def print_tradeoff(point: pb.OperatingPoint, threshold: float) -> None:
    """What the authorising officer weighs: this list and lists 3 and 10 times larger."""
    err.print(operating_point_line(point, threshold))
    table = Table("entries", "threshold", "false alerts per face (up to)", "worst group", "recall per pass (predicted)")
    for row in point.tradeoff:
        table.add_row(
            f"{row.entries:,}",
            f"{row.threshold:.3f}" if row.HasField("threshold") else "none: too large",
            _one_in(row.predicted_fpir_upper),
            row.group,
            _recall_text(row.predicted_recall if row.HasField("predicted_recall") else None),
        )
    Console(stderr=True).print(table)


def plan(client: DeploymentClient, args) -> int:
    """The operating point of a list before anything is created."""
    answer = client.plan(args.entries, args.expected_faces)
    if args.json:
        print(json.dumps(plain(answer)))  # noqa: T201 - machine output goes to stdout
        return 0
    point = answer.operating_point
    print_tradeoff(point, point.derived_threshold)
    if answer.HasField("predicted_false_alerts"):
        err.print(predicted_line(answer.predicted_false_alerts))
    if not point.HasField("derived_threshold"):
        err.print(
            f"[red]too large:[/] no threshold up to the model's maximum {point.model_max:.3f} meets the budget; "
            f"the largest list that fits is {point.largest_list:,} entries (the review would refuse it)"
        )
        return 1
    return 0


def predicted_line(p: pb.FalseAlertPrediction) -> str:
    """The model's prediction in words: per face, and for the faces expected when given."""
    per = f"1 in {1 / p.per_face:,.0f}" if p.per_face else "under 1 in 1,000,000,000"
    text = (
        f"predicted false alerts: {per} faces ({p.per_face:.2e}, 95% up to {p.per_face_upper_95:.2e}) "
        f"against {p.watchlist_size:,} entries"
    )
    if p.expected_faces:
        text += (
            f"; {p.expected:,.2f} in {p.expected_faces:,} faces "
            f"(95%: {p.expected_lower_95:,.2f}-{p.expected_upper_95:,.2f})"
        )
    return text


def get(client: DeploymentClient, args) -> int:
    print_deployment(client.get(args.deployment_id), args.json)
    return 0


def list_(client: DeploymentClient, args) -> int:
    deployments = client.list()
    if args.json:
        for d in deployments:
            print_deployment(d, True)
        return 0
    table = Table("id", "name", "state", "threshold", "enrolled", "planned end")
    for d in deployments:
        data = as_dict(d)
        table.add_row(
            d.deployment_id,
            d.name,
            data["state"],
            f"{d.threshold:.3f}",
            str(d.enrolled_images),
            data.get("planned_end", ""),
        )
    Console().print(table)
    return 0


def close(client: DeploymentClient, args) -> int:
    print_deployment(client.close(args.deployment_id, args.reason or ""), args.json)
    return 0


def enrol(client: DeploymentClient, args) -> int:
    items = scan(
        args.folder,
        category=args.category,
        approved_by=args.approved_by,
        image_source=args.image_source,
        legal_basis=args.legal_basis,
        image_date=args.image_date,
    )
    results = []
    with Progress(
        TextColumn("enrolling"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=args.json or not err.is_terminal,
    ) as progress:
        task = progress.add_task("enrol", total=len(items))
        for result in client.enrol(args.deployment_id, iter_messages(items), expected=len(items)):
            row = {
                "file": result.client_ref,
                "subject_id": result.subject_id,
                "status": "enrolled" if result.status == pb.ENROL_STATUS_ENROLLED else "rejected",
                "reason": ""
                if result.status == pb.ENROL_STATUS_ENROLLED
                else pb.RejectionReason.Name(result.reason).removeprefix("REJECTION_REASON_").lower(),
                "detail": result.detail,
                "entry_id": result.entry_id,
                "lookalikes": [{"subject_id": x.subject_id, "score": round(x.score, 4)} for x in result.lookalikes],
            }
            results.append(row)
            if args.json:
                print(json.dumps(row), flush=True)  # noqa: T201 - machine output goes to stdout
            progress.advance(task)
    if not args.json:
        table = Table("file", "subject", "result", "detail")
        for row in results:
            status = "[green]enrolled[/]" if row["status"] == "enrolled" else f"[red]{row['reason']}[/]"
            detail = row["detail"] or "; ".join(
                f"[yellow]lookalike[/] {x['subject_id']} ({x['score']:.2f})" for x in row["lookalikes"]
            )
            table.add_row(row["file"], row["subject_id"], status, detail)
        Console().print(table)
    enrolled = sum(r["status"] == "enrolled" for r in results)
    err.print(f"{enrolled} enrolled, {len(results) - enrolled} rejected")
    pairs = {tuple(sorted((r["subject_id"], x["subject_id"]))) for r in results for x in r["lookalikes"]}
    if pairs:
        err.print(
            f"[yellow]{len(pairs)} lookalike pair(s)[/]: the same person enrolled twice, or relatives; an alert for "
            "either names the other as its runner-up. Check them before the review."
        )
    if enrolled:
        command = f"lfr watchlist review {args.deployment_id} --officer NAME"
        err.print(f"nothing is matched until the watchlist is reviewed: {command}")
    return 0 if enrolled or not results else 1


def fail(message: str, code: int = 1) -> int:
    err.print(f"[red]error:[/] {message}")
    sys.stderr.flush()
    return code


def plain(message) -> dict:
    """A protobuf message as JSON-ready Python: numbers stay numbers (proto JSON writes 64-bit integers
    as strings), enums are lower-case names, timestamps ISO 8601."""
    out: dict = {}
    for field in message.DESCRIPTOR.fields:
        value = getattr(message, field.name)
        if field.message_type is None and not field.is_repeated and field.has_presence:
            if not message.HasField(field.name):  # an `optional` scalar left unset: absent, not 0
                out[field.name] = None
                continue
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            out[field.name] = dict(value)
        elif field.is_repeated:
            out[field.name] = [plain(v) if field.message_type else v for v in value]
        elif field.message_type is not None and field.message_type.full_name == "google.protobuf.Timestamp":
            out[field.name] = (
                datetime.fromtimestamp(value.ToNanoseconds() / 1e9, UTC).isoformat(timespec="seconds")
                if value.seconds
                else None
            )
        elif field.message_type is not None:
            out[field.name] = plain(value)
        elif field.enum_type is not None:
            prefix = re.sub(r"(?<!^)(?=[A-Z])", "_", field.enum_type.name).upper() + "_"
            out[field.name] = field.enum_type.values_by_number[value].name.removeprefix(prefix).lower()
        elif field.type == field.TYPE_FLOAT:
            out[field.name] = round(value, 4)  # float32 on the wire: 0.4 arrives as 0.4000000059604645
        else:
            out[field.name] = value
    return out


def _rate_text(rate: dict) -> str:
    if not rate["total"]:
        return "no data"
    one_in = f" (1 in {rate['total'] / rate['count']:,.0f})" if rate["count"] else ""
    return (
        f"{rate['count']:,} / {rate['total']:,} = {rate['rate']:.6g}{one_in}, "
        f"95% CI [{rate['lower_95']:.3g}, {rate['upper_95']:.3g}]"
    )


def report_markdown(r: dict) -> str:
    o = r["outcomes"]
    override = f" (below its floor {r['threshold_floor']:.2f}: {r['threshold_override_reason']})"
    lines = [
        f"# Deployment report: {r['name']} ({r['deployment_id']})",
        "",
        "| | |",
        "|---|---|",
        f"| state | {r['state']} |",
        f"| start | {r['start']} |",
        f"| end | {r['end']} |",
        f"| location | {r['location']} ({r['where'].replace('_', ' ')}) |",
        f"| purpose | {r['purpose']} |",
        f"| authorising officer | {r['authorising_officer']} ({r['authorisation']}) |",
        *([f"| closed because | {r['close_reason']} |"] if r.get("close_reason") else []),
        f"| threshold | {r['threshold']:.2f}{override if r['threshold_override_reason'] else ''} ({r['model_id']}) |",
        f"| watchlist | {r['watchlist_images']} images of {r['watchlist_subjects']} subjects |",
        f"| faces scanned | {r['faces_scanned']:,} |",
        f"| alerts | {o['alerts']} ({o['held']} held for a supervisor: a lookalike scored within the margin) |",
        f"| adjudicated true / false / undetermined / not yet | {o['true_alerts']} / {o['false_alerts']} / "
        f"{o['undetermined']} / {o['unadjudicated']} |",
        f"| engaged / not engaged | {o['engaged']} / {o['not_engaged']} |",
        f"| arrests / no further action / safeguarding / other | {o['arrests']} / {o['no_further_action']} / "
        f"{o['safeguarding']} / {o['other_outcomes']} |",
        f"| false alerts per face scanned | {_rate_text(r['false_alerts_per_face_scanned'])} |",
        f"| false alerts per alert | {_rate_text(r['false_alerts_per_alert'])} |",
        *_predicted_rows(r.get("predicted_false_alerts"), o["false_alerts"]),
        *_operating_rows(r.get("operating_point"), o["true_alerts"]),
        "",
    ]
    if r["vans"]:
        lines += [
            "| van | faces scanned | alerts | false | per face scanned | per alert |",
            "|---|---|---|---|---|---|",
        ]
        for v in r["vans"]:
            lines.append(
                f"| {v['van_id']} | {v['faces_scanned']:,} | {v['outcomes']['alerts']} | "
                f"{v['outcomes']['false_alerts']} | {_rate_text(v['false_alerts_per_face_scanned'])} | "
                f"{_rate_text(v['false_alerts_per_alert'])} |"
            )
        lines.append("")
    lines += _equity_rows(r.get("equity"))
    lines.append(f"Generated {r['generated_at']}. Intervals: Wilson score, 95%.")
    return "\n".join(lines)


def _equity_rows(e: dict | None) -> list[str]:
    """True and false alerts per perceived group, each group's false alerts against its reference share."""
    if not e or not e.get("groups"):
        return []
    tested = e.get("false_alerts_tested") or {}
    lines = [
        "## Alerts per perceived group",
        "",
        "As the adjudicating officers perceived the person (recorded with the adjudication, when they did; the "
        "policy's lists). Each group's false alerts are tested against its reference share (exact binomial test, "
        f"one-sided): p below {e['p_value_limit']:g} with at least {e['min_false_alerts']} false alerts tested is "
        "a disparity. It recommends a pause; a person decides.",
        "",
        "| perceived | true alerts | false alerts | share of false alerts tested | reference share | p | |",
        "|---|---|---|---|---|---|---|",
    ]
    for g in e["groups"]:
        n = tested.get(g["dimension"], 0)
        untested = g["reference_share"] is None
        share = "" if untested or not n else f"{g['false_alerts'] / n:.1%}"
        lines.append(
            f"| {g['dimension']} {g['group']} | {g['true_alerts']} | {g['false_alerts']} | {share} | "
            f"{'not tested' if untested else format(g['reference_share'], '.1%')} | "
            f"{'' if g['p_value'] is None else format(g['p_value'], '.2g')} | "
            f"{'**disparity**' if g['disparity'] else ''} |"
        )
    few = [d for d, n in sorted(tested.items()) if n < e["min_false_alerts"]]
    lines += [
        "",
        "False alerts tested: "
        + ", ".join(f"{d} {n}" for d, n in sorted(tested.items()))
        + (f" (fewer than {e['min_false_alerts']} for {', '.join(few)}: too few to conclude)" if few else "")
        + ".",
        "",
    ]
    return lines


def _predicted_rows(p: dict | None, observed: int) -> list[str]:
    """Predicted (by the model's calibration, for the faces scanned) against observed false alerts."""
    if not p or not p.get("watchlist_size"):
        return []
    expected, low, high = (p.get(k, 0.0) for k in ("expected", "expected_lower_95", "expected_upper_95"))
    override = f" (over the policy's limit: {p['override_reason']})" if p.get("override_reason") else ""
    return [
        f"| false alerts predicted / observed | {expected:,.2f} (95%: {low:,.2f}-{high:,.2f}) / {observed}{override} |"
    ]


def _operating_rows(p: dict | None, true_alerts: int) -> list[str]:
    """How the threshold was derived, and the recall predicted at it beside what was observed."""
    if not p:
        return []
    derived = f"{p['derived_threshold']:.3f}" if p.get("derived_threshold") is not None else "none"
    recall = p.get("predicted_recall") or {}
    predicted = (
        f"{recall['rate']:.0%} (95%: {recall['lower_95']:.0%}-{recall['upper_95']:.0%}, {recall['count']} of "
        f"{recall['total']} calibration passes)"
        if recall.get("total")
        else "-"
    )
    return [
        f"| threshold derived | {derived} for {p['entries']:,} entries under a budget of {_one_in(p['budget'])} "
        f"faces (set by the {p['bound_by'].replace('_', ' ')}; predicted up to "
        f"{_one_in(p.get('predicted_fpir_upper', 0.0))}, {p['group']}; per-pass ratio up to "
        f"{p['per_pass_ratio_upper']:.2f}; equitability floor {p['equitability_floor']:.3f}; curves "
        f"{p['curve_version']}) |",
        f"| recall per pass predicted / observed | {predicted} / {true_alerts} true alerts (who on the list passed "
        "unseen cannot be observed live) |",
    ]


def manifest(client: DeploymentClient, args) -> int:
    """The ids-only manifest: one row per entry (no image, no template)."""
    answer = client.manifest(args.deployment_id)
    rows = [plain(e) for e in answer.entries]
    if args.json:
        kept = plain(answer)["kept_until"] if answer.HasField("kept_until") else None
        print(json.dumps({"deployment_id": args.deployment_id, "kept_until": kept, "entries": rows}))  # noqa: T201
        return 0
    table = Table("subject", "category", "source", "approved by", "enrolled at")
    for r in rows:
        table.add_row(r["subject_id"], r["category"], r["source_reference"], r["approved_by"], r["enrolled_at"])
    Console().print(table)
    return 0


def was_listed(client: DeploymentClient, args) -> int:
    """Which deployments listed the subject: 0 with the list (maybe empty)."""
    answer = plain(client.was_listed(args.subject_id))
    if args.json:
        print(json.dumps(answer))  # noqa: T201 - machine output goes to stdout
        return 0
    table = Table("deployment", "name", "location", "where", "from", "to", "entries")
    for item in answer.get("listings", []):
        table.add_row(
            item["deployment_id"], item["name"], item["location"], item["where"], item.get("start", ""),
            item.get("end", ""), str(len(item.get("entries", []))),
        )  # fmt: skip
    Console().print(table)
    err.print(f"answered for deployments closed since {answer.get('answered_since', '')} and open ones")
    return 0


def review(client: DeploymentClient, args) -> int:
    answer = client.review(args.deployment_id, args.officer)
    print_deployment(answer.deployment, args.json)
    if not args.json and answer.deployment.HasField("operating_point"):
        print_tradeoff(answer.deployment.operating_point, answer.deployment.threshold)
    for pair in answer.template_lookalikes:
        err.print(
            f"[yellow]lookalike[/]: the template of {pair.subject_id}'s photos scores {pair.score:.2f} against "
            f"{pair.other_subject_id}: a face of one would alert as the other (its runner-up names the other)"
        )
    return 0


def ratify(client: DeploymentClient, args) -> int:
    print_deployment(client.ratify(args.deployment_id, args.officer), args.json)
    return 0


def report(client: DeploymentClient, args) -> int:
    data = plain(client.report(args.deployment_id))
    if args.json:
        print(json.dumps(data))  # noqa: T201 - machine output goes to stdout
    else:
        print(report_markdown(data))  # noqa: T201 - the report is the command's output
    return 0
