"""`billsync control` (runs the service) and the CLI over its API: `creds`, `mappings`,
`runs`, `events`, `enable`, `disable`, `resend`. (`configs` lives in services/cli/configs.py;
`credentials`, the direct-to-Kafka tool, is separate from `creds`.)"""

from __future__ import annotations

import argparse
from typing import Any

from services.cli.output import error
from services.control.cli_common import client, handled, json_flag, read_body, show

CONFIG_COLUMNS = ["id", "name", "destination", "enabled", "version", "integrationCredentialsId"]
CRED_COLUMNS = ["id", "type", "name", "version", "secretsSet", "updatedAt"]
MAPPING_COLUMNS = [
    "id",
    "externalSystem",
    "externalTable",
    "externalId",
    "m3terEntity",
    "m3terId",
    "integrationConfigId",
    "version",
]
RUN_COLUMNS = [
    "id",
    "entityId",
    "integrationConfigId",
    "status",
    "dtStarted",
    "externalId",
    "externalStatus",
    "error",
]
EVENT_COLUMNS = [
    "id",
    "eventType",
    "integrationConfigId",
    "entityId",
    "dtCreated",
    "actioned",
    "message",
]


def _run_service(_: argparse.Namespace) -> int:
    from services.control.main import main

    main()
    return 0


# ---- enable / disable / resend


@handled
def _enable(args: argparse.Namespace) -> int:
    body = {"reason": args.reason} if args.reason else {}
    action = "enable" if args.command == "enable" else "disable"
    config = client().request("POST", f"/integrationconfigs/{args.id}/{action}", body)
    show(args, config, CONFIG_COLUMNS)
    return 0


@handled
def _resend(args: argparse.Namespace) -> int:
    api = client()
    if args.run_id:
        result = api.request("POST", f"/integrationruns/{args.run_id}/resend")
        show(args, result, ["runId", "entityId", "integrationConfigId", "replayId"])
        return 0
    if not args.config or not args.since:
        error("error: give RUN_ID, or --config ID and --since TIME")
        return 2
    result = api.request(
        "POST", f"/integrationconfigs/{args.config}/resend-failed", query={"since": args.since}
    )
    if args.json:
        show(args, result, [])
        return 0
    print(f"resent {len(result['resent'])} bill(s), skipped {len(result['skipped'])}")
    show(args, result["resent"], ["runId", "entityId", "replayId"])
    if result["skipped"]:
        show(args, result["skipped"], ["runId", "entityId", "reason"])
    return 0


# ---- creds


@handled
def _creds(args: argparse.Namespace) -> int:
    api = client()
    sub = args.creds_command
    if sub == "list":
        show(args, list(api.pages("/integrationcredentials", {"type": args.type})), CRED_COLUMNS)
    elif sub == "get":
        show(args, api.request("GET", f"/integrationcredentials/{args.id}"), CRED_COLUMNS)
    elif sub == "create":
        show(
            args, api.request("POST", "/integrationcredentials", read_body(args.file)), CRED_COLUMNS
        )
    elif sub == "rotate":
        show(
            args,
            api.request("PUT", f"/integrationcredentials/{args.id}", read_body(args.file)),
            CRED_COLUMNS,
        )
    elif sub == "delete":
        show(args, api.request("DELETE", f"/integrationcredentials/{args.id}"), CRED_COLUMNS)
    return 0


# ---- mappings


@handled
def _mappings(args: argparse.Namespace) -> int:
    api = client()
    sub = args.mappings_command
    if sub == "list":
        query = {
            "externalSystem": args.system,
            "integrationConfigId": args.config,
            "m3terEntity": args.entity,
            "m3terId": args.m3ter_id,
        }
        show(args, list(api.pages("/externalmappings", query)), MAPPING_COLUMNS)
    elif sub == "get":
        show(args, api.request("GET", f"/externalmappings/{args.id}"), MAPPING_COLUMNS)
    elif sub == "create":
        show(args, api.request("POST", "/externalmappings", read_body(args.file)), MAPPING_COLUMNS)
    elif sub == "update":
        show(
            args,
            api.request("PUT", f"/externalmappings/{args.id}", read_body(args.file)),
            MAPPING_COLUMNS,
        )
    elif sub == "delete":
        show(args, api.request("DELETE", f"/externalmappings/{args.id}"), MAPPING_COLUMNS)
    elif sub == "lookup":
        if args.external:
            path = "/externalmappings/externalid/" + args.external
        else:
            path = f"/externalmappings/entity/{args.entity}/{args.m3ter_id}"
        show(args, api.request("GET", path)["data"], MAPPING_COLUMNS)
    return 0


# ---- runs and events


def _run_rows(items: list[dict[str, Any]], as_json: bool) -> list[dict[str, Any]]:
    if as_json:
        return items
    return [{**r, "externalStatus": (r.get("externalStatus") or {}).get("status")} for r in items]


