"""`billsync configs|creds|mappings|runs|events|enable|disable|resend` over the API."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.cli import build_parser
from shared.settings import Settings
from tests.support.control import Api, api_for

pytestmark = pytest.mark.kafka
SERVER_LOG = re.compile(r"^(\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d|\{\"|kafka: )")


@pytest.fixture
async def api(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Api]:
    async with api_for(settings) as client:
        monkeypatch.setenv("BILLSYNC_CONTROL_URL", client.handle.base_url)
        monkeypatch.setenv("BILLSYNC_CONTROL_TOKEN", client.handle.admin_token)
        yield client


async def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Run one command (in a thread: the CLI is synchronous, the server runs on this loop).
    Returns the exit code and stdout; stderr (errors, notes) is kept in LAST_ERR."""
    args = build_parser().parse_args(list(argv))
    code = await asyncio.to_thread(args.func, args)
    captured = capsys.readouterr()
    # The in-process server logs to the same stdout: keep only what the CLI printed.
    lines = [line for line in captured.out.splitlines() if not SERVER_LOG.match(line)]
    LAST_ERR[:] = [captured.err]
    return code, "\n".join(lines) + "\n"


LAST_ERR: list[str] = [""]


def err() -> str:
    return LAST_ERR[0]


CONFIGS = """
- id: cfg-cli
  name: CLI Stripe
  destination: STRIPE_TEST
  entityConfig: {accountFilter: "address.country == US"}
- id: cfg-cli-xero
  destination: XERO
"""


async def test_configs_apply_list_enable_disable(
    api: Api, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "configs.yaml"
    path.write_text(CONFIGS)
    code, out = await cli(capsys, "configs", "apply", str(path))
    assert code == 0 and "cfg-cli: created (version 1)" in out
    code, out = await cli(capsys, "configs", "apply", str(path))
    assert code == 0 and "cfg-cli: unchanged (version 1)" in out

    code, out = await cli(capsys, "disable", "cfg-cli", "--reason", "maintenance")
    assert code == 0 and "False" in out
    path.write_text(CONFIGS.replace("CLI Stripe", "CLI Stripe US"))
    code, out = await cli(capsys, "configs", "apply", str(path))
    assert "cfg-cli: updated (version 3)" in out
    code, out = await cli(capsys, "configs", "list", "--json", "--enabled", "false")
    rows = json.loads(out)
    assert [r["id"] for r in rows] == ["cfg-cli"] and rows[0]["name"] == "CLI Stripe US"
    code, out = await cli(capsys, "enable", "cfg-cli")
    assert code == 0
    code, out = await cli(capsys, "configs", "history", "cfg-cli")
    assert "maintenance" in out and "enable" in out

    code, out = await cli(capsys, "configs", "list")
    assert "CFG-CLI" not in out and "cfg-cli-xero" in out and "DESTINATION" in out

    path.write_text("- {id: cfg-bad, destination: STRIPE, integrationCredentialsId: nope}\n")
    code, out = await cli(capsys, "configs", "apply", str(path))
    assert code == 1 and "integrationCredentialsId: integration credential 'nope'" in err()
    assert "nope" not in out  # errors go to stderr
    path.write_text(
        "- {id: cfg-bad, destination: STRIPE, entityConfig: {accountFilter: 'a == == 1'}}"
    )
    code, out = await cli(capsys, "configs", "apply", str(path))
    assert code == 2 and "line 1, column" in err()


async def test_creds_mappings_runs_events_resend(
    api: Api, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cred = tmp_path / "cred.yaml"
    cred.write_text("type: STRIPE\nid: cred-cli\napiKey: sk_test_cli_secret_value\n")
    code, out = await cli(capsys, "creds", "create", str(cred))
    assert code == 0 and "cred-cli" in out and "sk_test_cli_secret_value" not in out
    code, out = await cli(capsys, "creds", "list", "--json")
    assert json.loads(out)[0]["secretsSet"] == ["apiKey"]

    await api.call("POST", "/integrationconfigs", json={"id": "cfg-c", "destination": "STRIPE"})
    # Connecting verifies: a test-mode key on a live configuration is refused (exit 2).
    code, out = await cli(capsys, "configs", "connect", "cfg-c", "cred-cli")
    assert code == 2 and "test mode key" in err() and out.strip() == ""
    code, out = await cli(capsys, "configs", "connection", "cfg-c", "--json")
    assert json.loads(out)["status"] == "NOT_CONNECTED"
    code, out = await cli(capsys, "configs", "verify", "cfg-c")
    assert code == 2 and "no credential is attached" in err()

    mapping = tmp_path / "mapping.json"
    mapping.write_text(
        json.dumps(
            {
                "id": "m-1",
                "externalSystem": "Stripe",
                "externalTable": "Customer",
                "externalId": "cus_9",
                "m3terEntity": "Account",
                "m3terId": "acc-9",
            }
        )
    )
    code, out = await cli(capsys, "mappings", "create", str(mapping))
    assert code == 0
    code, out = await cli(
        capsys, "mappings", "lookup", "--entity", "Account", "--m3ter-id", "acc-9", "--json"
    )
    assert [m["externalId"] for m in json.loads(out)] == ["cus_9"]
    code, out = await cli(capsys, "mappings", "lookup", "--external", "Stripe/Customer/cus_9")
    assert "m-1" in out

    code, out = await cli(capsys, "runs", "list")
    assert code == 0 and out.strip() == "(none)"
    code, out = await cli(capsys, "events", "list", "--all")
    assert code == 0 and out.strip() == "(none)"
    code, out = await cli(capsys, "runs", "get", "nope")
    assert code == 1 and "404 not_found" in err()
    code, out = await cli(capsys, "resend", "--config", "cfg-c", "--since", "2026-01-01T00:00:00Z")
    assert code == 0 and "resent 0 bill(s)" in out
    code, out = await cli(capsys, "resend")
    assert code == 2

    monkeypatch.setenv("BILLSYNC_CONTROL_TOKEN", api.handle.read_token)
    code, out = await cli(capsys, "disable", "cfg-c")
    assert code == 1 and "403 forbidden" in err()


async def test_errors_truncation_version_and_secret_files(
    api: Api, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A long value is cut visibly, with a note (on stderr) saying how to see it whole.
    long_name = "A configuration whose name is much longer than the table column allows"
    await api.call(
        "POST",
        "/integrationconfigs",
        json={"id": "cfg-long", "destination": "XERO", "name": long_name},
    )
    code, out = await cli(capsys, "configs", "list")
    assert code == 0 and "…" in out and long_name not in out
    assert "cut to 60 characters (name)" in err() and "--json" in err()

    # A credentials file that is not valid YAML: position only, never the line (a secret).
    secret = "sk_live_cli_yaml_secret_value_9"
    bad = tmp_path / "creds.yaml"
    bad.write_text(f"- id: s\n  type: STRIPE\n  apiKey: {secret}: oops\n")
    for argv in (("creds", "create", str(bad)), ("credentials", "apply", str(bad))):
        code, out = await cli(capsys, *argv)
        assert code == 2, argv
        assert "line 3, column" in err() and secret not in err() + out, argv
    missing = tmp_path / "nope.yaml"
    code, out = await cli(capsys, "creds", "create", str(missing))
    assert code == 2 and "cannot read" in err()
