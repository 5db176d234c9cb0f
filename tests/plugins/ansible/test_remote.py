"""The clean-up script a cancelled run sends to its nodes: every session holding a marked
process dies, and nothing else."""

from __future__ import annotations

import os
import subprocess
import time

import psutil

from knm.plugins.ansible.remote import kill_command


def _session(mark: str | None) -> subprocess.Popen[bytes]:
    """A shell in a session of its own whose child carries ``mark`` (as a module started by
    ``knm_sh`` does under sshd's ``sh -c``); the shell itself does not."""
    env = {k: v for k, v in os.environ.items() if k != "KNM_ANSIBLE_RUN"}
    prefix = f"KNM_ANSIBLE_RUN={mark} " if mark else ""
    return subprocess.Popen(
        ["sh", "-c", f"{prefix}sleep 300 & wait"], env=env, start_new_session=True
    )


def _children(proc: subprocess.Popen[bytes]) -> list[psutil.Process]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        children = psutil.Process(proc.pid).children()
        if children:
            return children
        time.sleep(0.05)
    raise AssertionError("the session's child never started")


def test_the_kill_command_ends_the_marked_sessions_only() -> None:
    marked = _session("ansible-exec-1-aaaaaa")
    other_run = _session("ansible-exec-1-aaaaaab")  # the mark as a prefix is not the mark
    unmarked = _session(None)
    try:
        children = {p: _children(p) for p in (marked, other_run, unmarked)}
        subprocess.run(["sh", "-c", kill_command("ansible-exec-1-aaaaaa")], check=True, timeout=30)
        assert marked.wait(timeout=10) == -9
        gone, alive = psutil.wait_procs(children[marked], timeout=5)
        assert gone and not alive
        for survivor in (other_run, unmarked):
            assert survivor.poll() is None
            assert all(p.is_running() for p in children[survivor])
    finally:
        for proc in (marked, other_run, unmarked):
            for child in psutil.Process(proc.pid).children() if proc.poll() is None else []:
                child.kill()
            proc.kill()
            proc.wait()


def test_the_kill_command_succeeds_when_nothing_is_marked() -> None:
    done = subprocess.run(["sh", "-c", kill_command("ansible-exec-1-zzzzzz")], timeout=30)
    assert done.returncode == 0
