"""`billsync configs apply FILE` and `billsync configs list` (before the control plane)."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

import pydantic
import yaml

from services.cli.output import print_json, print_table
from shared.contracts import IntegrationConfig, IntegrationConfigAdapter, parse_config
from shared.kafka.producer import make_producer
from shared.kafka.table import CompactedTable
from shared.kafka.topics import ensure_topics
from shared.settings import get_settings


class ConfigFileError(ValueError):
    pass


def load_config_file(path: Path) -> list[IntegrationConfig]:
    """Validate every configuration in a YAML or JSON file; all errors are reported at once."""
    try:
        raw = yaml.safe_load(path.read_text())  # YAML is a superset of JSON
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigFileError(f"{path}: cannot read: {exc}") from exc
    items = raw if isinstance(raw, list) else [raw]
    if not items or not all(isinstance(i, dict) for i in items):
        raise ConfigFileError(f"{path}: expected a list of configuration objects")
    configs: list[IntegrationConfig] = []
    problems: list[str] = []
    for index, item in enumerate(items):
        label = f"configuration #{index + 1} ({item.get('id', 'no id')})"
        try:
            configs.append(parse_config(item))
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
    table = CompactedTable[IntegrationConfig](
        settings.topics.name("integration_configs"),
        settings.kafka_bootstrap_servers,
        IntegrationConfigAdapter.validate_json,
    )
    await table.start()
    await table.stop()
    return sorted(table.values(), key=lambda c: c.id)


def _apply(args: argparse.Namespace) -> int:
    try:
        configs = load_config_file(Path(args.file))
    except ConfigFileError as exc:
        print(f"error: {exc}")
        return 2
    asyncio.run(write_configs(configs))
    print(f"applied {len(configs)} configuration(s): {', '.join(c.id for c in configs)}")
    return 0


def _list(args: argparse.Namespace) -> int:
    configs = asyncio.run(read_configs())
    rows: list[dict[str, Any]] = [c.to_wire() for c in configs]
    if args.json:
        print_json(rows)
    else:
        print_table(
            rows, ["id", "name", "destination", "enabled", "version", "integrationCredentialsId"]
        )
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    configs = sub.add_parser("configs", help="integration configurations")
    csub = configs.add_subparsers(dest="configs_command", required=True)
    apply = csub.add_parser("apply", help="validate a YAML/JSON file and publish it")
    apply.add_argument("file")
    apply.set_defaults(func=_apply)
    lst = csub.add_parser("list", help="list configurations")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=_list)
