"""Who gets the disable email: ids that are addresses are used as they are; other ids are
looked up in the users directory YAML (`[{id, email, name}]`, or the same list under
`users:`), re-read when the file changes so edits need no restart."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from shared.logging import get_logger

log = get_logger("monitor")

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True, slots=True)
class Recipient:
    user_id: str
    email: str
    name: str | None = None


class UnknownUser(LookupError):
    pass


def is_email(value: str) -> bool:
    return bool(_EMAIL.match(value))


class UsersDirectory:
    def __init__(self, path: str | None) -> None:
        self._path = Path(path) if path else None
        self._mtime: float | None = None
        self._users: dict[str, Recipient] = {}

    def _load(self) -> None:
        if self._path is None:
            return
        try:
            mtime = os.stat(self._path).st_mtime
        except OSError as exc:
            log.warning("users_file_unreadable", path=str(self._path), error=str(exc))
            return
        if mtime == self._mtime:
            return
        try:
            data = yaml.safe_load(self._path.read_text()) or []
        except (OSError, yaml.YAMLError) as exc:
            log.warning("users_file_invalid", path=str(self._path), error=str(exc)[:300])
            return
        entries = data.get("users", []) if isinstance(data, dict) else data
        users: dict[str, Recipient] = {}
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict) and entry.get("id") and entry.get("email"):
                users[str(entry["id"])] = Recipient(
                    str(entry["id"]),
                    str(entry["email"]),
                    str(entry["name"]) if entry.get("name") else None,
                )
        self._users, self._mtime = users, mtime

    def resolve(self, user_id: str) -> Recipient:
        if is_email(user_id):
            return Recipient(user_id, user_id)
        self._load()
        found = self._users.get(user_id)
        if found is None:
            raise UnknownUser(f"user {user_id!r} is not in the users directory")
        return found
