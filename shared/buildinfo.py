"""`billsync_build_info{version, commit} 1` on every service's /metrics: which build runs
where (a deployment sets BILLSYNC_BUILD_COMMIT; a checkout asks git)."""

from __future__ import annotations

import os
import subprocess
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from prometheus_client import Info

ROOT = Path(__file__).resolve().parent.parent

BUILD_INFO = Info("billsync_build", "The running build: package version and source commit")


@lru_cache(maxsize=1)
def build_version() -> str:
    try:
        return version("billsync")
    except PackageNotFoundError:
        return "unknown"


@lru_cache(maxsize=1)
def build_commit() -> str:
    configured = os.environ.get("BILLSYNC_BUILD_COMMIT")
    if configured:
        return configured[:40]
    if not (ROOT / ".git").exists():
        return "unknown"
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip() or "unknown"


BUILD_INFO.info({"version": build_version(), "commit": build_commit()})
