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
    ):
        if data.get(key) not in (None, "", 0) or key in ("enrolled_images", "state"):
            table.add_row(key, str(data.get(key)))
    if data.get("cameras"):
        table.add_row("cameras", ", ".join(f"{c['van_id']}/{c['camera_id']}" for c in data["cameras"]))
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
    )
    if args.threshold is not None:
        request.threshold = args.threshold
    deployment = client.create(request)
    if args.json:
        print_deployment(deployment, True)
    else:
        print(deployment.deployment_id)  # noqa: T201 - the id is the command's output
    return 0


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
    items = scan(args.folder, category=args.category, approved_by=args.approved_by)
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
            }
            results.append(row)
            if args.json:
                print(json.dumps(row), flush=True)  # noqa: T201 - machine output goes to stdout
            progress.advance(task)
    if not args.json:
        table = Table("file", "subject", "result", "detail")
        for row in results:
            status = "[green]enrolled[/]" if row["status"] == "enrolled" else f"[red]{row['reason']}[/]"
            table.add_row(row["file"], row["subject_id"], status, row["detail"])
        Console().print(table)
    enrolled = sum(r["status"] == "enrolled" for r in results)
    err.print(f"{enrolled} enrolled, {len(results) - enrolled} rejected")
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
        if field.is_repeated:
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
        f"| alerts | {o['alerts']} |",
        f"| adjudicated true / false / undetermined / not yet | {o['true_alerts']} / {o['false_alerts']} / "
        f"{o['undetermined']} / {o['unadjudicated']} |",
        f"| engaged / not engaged | {o['engaged']} / {o['not_engaged']} |",
        f"| arrests / no further action / safeguarding / other | {o['arrests']} / {o['no_further_action']} / "
        f"{o['safeguarding']} / {o['other_outcomes']} |",
        f"| false alerts per face scanned | {_rate_text(r['false_alerts_per_face_scanned'])} |",
        f"| false alerts per alert | {_rate_text(r['false_alerts_per_alert'])} |",
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
    lines.append(f"Generated {r['generated_at']}. Intervals: Wilson score, 95%.")
    return "\n".join(lines)


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
