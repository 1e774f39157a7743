"""`lfr audit verify|export`: whether anyone edited the audit trail, checked from the broker or from an
export file by anyone who can read it (no key, no token: docs/audit.md).

`verify` names the first entry that was changed, dropped, inserted, duplicated or reordered (its
partition, offset and event id) and exits 1, or prints "chain holds: N entries in M chains" and exits
0. With --from/--to it checks the entries chained in that period, each chain's first one against the
entry before it. The broker is --bootstrap-servers, else the local stack's (var/stack/stack.json).
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from aiokafka.errors import KafkaError

from lfr_contracts import AUDIT_RECORDED
from lfr_platform.audit_broker import read_topic
from lfr_platform.audit_trail import ExportError, TrailRecord, export_lines, read_export, root_from_dict
from lfr_platform.audit_verify import Verdict, verify, with_anchors
from lfr_platform.logs import printable

BROKEN = 1  # the trail was edited
BAD_INPUT = 2
UNREACHABLE = 7  # as the gRPC commands' UNAVAILABLE


class AuditCommandError(ValueError):
    pass


def add_parser(commands) -> None:
    audit = commands.add_parser("audit", help="check that nobody edited the audit trail; export it")
    sub = audit.add_subparsers(dest="audit_command", required=True)
    check = sub.add_parser("verify", help="name the first entry changed, dropped, inserted or reordered")
    export = sub.add_parser("export", help="write the trail (or a period of it) to a file that verify reads")
    for parser in (check, export):
        parser.add_argument("--bootstrap-servers", help="the broker (default: the local stack's)")
        parser.add_argument("--topic-prefix", help="the installation's topic prefix (default: the local stack's)")
        parser.add_argument(
            "--from", dest="start", help="ISO 8601 date or time (UTC unless given): entries chained since"
        )
        parser.add_argument("--to", dest="end", help="ISO 8601 date or time, excluded")
        parser.add_argument("--timeout", type=float, default=120.0, help="seconds to read the topic")
    check.add_argument("--export", type=Path, help="check this export file instead of the broker")
    check.add_argument(
        "--roots", type=Path, help="signed daily roots published elsewhere: a transparency record, or a JSON list"
    )
    check.add_argument(
        "--public-key",
        action="append",
        help="a published audit key (hex; again for each key it replaced): every entry and daily root must be "
        "signed by one, the rest are named forged",
    )
    check.add_argument("--json", action="store_true", help="machine-readable verdict on stdout")
    export.add_argument("--out", type=Path, required=True, help="the file to write (JSON lines)")


def run(args, stack_dir: Path) -> int:
    try:
        if args.audit_command == "export":
            return _export(args, stack_dir)
        return _verify(args, stack_dir)
    except (AuditCommandError, ExportError) as exc:
        _say(f"lfr audit: {exc}", sys.stderr)
        return BAD_INPUT
    except (KafkaError, TimeoutError, OSError) as exc:
        _say(f"lfr audit: cannot read the audit topic: {exc or type(exc).__name__}", sys.stderr)
        return UNREACHABLE


def _verify(args, stack_dir: Path) -> int:
    start, end = _when(args.start, "--from"), _when(args.end, "--to")
    if args.export is not None:
        try:
            with args.export.open() as lines:
                header, records = read_export(lines)
        except OSError as exc:
            raise AuditCommandError(f"cannot read {args.export}: {exc.strerror}") from None
        # A period's export is checked as the period it holds (its header says which), unless asked otherwise.
        start = start or _when(header.get("from"), "the export's 'from'")
        end = end or _when(header.get("to"), "the export's 'to'")
    else:
        records = _read(args, stack_dir)
    roots = _roots(args.roots) if args.roots else []
    keys = [_hex(key, "--public-key") for key in args.public_key or ()]
    verdict = verify(records, start=start, end=end, roots=roots, public_keys=keys)
    if args.json:
        _say(json.dumps(_as_json(verdict)), sys.stdout)
    else:
        for line in verdict.report():
            _say(line, sys.stdout)
    return 0 if verdict.holds else BROKEN


def _export(args, stack_dir: Path) -> int:
    start, end = _when(args.start, "--from"), _when(args.end, "--to")
    topic, records = _topic(args, stack_dir), _read(args, stack_dir)
    kept = with_anchors(records, start, end)
    header = {"exported_at": datetime.now(UTC).isoformat(timespec="seconds")}
    header.update({k: v.isoformat() for k, v in (("from", start), ("to", end)) if v is not None})
    with args.out.open("w") as out:
        for line in export_lines(topic, kept, **header):
            out.write(line + "\n")
    _say(f"wrote {len(kept)} records of {topic} to {args.out}", sys.stderr)
    return 0


def _topic(args, stack_dir: Path) -> str:
    return AUDIT_RECORDED.name(_where(args, stack_dir)[1])


def _where(args, stack_dir: Path) -> tuple[str, str]:
    from lfr_stack.state import StackState

    servers, prefix = args.bootstrap_servers, args.topic_prefix
    if not servers or prefix is None:
        state = StackState.load(stack_dir)
        if state is None and not servers:
            raise AuditCommandError("no broker given: use --bootstrap-servers, or start the local stack (`make up`)")
        servers = servers or state.kafka_bootstrap_servers  # type: ignore[union-attr]
        prefix = prefix if prefix is not None else (state.topic_prefix if state else "")
    return servers, prefix


def _read(args, stack_dir: Path) -> list[TrailRecord]:
    servers, prefix = _where(args, stack_dir)
    records, _ = asyncio.run(read_topic(servers, AUDIT_RECORDED.name(prefix), timeout_s=args.timeout))
    return records


def _roots(path: Path) -> list:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise AuditCommandError(f"cannot read the roots in {path}: {exc}") from None
    items = data.get("audit_roots", []) if isinstance(data, dict) else data
    try:
        return [root_from_dict(item) for item in items]
    except (KeyError, ValueError, TypeError) as exc:
        raise AuditCommandError(f"{path} holds a root that is not one: {exc}") from None


def _hex(text: str, option: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise AuditCommandError(f"{option} takes hex, not {text!r}") from None


def _when(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise AuditCommandError(f"{option} takes an ISO 8601 date or time, not {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _as_json(verdict: Verdict) -> dict:
    finding = verdict.finding
    return {
        "holds": verdict.holds,
        "entries": verdict.entries,
        "chains": len(verdict.chains),
        "finding": None if finding is None else {**finding.__dict__, "text": str(finding)},
        "new_epochs": verdict.restarts,
        "noted_repeats": verdict.repeats,
        "roots_checked": verdict.roots,
        "root_keys": sorted(k.hex() for k in verdict.root_keys),
        "unchained": verdict.unchained,
        "writers_checked": verdict.authors_checked,
        "forged": [{**f.__dict__, "text": str(f)} for f in verdict.forged],
    }


def _say(line: str, stream) -> None:
    """A line of the verdict: what the trail holds is untrusted, its control characters escaped."""
    stream.write(printable(line, 4096) + "\n")
