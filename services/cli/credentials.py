"""`billsync credentials apply FILE` / `keygen` / `list`: credentials straight to their
compacted topic, encrypted with BILLSYNC_CREDENTIALS_KEY (before the control plane runs)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

import pydantic

from services.cli.files import load_yaml
from services.cli.output import error, print_json, print_table
from services.control.validation import as_json
from shared.credentials import CredentialAdapter, CredentialCipher, MissingKeyError, generate_key
from shared.credentials.models import Credential, StoredCredential
from shared.credentials.store import publish_credential, seal
from shared.kafka.producer import make_producer
from shared.kafka.table import read_snapshot
from shared.kafka.topics import ensure_topics
from shared.settings import get_settings


def load_credentials_file(path: Path) -> list[Credential]:
    """Every credential in the file, or ValueError listing each problem by position and
    field: never a value, never the file's text (it holds secrets)."""
    raw = load_yaml(path)
    items = raw if isinstance(raw, list) else [raw]
    out: list[Credential] = []
    problems: list[str] = []
    for index, item in enumerate(items):
        try:
            if not isinstance(item, dict):
                raise TypeError
            out.append(CredentialAdapter.validate_json(as_json(item), strict=True))
        except (TypeError, ValueError) as exc:
            label = f"#{index + 1}"
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                label += f" ({item['id'][:100]})"
            if not isinstance(exc, pydantic.ValidationError):
                problems.append(f"credential {label}: expected a mapping of fields")
                continue
            problems += [
                f"credential {label}: {'.'.join(map(str, e['loc']))}: {e['msg']}"
                for e in exc.errors(include_input=False, include_url=False)
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
        credentials = load_credentials_file(Path(args.file))
        cipher = CredentialCipher(get_settings().credentials_key)
    except (MissingKeyError, ValueError) as exc:  # FileProblem is a ValueError
        error(f"error: {exc}")
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


def _keygen(args: argparse.Namespace) -> int:
    """A key is a secret: written to a new owner-only file, or to a pipe
    (`export BILLSYNC_CREDENTIALS_KEY=$(billsync credentials keygen)`), never on a screen."""
    key = generate_key()
    if args.out:
        try:
            fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            error(
                f"error: {args.out}: {exc.strerror}; choose a new file (keys are never overwritten)"
            )
            return 2
        with os.fdopen(fd, "w") as out:
            out.write(key + "\n")
        print(f"wrote a new credentials key to {args.out} (readable by its owner only)")
        return 0
    if sys.stdout.isatty():
        error(
            "error: a key is not printed on a terminal; use --out FILE, or capture it: "
            "export BILLSYNC_CREDENTIALS_KEY=$(billsync credentials keygen)"
        )
        return 2
    print(key)
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
    keygen = csub.add_parser(
        "keygen", help="make a new BILLSYNC_CREDENTIALS_KEY (to --out FILE, or to a pipe)"
    )
    keygen.add_argument("--out", metavar="FILE", help="write it to a new owner-only file")
    keygen.set_defaults(func=_keygen)
