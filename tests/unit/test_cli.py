"""The CLI's own behaviour that needs no broker: --version, and keygen never printing a
key onto a terminal."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.cli import build_parser


def test_version_and_keygen(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.startswith("billsync ")

    out_file = tmp_path / "credentials.key"
    args = build_parser().parse_args(["credentials", "keygen", "--out", str(out_file)])
    assert args.func(args) == 0
    assert out_file.stat().st_mode & 0o777 == 0o600
    key = out_file.read_text().strip()
    assert key and key not in capsys.readouterr().out  # the key is in the file, not printed
    assert args.func(args) == 2  # never overwritten
    assert "never overwritten" in capsys.readouterr().err


def test_keygen_refuses_a_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    args = build_parser().parse_args(["credentials", "keygen"])
    assert args.func(args) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "--out FILE" in captured.err
