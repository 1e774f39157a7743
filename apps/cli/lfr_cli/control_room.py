"""`lfr alert ...`: the AlertService from the command line (list, get, and the officers' decisions)."""

from __future__ import annotations

import json
import sys

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from lfr.v1 import alerts_pb2 as pb
from lfr_contracts.clients import AlertClient, DeploymentClient
from lfr_contracts.views import alert_json
from lfr_platform.logs import printable
from lfr_platform.signing import verify_alert

# Exit status when an alert answered was not genuine (after the others are shown).
FORGED = 8

OUTCOMES = {
    "true": pb.ADJUDICATION_OUTCOME_TRUE,
    "false": pb.ADJUDICATION_OUTCOME_FALSE,
    "undetermined": pb.ADJUDICATION_OUTCOME_UNDETERMINED,
}
FINAL_OUTCOMES = {
    "arrest": pb.FINAL_OUTCOME_ARREST,
    "no_further_action": pb.FINAL_OUTCOME_NO_FURTHER_ACTION,
    "safeguarding": pb.FINAL_OUTCOME_SAFEGUARDING,
    "other": pb.FINAL_OUTCOME_OTHER,
}
STATES = {name.removeprefix("ALERT_STATE_").lower(): value for name, value in pb.AlertState.items() if value}


def add_parser(commands, connection_options) -> None:
    alert = commands.add_parser("alert", help="list alerts and record the control room's decisions on them")
    sub = alert.add_subparsers(dest="alert_command", required=True)
    listing = sub.add_parser("list", help="the alerts of a deployment, newest first (highest revision of each)")
    connection_options(listing)
    listing.add_argument("--deployment", required=True, help="the deployment id")
    listing.add_argument("--state", action="append", choices=sorted(STATES), help="only alerts in this state")
    listing.add_argument("--van", default="", help="only alerts of this van")
    get = sub.add_parser("get", help="one alert")
    connection_options(get)
    get.add_argument("alert_id")

    def decision(name: str, help_text: str):
        parser = sub.add_parser(name, help=help_text)
        connection_options(parser)
        parser.add_argument("alert_id")
        parser.add_argument("--officer", required=True, help="who decided (name or collar number); audited")
        parser.add_argument("--note", default="", help="free text, kept with the decision")
        parser.add_argument(
            "--correction-reason", default="", help="supervisor only: why a recorded decision is changed (audited)"
        )
        parser.add_argument(
            "--revision",
            type=int,
            default=0,
            help="the alert's revision the decision is made on (`lfr alert get`); required to correct one",
        )
        return parser

    adjudicate = decision("adjudicate", "was it the person on the watchlist?")
    adjudicate.add_argument("--outcome", required=True, choices=sorted(OUTCOMES))
    for dimension in ("sex", "ethnicity"):
        adjudicate.add_argument(
            f"--perceived-{dimension}",
            default="",
            help=f"optional: the person's {dimension} as you perceived it, one of the deployment's list "
            "(the policy's perceived_groups; `lfr deployment get` shows it); counted for the equity monitor",
        )
    decision("engage", "was the person engaged (spoken to, stopped)?").add_argument(
        "--engaged", required=True, choices=("yes", "no")
    )
    outcome = decision("outcome", "the final outcome of an engagement")
    outcome.add_argument("--outcome", required=True, choices=sorted(FINAL_OUTCOMES))
    outcome.add_argument("--detail", default="", help="what happened (required for 'other')")


class PublicKeys:
    """Each deployment's alert key, from the DeploymentService (asked once per deployment)."""

    def __init__(self, deployments: DeploymentClient) -> None:
        self.deployments = deployments
        self._keys: dict[str, bytes] = {}

    def __call__(self, deployment_id: str) -> bytes:
        if deployment_id not in self._keys:
            self._keys[deployment_id] = self.deployments.get(deployment_id).alert_public_key
        return self._keys[deployment_id]


def genuine(alerts: list[pb.AlertRaised], public_key: PublicKeys) -> list[pb.AlertRaised]:
    """The alerts signed by their deployment's alert key; each other one is named on stderr."""
    kept = []
    for alert in alerts:
        if verify_alert(public_key(alert.camera.deployment_id), alert):
            kept.append(alert)
        else:
            Console(stderr=True).print(
                f"[red]dropped[/] alert {printable(alert.alert_id)!r} revision {alert.revision}: "
                "not signed by its deployment's alert key (forged or altered)"
            )
    return kept


def run(client: AlertClient, args, public_key: PublicKeys) -> int:
    """Alerts are shown only when genuine: a forged or altered one is dropped, said on stderr, and
    the command exits 8 (FORGED)."""
    command = args.alert_command
    if command in ("list", "get"):
        if command == "list":
            alerts = client.list(args.deployment, [STATES[s] for s in args.state or ()], args.van)
        else:
            alerts = [client.get(args.alert_id)]
        shown = genuine(alerts, public_key)
        _print(shown, args.json)
        return 0 if len(shown) == len(alerts) else FORGED
    common = (args.alert_id,)
    options = {
        "officer": args.officer,
        "note": args.note,
        "correction_reason": args.correction_reason,
        "revision": args.revision,
    }
    if command == "adjudicate":
        perceived = {"perceived_sex": args.perceived_sex, "perceived_ethnicity": args.perceived_ethnicity}
        response = client.adjudicate(*common, OUTCOMES[args.outcome], **options, **perceived)
    elif command == "engage":
        response = client.engage(*common, args.engaged == "yes", **options)
    else:
        response = client.outcome(*common, FINAL_OUTCOMES[args.outcome], detail=args.detail, **options)
    if args.json:
        print(json.dumps({**alert_json(response.alert), "changed": response.changed}))  # noqa: T201 - output
    else:
        data = alert_json(response.alert)
        verb = "recorded" if response.changed else "already recorded (nothing changed)"
        Console(stderr=True).print(f"{data['alert_id']}: {data['state']}, {verb}")
    return 0


def _print(alerts: list[pb.AlertRaised], as_json: bool) -> None:
    if as_json:
        for alert in alerts:
            print(json.dumps(alert_json(alert)))  # noqa: T201 - machine output goes to stdout
        return
    table = Table(
        "alert", "raised", "van/camera", "subject", "score", "runner-up", "margin", "state", "outcome", "engaged",
        "final",
    )  # fmt: skip
    held = []
    for alert in alerts:
        a = alert_json(alert)
        table.add_row(
            a["alert_id"],
            a["raised_at"] or "",
            f"{a['van_id']}/{a['camera_id']}",
            a["subject_id"],
            f"{a['score']:.3f} / {a['threshold']:.2f}",
            f"{escape(a['runner_up_subject_id'])} {a['runner_up_score']:.3f}" if a["runner_up_subject_id"] else "none",
            "" if a["margin"] is None else f"{a['margin']:.3f}",
            a["state"] + (" (held for a supervisor)" if a["held_for_supervisor"] else ""),
            a["outcome"],
            "" if a["engaged"] is None else ("yes" if a["engaged"] else "no"),
            a["final_outcome"],
        )
        if a["held_for_supervisor"]:
            held.append(f"{a['alert_id']} held for a supervisor: {a['hold_reason']}")
    # Piped, rich would squeeze the table into 80 columns; alert ids must stay whole to be used.
    out = Console(width=None if sys.stdout.isatty() else 200)
    out.print(table)
    for line in held:
        out.print(line, markup=False, highlight=False)
