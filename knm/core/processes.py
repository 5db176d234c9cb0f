"""When a killed process counts as dead: gone, or a zombie.

``psutil.wait_procs`` waits for the pid to disappear. A killed orphan (ssh-agent's daemon,
ssh's ControlPersist masters, sessions of a killed sshd) is reparented to init, which reaps it
late or never, so waiting for the pid wastes the whole timeout.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import psutil


def process_gone(proc: psutil.Process) -> bool:
    """Dead: gone, or a zombie (whether and when it is reaped is up to this machine's init)."""
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_until_gone(procs: Sequence[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Waits for ``procs`` to die; returns those still alive after ``timeout``."""
    deadline = time.monotonic() + timeout
    alive = [proc for proc in procs if not process_gone(proc)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.005)
        alive = [proc for proc in alive if not process_gone(proc)]
    return alive
