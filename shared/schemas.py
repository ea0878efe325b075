"""JSON Schema for the contracts, published in `schemas/` for the billing engine's team.

`python -m shared.schemas write` regenerates them (`make schemas`); `check` fails when a
file is stale, so the published schemas always match the code."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from shared.contracts import (
    Account,
    Bill,
    DispatchEnvelope,
    ExternalMapping,
    IntegrationConfig,
    ReplayRequest,
    ResultRecord,
)
from shared.contracts.runs import DeadLetter

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"

# Inputs the billing engine (and operators) publish, then what billsync publishes.
CONTRACTS: dict[str, Any] = {
    "bill": Bill,
    "account": Account,
    "external-mapping": ExternalMapping,
    "integration-config": IntegrationConfig,
    "dispatch-envelope": DispatchEnvelope,
    "integration-result": ResultRecord,
    "replay-request": ReplayRequest,
    "dead-letter": DeadLetter,
}


def render(name: str) -> str:
    schema = TypeAdapter(CONTRACTS[name]).json_schema(by_alias=True, mode="validation")
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"billsync/{name}.schema.json",
        **schema,
    }
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def stale() -> list[str]:
    return [
        name
        for name in CONTRACTS
        if not (SCHEMA_DIR / f"{name}.schema.json").exists()
        or (SCHEMA_DIR / f"{name}.schema.json").read_text() != render(name)
    ]


def write() -> None:
    SCHEMA_DIR.mkdir(exist_ok=True)
    for name in CONTRACTS:
        (SCHEMA_DIR / f"{name}.schema.json").write_text(render(name))


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "check"
    if command == "write":
        write()
        print(f"wrote {len(CONTRACTS)} schemas to {SCHEMA_DIR}")
        return 0
    outdated = stale()
    if outdated:
        print(f"stale JSON Schemas: {', '.join(outdated)}; run `make schemas`")
        return 1
    print("JSON Schemas are up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
