"""`billsync configs ...`: through the control-plane API when BILLSYNC_CONTROL_URL and
BILLSYNC_CONTROL_TOKEN are set (validated and versioned by its single writer); straight to
the compacted topic with `--direct` (or when no control plane is configured), which is for
bootstrapping a local stack before the control plane runs."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

import pydantic

from services.cli.files import FileProblem, load_yaml
from services.cli.output import error, print_json, print_table
from services.control.cli_common import client, handled, show
from services.control.client import ControlClient, ControlError
from services.control.validation import as_json
from shared.contracts import IntegrationConfig, IntegrationConfigAdapter
from shared.kafka.producer import make_producer
from shared.kafka.table import read_snapshot
from shared.kafka.topics import ensure_topics
from shared.settings import get_settings
from shared.sinks import registry


class ConfigFileError(ValueError):
    pass


def load_config_file(path: Path) -> list[IntegrationConfig]:
    """Validate every configuration in a YAML or JSON file; all errors are reported at once."""
    try:
        raw = load_yaml(path)
    except FileProblem as exc:
        raise ConfigFileError(str(exc)) from None
    items = raw if isinstance(raw, list) else [raw]
    if not items or not all(isinstance(i, dict) for i in items):
        raise ConfigFileError(f"{path}: expected a list of configuration objects")
    configs: list[IntegrationConfig] = []
    problems: list[str] = []
    for index, item in enumerate(items):
        label = f"configuration #{index + 1} ({item.get('id', 'no id')})"
        try:
            configs.append(IntegrationConfigAdapter.validate_json(as_json(item), strict=True))
        except pydantic.ValidationError as exc:
            for err in exc.errors():
                loc = ".".join(str(p) for p in err["loc"])
                problems.append(f"{label}: {loc}: {err['msg']}")
    ids = [c.id for c in configs]
    problems += [f"duplicate id {i!r}" for i in sorted({i for i in ids if ids.count(i) > 1})]
    if problems:
        raise ConfigFileError(f"{path}: {len(problems)} problem(s):\n  " + "\n  ".join(problems))
    return configs


async def write_configs(configs: list[IntegrationConfig]) -> None:
    settings = get_settings()
    await ensure_topics(settings)
    producer = make_producer(settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        topic = settings.topics.name("integration_configs")
        for config in configs:
            await producer.send_and_wait(topic, config.to_bytes(), key=config.id.encode())
    finally:
        await producer.stop()


async def read_configs() -> list[IntegrationConfig]:
    settings = get_settings()
    configs = await read_snapshot(
        settings.topics.name("integration_configs"),
        settings.kafka_bootstrap_servers,
        IntegrationConfigAdapter.validate_json,
    )
    return sorted(configs.values(), key=lambda c: c.id)


COLUMNS = ["id", "name", "destination", "enabled", "version", "integrationCredentialsId"]


def _api() -> ControlClient | None:
    return ControlClient.from_env()


@handled
def _apply(args: argparse.Namespace) -> int:
    try:
        configs = load_config_file(Path(args.file))
    except ConfigFileError as exc:
        error(f"error: {exc}")
        return 2
    api = None if args.direct else _api()
    if api is None:
        asyncio.run(write_configs(configs))
        print(f"applied {len(configs)} configuration(s): {', '.join(c.id for c in configs)}")
        return 0
    return _apply_via_api(api, configs, Path(args.file))


def _apply_via_api(api: ControlClient, configs: list[IntegrationConfig], path: Path) -> int:
    """Create what is new, update what exists (with its current version); report each.
    The file's own text is sent, so fields it leaves out keep the server's values."""
    raw = load_yaml(path)
    bodies = {item["id"]: item for item in (raw if isinstance(raw, list) else [raw])}
    failed = 0
    for config in configs:
        try:
            print(f"{config.id}: {_upsert(api, config.id, bodies[config.id])}")
        except ControlError as exc:
            failed += 1
            error(f"{config.id}: {exc.describe()}")
    return 1 if failed else 0


def _upsert(api: ControlClient, config_id: str, body: dict[str, Any], retries: int = 2) -> str:
    try:
        current = api.request("GET", f"/integrationconfigs/{config_id}")
    except ControlError as exc:
        if exc.status != 404:
            raise
        created = api.request("POST", "/integrationconfigs", body)
        return f"created (version {created['version']})"
    try:
        result = api.request(
            "PUT", f"/integrationconfigs/{config_id}", {**body, "version": current["version"]}
        )
    except ControlError as exc:
        if exc.status == 409 and retries:  # changed meanwhile (e.g. auto-disabled): re-read
            return _upsert(api, config_id, body, retries - 1)
        raise
    state = "unchanged" if result["version"] == current["version"] else "updated"
    return f"{state} (version {result['version']})"


@handled
def _list(args: argparse.Namespace) -> int:
    api = None if args.direct else _api()
    if api is None:
        rows: list[dict[str, Any]] = [c.to_wire() for c in asyncio.run(read_configs())]
        if args.destination:
            rows = [r for r in rows if r["destination"] == args.destination]
        if args.enabled is not None:
            rows = [r for r in rows if r["enabled"] is (args.enabled == "true")]
    else:
        query = {"destination": args.destination, "enabled": args.enabled}
        rows = list(api.pages("/integrationconfigs", query))
    if args.json:
        print_json(rows)
    else:
        print_table(rows, COLUMNS)
    return 0


@handled
def _one(args: argparse.Namespace) -> int:
    api = client()
    path = f"/integrationconfigs/{args.id}"
    sub = args.configs_command
    if sub == "get":
        show(args, api.request("GET", path), COLUMNS)
    elif sub == "delete":
        show(args, api.request("DELETE", path), COLUMNS)
    elif sub == "connect":
        body = {"integrationCredentialsId": args.credential}
        show(args, api.request("POST", path + "/credential", body), COLUMNS)
    elif sub == "disconnect":
        show(args, api.request("DELETE", path + "/credential"), COLUMNS)
    elif sub in {"connection", "verify"}:
        method, where = ("GET", "") if sub == "connection" else ("POST", "/verify")
        show(
            args,
            api.request(method, path + "/connection" + where),
            ["status", "integrationCredentialsId", "lastVerifiedAt", "reason"],
        )
    elif sub == "history":
        show(
            args,
            api.request("GET", path + "/changes")["data"],
            ["version", "action", "actor", "reason", "dtChanged"],
        )
    elif sub == "oauth":
        result = api.request("GET", f"/oauth/{args.provider}/start", query={"configId": args.id})
        print(f"open this URL to connect {args.id}:\n{result['authorizeUrl']}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    configs = sub.add_parser("configs", help="integration configurations")
    csub = configs.add_subparsers(dest="configs_command", required=True)
    apply = csub.add_parser("apply", help="validate a YAML/JSON file and create/update it")
    apply.add_argument("file")
    apply.add_argument("--direct", action="store_true", help="write to Kafka, not the API")
    apply.set_defaults(func=_apply)
    lst = csub.add_parser("list", help="list configurations")
    lst.add_argument("--json", action="store_true")
    lst.add_argument("--direct", action="store_true", help="read Kafka, not the API")
    lst.add_argument("--destination")
    lst.add_argument("--enabled", choices=["true", "false"])
    lst.set_defaults(func=_list)
    for name, help_ in (
        ("get", "show one configuration"),
        ("delete", "delete a configuration"),
        ("connect", "attach a credential (Add/Update Credential)"),
        ("disconnect", "detach its credential"),
        ("connection", "whether its credential works: status, when verified, and why not"),
        ("verify", "verify its credential now (one cheap call to the provider)"),
        ("history", "who changed its state, and why"),
        ("oauth", "print the provider URL that connects it (OAuth: Stripe Connect, Xero)"),
    ):
        parser = csub.add_parser(name, help=help_)
        parser.add_argument("id")
        if name == "connect":
            parser.add_argument("credential")
        if name == "oauth":
            # Providers whose destination registers a connect flow (shared/sinks/oauth.py).
            flows = sorted(registry.oauth_flows())
            parser.add_argument("--provider", choices=flows, required=True)
        parser.add_argument("--json", action="store_true")
        parser.set_defaults(func=_one)
