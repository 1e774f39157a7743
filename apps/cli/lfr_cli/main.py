"""`lfr`: the command line of the platform team and of the demo.

The DeploymentService address and token come from --address/--token, else LFR_CLI_ADDRESS and
LFR_CLI_TOKEN, else the stack `make up` started (var/stack/stack.json).
"""

from __future__ import annotations

import argparse
import functools
import logging
import sys
from pathlib import Path

import grpc

from lfr_cli import control_room, deployments
from lfr_cli.transparency import TransparencyError
from lfr_cli.watchlist import WatchlistFolderError
from lfr_platform.auth import ROLES
from lfr_platform.settings import ToolSettings
from lfr_stack.wiring import default_replicas

TOOLS = ToolSettings()
STACK_DIR = TOOLS.stack_dir

# Exit statuses by gRPC status, so scripts can tell a typo from an outage.
EXIT_CODES = {
    grpc.StatusCode.INVALID_ARGUMENT: 2,
    grpc.StatusCode.NOT_FOUND: 3,
    grpc.StatusCode.FAILED_PRECONDITION: 4,
    grpc.StatusCode.UNAUTHENTICATED: 5,
    grpc.StatusCode.PERMISSION_DENIED: 5,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 6,
    grpc.StatusCode.UNAVAILABLE: 7,
    grpc.StatusCode.DEADLINE_EXCEEDED: 7,
}


def _client(args, service: str | None = None):
    """A client of the DeploymentService, or of the AlertService for `lfr alert`."""
    from lfr_contracts.clients import AlertClient, DeploymentClient
    from lfr_stack.state import StackState
    from lfr_stack.wiring import role_of

    alerts = (service or args.command) == "alert"
    service = "AlertService" if alerts else "DeploymentService"
    address_variable = "LFR_CLI_ALERT_ADDRESS" if alerts else "LFR_CLI_ADDRESS"
    address = (args.address if alerts == (args.command == "alert") else None) or (
        TOOLS.alert_address if alerts else TOOLS.address
    )
    token = args.token or TOOLS.token
    if not address or not token:
        state = StackState.load(STACK_DIR)
        if state is None:
            how = (
                f"set {address_variable} (`lfr alert` reads each deployment's alert key from it, to verify alerts)"
                if not alerts and args.command == "alert"
                else f"use --address and --token (or {address_variable}, LFR_CLI_TOKEN)"
            )
            raise SystemExit(deployments.fail(f"no {service} given: {how}, or start the local stack with `make up`", 2))
        address = address or (state.alert_grpc_address if alerts else state.grpc_address)
        # The local stack has a token per role: officers decide alerts, a manager runs deployments.
        role = "viewer" if args.viewer else (args.role or ("officer" if alerts else "manager"))
        if getattr(args, "deployment_command", None) == "ratify" and not args.role:
            role = "ratifier"  # its second manager: never the creator's token (docs/deployments.md)
        token = token or state.tokens.get(role) or state.tokens[role_of(role)]
    return (AlertClient if alerts else DeploymentClient)(address, token, tls_ca_file=args.tls_ca)


