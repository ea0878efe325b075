"""The local stack keeps its encryption key, database and logs to its user (0600/0700)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_stack_files_are_owner_only(tmp_path: Path) -> None:
    # A copy of the script in a scratch tree (it works relative to its own location), with
    # the real CLI; `stack.sh nope` runs the set-up lines and stops at the usage message.
    script = tmp_path / "deploy/local/stack.sh"
    script.parent.mkdir(parents=True)
    shutil.copy(ROOT / "deploy/local/stack.sh", script)
    bin_dir = tmp_path / ".venv/bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "billsync").symlink_to(Path(sys.executable).parent / "billsync")
    state = tmp_path / ".local/stack"
    (state / "logs").mkdir(parents=True, mode=0o755)
    old_db = state / "billsync.db"
    old_db.write_text("")
    old_db.chmod(0o644)  # what an older stack left behind

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        ["bash", str(script), "nope"], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 2 and "usage" in done.stderr, done.stderr
    key = state / "credentials.key"
    assert key.read_text().strip() and key.read_text().strip() not in done.stdout
    for path, mode in ((key, 0o600), (old_db, 0o600), (state, 0o700), (state / "logs", 0o700)):
        assert path.stat().st_mode & 0o777 == mode, path
