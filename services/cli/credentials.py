"""`billsync credentials apply FILE` / `keygen` / `list`: credentials straight to their
compacted topic, encrypted with BILLSYNC_CREDENTIALS_KEY (before the control plane runs)."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import pydantic
import yaml

from services.cli.output import print_json, print_table
from shared.credentials import CredentialAdapter, CredentialCipher, MissingKeyError, generate_key
from shared.credentials.models import Credential, StoredCredential
from shared.credentials.store import publish_credential, seal
from shared.kafka.producer import make_producer
from shared.kafka.table import read_snapshot
from shared.kafka.topics import ensure_topics
from shared.settings import get_settings


def load_credentials_file(path: Path) -> list[Credential]:
    raw = yaml.safe_load(path.read_text())
    items = raw if isinstance(raw, list) else [raw]
    out: list[Credential] = []
    problems: list[str] = []
    for index, item in enumerate(items):
        try:
            out.append(CredentialAdapter.validate_python(item))
        except pydantic.ValidationError as exc:
            label = item.get("id", f"#{index + 1}") if isinstance(item, dict) else f"#{index + 1}"
            problems += [
                f"credential {label}: {'.'.join(map(str, e['loc']))}: {e['msg']}"
                for e in exc.errors()
            ]
    if problems:
        raise ValueError(f"{path}: {len(problems)} problem(s):\n  " + "\n  ".join(problems))
    return out


async def _read_stored() -> dict[str, StoredCredential]:
    settings = get_settings()
    return await read_snapshot(
        settings.topics.name("credentials"),
        settings.kafka_bootstrap_servers,
        StoredCredential.model_validate_json,
    )


async def apply_credentials(credentials: list[Credential], cipher: CredentialCipher) -> None:
    settings = get_settings()
    await ensure_topics(settings)
    existing = await _read_stored()
    producer = make_producer(settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        for credential in credentials:
            stored = seal(credential, cipher, existing.get(credential.id))
            await publish_credential(producer, settings.topics.name("credentials"), stored)
    finally:
        await producer.stop()


def _apply(args: argparse.Namespace) -> int:
    try:
        cipher = CredentialCipher(get_settings().credentials_key)
        credentials = load_credentials_file(Path(args.file))
    except (MissingKeyError, ValueError, OSError) as exc:
        print(f"error: {exc}")
        return 2
    asyncio.run(apply_credentials(credentials, cipher))
    print(
        f"stored {len(credentials)} credential(s), encrypted: "
        + ", ".join(c.id for c in credentials)
    )
    return 0


def _list(args: argparse.Namespace) -> int:
    stored = asyncio.run(_read_stored())
    rows = [
        {"id": s.id, "type": s.type.value, "name": s.name, "version": s.version, **s.public}
        for s in stored.values()
    ]
    if args.json:
        print_json(rows)
    else:
        print_table(rows, ["id", "type", "name", "version"])
    return 0


def _keygen(_: argparse.Namespace) -> int:
    print(generate_key())
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    creds = sub.add_parser("credentials", help="integration credentials (encrypted at rest)")
    csub = creds.add_subparsers(dest="credentials_command", required=True)
    apply = csub.add_parser("apply", help="validate a YAML/JSON file, encrypt and store it")
    apply.add_argument("file")
    apply.set_defaults(func=_apply)
    lst = csub.add_parser("list", help="list credentials (never their secrets)")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=_list)
    csub.add_parser("keygen", help="print a new BILLSYNC_CREDENTIALS_KEY").set_defaults(
        func=_keygen
    )