def _connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--address", help="host:port of the DeploymentService (deployments), or the AlertService (alert)"
    )
    parser.add_argument("--token", help="bearer token (prefer LFR_CLI_TOKEN: arguments show in `ps`)")
    parser.add_argument("--tls-ca", help="CA certificate file: connect over TLS")
    parser.add_argument(
        "--role", choices=ROLES, help="local stack: use its token of this role (default: manager; officer for alerts)"
    )
    parser.add_argument("--viewer", action="store_true", help="local stack: use its viewer token (--role viewer)")
    parser.add_argument("--json", action="store_true", help="machine-readable output on stdout")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lfr", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run the whole pipeline on a watchlist and a video, print alerts")
    demo.add_argument(
        "--watchlist",
        type=Path,
        help="folder: one sub-folder per subject and its manifest.csv (docs/deployments.md); default: built from data",
    )
    demo.add_argument("--video", help="video file or stream URL; several, comma-separated, become several cameras")
    demo.add_argument("--fps", type=float, default=5.0, help="frames sampled per second per camera")
    demo.add_argument("--root", type=Path, default=Path("var/demo"), help="logs and state of this run")
    demo.add_argument("--duration", type=float, default=30.0, help="seconds to stream when a source is live (a URL)")
    demo.add_argument("--drain-timeout", type=float, default=300.0, help="seconds to wait for the pipeline to finish")
    demo.add_argument(
        "--replicas",
        type=int,
        default=default_replicas(),
        help="processes of each stage: detect, embed, match, alert (default: this machine's cores, at most 3, "
        "the topics' partitions)",
    )

    stack = commands.add_parser("stack", help="the local stack in the background (make up / make down)")
    stack_commands = stack.add_subparsers(dest="stack_command", required=True)
    up = stack_commands.add_parser("up", help="start broker, Redis and the services; return when healthy")
    up.add_argument("--video", help="a camera for ingest: video file or stream URL (comma-separated for more)")
    up.add_argument("--deployment", help="the deployment the --video cameras stream for")
    up.add_argument(
        "--replicas",
        type=int,
        default=default_replicas(),
        help="processes of each stage: detect, embed, match, alert (default: this machine's cores, at most 3, "
        "the topics' partitions)",
    )
    stack_commands.add_parser("down", help="stop what `lfr stack up` started")
    stack_commands.add_parser("status", help="print the running stack's addresses and health")

    deployment = commands.add_parser("deployment", help="create, get, list and close deployments")
    dep = deployment.add_subparsers(dest="deployment_command", required=True)
    create = dep.add_parser("create", help="create a deployment; prints its id")
    _connection_options(create)
    create.add_argument("--name", required=True)
    create.add_argument("--purpose", default="", help="the policing purpose (required by the service)")
    create.add_argument("--officer", default="", help="the authorising officer (required by the service)")
    create.add_argument("--location", required=True, help="where the cameras will be, as the authorisation names it")
    create.add_argument(
        "--where",
        required=True,
        help="why there, from the policy file's closed list (crime_hotspot, protective_security, intelligence_led)",
    )
    create.add_argument(
        "--urgent",
        action="store_true",
        help="authorised orally: runs at once, and is closed unless another officer ratifies it in time",
    )
    create.add_argument("--start", help="ISO 8601 time; default now")
    create.add_argument("--end", help="ISO 8601 time; default start + --hours")
    create.add_argument("--hours", type=float, default=8.0, help="length when --end is not given")
    create.add_argument("--camera", action="append", metavar="VAN/CAMERA", help="a camera it covers (repeat)")
    create.add_argument(
        "--threshold",
        type=float,
        help="face-match threshold; default: derived from the policy's false-alert budget and the list's size",
    )
    create.add_argument("--override-reason", help="why a threshold below the derived one is used (audited)")
    create.add_argument("--size-limit", type=int, help="most watchlist images")
    create.add_argument(
        "--expected-faces", type=int, default=0, help="faces it expects to scan: predicts its false alerts for them"
    )
    create.add_argument(
        "--false-alert-override-reason", help="why a deployment predicted over the policy's false-alert limit runs"
    )
    for name, help_text in (
        ("get", "show one deployment"),
        ("close", "close it: its watchlist and keys are deleted"),
        ("report", "its report: counts, outcomes, both false-alert rates (also after close)"),
        ("manifest", "the ids-only manifest of its watchlist (kept the policy's days after close)"),
    ):
        sub = dep.add_parser(name, help=help_text)
        _connection_options(sub)
        sub.add_argument("deployment_id")
        if name == "close":
            sub.add_argument("--reason", help="why (audited)")
        if name == "report":
            sub.add_argument("--markdown", action="store_true", help="Markdown (the default text output)")
    ratify = dep.add_parser(
        "ratify",
        help="ratify an urgent deployment in writing (another officer than the one who authorised it, with "
        "another token than the one that created it)",
    )
    _connection_options(ratify)
    ratify.add_argument("deployment_id")
    ratify.add_argument("--officer", required=True, help="the officer who ratifies it (audited)")
    _connection_options(dep.add_parser("list", help="list deployments"))
    plan = dep.add_parser(
        "plan",
        help="before creating: the threshold a list of N entries gets under the policy's false-alert budget, "
        "predicted false alerts and recall, for it and for lists 3 and 10 times larger",
    )
    _connection_options(plan)
    plan.add_argument("--entries", type=int, required=True, help="watchlist entries (images, plus one template per "
                      "subject with two or more photos)")  # fmt: skip
    plan.add_argument("--expected-faces", type=int, default=0, help="faces it expects to scan")

    watchlist = commands.add_parser("watchlist", help="enrol a watchlist folder")
    wl = watchlist.add_subparsers(dest="watchlist_command", required=True)
    enrol = wl.add_parser("enrol", help="enrol DIR (one sub-folder per subject) into a deployment")
    _connection_options(enrol)
    enrol.add_argument("deployment_id")
    enrol.add_argument("folder", type=Path)
    enrol.add_argument("--category", help="category of every image (the policy's list; or the manifest's column)")
    enrol.add_argument("--approved-by", help="who approved the images (or the manifest's column)")
    enrol.add_argument("--image-source", help="source of every image (the policy's list: custody, ...)")
    enrol.add_argument("--legal-basis", help="legal basis of every image (the policy's list)")
    enrol.add_argument("--image-date", help="when every image was taken, YYYY-MM-DD (or the manifest's column)")
    review = wl.add_parser("review", help="record the pre-deployment review of a deployment's watchlist")
    _connection_options(review)
    review.add_argument("deployment_id")
    review.add_argument("--officer", required=True, help="the officer who reviewed it (audited)")
    listed = wl.add_parser("was-listed", help="the deployments whose watchlists listed a subject id (subject access)")
    _connection_options(listed)
    listed.add_argument("subject_id")

    transparency = commands.add_parser("transparency", help="what the force publishes: notices and records")
    published = transparency.add_subparsers(dest="transparency_command", required=True)
    notice = published.add_parser("notice", help="the notice before a deployment: when, where, whom it seeks")
    _connection_options(notice)
    notice.add_argument("deployment_id")
    notice.add_argument("--out", type=Path, help="write notice-ID.json, .md and .csv here (default: JSON on stdout)")
    record = published.add_parser("record", help="the record after the deployments of a period, with totals")
    _connection_options(record)
    record.add_argument("--from", dest="start", required=True, help="ISO 8601 date or time (UTC unless given)")
    record.add_argument("--to", dest="end", required=True, help="ISO 8601 date or time, excluded")
    record.add_argument("--out", type=Path, help="write record-FROM-TO.json, .md and .csv here (default: stdout)")
    record.add_argument("--bootstrap-servers", help="the broker, for the audit trail's signed daily roots")
    record.add_argument("--topic-prefix", help="the installation's topic prefix (default: the local stack's)")
    record.add_argument("--timeout", type=float, default=120.0, help="seconds to read the audit topic")

    control_room.add_parser(commands, _connection_options)
    from lfr_cli.audit import add_parser as add_audit_parser

    add_audit_parser(commands)

    from lfr_eval.cli import add_parser as add_eval_parser

    add_eval_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return _dispatch(args)
    except (WatchlistFolderError, TransparencyError) as exc:
        return deployments.fail(str(exc), 2)
    except grpc.RpcError as exc:
        code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
        return deployments.fail(
            f"{code.name}: {exc.details() if hasattr(exc, 'details') else exc}", EXIT_CODES.get(code, 1)
        )
    except KeyboardInterrupt:
        return 130