@handled
def _runs(args: argparse.Namespace) -> int:
    api = client()
    if args.runs_command == "list":
        query = {
            "entityId": args.bill,
            "integrationConfigId": args.config,
            "destination": args.destination,
            "status": args.status,
            "from": args.since,
            "to": args.until,
        }
        items = list(api.pages("/integrationruns", query, limit=args.limit))
        show(args, _run_rows(items, args.json), RUN_COLUMNS)
    elif args.runs_command == "get":
        show(
            args,
            _run_rows([api.request("GET", f"/integrationruns/{args.id}")], args.json)[0],
            RUN_COLUMNS,
        )
    elif args.runs_command == "latest":
        run = api.request(
            "GET",
            "/integrationruns/latest",
            query={"entityId": args.bill, "integrationConfigId": args.config},
        )
        show(args, _run_rows([run], args.json)[0], RUN_COLUMNS)
    return 0


@handled
def _events(args: argparse.Namespace) -> int:
    api = client()
    if args.events_command == "list":
        actioned = None if args.all else ("true" if args.actioned else "false")
        query = {"eventType": args.type, "integrationConfigId": args.config, "actioned": actioned}
        show(args, list(api.pages("/integrationevents", query, limit=args.limit)), EVENT_COLUMNS)
    elif args.events_command == "action":
        for event_id in args.ids:
            show(
                args, api.request("POST", f"/integrationevents/{event_id}/actioned"), EVENT_COLUMNS
            )
    return 0


# ---- registration


def _add(sub: Any, name: str, help_: str, *positional: str, json: bool = True) -> Any:
    parser = sub.add_parser(name, help=help_)
    for arg in positional:
        parser.add_argument(arg)
    if json:
        json_flag(parser)
    return parser


def _register_creds(sub: Any) -> None:
    creds = sub.add_parser("creds", help="integration credentials through the control plane")
    csub = creds.add_subparsers(dest="creds_command", required=True)
    _add(csub, "list", "list credentials (public fields only)").add_argument("--type")
    _add(csub, "get", "show one credential", "id")
    _add(csub, "create", "create from a YAML/JSON file (type, secrets, ...)", "file")
    _add(csub, "rotate", "replace settings/secrets from a file (version+1)", "id", "file")
    _add(csub, "delete", "delete an unattached credential", "id")
    creds.set_defaults(func=_creds)


def _register_mappings(sub: Any) -> None:
    maps = sub.add_parser("mappings", help="external mappings (m3ter id -> external id)")
    msub = maps.add_subparsers(dest="mappings_command", required=True)
    lst = _add(msub, "list", "list mappings")
    for flag in ("--system", "--config", "--entity", "--m3ter-id"):
        lst.add_argument(flag)
    _add(msub, "get", "show one mapping", "id")
    _add(msub, "create", "create from a YAML/JSON file", "file")
    _add(msub, "update", "replace from a file (send the current version)", "id", "file")
    _add(msub, "delete", "delete a mapping", "id")
    look = _add(msub, "lookup", "find by --external SYSTEM/TABLE/ID or --entity E --m3ter-id I")
    look.add_argument("--external")
    look.add_argument("--entity")
    look.add_argument("--m3ter-id")
    maps.set_defaults(func=_mappings)


def _register_history(sub: Any) -> None:
    runs = sub.add_parser("runs", help="integration run history")
    rsub = runs.add_subparsers(dest="runs_command", required=True)
    lst = _add(rsub, "list", "runs, newest first")
    for flag in ("--bill", "--config", "--destination", "--status", "--since", "--until"):
        lst.add_argument(flag)
    lst.add_argument("--limit", type=int, default=50)
    _add(rsub, "get", "one run", "id")
    latest = _add(rsub, "latest", "the latest run of a bill", "bill")
    latest.add_argument("--config")
    runs.set_defaults(func=_runs)

    events = sub.add_parser("events", help="integration events to act on")
    esub = events.add_subparsers(dest="events_command", required=True)
    lst = _add(esub, "list", "events, newest first (open ones unless --all/--actioned)")
    lst.add_argument("--type")
    lst.add_argument("--config")
    lst.add_argument("--actioned", action="store_true")
    lst.add_argument("--all", action="store_true")
    lst.add_argument("--limit", type=int, default=50)
    act = _add(esub, "action", "mark events actioned")
    act.add_argument("ids", nargs="+")
    events.set_defaults(func=_events)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    sub.add_parser("control", help="run the control plane (HTTP API + run ingestion)").set_defaults(
        func=_run_service
    )
    for name, help_ in (
        ("enable", "enable a configuration (resets auto-disable)"),
        ("disable", "disable a configuration"),
    ):
        parser = _add(sub, name, help_, "id")
        parser.add_argument("--reason")
        parser.set_defaults(func=_enable)
    resend = _add(sub, "resend", "resend a run's bill, or failed bills of a configuration")
    resend.add_argument("run_id", nargs="?")
    resend.add_argument("--config")
    resend.add_argument("--since", help="ISO 8601 time, e.g. 2026-01-31T00:00:00Z")
    resend.set_defaults(func=_resend)
    _register_creds(sub)
    _register_mappings(sub)
    _register_history(sub)
