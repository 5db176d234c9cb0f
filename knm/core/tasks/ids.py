"""Task ids as the contract shapes them: ``<kind>-exec-<unix seconds>-<6 random [a-z0-9]>``."""

from __future__ import annotations

import re
import secrets
import string
import time

_ALPHABET = string.ascii_lowercase + string.digits
TASK_ID = re.compile(r"^(?P<kind>[a-z0-9_]+)-exec-(?P<ts>\d+)-(?P<rand>[a-z0-9]{6})$")


def new_task_id(kind: str) -> str:
    suffix = "".join(secrets.choice(_ALPHABET) for _ in range(6))
    return f"{kind}-exec-{int(time.time())}-{suffix}"


def kind_of(task_id: str) -> str | None:
    match = TASK_ID.match(task_id)
    return match.group("kind") if match else None
