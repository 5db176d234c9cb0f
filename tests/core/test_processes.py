"""When a killed process counts as dead."""

from __future__ import annotations

import subprocess
import time

import psutil

from knm.core.processes import process_gone, wait_until_gone


def test_a_killed_process_nobody_reaps_counts_as_dead() -> None:
    """ssh-agent's daemon outlives every agent run; once killed, its zombie waits for init. The
    kill waits for death, not for the reaping: it waited out its whole timeout on every run."""
    # The grandchild's parent is an exec'd sleep, which never reaps it.
    parent = subprocess.Popen(["sh", "-c", "sleep 60 & exec sleep 61"])
    try:
        children: list[psutil.Process] = []
        for _ in range(500):
            children = psutil.Process(parent.pid).children()
            if children:
                break
            time.sleep(0.01)
        orphan = children[0]
        assert not process_gone(orphan)
        orphan.kill()
        assert wait_until_gone([orphan], timeout=30) == []
        assert orphan.status() == psutil.STATUS_ZOMBIE
        assert process_gone(orphan)
    finally:
        parent.kill()
        parent.wait()
