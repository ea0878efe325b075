"""The users who may be named in `disabledNotificationUserIds` (from a YAML file)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from pydantic import BaseModel, TypeAdapter

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class User(BaseModel):
    id: str
    email: str
    name: str = ""


class UserDirectory:
    def __init__(self, users: list[User]) -> None:
        self.users = {u.id: u for u in users}

    @classmethod
    def load(cls, path: Path | None) -> UserDirectory:
        if path is None:
            return cls([])
        raw = yaml.safe_load(path.read_text()) or []
        return cls(TypeAdapter(list[User]).validate_python(raw))

    def is_known(self, user_id: str) -> bool:
        # An email address needs no entry: the monitor can write to it directly.
        return user_id in self.users or bool(EMAIL.match(user_id))