def _dispatch(args) -> int:
    if args.command == "demo":
        from lfr_cli.demo import run_demo

        return run_demo(args)
    if args.command == "stack":
        from lfr_cli import local

        return {"up": local.up, "down": local.down, "status": local.status}[args.stack_command](args, STACK_DIR)
    if args.command == "eval":
        from lfr_eval.cli import run

        return run(args)
    if args.command == "audit":
        from lfr_cli import audit

        return audit.run(args, STACK_DIR)
    with _client(args) as client:
        if args.command == "deployment":
            handler = {
                "create": deployments.create,
                "get": deployments.get,
                "list": deployments.list_,
                "close": deployments.close,
                "ratify": deployments.ratify,
                "manifest": deployments.manifest,
                "report": deployments.report,
                "plan": deployments.plan,
            }[args.deployment_command]
        elif args.command == "transparency":
            from lfr_cli import transparency

            handler = {
                "notice": transparency.run_notice,
                "record": functools.partial(transparency.run_record, stack_dir=STACK_DIR),
            }[args.transparency_command]
        elif args.command == "alert":
            # Each alert shown is checked against its deployment's alert key, read from the
            # DeploymentService (LFR_CLI_ADDRESS), not from the AlertService that serves the alert.
            with _client(args, "deployment") as keys:
                return control_room.run(client, args, control_room.PublicKeys(keys))
        else:
            handler = {
                "enrol": deployments.enrol,
                "review": deployments.review,
                "was-listed": deployments.was_listed,
            }[args.watchlist_command]
        return handler(client, args)


if __name__ == "__main__":
    raise SystemExit(main())
